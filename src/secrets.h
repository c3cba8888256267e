// secrets.h — keeping passwords out of places they do not belong: the
// environment of the commands pullmail starts, core dumps, and memory that
// outlives the login.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pullmail {

// True for a "NAME=value" (or bare NAME) environment entry that carries a
// secret pullmail reads: PULLMAIL_PASSWORD, PULLMAIL_DELIVER_PASSWORD, and
// any other PULLMAIL_*PASSWORD* variable. The process runner leaves these
// out of every child's environment.
bool is_secret_variable(std::string_view entry);

// Makes the process not dumpable (no core file, no ptrace attach by other
// processes of the same user, /proc/PID/mem closed to them) and sets the
// core size limit to 0, so that a crash never writes the passwords in
// memory to disk. Called once at start-up; children (execve) are unaffected.
// Returns false when either call failed (then nothing else is wrong).
bool harden_process() noexcept;

// Overwrites a secret's bytes in a way the compiler cannot optimise away
// (OPENSSL_cleanse), then empties the string.
void wipe(std::string& secret) noexcept;
void wipe_bytes(void* data, std::size_t len) noexcept;

}  // namespace pullmail
