// imap_codec.cpp — IMAP response framing, value parsing and command syntax
// helpers; see imap_codec.h for the contract.
#include "imap_codec.h"

#include <algorithm>
#include <cstring>

#include "error.h"
#include "text_util.h"

namespace pullmail {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_ctl(char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
}

std::optional<std::uint64_t> parse_u64(std::string_view digits) {
    if (digits.empty()) return std::nullopt;
    std::uint64_t value = 0;
    for (char c : digits) {
        if (!is_digit(c)) return std::nullopt;
        auto d = static_cast<std::uint64_t>(c - '0');
        if (value > (UINT64_MAX - d) / 10) return std::nullopt;
        value = value * 10 + d;
    }
    return value;
}

struct LiteralMarker {
    std::size_t start;  // offset of "{" or "~{" in the line
    std::uint64_t size;
};

// Whether a complete line (without its line end) announces a literal.
// A marker counts only at the very end and outside quoted strings: a quoted
// string cannot contain CR or LF, so text inside one never ends a line, and
// one left open at the end of the line means the "{n}" belongs to it.
std::optional<LiteralMarker> find_literal_marker(std::string_view line) {
    if (line.empty() || line.back() != '}') return std::nullopt;
    std::size_t open = line.size() - 1;
    while (open > 0) {
        char c = line[open - 1];
        if (!is_digit(c) && c != '+' && c != '-') break;
        --open;
    }
    if (open == 0 || line[open - 1] != '{') return std::nullopt;
    --open;  // now at '{'

    bool quoted = false;
    for (std::size_t i = 0; i < open; ++i) {
        if (quoted && line[i] == '\\') {
            ++i;  // the escaped character cannot end the string
        } else if (line[i] == '"') {
            quoted = !quoted;
        }
    }
    if (quoted) return std::nullopt;

    std::string_view inside = line.substr(open + 1, line.size() - open - 2);
    if (!inside.empty() && inside.back() == '+') inside.remove_suffix(1);  // LITERAL+ form
    auto size = parse_u64(inside);
    if (!size) throw_protocol_error("server sent a malformed literal size", line.substr(open));
    std::size_t start = (open > 0 && line[open - 1] == '~') ? open - 1 : open;  // literal8
    return LiteralMarker{start, *size};
}

}  // namespace

// ---------------------------------------------------------------------------
// Response framing

void ImapResponseParser::feed(std::string_view bytes, ImapEvents& events) {
    const char* p = bytes.data();
    const char* const end = p + bytes.size();
    while (p < end) {
        if (state_ == State::Literal) {
            auto n = static_cast<std::size_t>(
                std::min<std::uint64_t>(literal_left_, static_cast<std::uint64_t>(end - p)));
            literal_left_ -= n;
            if (literal_left_ == 0) state_ = State::Text;
            events.on_literal_data(std::string_view(p, n));
            p += n;
            if (state_ == State::Text) events.on_literal_end();
            continue;
        }
        in_response_ = true;
        const void* found = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
        const char* stop = found ? static_cast<const char*>(found) : end;
        auto piece = static_cast<std::size_t>(stop - p);
        // One byte of slack for the CR of the CRLF; checked before appending
        // so that an endless line costs no memory.
        if (text_.size() + piece > kMaxText + 1) {
            throw_protocol_error("server sent a response line longer than 16 MiB");
        }
        text_.append(p, piece);
        if (!found) break;
        p = stop + 1;
        if (!text_.empty() && text_.back() == '\r') text_.pop_back();
        if (text_.size() > kMaxText) throw_protocol_error("server sent a response line longer than 16 MiB");
        finish_line(events);
    }
}

void ImapResponseParser::finish_line(ImapEvents& events) {
    // A response starting with "+" is a continuation request (no tag may
    // contain "+"): "+" SP resp-text or base64, free text that never
    // announces a literal, whatever it ends with.
    bool continuation = !after_literal_ && !text_.empty() && text_.front() == '+';
    auto marker = continuation ? std::nullopt : find_literal_marker(text_);
    if (!marker) {
        in_response_ = false;
        after_literal_ = false;
        events.on_text(text_);
        text_.clear();
        events.on_response_end();
        return;
    }
    events.on_text(std::string_view(text_).substr(0, marker->start));
    text_.clear();
    after_literal_ = true;
    literal_left_ = marker->size;
    state_ = marker->size > 0 ? State::Literal : State::Text;
    events.on_literal_begin(marker->size);
    if (marker->size == 0) events.on_literal_end();
}

bool ImapResponseParser::idle() const { return state_ == State::Text && !in_response_; }

// ---------------------------------------------------------------------------
// Values

