// error.h — the one error type of pullmail and its mapping to exit statuses.
//
// Every failure that reaches a user is a pullmail::Error. It carries the
// account it happened in (filled in by the per-account runner if the thrower
// did not know it), a kind that says which part broke, and whether retrying
// later may help. The exit status of the process is derived from kinds in one
// place: exit_status() below. Nothing else in the code base picks numbers.
#pragma once

#include <stdexcept>
#include <string>

#include "text_util.h"  // sanitize(), for the users of server text

namespace pullmail {

enum class ErrorKind {
    Usage,        // bad command line                              EX_USAGE 64
    Config,       // bad config file or contradictory settings      EX_CONFIG 78
    Unreachable,  // DNS failure, connection refused               EX_UNAVAILABLE 69
    Tls,          // certificate not trusted, STARTTLS not offered  EX_PROTOCOL 76
    Auth,         // server refused the credentials                 EX_NOPERM 77
    Protocol,     // server broke the protocol or answered -ERR/NO  EX_PROTOCOL 76
    Delivery,     // MDA refused a message, target refused APPEND   EX_CANTCREAT 73
    LocalIO,      // local file system trouble (disk full, perms)   EX_IOERR 74
    State,        // state file corrupt or from a newer version     EX_DATAERR 65
    Temporary,    // timeouts, dropped connections, busy account    EX_TEMPFAIL 75
    Internal,     // a bug in pullmail                               EX_SOFTWARE 70
};

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, std::string message, bool temporary = false);

    ErrorKind kind() const noexcept { return kind_; }
    // True when the same run later may well succeed (timeouts, MDA exit 75,
    // a dropped connection, a busy account lock).
    bool temporary() const noexcept { return temporary_; }
    const std::string& account() const noexcept { return account_; }
    // The server's own words, sanitised (see sanitize()), if any.
    const std::string& server_text() const noexcept { return server_text_; }

    Error& set_account(std::string name);
    // The server refused one folder (missing, no permission) and the
    // connection is still usable: the other folders are synced.
    bool folder_scoped() const noexcept { return folder_scoped_; }
    Error& set_folder_scoped() {
        folder_scoped_ = true;
        return *this;
    }
    Error& set_server_text(std::string_view text);

    // "<message> (server said: ...)", sanitised: safe to print anywhere.
    // (what() is the raw message.)
    std::string detail() const;

private:
    ErrorKind kind_;
    bool temporary_;
    std::string account_;
    std::string server_text_;
    bool folder_scoped_ = false;
};

// Throws Error(Protocol, message) carrying the server's words, if any. For
// the codecs and sessions, which all report a misbehaving server this way.
[[noreturn]] void throw_protocol_error(const std::string& message, std::string_view server_text = {});

// sysexits.h status for one error. Temporary errors map to EX_TEMPFAIL
// whatever their kind, so cron wrappers can retry them.
int exit_status(ErrorKind kind, bool temporary);
int exit_status(const Error& e);

// Of two exit statuses, the one that says more is wrong (for several accounts
// in one run). 0 is least severe.
int worse_status(int a, int b);

// Short lowercase word for a kind, used in --json output ("auth", "tls", ...).
const char* kind_name(ErrorKind kind);


}  // namespace pullmail
