// Fuzz target: the APPEND argument builder (imap_append_args.h) and the date
// parsers feeding it (mail_date.h). Arbitrary dates — as a source server's
// INTERNALDATE or as a Date header — and arbitrary flags go in; what comes
// out must match the grammar, checked here independently of the code under
// test: no CR, LF or NUL anywhere; a date exactly "DD-Mon-YYYY HH:MM:SS
// +ZZZZ" with every field in range; a parenthesised list of system flags and
// keyword atoms; the command ends with the literal marker.
//
// Input: FuzzedDataProvider strings (a backslash followed by another byte
// ends one; a doubled backslash is one backslash): the date, then flags.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "imap_append_args.h"
#include "mail_date.h"

using namespace pullmail;

namespace {

#define CHECK(cond)                                                     \
    do {                                                                \
        if (!(cond)) {                                                  \
            std::fprintf(stderr, "fuzz_append_args: %s failed\n", #cond); \
            std::abort();                                               \
        }                                                               \
    } while (0)

bool no_ctl_breaks(std::string_view s) {
    return s.find('\r') == std::string_view::npos && s.find('\n') == std::string_view::npos &&
           s.find('\0') == std::string_view::npos;
}

bool digit(char c) { return c >= '0' && c <= '9'; }
int num(std::string_view s) {
    int v = 0;
    for (char c : s) v = v * 10 + (c - '0');
    return v;
}

// 01-Jul-2003 10:52:37 +0200 (26 characters), fields in range.
bool grammar_date(std::string_view d) {
    static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (d.size() != 26) return false;
    const char* shape = "99-Mmm-9999 99:99:99 s9999";
    for (std::size_t i = 0; i < 26; ++i) {
        char s = shape[i], c = d[i];
        if (s == '9' && !digit(c)) return false;
        if (s == 's' && c != '+' && c != '-') return false;
        if (s != '9' && s != 'M' && s != 'm' && s != 's' && c != s) return false;
    }
    bool month = false;
    for (const char* m : months) month = month || d.substr(3, 3) == m;
    int day = num(d.substr(0, 2)), year = num(d.substr(7, 4));
    return month && day >= 1 && day <= 31 && year >= 1900 && num(d.substr(12, 2)) <= 23 &&
           num(d.substr(15, 2)) <= 59 && num(d.substr(18, 2)) <= 60 && num(d.substr(24, 2)) <= 59;
}

bool grammar_flag(std::string_view f) {
    static const char* system[] = {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"};
    for (const char* s : system)
        if (f == s) return true;
    if (f.empty() || f.size() > kMaxAppendKeyword) return false;
    for (char c : f) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f || std::strchr("(){%*\"\\]", c)) return false;
    }
    return true;
}

bool grammar_flag_list(std::string_view l) {
    if (l.size() < 2 || l.front() != '(' || l.back() != ')' || l.size() > kMaxAppendFlagList) return false;
    l = l.substr(1, l.size() - 2);
    if (l.empty()) return true;
    for (;;) {
        auto sp = l.find(' ');
        if (!grammar_flag(l.substr(0, sp))) return false;
        if (sp == std::string_view::npos) return true;
        l.remove_prefix(sp + 1);
    }
}

void check_args(const AppendArgs& a, std::size_t n_flags, bool date_given) {
    CHECK(no_ctl_breaks(a.flags));
    CHECK(grammar_flag_list(a.flags));
    CHECK(a.dropped.size() <= n_flags + (date_given ? 1 : 0));
    if (!a.date.empty()) {
        CHECK(a.date.size() == 28 && a.date.front() == '"' && a.date.back() == '"');
        CHECK(grammar_date(std::string_view(a.date).substr(1, 26)));
    }
    for (bool lp : {false, true}) {
        auto cmd = append_command("INBOX", a, 4242, lp);
        CHECK(cmd);
        CHECK(no_ctl_breaks(*cmd));
        std::string tail = lp ? " {4242+}" : " {4242}";
        CHECK(cmd->size() > tail.size() && cmd->compare(cmd->size() - tail.size(), tail.size(), tail) == 0);
        CHECK(cmd->rfind("APPEND INBOX " + a.flags, 0) == 0);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    std::string date = in.ConsumeRandomLengthString(200);
    std::vector<std::string> flags;
    while (in.remaining_bytes() > 0 && flags.size() < 300) flags.push_back(in.ConsumeRandomLengthString(120));

    // As a source's INTERNALDATE.
    auto a = build_append_args(flags, date);
    check_args(a, flags.size(), !date.empty());
    if (auto d = parse_imap_date_time(date)) {
        CHECK(valid_date_time(*d));
        CHECK(a.date == "\"" + format_imap_date_time(*d) + "\"");
    } else {
        CHECK(a.date.empty());
    }

    // As a Date header: what rfc5322_to_imap_date makes of it goes through
    // the builder unchanged and round-trips.
    if (auto imap = rfc5322_to_imap_date(date)) {
        CHECK(grammar_date(*imap));
        auto d = parse_imap_date_time(*imap);
        CHECK(d);
        CHECK(format_imap_date_time(*d) == *imap);
        auto b = build_append_args({}, *imap);
        CHECK(b.dropped.empty());
        CHECK(b.date == "\"" + *imap + "\"");
    }
    auto h = arrival_date_from_header("Date: " + date + "\r\n\r\n");
    CHECK(h.empty() || grammar_date(h));
    return 0;
}