std::uint64_t ImapValue::number() const {
    if (type == Type::Number || type == Type::Atom) {
        if (auto n = parse_u64(text)) return *n;
    }
    std::string shown = type == Type::List ? "a list" : type == Type::Nil ? "NIL" : "\"" + text + "\"";
    throw_protocol_error("server sent " + sanitize(shown, 60) + " where a number was expected");
}

bool ImapValue::is_atom(std::string_view upper) const {
    return type == Type::Atom && ascii_iequals(text, upper);
}

namespace {

class ValueParser {
public:
    ValueParser(std::string_view s, const std::vector<std::string>* literals) : s_(s), literals_(literals) {}

    // Values up to the end of input (depth 0) or up to the ")" closing the
    // current list, which is consumed.
    std::optional<std::vector<ImapValue>> sequence(int depth) {
        std::vector<ImapValue> out;
        for (;;) {
            while (i_ < s_.size() && s_[i_] == ' ') ++i_;
            if (i_ == s_.size()) {
                if (depth > 0) return std::nullopt;  // "(" never closed
                return out;
            }
            char c = s_[i_];
            if (c == ')') {
                if (depth == 0) return std::nullopt;
                ++i_;
                return out;
            }
            ImapValue v;
            if (c == '(') {
                // Bounded: a hostile line of "((((" must not exhaust the
                // stack here, nor later in ~ImapValue, which also recurses.
                if (depth >= kMaxDepth) return std::nullopt;
                ++i_;
                auto items = sequence(depth + 1);
                if (!items) return std::nullopt;
                v.type = ImapValue::Type::List;
                v.items = std::move(*items);
            } else if (c == '"') {
                if (!quoted(v.text)) return std::nullopt;
                v.type = ImapValue::Type::String;
            } else if (c == '{' && literals_) {
                if (!literal_placeholder(v.text)) return std::nullopt;
                v.type = ImapValue::Type::String;
            } else if (!atom(v)) {
                return std::nullopt;
            }
            out.push_back(std::move(v));
        }
    }

private:
    static constexpr int kMaxDepth = 64;

    // "{#N}": the N-th literal of the response, kept aside by the caller.
    bool literal_placeholder(std::string& out) {
        std::size_t end = s_.find('}', i_);
        if (end == std::string_view::npos || end < i_ + 3 || s_[i_ + 1] != '#') return false;
        std::size_t n = 0;
        for (std::size_t k = i_ + 2; k < end; ++k) {
            if (s_[k] < '0' || s_[k] > '9') return false;
            n = n * 10 + static_cast<std::size_t>(s_[k] - '0');
        }
        if (n >= literals_->size()) return false;
        out = (*literals_)[n];
        i_ = end + 1;
        return true;
    }

    bool quoted(std::string& out) {
        ++i_;  // opening quote
        while (i_ < s_.size()) {
            char c = s_[i_++];
            if (c == '"') return true;
            if (c == '\r' || c == '\n' || c == '\0') return false;
            if (c == '\\') {
                if (i_ == s_.size()) return false;
                char next = s_[i_];
                if (next == '"' || next == '\\') {
                    out += next;
                    ++i_;
                } else {
                    out += '\\';  // not a quoted-special: keep the backslash
                }
                continue;
            }
            out += c;
        }
        return false;  // unterminated
    }

    // An atom, extended so that "[...]" parts (FETCH sections, response
    // codes) are taken verbatim, spaces and parentheses included.
    bool atom(ImapValue& v) {
        std::size_t start = i_;
        int brackets = 0;
        for (; i_ < s_.size(); ++i_) {
            char c = s_[i_];
            if (is_ctl(c)) return false;
            if (c == '[') {
                ++brackets;
            } else if (c == ']' && brackets > 0) {
                --brackets;
            } else if (brackets == 0 && (c == ' ' || c == '(' || c == ')' || c == '"')) {
                break;
            }
        }
        if (brackets > 0) return false;
        std::string_view text = s_.substr(start, i_ - start);
        if (parse_u64(text)) {
            v.type = ImapValue::Type::Number;
            v.text = text;
        } else if (ascii_iequals(text, "NIL")) {
            v.type = ImapValue::Type::Nil;
        } else {
            v.type = ImapValue::Type::Atom;
            v.text = text;
        }
        return true;
    }

    std::string_view s_;
    const std::vector<std::string>* literals_ = nullptr;
    std::size_t i_ = 0;
};

}  // namespace

std::optional<std::vector<ImapValue>> parse_imap_values(std::string_view text,
                                                        const std::vector<std::string>* literals) {
    return ValueParser(text, literals).sequence(0);
}

// ---------------------------------------------------------------------------
// Status lines

