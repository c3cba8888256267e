// fingerprint.h — recognising a message from its header alone.
//
// The same message has unrelated identities over POP3 (UIDL) and IMAP
// (UIDVALIDITY+UID), and a new UIDVALIDITY makes every IMAP UID meaningless.
// To avoid downloading and delivering again what was already delivered,
// pullmail records a fingerprint of each delivered message, computed from
// header fields every protocol can fetch cheaply (POP3 TOP n 0, IMAP
// BODY.PEEK[HEADER.FIELDS (...)]):
//   Message-ID (compared case-sensitively in the local part is overkill for
//   dedup; it is trimmed and lower-cased), Date, From, Subject — unfolded,
//   whitespace runs collapsed to one space, trimmed.
// Message-ID alone is not enough: it is missing from some mail and reused by
// broken senders; the other three make collisions between different messages
// unlikely while staying identical for the same message on any server.
// A field in RFC 5322's obsolete syntax (white space before the colon,
// "From  :") does not count: servers differ on whether HEADER.FIELDS
// returns such a line, so the fingerprint of the delivered message and the
// one computed from a server's HEADER.FIELDS reply would differ.
// A message without any of the four fields gets no header fingerprint
// ("-"). Over IMAP it then gets an arrival fingerprint instead (below).
#pragma once

#include <string>
#include <string_view>

namespace pullmail {

// The header field names used, for IMAP HEADER.FIELDS.
inline constexpr const char* kFingerprintFields = "MESSAGE-ID DATE FROM SUBJECT";

// Fingerprint of a header block (LF or CRLF line endings; may be the whole
// message — parsing stops at the first empty line). "-" when none of the
// fields is present. 32 hex digits (first 128 bits of SHA-256).
std::string header_fingerprint(std::string_view header_block);

// The fingerprint recorded for a message: header_fingerprint(), or, when
// that is "-" and the server gave an IMAP INTERNALDATE, the arrival
// fingerprint "t" + 31 hex digits of SHA-256 over the normalised
// INTERNALDATE. The planner matches an arrival fingerprint only against the
// same folder's records under an older UIDVALIDITY, and only with the same
// size (sync_plan.h). "-" when neither is known (POP3 without fields).
std::string message_fingerprint(std::string_view header_block, std::string_view internal_date);
bool is_arrival_fingerprint(std::string_view fp);

// Collects the header block of a streamed message (LF-normalised bytes), up
// to a bound, so the fingerprint can be computed without holding the body.
class HeaderCapture {
public:
    static constexpr std::size_t kMaxHeader = 256 * 1024;
    void feed(std::string_view chunk);
    bool complete() const { return complete_; }
    const std::string& header() const { return header_; }
    void reset() {
        header_.clear();
        complete_ = false;
    }

private:
    std::string header_;
    bool complete_ = false;
};

}  // namespace pullmail
