// process_runner.h — the one way pullmail runs a command of the user's
// (the MDA, password_command).
//
// The command is run as `/bin/sh -c <command>` with posix_spawn (not fork:
// with -j the process has threads and a large address space). The child
// gets:
//   - the given descriptor as stdin (or /dev/null), stdout captured or on
//     /dev/null, stderr captured (the first bytes are kept for messages);
//     every other descriptor closed (closefrom(3));
//   - its own process group, so that a timeout reaches everything it started;
//   - default signal dispositions and an empty signal mask, whatever pullmail
//     uses for itself (SIGPIPE is ignored here);
//   - our environment without the secret variables (secrets.h).
// A command that has not exited after `timeout` is ended: its whole group
// gets SIGTERM, and SIGKILL after a short grace period. When stdin is a
// regular file (the MDA's spool), reading it is progress and restarts the
// timeout, so a slow MDA on a huge message is not cut off; output is not
// progress (an endless `yes` does not keep a command alive).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace pullmail {

struct ProcessSpec {
    std::string command;                   // for /bin/sh -c
    int stdin_fd = -1;                     // -1: /dev/null. Shared, not closed.
    bool capture_stdout = false;           // else stdout is /dev/null
    std::size_t stdout_limit = 64 * 1024;  // bytes of stdout kept
    std::size_t stderr_limit = 300;        // bytes of stderr kept
    std::chrono::milliseconds timeout{std::chrono::seconds(300)};
    // After SIGTERM, how long the group has before SIGKILL.
    std::chrono::milliseconds grace{std::chrono::seconds(1)};
    // For a command that may prompt on /dev/tty (password_command): when
    // pullmail is the foreground job of its controlling terminal, the
    // command's process group becomes the foreground one while it runs (else
    // reading the terminal from its own group would stop it with SIGTTIN),
    // and pullmail takes the terminal back afterwards. Such commands run one
    // at a time.
    bool may_use_terminal = false;
};

struct ProcessResult {
    int spawn_error = 0;   // errno when the command could not be started
    bool timed_out = false;
    int status = 0;        // waitpid() status (valid when spawn_error == 0)
    std::string out;       // stdout (capture_stdout), at most stdout_limit bytes
    std::string err;       // stderr, at most stderr_limit bytes

    bool exited_ok() const;
    // "exit status N", "killed by signal N", "timed out after N s" or the
    // spawn error: for messages.
    std::string describe(std::chrono::milliseconds timeout) const;
};

// Runs the command to its end (or its timeout). Never throws Error; a failure
// to start is reported in spawn_error. `out` may hold a secret
// (password_command): the caller wipes it.
ProcessResult run_process(const ProcessSpec& spec);

// The first non-empty line of a command's stderr, sanitised for a log line.
std::string first_line_of(std::string_view text, std::size_t max_len = 300);

}  // namespace pullmail
