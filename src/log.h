// log.h — what pullmail says on stderr. Every line names the account it is
// about, and lines from accounts running in parallel never interleave
// mid-line, and every line is made safe for a terminal (control characters
// and invalid UTF-8 escaped, see sanitize() in error.h). Levels: 0 = -q (warnings and errors), 1 = default (one summary per
// account, warnings), 2 = -v (per message), 3 = -vv (protocol trace).
#pragma once

#include <mutex>
#include <string>
#include <string_view>

namespace pullmail {

// While a progress display runs (progress.h), every log line is handed to
// it instead of being written directly: it erases its lines, writes the log
// line, and draws them again. Called with the Logger's mutex held.
class StderrOverlay {
public:
    virtual ~StderrOverlay() = default;
    virtual void write_line(std::string_view line) = 0;
};
// nullptr: lines go straight to stderr (the default).
void set_stderr_overlay(StderrOverlay* overlay);

class Logger {
public:
    explicit Logger(int level) : level_(level) {}
    int level() const { return level_; }

    void error(std::string_view account, std::string_view msg);
    void warn(std::string_view account, std::string_view msg);
    void info(std::string_view account, std::string_view msg);     // level >= 1
    void detail(std::string_view account, std::string_view msg);   // level >= 2
    void trace(std::string_view account, std::string_view msg);    // level >= 3

private:
    void write(std::string_view prefix, std::string_view account, std::string_view msg);
    int level_;
    std::mutex mu_;
};

}  // namespace pullmail
