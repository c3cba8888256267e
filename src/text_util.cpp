#include "text_util.h"

#include <cstdio>

#include <cstdint>

#include <array>

namespace pullmail {

std::string ascii_upper(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return out;
}

std::string ascii_lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

namespace {
char upper_char(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }
}  // namespace

bool ascii_iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && ascii_istarts_with(a, b);
}

bool ascii_istarts_with(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
        if (upper_char(s[i]) != upper_char(prefix[i])) return false;
    return true;
}

void for_each_header_field(std::string_view block,
                           const std::function<void(const std::string& name, const std::string& value)>& fn,
                           bool obsolete_names) {
    std::string name, value;
    bool have = false;
    auto emit = [&] {
        if (have) fn(name, value);
        have = false;
    };
    std::size_t pos = 0;
    while (pos < block.size()) {
        auto nl = block.find('\n', pos);
        std::string_view line = block.substr(pos, nl == std::string_view::npos ? block.size() - pos : nl - pos);
        pos = nl == std::string_view::npos ? block.size() : nl + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) break;
        if (line[0] == ' ' || line[0] == '\t') {
            if (have) value += " " + std::string(line);
            continue;
        }
        emit();
        auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;  // not a field (e.g. a From_ line): skipped
        std::string_view n = line.substr(0, colon);
        bool obsolete = !n.empty() && (n.back() == ' ' || n.back() == '\t');
        if (obsolete && !obsolete_names) continue;  // its continuation lines are dropped with it
        while (!n.empty() && (n.back() == ' ' || n.back() == '\t')) n.remove_suffix(1);
        name = ascii_lower(n);
        value = std::string(line.substr(colon + 1));
        have = true;
    }
    emit();
}

namespace {

// Slice-by-8 tables: t[0] is the classic byte table, t[k][i] the CRC of
// byte i followed by k zero bytes, so eight bytes are folded per step
// (the state file is checksummed record by record on every load).
using CrcTables = std::array<std::array<std::uint32_t, 256>, 8>;

CrcTables make_crc_tables() {
    CrcTables t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        t[0][i] = c;
    }
    for (std::uint32_t i = 0; i < 256; ++i)
        for (std::size_t k = 1; k < 8; ++k) t[k][i] = t[0][t[k - 1][i] & 0xFF] ^ (t[k - 1][i] >> 8);
    return t;
}

}  // namespace

std::uint32_t crc32(std::string_view data) {
    static const CrcTables t = make_crc_tables();
    std::uint32_t c = 0xFFFFFFFFu;
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    std::size_t n = data.size();
    for (; n >= 8; p += 8, n -= 8) {
        std::uint32_t lo = c ^ (std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
                                std::uint32_t{p[3]} << 24);
        c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][p[4]] ^
            t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    }
    for (; n > 0; ++p, --n) c = t[0][(c ^ *p) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

namespace {

// Length of the well-formed UTF-8 sequence at the start of s (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), 0 when there is
// none; *cp receives the code point.
std::size_t utf8_sequence(std::string_view s, char32_t* cp) {
    auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    unsigned char c = b(0);
    std::size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
    if (len == 0 || s.size() < len) return 0;
    char32_t v = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
    for (std::size_t i = 1; i < len; ++i) {
        if ((b(i) & 0xC0) != 0x80) return 0;
        v = (v << 6) | (b(i) & 0x3F);
    }
    if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10FFFF)) || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

}  // namespace

bool valid_utf8(std::string_view s) {
    char32_t cp;
    for (std::size_t i = 0; i < s.size();) {
        if (static_cast<unsigned char>(s[i]) < 0x80) {
            ++i;
            continue;
        }
        std::size_t n = utf8_sequence(s.substr(i), &cp);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

namespace {

// Code points that steer a terminal or a viewer although they are valid
// text: C1 controls (U+009B is CSI on some terminals), line and paragraph
// separators, and the bidirectional overrides and isolates.
bool steering(char32_t cp) {
    return (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

}  // namespace

std::string sanitize(std::string_view text, std::size_t max_len) {
    static const char* hex = "0123456789abcdef";
    std::string out;
    out.reserve(std::min(text.size(), max_len) + 3);
    std::string piece;
    std::size_t i = 0;
    while (i < text.size()) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        char32_t cp = 0;
        std::size_t len = c < 0x80 ? 1 : utf8_sequence(text.substr(i), &cp);
        if (c == '\r' || c == '\n' || c == '\t') {
            piece = c == '\r' ? "\\r" : c == '\n' ? "\\n" : "\\t";
        } else if (c < 0x20 || c == 0x7f || len == 0) {
            piece = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            len = 1;
        } else if (len > 1 && steering(cp)) {
            piece = {'\\', 'u', hex[(cp >> 12) & 15], hex[(cp >> 8) & 15], hex[(cp >> 4) & 15], hex[cp & 15]};
        } else {
            piece.assign(text.substr(i, len));
        }
        if (out.size() + piece.size() > max_len) {
            out += "...";
            break;
        }
        out += piece;
        i += len;
    }
    return out;
}

std::vector<std::string_view> split_words(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && s[i] == ' ') ++i;
        std::size_t j = i;
        while (j < s.size() && s[j] != ' ') ++j;
        if (j > i) out.push_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

void append_crlf(std::string_view chunk, bool& last_cr, std::string& out) {
    std::size_t i = 0;
    while (i < chunk.size()) {
        auto nl = chunk.find('\n', i);
        if (nl == std::string_view::npos) {
            out.append(chunk.substr(i));
            break;
        }
        out.append(chunk.substr(i, nl - i));
        bool cr_before = nl > 0 ? chunk[nl - 1] == '\r' : last_cr;
        out += cr_before ? "\n" : "\r\n";
        i = nl + 1;
    }
    if (!chunk.empty()) last_cr = chunk.back() == '\r';
}

std::string percent_encode(std::string_view s, std::string_view specials) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if (c <= 0x20 || c >= 0x7f || c == '%' || specials.find(static_cast<char>(c)) != std::string_view::npos) {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string percent_decode(std::string_view s) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        c = static_cast<char>(c | 0x20);
        return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        int hi = s[i] == '%' && i + 2 < s.size() ? hex(s[i + 1]) : -1, lo = hi >= 0 ? hex(s[i + 2]) : -1;
        if (lo >= 0) {
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::string shell_word(std::string_view s) {
    static constexpr std::string_view plain =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._-+,:@%";
    if (!s.empty() && s.find_first_not_of(plain) == std::string_view::npos) return std::string(s);
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

}  // namespace pullmail
