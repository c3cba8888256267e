#include "error.h"

#include <sysexits.h>

#include <algorithm>

namespace pullmail {

Error::Error(ErrorKind kind, std::string message, bool temporary)
    : std::runtime_error(std::move(message)), kind_(kind), temporary_(temporary) {}

Error& Error::set_account(std::string name) {
    account_ = std::move(name);
    return *this;
}

Error& Error::set_server_text(std::string_view text) {
    server_text_ = sanitize(text);
    return *this;
}

std::string Error::detail() const {
    // Messages quote folder names, paths and other text from outside.
    std::string out = sanitize(what(), std::string::npos);
    if (!server_text_.empty()) out += " (server said: " + server_text_ + ")";
    return out;
}

void throw_protocol_error(const std::string& message, std::string_view server_text) {
    Error e(ErrorKind::Protocol, message);
    if (!server_text.empty()) e.set_server_text(server_text);
    throw e;
}

int exit_status(ErrorKind kind, bool temporary) {
    if (temporary) return EX_TEMPFAIL;
    switch (kind) {
        case ErrorKind::Usage: return EX_USAGE;
        case ErrorKind::Config: return EX_CONFIG;
        case ErrorKind::Unreachable: return EX_UNAVAILABLE;
        case ErrorKind::Tls: return EX_PROTOCOL;
        case ErrorKind::Auth: return EX_NOPERM;
        case ErrorKind::Protocol: return EX_PROTOCOL;
        case ErrorKind::Delivery: return EX_CANTCREAT;
        case ErrorKind::LocalIO: return EX_IOERR;
        case ErrorKind::State: return EX_DATAERR;
        case ErrorKind::Temporary: return EX_TEMPFAIL;
        case ErrorKind::Internal: return EX_SOFTWARE;
    }
    return EX_SOFTWARE;
}

int exit_status(const Error& e) { return exit_status(e.kind(), e.temporary()); }

namespace {
// Higher rank = more in need of a human. Temporary failures rank lowest of the
// errors because the next run may clear them on its own.
int rank(int status) {
    switch (status) {
        case 0: return 0;
        case EX_TEMPFAIL: return 1;
        case EX_UNAVAILABLE: return 2;
        case EX_PROTOCOL: return 3;
        case EX_CANTCREAT: return 4;
        case EX_IOERR: return 5;
        case EX_DATAERR: return 6;
        case EX_NOPERM: return 7;
        case EX_SOFTWARE: return 8;
        case EX_CONFIG: return 9;
        case EX_USAGE: return 10;
        default: return 5;
    }
}
}  // namespace

int worse_status(int a, int b) { return rank(b) > rank(a) ? b : a; }

const char* kind_name(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::Usage: return "usage";
        case ErrorKind::Config: return "config";
        case ErrorKind::Unreachable: return "unreachable";
        case ErrorKind::Tls: return "tls";
        case ErrorKind::Auth: return "auth";
        case ErrorKind::Protocol: return "protocol";
        case ErrorKind::Delivery: return "delivery";
        case ErrorKind::LocalIO: return "local-io";
        case ErrorKind::State: return "state";
        case ErrorKind::Temporary: return "temporary";
        case ErrorKind::Internal: return "internal";
    }
    return "internal";
}

namespace {

// Length of the well-formed UTF-8 sequence at the start of s (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), 0 when there is
// none; *cp receives the code point.
std::size_t utf8_sequence(std::string_view s, char32_t* cp) {
    auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    unsigned char c = b(0);
    std::size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
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

}  // namespace pullmail
