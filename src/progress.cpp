#include "progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "error.h"
#include "log.h"

namespace pullmail {

namespace {

std::int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

struct Entry {
    std::string name;
    AccountProgress counters;
    bool running = true;
};

// The display and its accounts. Entries are never freed while the process
// runs (a finished account is only marked), so a pointer from
// progress_for() can never dangle, whatever the order of the threads.
class Board final : public StderrOverlay {
public:
    bool active() const { return active_.load(); }

    AccountProgress* find(std::string_view name) {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto& e : entries_)
            if (e->running && e->name == name) return &e->counters;
        return nullptr;
    }
    void begin(std::string_view name) {
        std::lock_guard<std::mutex> lock(mu_);
        auto e = std::make_unique<Entry>();
        e->name = std::string(name);
        entries_.push_back(std::move(e));
    }
    void end(std::string_view name) {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto& e : entries_)
            if (e->running && e->name == name) e->running = false;
        redraw_locked();
    }

    void start(int fd) {
        fd_ = fd;
        active_ = true;
        quit_ = false;
        set_stderr_overlay(this);
        thread_ = std::thread([this] { loop(); });
    }
    void stop() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            quit_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
        set_stderr_overlay(nullptr);
        std::lock_guard<std::mutex> lock(mu_);
        erase_locked();
        active_ = false;
    }

    void write_line(std::string_view line) override {
        std::lock_guard<std::mutex> lock(mu_);
        std::string out = erase_text();
        out += line;
        drawn_ = 0;
        out += draw_text();
        put(out);
    }

private:
    void loop() {
        std::unique_lock<std::mutex> lock(mu_);
        while (!quit_) {
            redraw_locked();
            cv_.wait_for(lock, std::chrono::milliseconds(250), [this] { return quit_; });
        }
    }

    // Columns and rows of the terminal (80x24 when it does not say).
    std::pair<std::size_t, std::size_t> size() const {
        struct winsize ws {};
        if (::ioctl(fd_, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10 && ws.ws_row > 2) return {ws.ws_col, ws.ws_row};
        return {80, 24};
    }

    // Moves to the first drawn line and clears to the end of the screen.
    std::string erase_text() const {
        if (drawn_ == 0) return {};
        return "\r\x1b[" + std::to_string(drawn_) + "A\x1b[J";
    }
    std::string draw_text() {
        std::string out;
        auto [cols, rows] = size();
        std::size_t w = cols - 1;  // never the last column: no automatic wrap
        // Never more lines than fit: the cursor cannot go up past the top.
        std::size_t running = 0, room = rows - 2;
        for (auto& e : entries_) running += e->running ? 1 : 0;
        std::int64_t now = now_ms();
        for (auto& e : entries_) {
            if (!e->running) continue;
            if (running > room && drawn_ + 1 == room) {
                out += "pullmail: and " + std::to_string(running - drawn_) + " more account(s) running\n";
                ++drawn_;
                break;
            }
            const AccountProgress& c = e->counters;
            std::int64_t first = c.first_byte_ms.load();
            out += progress_line(e->name, c.planned_messages, c.planned_bytes, c.done_messages, c.received_bytes,
                                 first < 0 ? 0 : now - first, w);
            out += '\n';
            ++drawn_;
        }
        return out;
    }
    void erase_locked() {
        put(erase_text());
        drawn_ = 0;
    }
    void redraw_locked() {
        std::string out = erase_text();
        drawn_ = 0;
        out += draw_text();
        put(out);
    }
    void put(const std::string& s) const {
        std::size_t off = 0;
        while (off < s.size()) {
            ssize_t n = ::write(fd_, s.data() + off, s.size() - off);
            if (n <= 0) return;
            off += static_cast<std::size_t>(n);
        }
    }

    std::mutex mu_;
    std::condition_variable cv_;
    std::thread thread_;
    std::vector<std::unique_ptr<Entry>> entries_;
    std::atomic<bool> active_{false};
    bool quit_ = false;
    int fd_ = 2;
    std::size_t drawn_ = 0;  // lines on the screen below the last log line
};

Board& board() {
    static Board* b = new Board;  // never destroyed: threads may report late
    return *b;
}

std::string clock_text(std::uint64_t seconds) {
    char buf[32];
    if (seconds >= 3600)
        std::snprintf(buf, sizeof buf, "%llu:%02llu:%02llu", static_cast<unsigned long long>(seconds / 3600),
                      static_cast<unsigned long long>(seconds / 60 % 60), static_cast<unsigned long long>(seconds % 60));
    else
        std::snprintf(buf, sizeof buf, "%llu:%02llu", static_cast<unsigned long long>(seconds / 60),
                      static_cast<unsigned long long>(seconds % 60));
    return buf;
}

}  // namespace

void AccountProgress::received(std::uint64_t n) {
    std::int64_t none = -1;
    if (first_byte_ms.load(std::memory_order_relaxed) < 0) first_byte_ms.compare_exchange_strong(none, now_ms());
    received_bytes.fetch_add(n, std::memory_order_relaxed);
}

AccountProgress* progress_for(std::string_view account) {
    Board& b = board();
    return b.active() ? b.find(account) : nullptr;
}

void progress_begin(std::string_view account) {
    if (board().active()) board().begin(account);
}

void progress_end(std::string_view account) {
    if (board().active()) board().end(account);
}

std::string human_bytes(std::uint64_t n) {
    static const char* units[] = {"kB", "MB", "GB", "TB"};
    if (n < 1000) return std::to_string(n) + " B";
    double v = static_cast<double>(n) / 1000;
    int u = 0;
    while (v >= 1000 && u < 3) {
        v /= 1000;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
}

std::string progress_line(std::string_view account, std::uint64_t planned_messages, std::uint64_t planned_bytes,
                          std::uint64_t done_messages, std::uint64_t received_bytes, std::int64_t elapsed_ms,
                          std::size_t width) {
    std::string line = "pullmail: " + sanitize(account, 60) + ": ";
    if (planned_messages == 0 && received_bytes == 0) {
        line += "checking for new mail";
    } else {
        line += std::to_string(done_messages) + "/" + std::to_string(planned_messages) + " messages, " +
                human_bytes(received_bytes) + " of " + human_bytes(planned_bytes);
        if (elapsed_ms >= 500 && received_bytes > 0) {
            double rate = static_cast<double>(received_bytes) * 1000.0 / static_cast<double>(elapsed_ms);
            line += ", " + human_bytes(static_cast<std::uint64_t>(rate)) + "/s";
            if (planned_bytes > received_bytes)
                line += ", " + clock_text(static_cast<std::uint64_t>(
                                   static_cast<double>(planned_bytes - received_bytes) / rate + 0.5)) + " left";
        }
    }
    if (line.size() > width) {
        std::size_t cut = width;
        while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;  // not inside UTF-8
        line.resize(cut);
    }
    return line;
}

void ProgressDisplay::start() {
    if (running_) return;
    board().start(fd_);
    running_ = true;
}

void ProgressDisplay::stop() {
    if (!running_) return;
    board().stop();
    running_ = false;
}

bool want_progress(int fd, int level, bool force_on, bool force_off) {
    if (force_off) return false;
    if (force_on) return true;
    const char* term = std::getenv("TERM");
    if (term && std::string_view(term) == "dumb") return false;
    return level >= 1 && ::isatty(fd) == 1;
}

}  // namespace pullmail
