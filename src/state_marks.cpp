#include "state_marks.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <vector>

#include "error.h"
#include "text_util.h"

namespace pullmail {

namespace {

constexpr std::string_view kMarksHeader = "pullmail-marks 1";

std::string hex8(std::uint32_t v) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08x", v);
    return buf;
}

// Space-separated words; false unless there are exactly n.
bool words(std::string_view s, std::size_t n, std::vector<std::string_view>& out) {
    out.clear();
    while (out.size() < n) {
        auto sp = s.find(' ');
        out.push_back(s.substr(0, sp));
        if (out.back().empty()) return false;
        if (sp == std::string_view::npos) return out.size() == n;
        s.remove_prefix(sp + 1);
    }
    return false;  // more words than n
}

// A decimal (or, with base 16, hex) number that is the whole word.
template <class T>
bool number(std::string_view w, T& v, int base = 10) {
    auto [end, ec] = std::from_chars(w.data(), w.data() + w.size(), v, base);
    return ec == std::errc() && end == w.data() + w.size();
}

}  // namespace

std::string checked_line(const std::string& record) { return hex8(crc32(record)) + " " + record + "\n"; }

std::optional<std::string_view> verify_line(std::string_view line) {
    if (line.size() < 10 || line[8] != ' ') return std::nullopt;
    std::string_view record = line.substr(9);
    std::uint32_t want = 0;
    for (int i = 0; i < 8; ++i) {
        char c = line[i];
        int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (v < 0) return std::nullopt;
        want = (want << 4) | static_cast<std::uint32_t>(v);
    }
    if (crc32(record) != want) return std::nullopt;
    return record;
}

std::string format_marks(const StateMarks& m) {
    std::string out = std::string(kMarksHeader) + "\n";
    out += checked_line("G " + m.stamp.generation + " " + std::to_string(m.stamp.bytes) + " " + hex8(m.stamp.tail_crc));
    for (const auto& [folder, v] : m.uidvalidity) out += checked_line("V " + folder + " " + std::to_string(v));
    for (const auto& [folder, k] : m.marks)
        out += checked_line("M " + folder + " " + std::to_string(k.uidvalidity) + " " + std::to_string(k.uidnext) +
                            " " + std::to_string(k.exists));
    out += checked_line("E " + std::to_string(m.uidvalidity.size() + m.marks.size()));
    return out;
}

std::optional<StateMarks> parse_marks(std::string_view text) {
    StateMarks m;
    std::vector<std::string_view> w;
    std::size_t lines = 0, body = 0;  // body: V and M lines
    bool ended = false;
    while (!text.empty()) {
        auto nl = text.find('\n');
        if (nl == std::string_view::npos || ended) return std::nullopt;  // torn, or something after E
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl + 1);
        if (lines++ == 0) {
            if (line != kMarksHeader) return std::nullopt;
            continue;
        }
        auto rec = verify_line(line);
        if (!rec) return std::nullopt;
        if (lines == 2) {
            if (!words(*rec, 4, w) || w[0] != "G" || !number(w[2], m.stamp.bytes) ||
                !number(w[3], m.stamp.tail_crc, 16))
                return std::nullopt;
            m.stamp.generation = std::string(w[1]);
        } else if (rec->starts_with("V ")) {
            std::uint32_t v = 0;
            if (!words(*rec, 3, w) || !number(w[2], v)) return std::nullopt;
            m.uidvalidity[std::string(w[1])] = v;
            ++body;
        } else if (rec->starts_with("M ")) {
            FolderMark k;
            if (!words(*rec, 5, w) || !number(w[2], k.uidvalidity) || !number(w[3], k.uidnext) ||
                !number(w[4], k.exists))
                return std::nullopt;
            m.marks[std::string(w[1])] = k;
            ++body;
        } else {
            std::size_t n = 0;
            if (!words(*rec, 2, w) || w[0] != "E" || !number(w[1], n) || n != body) return std::nullopt;
            ended = true;
        }
    }
    if (!ended || m.stamp.generation.empty()) return std::nullopt;
    return m;
}

std::optional<std::uint32_t> tail_crc(int fd, std::uint64_t bytes) {
    std::uint64_t n = bytes < kTailBytes ? bytes : kTailBytes;
    std::string buf(static_cast<std::size_t>(n), '\0');
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::pread(fd, buf.data() + got, n - got, static_cast<off_t>(bytes - n + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return std::nullopt;
        got += static_cast<std::size_t>(r);
    }
    return crc32(buf);
}

std::string new_generation() {
    unsigned char raw[16];
    std::size_t got = 0;
    while (got < sizeof raw) {
        ssize_t r = ::getrandom(raw + got, sizeof raw - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0)
            throw Error(ErrorKind::LocalIO, std::string("cannot get random bytes for the state file: ") +
                                                std::strerror(errno));
        got += static_cast<std::size_t>(r);
    }
    std::string out;
    for (unsigned char c : raw) {
        char b[3];
        std::snprintf(b, sizeof b, "%02x", c);
        out += b;
    }
    return out;
}

}  // namespace pullmail
