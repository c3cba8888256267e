// pop3_codec.h — POP3 reply parsing (RFC 1939, RFC 2449), bytes in, events out.
//
// No sockets here: the session feeds whatever bytes arrived, in chunks of any
// size (a chunk may end in the middle of a status line, of "\r\n", or of the
// terminating ".\r\n"), and the parser reports replies in order. Because
// commands may be pipelined, the session tells the parser, in send order,
// whether each reply it awaits is multi-line; the parser keeps that queue.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pullmail {

class Pop3Events {
public:
    virtual ~Pop3Events() = default;
    // The status line of a reply, without CRLF. ok = "+OK", else "-ERR".
    // text is what follows the status indicator and one space.
    virtual void on_status(bool ok, std::string_view text) = 0;
    // Data of a multi-line reply (only after on_status(true,...) for a reply
    // expected multi-line): dot-unstuffed bytes, line endings exactly as on
    // the wire (normally CRLF), in chunks of any size. The terminating ".\r\n"
    // is not included. The concatenation of all chunks is the exact payload.
    virtual void on_data(std::string_view chunk) = 0;
    // End of a reply: after on_status for single-line and -ERR replies, after
    // the last on_data for multi-line ones.
    virtual void on_reply_end() = 0;
};

class Pop3ReplyParser {
public:
    // Longest status line accepted, bytes without CRLF. Longer is a protocol
    // error (a hostile server must not make us buffer without end).
    static constexpr std::size_t kMaxStatusLine = 64 * 1024;

    // Queue the kind of the next reply to parse, in the order commands are sent.
    // A multi-line reply that begins with -ERR is single-line (RFC 1939).
    void expect(bool multiline);
    // Number of replies queued but not yet completely parsed.
    std::size_t pending() const;
    // Feed bytes. Calls events for every complete piece. Throws
    // pullmail::Error(Protocol) on a malformed reply (status line neither +OK
    // nor -ERR, status line too long, data when no reply is expected).
    // After a throw (from here or from an event handler) the parser state is
    // unspecified: drop the connection and the parser.
    //
    // Line ends: CRLF, and for sloppy servers a bare LF too, end status lines
    // and the data lines that the terminator "." must start after. Bytes
    // inside a data line are passed through untouched.
    void feed(std::string_view bytes, Pop3Events& events);
    // Expect the server greeting (single-line) first; used when the codec sees
    // the connection from its very start (tests, fake servers).
    void expect_greeting() { expect(false); }

private:
    enum class State {
        Status,         // collecting a status line into line_
        DataLineStart,  // in a multi-line reply, at the start of a line
        DataMid,        // in a multi-line reply, inside a line
        DataDot,        // a line began with "."; the dot is held back
        DataDotCr,      // a line began with ".\r"; both are held back
    };
    const char* feed_status(const char* p, const char* end, Pop3Events& events);
    const char* feed_data(const char* p, const char* end, Pop3Events& events);
    void finish_status(Pop3Events& events);
    void finish_reply(Pop3Events& events);

    std::deque<bool> expected_;  // multiline flag of each awaited reply, front = current
    State state_ = State::Status;
    std::string line_;  // status line being collected, at most kMaxStatusLine + 1 bytes
};

// One line of a UIDL listing "1 whqtswO00WBw418f9t5JxYwZ" (without CRLF).
struct Pop3UidlEntry {
    std::uint32_t number = 0;
    std::string uid;
};
// One line of a LIST listing "1 1205".
struct Pop3ListEntry {
    std::uint32_t number = 0;
    std::uint64_t size = 0;
};
// Parse single lines; return nullopt when malformed. A UID is 1–70 printable
// ASCII characters 0x21–0x7E (RFC 1939 7); longer or odd ones are rejected.
// Message numbers start at 1. Words may be separated by several spaces or
// tabs and trailing white space is ignored; a LIST line may carry more after
// the size (RFC 1939 5 allows it), a UIDL line may not.
std::optional<Pop3UidlEntry> parse_uidl_line(std::string_view line);
std::optional<Pop3ListEntry> parse_list_line(std::string_view line);

// Capability names from a CAPA reply's lines, upper-cased first words, e.g.
// {"PIPELINING", "UIDL", "TOP", "SASL", ...}, in order; blank lines skipped.
std::vector<std::string> parse_capa_lines(std::string_view payload);

// Splits a multi-line payload (as delivered by on_data, concatenated) into
// lines without their line endings (CRLF or bare LF). A last line without a
// line ending is kept; no empty line is invented after a final line ending.
// The views point into payload. For UIDL/LIST/CAPA, which are small.
std::vector<std::string_view> split_lines(std::string_view payload);

}  // namespace pullmail