namespace {

// Splits "[code] text" into code and text; without a well-formed leading
// code, code stays empty and all of s is text.
void split_code(std::string_view s, ImapStatusLine& out) {
    if (!s.empty() && s.front() == '[') {
        std::size_t close = s.find(']');
        if (close != std::string_view::npos) {
            out.code = s.substr(1, close - 1);
            s.remove_prefix(close + 1);
            if (!s.empty() && s.front() == ' ') s.remove_prefix(1);
        }
    }
    out.text = s;
}

}  // namespace

std::optional<ImapStatusLine> parse_status_line(std::string_view line) {
    if (line.size() >= 2 && line.substr(line.size() - 2) == "\r\n") {
        line.remove_suffix(2);
    } else if (!line.empty() && line.back() == '\n') {
        line.remove_suffix(1);
    }

    ImapStatusLine out;
    if (line == "+" || line.starts_with("+ ")) {
        out.tag = "+";
        split_code(line.substr(std::min<std::size_t>(2, line.size())), out);
        return out;
    }

    std::size_t sp = line.find(' ');
    if (sp == 0 || sp == std::string_view::npos) return std::nullopt;
    std::string_view tag = line.substr(0, sp);
    for (char c : tag) {
        if (is_ctl(c) || static_cast<unsigned char>(c) > 0x7e) return std::nullopt;
    }
    std::string_view rest = line.substr(sp + 1);
    std::size_t word_end = std::min(rest.find(' '), rest.size());
    std::string_view word = rest.substr(0, word_end);
    if (word.empty()) return std::nullopt;

    out.tag = tag;
    for (std::string_view status : {"OK", "NO", "BAD", "BYE", "PREAUTH"}) {
        if (ascii_iequals(word, status)) {
            out.status = status;
            std::string_view after = rest.substr(word_end);
            if (!after.empty()) after.remove_prefix(1);  // the space
            split_code(after, out);
            return out;
        }
    }
    out.text = rest;
    return out;
}

// ---------------------------------------------------------------------------
// Modified UTF-7 (RFC 3501 5.1.3): printable ASCII stands for itself, "&" is
// "&-", everything else is UTF-16 in base64 with "," for "/", between "&"
// and "-", without padding.

namespace {

constexpr char kMutf7Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

bool is_mutf7_direct(unsigned char c) { return c >= 0x20 && c <= 0x7e; }

int mutf7_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == ',') return 63;
    return -1;
}

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
std::optional<char32_t> next_utf8(std::string_view s, std::size_t& i) {
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char b0 = byte(i);
    std::size_t len;
    char32_t cp, min;
    if (b0 < 0x80) {
        ++i;
        return b0;
    } else if ((b0 & 0xe0) == 0xc0) {
        len = 2, cp = b0 & 0x1f, min = 0x80;
    } else if ((b0 & 0xf0) == 0xe0) {
        len = 3, cp = b0 & 0x0f, min = 0x800;
    } else if ((b0 & 0xf8) == 0xf0) {
        len = 4, cp = b0 & 0x07, min = 0x10000;
    } else {
        return std::nullopt;
    }
    if (s.size() - i < len) return std::nullopt;
    for (std::size_t k = 1; k < len; ++k) {
        unsigned char b = byte(i + k);
        if ((b & 0xc0) != 0x80) return std::nullopt;
        cp = (cp << 6) | (b & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return std::nullopt;
    i += len;
    return cp;
}

void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xc0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xe0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        out += static_cast<char>(0xf0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    }
}

}  // namespace

std::string mutf7_encode(std::string_view utf8) {
    std::string out;
    std::size_t i = 0;
    while (i < utf8.size()) {
        auto c = static_cast<unsigned char>(utf8[i]);
        if (is_mutf7_direct(c)) {
            out += static_cast<char>(c);
            if (c == '&') out += '-';
            ++i;
            continue;
        }
        // One shifted run for all consecutive characters that need it.
        out += '&';
        std::uint32_t bits = 0;
        int nbits = 0;
        auto put16 = [&](std::uint32_t unit) {
            bits = (bits << 16) | unit;
            nbits += 16;
            while (nbits >= 6) {
                nbits -= 6;
                out += kMutf7Alphabet[(bits >> nbits) & 0x3f];
            }
            bits &= (1u << nbits) - 1;
        };
        while (i < utf8.size() && !is_mutf7_direct(static_cast<unsigned char>(utf8[i]))) {
            auto cp = next_utf8(utf8, i);
            if (!cp) {
                throw Error(ErrorKind::Config,
                            "mailbox name \"" + sanitize(utf8, 100) + "\" is not valid UTF-8");
            }
            if (*cp >= 0x10000) {
                char32_t v = *cp - 0x10000;
                put16(0xd800 | (v >> 10));
                put16(0xdc00 | (v & 0x3ff));
            } else {
                put16(*cp);
            }
        }
        if (nbits > 0) out += kMutf7Alphabet[(bits << (6 - nbits)) & 0x3f];
        out += '-';
    }
    return out;
}

