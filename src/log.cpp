#include "log.h"

#include <unistd.h>

#include <atomic>

#include "error.h"

namespace pullmail {

namespace {
std::atomic<StderrOverlay*> g_overlay{nullptr};
}  // namespace

void set_stderr_overlay(StderrOverlay* overlay) { g_overlay.store(overlay); }

// Every line is sanitised here, once for all callers: messages quote folder
// names, server replies and paths, and a line must stay one line with no
// terminal escapes in it (see sanitize()).
void Logger::write(std::string_view prefix, std::string_view account, std::string_view msg) {
    std::string line = "pullmail: ";
    line += prefix;
    if (!account.empty()) {
        line += "account '";
        line += sanitize(account, std::string::npos);
        line += "': ";
    }
    line += sanitize(msg, std::string::npos);
    line += '\n';
    std::lock_guard<std::mutex> lock(mu_);
    if (StderrOverlay* overlay = g_overlay.load()) {
        overlay->write_line(line);
        return;
    }
    std::size_t off = 0;
    while (off < line.size()) {
        ssize_t n = ::write(2, line.data() + off, line.size() - off);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
    }
}

void Logger::error(std::string_view account, std::string_view msg) { write("", account, msg); }
void Logger::warn(std::string_view account, std::string_view msg) {
    if (level_ >= 0) write("warning: ", account, msg);
}
void Logger::info(std::string_view account, std::string_view msg) {
    if (level_ >= 1) write("", account, msg);
}
void Logger::detail(std::string_view account, std::string_view msg) {
    if (level_ >= 2) write("", account, msg);
}
void Logger::trace(std::string_view account, std::string_view msg) {
    if (level_ >= 3) write("", account, sanitize(msg, 400));
}

}  // namespace pullmail
