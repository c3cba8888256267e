// Dates from headers and IMAP INTERNALDATEs: parsed into range-checked
// numbers, written again from them. Hostile fields (negative, overflowing,
// 11 digits) give no date, never a broken command argument or an exception.
#include <doctest/doctest.h>

#include "mail_date.h"

using namespace pullmail;

TEST_CASE("rfc5322_to_imap_date: valid dates, obsolete forms") {
    struct Row {
        const char* in;
        const char* out;
    } rows[] = {
        {"Tue, 1 Jul 2003 10:52:37 +0200", "01-Jul-2003 10:52:37 +0200"},
        {"1 Jul 2003 10:52 +0200", "01-Jul-2003 10:52:00 +0200"},
        {"Tue, 01 July 03 10:52:37 GMT (comment)", "01-Jul-2003 10:52:37 +0000"},
        {"Thu, 30 Dec 99 23:59:60 EST", "30-Dec-1999 23:59:60 -0500"},
        {"29 Feb 2004 00:00:00 -0930", "29-Feb-2004 00:00:00 -0930"},
        {"1 jan 2020 1:2:3 +9959", "01-Jan-2020 01:02:03 +9959"},
        {"1 Jan 2020 01:02:03 Mars", "01-Jan-2020 01:02:03 +0000"},  // unknown zone: as -0000
        {"1 Jan 2020 01:02:03 +02:00", "01-Jan-2020 01:02:03 +0000"},
        {"Tue,\r\n 1 Jul 2003\t10:52:37 +0200", "01-Jul-2003 10:52:37 +0200"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.in);
        auto d = rfc5322_to_imap_date(r.in);
        REQUIRE(d);
        CHECK(*d == r.out);
    }
}

TEST_CASE("rfc5322_to_imap_date: hostile and impossible dates give no date, never throw") {
    const char* rows[] = {
        "Tue, 1 Jul 2003 -5:-7:00 +0200",   // once became "01-Jul-2003 -5:-7:00 +0200" (Dovecot: BAD)
        "1 Jul 2003 2147483648:00",          // once -2147483648:00:00
        "Tue, 12345678901 Jul 2003 10:00:00 +0000",  // once std::out_of_range from std::stoi
        "Tue, 1 Jul 12345678901 10:00:00 +0000",
        "1 Jul 99999999999 10:00:00 +0000",
        "1 Jul 2003 10:00:00:00 +0000",
        "1 Jul 2003 +10:00 +0000",
        "1 Jul 2003 10:+5 +0000",
        "1 Jul 2003 10: +0000",
        "1 Jul 2003 :10 +0000",
        "1 Jul 2003 100:00 +0000",
        "1 Jul 2003 24:00:00 +0000",
        "1 Jul 2003 23:60:00 +0000",
        "1 Jul 2003 23:59:61 +0000",
        "31 Feb 2003 10:00:00 +0000",
        "29 Feb 2003 10:00:00 +0000",
        "31 Apr 2003 10:00:00 +0000",
        "0 Jul 2003 10:00:00 +0000",
        "32 Jul 2003 10:00:00 +0000",
        "1 Jul 1899 10:00:00 +0000",
        "1 Jul 10000 10:00:00 +0000",
        "1 Jul 7 10:00:00 +0000",
        "1 Xyz 2003 10:00:00 +0000",
        "1 Julyyyyyyyyyyy 2003 10:00:00 +0000",
        "1 Jul 2003",
        "",
        "\xff\xfe (unclosed comment",
    };
    for (const char* in : rows) {
        CAPTURE(in);
        std::optional<std::string> d = std::string("not called");
        CHECK_NOTHROW(d = rfc5322_to_imap_date(in));
        CHECK_FALSE(d);
    }
    // CRLF is folding white space to a header; what follows the time is no
    // zone, and nothing of it reaches the output.
    CHECK(rfc5322_to_imap_date("1 Jul 2003 10:00:00\r\nX1 CREATE PWNED") == "01-Jul-2003 10:00:00 +0000");
}

TEST_CASE("parse_imap_date_time / format_imap_date_time round trip and refusals") {
    struct Row {
        const char* in;
        const char* out;  // nullptr: refused
    } rows[] = {
        {"01-Jul-2003 10:52:37 +0200", "01-Jul-2003 10:52:37 +0200"},
        {" 1-Jul-2003 10:52:37 +0200", "01-Jul-2003 10:52:37 +0200"},
        {"1-jul-2003 10:52:37 -0000", "01-Jul-2003 10:52:37 +0000"},
        {"29-Feb-2000 23:59:60 -9959", "29-Feb-2000 23:59:60 -9959"},
        {"29-Feb-1900 00:00:00 +0000", nullptr},
        {"01-Jul-2003 -5:-7:00 +0200", nullptr},
        {"01-Jul-2003 10:52:37 +0260", nullptr},
        {"01-Jul-2003 10:52:37 0200", nullptr},
        {"01-Jul-2003 10:52:37 +0200 ", nullptr},
        {"01-Jul-2003 10:52:37 +0200\r\nX1 CREATE INJECTED", nullptr},
        {"\"01-Jul-2003 10:52:37 +0200\"", nullptr},
        {"01-Jul-2003  10:52:37 +0200", nullptr},
        {"001-Jul-2003 10:52:37 +0200", nullptr},
        {"01-Jul-03 10:52:37 +0200", nullptr},
        {"01-Jly-2003 10:52:37 +0200", nullptr},
        {"", nullptr},
    };
    for (const auto& r : rows) {
        CAPTURE(r.in);
        auto d = parse_imap_date_time(r.in);
        if (!r.out) {
            CHECK_FALSE(d);
            continue;
        }
        REQUIRE(d);
        CHECK(format_imap_date_time(*d) == r.out);
    }
    CHECK_FALSE(parse_imap_date_time(std::string_view("01-Jul-2003 10:52:37 +02\0" "0", 26)));
}

TEST_CASE("arrival_date_from_header: topmost Received, else Date; poison values give way") {
    CHECK(arrival_date_from_header("Received: from a by b; Tue, 1 Jul 2003 10:52:37 +0200\n"
                                   "Date: Mon, 30 Jun 2003 09:00:00 +0000\n\n") == "01-Jul-2003 10:52:37 +0200");
    CHECK(arrival_date_from_header("Received: from a by b; Tue, 1 Jul 12345678901 10:52:37 +0200\n"
                                   "Date: Mon, 30 Jun 2003 09:00:00 +0000\n\n") == "30-Jun-2003 09:00:00 +0000");
    CHECK(arrival_date_from_header("Date: Tue, 1 Jul 2003 -5:-7:00 +0200\n\n").empty());
    CHECK(arrival_date_from_header("Date: 99999999999 Jul 2003 10:00 +0000\n\n").empty());
}
