// text_util.h — small text helpers shared by the protocol and header code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace pullmail {

// ASCII case mapping (protocol keywords and header names are ASCII; bytes
// >= 0x80 are left alone whatever the locale).
std::string ascii_upper(std::string_view s);
std::string ascii_lower(std::string_view s);
// ASCII case-insensitive comparisons, without allocating.
bool ascii_iequals(std::string_view a, std::string_view b);
bool ascii_istarts_with(std::string_view s, std::string_view prefix);

// Calls fn(lower-cased field name, unfolded value) for each field of a
// message header block (LF or CRLF; parsing stops at the first empty line).
// The value keeps its leading white space; continuation lines are joined
// with one space. With obsolete_names = false, a field written with white
// space between its name and the colon (RFC 5322's obsolete syntax,
// "From  :") is skipped as not a field.
void for_each_header_field(std::string_view block,
                           const std::function<void(const std::string& name, const std::string& value)>& fn,
                           bool obsolete_names = true);

// Text from outside (server replies, folder names, file names) made safe for
// a terminal or a log line, cut to about max_len bytes (then "..." is
// appended; an escape or a UTF-8 sequence is never split). Valid UTF-8 is
// kept; CR, LF and tab become \r \n \t, other control characters and each
// byte of invalid UTF-8 \xNN, C1 controls, line separators and bidi
// overrides \uNNNN. The result has no control bytes, is valid UTF-8, and
// sanitising it again changes nothing.
std::string sanitize(std::string_view text, std::size_t max_len = 300);

// Whether s is well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s);

// CRC-32 (IEEE), for the state journal's record checksums and --shard.
std::uint32_t crc32(std::string_view data);

// The space-separated words of a protocol line (runs of spaces are one
// separator); views into s.
std::vector<std::string_view> split_words(std::string_view s);

// Appends chunk to out with every bare LF made CRLF (CRLF stays as it is),
// for targets that want the wire form. Chunks may split a CRLF anywhere:
// last_cr carries whether the previous chunk ended in CR.
void append_crlf(std::string_view chunk, bool& last_cr, std::string& out);

// Percent-encoding for fields of the state file: every byte <= 0x20 or
// >= 0x7f, '%' and each byte of `specials` (the field's own separators)
// becomes %XX; percent_decode undoes it (a '%' without two hex digits after
// it stays as it is).
std::string percent_encode(std::string_view s, std::string_view specials);
std::string percent_decode(std::string_view s);

// s as one POSIX shell word, for a command an error message or a written
// config suggests: unchanged when it holds only characters no shell treats
// specially (letters, digits and /._-+,:@%), else single-quoted with each '
// written as '\''. An empty string becomes ''.
std::string shell_word(std::string_view s);

}  // namespace pullmail
