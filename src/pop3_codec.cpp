// pop3_codec.cpp — POP3 reply parsing; see pop3_codec.h for the contract.
//
// The data path is the hot path (every message body passes through it), so it
// never copies: on_data receives ranges of the caller's buffer. A range is
// broken only where a byte must be dropped (the stuffing dot at a line start)
// or held back across a feed() boundary (a "." or ".\r" at a line start, which
// may still turn out to be the terminator).
#include "pop3_codec.h"

#include <cstring>

#include "error.h"
#include "text_util.h"

namespace pullmail {

namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim_trailing_blanks(std::string_view s) {
    while (!s.empty() && (is_blank(s.back()) || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

// Splits off the first word of s (blank-separated); s keeps the rest with
// leading blanks removed.
std::string_view next_word(std::string_view& s) {
    std::size_t i = 0;
    while (i < s.size() && !is_blank(s[i])) ++i;
    std::string_view word = s.substr(0, i);
    while (i < s.size() && is_blank(s[i])) ++i;
    s.remove_prefix(i);
    return word;
}

template <typename T>
std::optional<T> parse_decimal(std::string_view digits) {
    if (digits.empty()) return std::nullopt;
    T value = 0;
    for (char c : digits) {
        if (c < '0' || c > '9') return std::nullopt;
        T d = static_cast<T>(c - '0');
        if (value > (static_cast<T>(-1) - d) / 10) return std::nullopt;  // overflow
        value = static_cast<T>(value * 10 + d);
    }
    return value;
}

std::optional<std::uint32_t> parse_message_number(std::string_view word) {
    auto n = parse_decimal<std::uint32_t>(word);
    if (!n || *n == 0) return std::nullopt;
    return n;
}

}  // namespace

void Pop3ReplyParser::expect(bool multiline) { expected_.push_back(multiline); }

std::size_t Pop3ReplyParser::pending() const { return expected_.size(); }

void Pop3ReplyParser::feed(std::string_view bytes, Pop3Events& events) {
    const char* p = bytes.data();
    const char* const end = p + bytes.size();
    while (p < end) {
        p = state_ == State::Status ? feed_status(p, end, events) : feed_data(p, end, events);
    }
}

const char* Pop3ReplyParser::feed_status(const char* p, const char* end, Pop3Events& events) {
    if (expected_.empty()) {
        throw_protocol_error("server sent data when no reply was expected",
                       std::string_view(p, static_cast<std::size_t>(end - p)));
    }
    const void* found = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
    const char* stop = found ? static_cast<const char*>(found) : end;
    std::size_t piece = static_cast<std::size_t>(stop - p);
    // Room for one CR beyond the limit: it may be the first half of the CRLF.
    // Checked before appending, so a hostile endless line costs no memory.
    if (line_.size() + piece > kMaxStatusLine + 1) {
        throw_protocol_error("server sent a status line longer than 64 KiB");
    }
    line_.append(p, piece);
    if (!found) return end;
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    if (line_.size() > kMaxStatusLine) throw_protocol_error("server sent a status line longer than 64 KiB");
    finish_status(events);
    return stop + 1;
}

void Pop3ReplyParser::finish_status(Pop3Events& events) {
    std::string_view line = line_;
    bool ok;
    std::size_t indicator;
    // Servers MUST send the indicators in upper case (RFC 1939 3); accepting
    // others costs nothing.
    if (ascii_istarts_with(line, "+OK")) {
        ok = true;
        indicator = 3;
    } else if (ascii_istarts_with(line, "-ERR")) {
        ok = false;
        indicator = 4;
    } else {
        throw_protocol_error("server sent a reply that starts with neither +OK nor -ERR", line);
    }
    std::string_view text = line.substr(indicator);
    if (!text.empty()) {
        if (text.front() != ' ') {
            throw_protocol_error("server sent a reply that starts with neither +OK nor -ERR", line);
        }
        text.remove_prefix(1);
    }

    const bool data_follows = ok && expected_.front();
    state_ = data_follows ? State::DataLineStart : State::Status;
    events.on_status(ok, text);
    line_.clear();
    if (!data_follows) finish_reply(events);
}

void Pop3ReplyParser::finish_reply(Pop3Events& events) {
    // Dequeued before the event so that pending() is already right inside it,
    // and an expect() from inside the handler queues behind the rest.
    expected_.pop_front();
    state_ = State::Status;
    events.on_reply_end();
}

const char* Pop3ReplyParser::feed_data(const char* p, const char* end, Pop3Events& events) {
    const char* run = p;  // start of input not yet passed to on_data
    auto flush = [&](const char* upto) {
        if (upto > run) events.on_data(std::string_view(run, static_cast<std::size_t>(upto - run)));
    };
    while (p < end) {
        switch (state_) {
            case State::DataLineStart:
                if (*p == '.') {
                    flush(p);
                    run = ++p;  // the dot is never data: stuffing or terminator
                    state_ = State::DataDot;
                } else {
                    state_ = State::DataMid;
                }
                break;
            case State::DataMid: {
                const void* lf = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
                if (lf) {
                    p = static_cast<const char*>(lf) + 1;
                    state_ = State::DataLineStart;
                } else {
                    p = end;
                }
                break;
            }
            case State::DataDot:
                if (*p == '\n') {
                    finish_reply(events);
                    return p + 1;
                }
                if (*p == '\r') {
                    run = ++p;  // held back until we know whether LF follows
                    state_ = State::DataDotCr;
                } else {
                    // "..x" or, from a broken server, ".x": the first dot is
                    // removed either way (RFC 1939 3); the rest is a data line.
                    state_ = State::DataMid;
                }
                break;
            case State::DataDotCr:
                if (*p == '\n') {
                    finish_reply(events);
                    return p + 1;
                }
                // ".\r" not followed by LF: a dot-stuffed line that starts
                // with a bare CR. The held CR may lie in an earlier buffer.
                events.on_data("\r");
                state_ = State::DataMid;
                break;
            case State::Status:
                // Unreachable: feed() dispatches Status to feed_status and
                // only finish_reply() switches to it, which returns at once.
                return p;
        }
    }
    flush(p);
    return p;
}

std::optional<Pop3UidlEntry> parse_uidl_line(std::string_view line) {
    std::string_view rest = trim_trailing_blanks(line);
    auto number = parse_message_number(next_word(rest));
    if (!number) return std::nullopt;
    std::string_view uid = next_word(rest);
    if (uid.empty() || uid.size() > 70 || !rest.empty()) return std::nullopt;
    for (char c : uid) {
        if (c < 0x21 || c > 0x7e) return std::nullopt;
    }
    return Pop3UidlEntry{*number, std::string(uid)};
}

std::optional<Pop3ListEntry> parse_list_line(std::string_view line) {
    std::string_view rest = trim_trailing_blanks(line);
    auto number = parse_message_number(next_word(rest));
    if (!number) return std::nullopt;
    auto size = parse_decimal<std::uint64_t>(next_word(rest));
    if (!size) return std::nullopt;
    return Pop3ListEntry{*number, *size};
}

std::vector<std::string> parse_capa_lines(std::string_view payload) {
    std::vector<std::string> names;
    for (std::string_view line : split_lines(payload)) {
        while (!line.empty() && is_blank(line.front())) line.remove_prefix(1);
        std::string_view word = next_word(line);
        if (word.empty()) continue;
        std::string name(word);
        for (char& c : name) {
            if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        }
        names.push_back(std::move(name));
    }
    return names;
}

std::vector<std::string_view> split_lines(std::string_view payload) {
    std::vector<std::string_view> lines;
    while (!payload.empty()) {
        std::size_t lf = payload.find('\n');
        std::string_view line = payload.substr(0, lf);
        if (lf != std::string_view::npos && !line.empty() && line.back() == '\r') line.remove_suffix(1);
        lines.push_back(line);
        if (lf == std::string_view::npos) break;
        payload.remove_prefix(lf + 1);
    }
    return lines;
}

}  // namespace pullmail
