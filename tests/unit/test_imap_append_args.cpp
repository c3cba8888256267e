// The APPEND argument builder: only valid flags and dates reach the command,
// re-serialised; everything else is dropped and reported.
#include <doctest/doctest.h>

#include "imap_append_args.h"

using namespace pullmail;

namespace {

bool clean(const std::string& s) {
    for (char c : s)
        if (c == '\r' || c == '\n' || c == '\0') return false;
    return true;
}

}  // namespace

TEST_CASE("append_flag: system flags from the known list, keyword atoms, nothing else") {
    struct Row {
        std::string in;
        const char* out;  // nullptr: dropped
    } rows[] = {
        {"\\Seen", "\\Seen"},
        {"\\SEEN", "\\Seen"},
        {"\\answered", "\\Answered"},
        {"\\Flagged", "\\Flagged"},
        {"\\Draft", "\\Draft"},
        {"\\Deleted", "\\Deleted"},
        {"$Forwarded", "$Forwarded"},
        {"NonJunk", "NonJunk"},
        {"a.b-c_d[e", "a.b-c_d[e"},
        {std::string(50, 'k'), "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"},
        {std::string(51, 'k'), nullptr},  // Dovecot: NO Keyword length too long
        {"\\Recent", nullptr},            // only servers set it
        {"\\Junk", nullptr},              // Dovecot: BAD, literal not read
        {"\\*", nullptr},
        {"\\", nullptr},
        {"", nullptr},
        {"a b", nullptr},
        {"a(b", nullptr},
        {"a)b", nullptr},
        {"a{3}", nullptr},
        {"a%", nullptr},
        {"a*", nullptr},
        {"a\"b", nullptr},
        {"a\\b", nullptr},
        {"a]b", nullptr},
        {"a\x7f", nullptr},
        {"a\x80" "b", nullptr},
        {"a\x01", nullptr},
        {std::string("a\0b", 3), nullptr},
        {"\\Seen) {1+}\r\nx\r\nX3 CREATE INJECTED2\r\nX4 NOOP (", nullptr},
        {"x\r\nX1 CREATE INJECTED", nullptr},
    };
    for (const auto& r : rows) {
        CAPTURE(r.in);
        auto v = append_flag(r.in);
        if (!r.out) {
            CHECK_FALSE(v);
        } else {
            REQUIRE(v);
            CHECK(*v == r.out);
        }
    }
}

TEST_CASE("build_append_args: hostile dates and flags are dropped and reported") {
    struct Row {
        std::vector<std::string> flags;
        std::string date;
        const char* want_flags;
        const char* want_date;
        std::size_t dropped;
    } rows[] = {
        {{"\\Seen", "$Forwarded"}, "01-Jul-2003 10:52:37 +0200", "(\\Seen $Forwarded)",
         "\"01-Jul-2003 10:52:37 +0200\"", 0},
        {{}, "", "()", "", 0},
        {{"\\seen", "\\Seen", "kw", "KW"}, " 1-Jul-2003 10:52:37 +0200", "(\\Seen kw)",
         "\"01-Jul-2003 10:52:37 +0200\"", 0},
        {{"\\Seen"}, "01-Jul-2003 -5:-7:00 +0200", "(\\Seen)", "", 1},
        {{"\\Seen"}, "01-Jan-2020 00:00:00 +0000\"\r\nX1 CREATE INJECTED", "(\\Seen)", "", 1},
        {{"\\Seen"}, "01-Jan-2020 00:00:00 +0000\" {1+}\r\nx\r\nX1 CREATE INJECTED1\r\nX2 NOOP \"", "(\\Seen)", "",
         1},
        {{"\\Seen", "\\Flagged) {1+}\r\nx\r\nX3 CREATE INJECTED2\r\nX4 NOOP ("}, "", "(\\Seen)", "", 1},
        {{"\\Junk", "\\Recent", "a\x80" "b", "\\Answered"}, "", "(\\Answered)", "", 3},
    };
    for (const auto& r : rows) {
        CAPTURE(r.want_flags);
        CAPTURE(r.date);
        auto a = build_append_args(r.flags, r.date);
        CHECK(a.flags == r.want_flags);
        CHECK(a.date == r.want_date);
        CHECK(a.dropped.size() == r.dropped);
        CHECK(clean(a.flags));
        CHECK(clean(a.date));
    }
}

TEST_CASE("build_append_args: the flag list stays short whatever the source sends") {
    std::vector<std::string> many;
    for (int i = 0; i < 10000; ++i) many.push_back("kw" + std::to_string(i));
    auto a = build_append_args(many, "");
    CHECK(a.flags.size() <= kMaxAppendFlagList);
    CHECK(a.flags.front() == '(');
    CHECK(a.flags.back() == ')');
    CHECK(a.dropped.size() > 9000);
    CHECK(a.flags.find("kw0 kw1 ") == 1);
}

TEST_CASE("append_command: mailbox as atom or quoted string, literal marker last") {
    auto a = build_append_args({"\\Seen"}, "01-Jul-2003 10:52:37 +0200");
    CHECK(append_command("INBOX", a, 212, true) == "APPEND INBOX (\\Seen) \"01-Jul-2003 10:52:37 +0200\" {212+}");
    CHECK(append_command("Archive.old isp", build_append_args({}, ""), 5, false) ==
          "APPEND \"Archive.old isp\" () {5}");
    CHECK_FALSE(append_command("bad\r\nX1 CREATE PWNED", a, 5, true));
    CHECK_FALSE(append_command(std::string_view("a\0b", 3), a, 5, true));
}
