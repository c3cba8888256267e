// imap_codec.h — IMAP4rev1 response parsing (RFC 3501 / 9051), bytes in,
// events out; plus the small pieces of syntax a client needs to build commands.
//
// No sockets here. The parser splits the byte stream into responses. A
// response is one logical line that may contain literals ({n}CRLF followed by
// n raw bytes, also literal8 ~{n}); the parser reports the text around the
// literals and streams each literal's bytes separately, so that a 200 MB
// BODY[] literal never has to be held in memory, and a literal whose content
// contains lines like "A005 OK" can never be mistaken for a tagged reply.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pullmail {

class ImapEvents {
public:
    virtual ~ImapEvents() = default;
    // Text of the current response outside literals, without the final CRLF
    // and without the "{n}\r\n" literal markers. Called one or more times per
    // response (before, between and after literals); chunk boundaries are
    // arbitrary and a call may carry empty text.
    virtual void on_text(std::string_view text) = 0;
    // A literal of `size` bytes starts. Its bytes follow in on_literal_data
    // (zero or more calls, any chunking), then on_literal_end.
    virtual void on_literal_begin(std::uint64_t size) = 0;
    virtual void on_literal_data(std::string_view chunk) = 0;
    virtual void on_literal_end() = 0;
    // The response (line including all literals) is complete.
    virtual void on_response_end() = 0;
};

class ImapResponseParser {
public:
    // Longest text between literals that a response may have. Longer is a
    // protocol error. Literals themselves are unlimited (streamed).
    static constexpr std::size_t kMaxText = 16 * 1024 * 1024;
    // Throws pullmail::Error(Protocol) on malformed input (e.g. a literal
    // marker with a size that does not parse, text over kMaxText). After a
    // throw the parser state is unspecified: drop the connection.
    //
    // A line ends at CRLF (a bare LF is accepted too). It announces a literal
    // when it ends, outside any quoted string, with {n}, {n+}, ~{n} or ~{n+}.
    // A line ending in "{...}" whose braces hold only digits, "+" and "-" but
    // no valid size is a protocol error; other brace text is plain text.
    // A continuation request (a response starting with "+") is free text and
    // never announces a literal.
    void feed(std::string_view bytes, ImapEvents& events);
    // True when the parser is between responses (nothing partial buffered).
    bool idle() const;

private:
    enum class State { Text, Literal } state_ = State::Text;
    void finish_line(ImapEvents& events);

    std::string text_;           // current text piece, not yet reported
    std::uint64_t literal_left_ = 0;
    bool in_response_ = false;   // some byte of the current response was consumed
    bool after_literal_ = false; // text_ continues a response after one of its literals
};

// A parsed IMAP value (enough for FETCH, LIST, STATUS, SEARCH, resp codes).
struct ImapValue {
    enum class Type { Atom, Number, String, Nil, List } type = Type::Atom;
    std::string text;                 // atom text, decimal digits, or string contents
    std::vector<ImapValue> items;     // for List
    // For Number (and digit-only atoms). Throws pullmail::Error(Protocol)
    // for anything else, or a number beyond 64 bits: the server sent
    // something else where the caller's grammar needs a number.
    std::uint64_t number() const;
    bool is_atom(std::string_view upper) const;  // case-insensitive atom compare
};

// Parse a sequence of IMAP values (atoms, numbers, "quoted", NIL, (lists),
// and section atoms like BODY[HEADER.FIELDS (A B)] kept as one atom including
// the bracket part). Literals must already have been replaced by quoted
// strings or placeholders by the caller. Returns nullopt on malformed input
// (unbalanced parentheses or brackets, unterminated strings, control
// characters outside strings, lists nested deeper than 64 levels).
// Digit-only atoms that fit 64 bits are Numbers; NIL is Nil with empty text.
// In quoted strings \" and \\ are unescaped; a backslash before any other
// character is kept, as sloppy servers send Windows paths unescaped.
// With `literals`, a placeholder "{#N}" stands for the string literals[N]
// (how ImapSession keeps small literals aside: their bytes may include CR, LF
// or NUL, which a quoted string cannot carry).
std::optional<std::vector<ImapValue>> parse_imap_values(std::string_view text,
                                                        const std::vector<std::string>* literals = nullptr);

// A tagged or untagged status response: "A1 OK [UIDVALIDITY 3] text",
// "* BYE ...", "+ go ahead".
struct ImapStatusLine {
    std::string tag;        // "*" for untagged, "+" for continuation
    std::string status;     // upper-cased: OK, NO, BAD, BYE, PREAUTH ("" for others)
    std::string code;       // inside [...], e.g. "UIDVALIDITY 3", "" when absent
    std::string text;       // human text after the code
};
// Parse the first words of a response line. Returns nullopt when the line is
// not of the form "<tag> <word> ..." (a bare "+" is accepted: servers send
// it as an empty continuation). For lines that are not status responses
// ("* 3 EXISTS", "+ Ready") status and code are empty and text is all after
// the tag. A code is recognised after a status word and at the start of a
// continuation's text. A trailing CRLF is ignored.
std::optional<ImapStatusLine> parse_status_line(std::string_view line);

// Modified UTF-7 mailbox names (RFC 3501 5.1.3).
// Throws pullmail::Error(Config) when utf8 is not valid UTF-8 (mailbox names
// come from the configuration; guessing a charset would pick a wrong folder).
std::string mutf7_encode(std::string_view utf8);
// Returns nullopt when the input is not valid modified UTF-7: 8-bit or
// control bytes, "&" without "-", bad base64, stray bits, unpaired
// surrogates, or base64 used for printable ASCII that stands for itself.
std::optional<std::string> mutf7_decode(std::string_view mutf7);

// An astring for a command: atom when safe, else "quoted" when no CR/LF/8-bit,
// else a synchronising-free literal "{n+}\r\n..." when literal_plus is true,
// else nullopt (caller must send a synchronising literal). The empty string
// is "". NUL, which IMAP cannot carry in any of these forms, is treated like
// CR/LF; callers should refuse such strings before they get here.
std::optional<std::string> imap_astring(std::string_view s, bool literal_plus);

// A UID set "1:5,7,9:12" from sorted unique UIDs, with at most max_len bytes;
// returns how many uids were consumed from the front.
// Uses sorted_uids[start..]; out is replaced. When a run does not fit whole,
// as much of its front as fits is taken and the set ends there. Returns 0
// only when start is at the end or max_len cannot hold even one UID.
std::size_t imap_uid_set(const std::vector<std::uint32_t>& sorted_uids, std::size_t start,
                         std::size_t max_len, std::string& out);

}  // namespace pullmail
