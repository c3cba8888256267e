// Header and message-text code: mail dates, fingerprints, header capture,
// CRLF -> LF and mboxrd quoting. Input: byte 0 = chunking, rest = text.
//   - rfc5322_to_imap_date / arrival_date_from_header: a result must be an
//     IMAP date-time exactly as RFC 3501's grammar (it is sent in APPEND).
//   - header_fingerprint: "-" or 32 hex digits, the same for CRLF and LF.
//   - CrlfToLf and MboxrdQuoter fed in chunks equal the whole-input result;
//     mboxrd_unquote(quote(x)) == x and no quoted line starts with "From ".
//
// Findings of this target that are fixed (mail_date.cpp, issue 15 items 1
// and 3): std::stoi threw std::out_of_range on an 11-digit day or year, and
// negative or huge hours and minutes reached the output. The inputs stay in
// corpus/headers/known-* as regression cases.
#include <cstring>
#include <stdexcept>

#include "deliver.h"
#include "fingerprint.h"
#include "fuzz_support.h"
#include "mail_date.h"

using namespace pullmail;

namespace {

// The date parser is range-checked (mail_date.cpp): every date it accepts
// must be an IMAP date-time and nothing may escape it. Set
// PULLMAIL_FUZZ_LENIENT_DATES=1 to look past a date finding while hunting
// for others.
bool strict_dates() {
    static const bool strict = [] {
        const char* v = std::getenv("PULLMAIL_FUZZ_LENIENT_DATES");
        return !(v && std::strcmp(v, "1") == 0);
    }();
    return strict;
}

bool digits(std::string_view s) {
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return !s.empty();
}

// date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
// (without the quotes), date-day-fixed = (SP DIGIT) / 2DIGIT; zone = ("+" / "-") 4DIGIT.
bool imap_date_time(std::string_view s) {
    static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (s.size() != 26) return false;
    bool day_ok = (s[0] == ' ' || (s[0] >= '0' && s[0] <= '3')) && digits(s.substr(1, 1));
    bool month_ok = false;
    for (auto m : months) month_ok |= s.substr(3, 3) == m;
    auto two = [&](std::size_t at, int max) {
        return digits(s.substr(at, 2)) && (s[at] - '0') * 10 + (s[at + 1] - '0') <= max;
    };
    return day_ok && s[2] == '-' && month_ok && s[6] == '-' && digits(s.substr(7, 4)) && s[11] == ' ' &&
           two(12, 23) && s[14] == ':' && two(15, 59) && s[17] == ':' && two(18, 60) && s[20] == ' ' &&
           (s[21] == '+' || s[21] == '-') && digits(s.substr(22, 4));
}

// Runs a date function; known mail_date bugs are tolerated (see above).
template <class Fn>
void date_check(Fn&& fn) {
    std::string out;
    bool has = false;
    try {
        has = fn(out);
    } catch (const std::out_of_range&) {
        if (strict_dates()) throw;
        return;
    }
    if (!has) return;
    if (!imap_date_time(out)) {
        if (!strict_dates()) return;
        std::fprintf(stderr, "fuzz: not an IMAP date-time: '%s'\n", out.c_str());
        std::abort();
    }
}

void check_fingerprint(std::string_view text) {
    std::string fp = header_fingerprint(text);
    FUZZ_ASSERT(fp == "-" || (fp.size() == 32 && fp.find_first_not_of("0123456789abcdef") == std::string::npos));
    // The same header over another server, with the other line ending.
    std::string lf, crlf;
    for (char c : text)
        if (c != '\r') lf += c;
    for (char c : lf) {
        if (c == '\n') crlf += '\r';
        crlf += c;
    }
    FUZZ_ASSERT(header_fingerprint(lf) == header_fingerprint(crlf));
}

template <class Feed>
void chunked(std::string_view text, std::uint8_t mode, Feed&& feed) {
    fuzz::Chunker chunks(mode);
    for (std::size_t pos = 0; pos < text.size();) {
        std::size_t n = chunks.next(text.size() - pos);
        feed(text.substr(pos, n));
        pos += n;
    }
}

void check_crlf(std::string_view text, std::uint8_t mode) {
    std::string expect;
    for (std::size_t i = 0; i < text.size(); ++i)
        if (!(text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) expect += text[i];
    CrlfToLf conv;
    std::string out;
    chunked(text, mode, [&](std::string_view c) { conv.convert(c, out); });
    conv.finish(out);
    FUZZ_ASSERT(out == expect);
}

void check_mboxrd(std::string_view text, std::uint8_t mode) {
    MboxrdQuoter whole, pieces;
    std::string a, b;
    whole.quote(text, a);
    whole.finish(a);
    chunked(text, mode, [&](std::string_view c) { pieces.quote(c, b); });
    pieces.finish(b);
    FUZZ_ASSERT(a == b);
    FUZZ_ASSERT(mboxrd_unquote(a) == text);
    for (std::size_t pos = 0; pos <= a.size();) {
        FUZZ_ASSERT(a.compare(pos, 5, "From ") != 0);
        auto nl = a.find('\n', pos);
        if (nl == std::string::npos) break;
        pos = nl + 1;
    }
}

void check_capture(std::string_view text, std::uint8_t mode) {
    HeaderCapture whole, pieces;
    whole.feed(text);
    chunked(text, mode, [&](std::string_view c) { pieces.feed(c); });
    FUZZ_ASSERT(whole.complete() == pieces.complete());
    FUZZ_ASSERT(whole.header() == pieces.header());
    FUZZ_ASSERT(whole.header().size() <= HeaderCapture::kMaxHeader);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t mode = data[0];
    std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    fuzz::only_error([&] {
        date_check([&](std::string& out) {
            auto d = rfc5322_to_imap_date(text);
            if (d) out = *d;
            return d.has_value();
        });
        date_check([&](std::string& out) {
            out = arrival_date_from_header(text);
            return !out.empty();
        });
        check_fingerprint(text);
    });
    check_crlf(text, mode);
    check_mboxrd(text, mode);
    check_capture(text, mode);
    return 0;
}
