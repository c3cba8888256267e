// imap_append_args.h — the arguments of an IMAP APPEND (RFC 3501 6.3.11,
// RFC 9051 6.3.12), built only from parsed, validated values: bytes in,
// command text out, no I/O, so a fuzzer can drive it.
//
// Flags and INTERNALDATE come from the source server (hostile, perhaps) or
// from a message's Date header (anyone can write one). A server that finds an
// argument invalid may answer BAD without reading the LITERAL+ data that
// follows, and then runs the message's lines as commands. So nothing is
// copied: a date is parsed to numbers and written again from them, a flag is
// sent only when it is one of the system flags or a keyword atom, and
// anything else is dropped (reported in `dropped`, for the caller to log).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pullmail {

// Longest keyword sent: Dovecot refuses longer ones by default
// (mail_max_keyword_length = 50), and a refused message would stay behind on
// every run; losing an odd keyword is the lesser harm.
constexpr std::size_t kMaxAppendKeyword = 50;
// Longest flag list sent, parentheses included (servers limit command lines,
// Dovecot to 64 KiB, others to 8 KiB); keywords beyond it are dropped.
constexpr std::size_t kMaxAppendFlagList = 1000;

struct AppendArgs {
    std::string flags;                 // "(\Seen $Forwarded)"; "()" when none
    std::string date;                  // "\"01-Jul-2003 10:52:37 +0200\"", or empty: no date
    std::vector<std::string> dropped;  // inputs not sent, as given: sanitise before showing
};

// A flag as APPEND may carry it: \Answered \Flagged \Deleted \Seen \Draft
// (any case in, canonical case out) or a keyword atom of at most
// kMaxAppendKeyword ASCII characters without atom-specials. \Recent (which
// only a server sets) and other \-words (Dovecot answers BAD) are not.
std::optional<std::string> append_flag(std::string_view flag);

// flags: as the source listed them (duplicates are sent once, compared
// without case); internal_date: IMAP date-time without quotes, may be empty.
AppendArgs build_append_args(const std::vector<std::string>& flags, std::string_view internal_date);

// "APPEND <mailbox> <flags>[ <date>] {<size>[+]}" without tag and CRLF.
// mailbox: the server's name (modified UTF-7 already); nullopt when it
// cannot be written as an atom or quoted string.
std::optional<std::string> append_command(std::string_view mailbox, const AppendArgs& args, std::uint64_t size,
                                          bool literal_plus);

}  // namespace pullmail
