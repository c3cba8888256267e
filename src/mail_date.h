// mail_date.h — dates from message headers, for the INTERNALDATE of an IMAP
// APPEND when the source (POP3) has none of its own.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pullmail {

// Parses an RFC 5322 date-time ("Tue, 1 Jul 2003 10:52:37 +0200", with the
// obsolete forms: no weekday, no seconds, 2-digit years, zone names like GMT,
// EST, trailing comments) into IMAP date-time "01-Jul-2003 10:52:37 +0200".
std::optional<std::string> rfc5322_to_imap_date(std::string_view date);

// The date a message arrived at: the date of its first (topmost) Received
// header (after the last ';'), else its Date header. Empty when neither parses.
std::string arrival_date_from_header(std::string_view header_block);

}  // namespace pullmail
