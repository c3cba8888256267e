// progress.h — the live progress lines on a terminal: one line per running
// account ("home: 12/40 messages, 3.1 MB, 1.2 MB/s, 0:25 left"), redrawn in
// place a few times a second on stderr and erased when the run ends, so
// that only the log and summary lines stay.
//
// The executor feeds counters (AccountProgress, lock-free atomics) and
// knows nothing of terminals; the display owns the drawing. Log lines go
// through the display while it runs (Logger's StderrOverlay): the lines are
// erased, the log line written, the lines drawn again, so neither garbles
// the other. Without a display every hook is a no-op (progress_for() returns
// nullptr): cron, pipes, journald and -q see nothing of it.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace pullmail {

// What one account's run has planned and done so far. Bytes are as the
// server sends them (the sizes it announces, CRLF line endings).
struct AccountProgress {
    std::atomic<std::uint64_t> planned_messages{0}, planned_bytes{0};
    std::atomic<std::uint64_t> done_messages{0}, received_bytes{0};
    std::atomic<std::int64_t> first_byte_ms{-1};  // steady-clock ms of the first byte, -1 = none yet

    void plan(std::uint64_t messages, std::uint64_t bytes) {
        planned_messages += messages;
        planned_bytes += bytes;
    }
    void received(std::uint64_t n);
    void message_done() { ++done_messages; }
};

// The counters of a running account while a display is shown, else nullptr.
// Valid until progress_end(account).
AccountProgress* progress_for(std::string_view account);

// An account's run starts (its line appears) and ends (its line goes away).
void progress_begin(std::string_view account);
void progress_end(std::string_view account);

// One line for an account, at most `width` columns: pure, for tests.
// now_ms is the steady clock in milliseconds.
std::string progress_line(std::string_view account, std::uint64_t planned_messages, std::uint64_t planned_bytes,
                          std::uint64_t done_messages, std::uint64_t received_bytes, std::int64_t elapsed_ms,
                          std::size_t width);

// "3.1 MB", "512 B", "12.0 kB" (powers of 1000).
std::string human_bytes(std::uint64_t n);

// Shows the lines on file descriptor `fd` from start() to stop(); one per
// process (the command line owns it). stop() erases the lines and detaches
// from the Logger.
class ProgressDisplay {
public:
    explicit ProgressDisplay(int fd) : fd_(fd) {}
    ~ProgressDisplay() { stop(); }
    ProgressDisplay(const ProgressDisplay&) = delete;
    ProgressDisplay& operator=(const ProgressDisplay&) = delete;
    void start();
    void stop();

private:
    int fd_;
    bool running_ = false;
};

// Whether to show progress: --progress / --no-progress win; otherwise when
// stderr is a terminal and the level is not -q.
bool want_progress(int fd, int level, bool force_on, bool force_off);

}  // namespace pullmail