std::optional<std::string> mutf7_decode(std::string_view s) {
    std::string out;
    std::size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i++]);
        if (!is_mutf7_direct(c)) return std::nullopt;
        if (c != '&') {
            out += static_cast<char>(c);
            continue;
        }
        if (i < s.size() && s[i] == '-') {
            out += '&';
            ++i;
            continue;
        }
        std::uint32_t bits = 0;
        int nbits = 0;
        char32_t high = 0;  // pending high surrogate
        bool any = false;
        for (;;) {
            if (i == s.size()) return std::nullopt;  // no closing "-"
            char ch = s[i++];
            if (ch == '-') break;
            int v = mutf7_value(ch);
            if (v < 0) return std::nullopt;
            bits = (bits << 6) | static_cast<std::uint32_t>(v);
            nbits += 6;
            if (nbits < 16) continue;
            nbits -= 16;
            char32_t unit = (bits >> nbits) & 0xffff;
            bits &= (1u << nbits) - 1;
            any = true;
            if (high) {
                if (unit < 0xdc00 || unit > 0xdfff) return std::nullopt;
                append_utf8(out, 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00));
                high = 0;
            } else if (unit >= 0xd800 && unit <= 0xdbff) {
                high = unit;
            } else if (unit >= 0xdc00 && unit <= 0xdfff) {
                return std::nullopt;
            } else if (unit < 0x80 && is_mutf7_direct(static_cast<unsigned char>(unit))) {
                return std::nullopt;  // must have been written as itself
            } else {
                append_utf8(out, unit);
            }
        }
        // The run must hold whole UTF-16 units: fewer than 6 leftover bits,
        // all zero, and no surrogate left waiting for its partner.
        if (!any || high || nbits >= 6 || bits != 0) return std::nullopt;
    }
    return out;
}

// ---------------------------------------------------------------------------
// Command syntax

std::optional<std::string> imap_astring(std::string_view s, bool literal_plus) {
    if (s.empty()) return std::string("\"\"");
    bool atom_safe = true;
    bool quotable = true;
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '\r' || c == '\n' || c == '\0' || c >= 0x80) {
            quotable = false;
            atom_safe = false;
            break;
        }
        // atom-specials (RFC 3501 9), with "]" too: quoting it costs little
        // and some servers mis-parse it in atoms.
        if (is_ctl(ch) || std::strchr("(){ %*\"\\]", ch)) atom_safe = false;
    }
    if (atom_safe) return std::string(s);
    if (quotable) {
        std::string out = "\"";
        for (char ch : s) {
            if (ch == '"' || ch == '\\') out += '\\';
            out += ch;
        }
        out += '"';
        return out;
    }
    if (!literal_plus) return std::nullopt;
    std::string out = "{" + std::to_string(s.size()) + "+}\r\n";
    out += s;
    return out;
}

std::size_t imap_uid_set(const std::vector<std::uint32_t>& sorted_uids, std::size_t start,
                         std::size_t max_len, std::string& out) {
    out.clear();
    std::size_t i = start;
    while (i < sorted_uids.size()) {
        std::uint32_t first = sorted_uids[i];
        std::size_t j = i;
        while (j + 1 < sorted_uids.size() && sorted_uids[j] != UINT32_MAX &&
               sorted_uids[j + 1] == sorted_uids[j] + 1) {
            ++j;
        }
        std::uint32_t last = sorted_uids[j];
        std::size_t room = max_len - std::min(max_len, out.size() + (out.empty() ? 0 : 1));
        std::string a = std::to_string(first);
        std::string piece = first == last ? a : a + ":" + std::to_string(last);
        if (piece.size() <= room) {
            if (!out.empty()) out += ',';
            out += piece;
            i = j + 1;
            continue;
        }
        // The run does not fit whole: take the longest front of it that does.
        if (a.size() > room) break;
        if (!out.empty()) out += ',';
        out += a;
        ++i;
        std::size_t digits = room > a.size() + 1 ? room - a.size() - 1 : 0;
        if (digits > 0) {
            std::uint64_t widest = 1;
            for (std::size_t k = 0; k < digits && widest <= UINT32_MAX; ++k) widest *= 10;
            std::uint64_t upto = std::min<std::uint64_t>(last, widest - 1);
            if (upto > first) {
                out += ':' + std::to_string(upto);
                i += static_cast<std::size_t>(upto - first);
            }
        }
        break;
    }
    return i - start;
}

}  // namespace pullmail
