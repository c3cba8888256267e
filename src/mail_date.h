// mail_date.h — dates from message headers, for the INTERNALDATE of an IMAP
// APPEND when the source (POP3) has none of its own, and the IMAP date-time
// form itself.
//
// Dates are parsed into range-checked numbers and written out again from
// those numbers only, so no byte of a header or of a server's response
// reaches a command unless it is one of the digits of a valid date: a date
// that does not parse is no date (the APPEND goes without one).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pullmail {

struct DateTime {
    int year = 0;         // 1900..9999
    int month = 0;        // 1..12
    int day = 0;          // 1..days in that month
    int hour = 0;         // 0..23
    int minute = 0;       // 0..59
    int second = 0;       // 0..60 (leap second)
    int zone_minutes = 0; // offset from UTC: -(99*60+59)..+(99*60+59), as "+hhmm" allows
};

// True when every field is in the ranges above (day valid for its month).
bool valid_date_time(const DateTime& d);

// IMAP date-time without the quotes (RFC 3501/9051 date-time), as a source
// server's INTERNALDATE: "01-Jul-2003 10:52:37 +0200", the day also as " 1"
// or "1", the month name in any case. Anything else, or a field out of
// range, is nullopt.
std::optional<DateTime> parse_imap_date_time(std::string_view text);

// "01-Jul-2003 10:52:37 +0200": always 26 characters, two-digit day.
// Precondition: valid_date_time(d).
std::string format_imap_date_time(const DateTime& d);

// Parses an RFC 5322 date-time ("Tue, 1 Jul 2003 10:52:37 +0200", with the
// obsolete forms: no weekday, no seconds, 2-digit years, zone names like GMT,
// EST, trailing comments) into IMAP date-time "01-Jul-2003 10:52:37 +0200".
// nullopt when it does not parse or a field is out of range.
std::optional<std::string> rfc5322_to_imap_date(std::string_view date);

// The date a message arrived at: the date of its first (topmost) Received
// header (after the last ';'), else its Date header. Empty when neither parses.
std::string arrival_date_from_header(std::string_view header_block);

}  // namespace pullmail
