// imap_idle.h — the IDLE (RFC 2177) and NOTIFY (RFC 5465) part of the IMAP
// codec: bytes in, wake-up events out. No sockets; the watcher session
// (imap_watch.h) feeds it what the server sends while idling.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "imap_codec.h"

namespace pullmail {

struct IdleEvent {
    enum class Kind {
        Continuation,  // "+ idling": IDLE accepted
        Tagged,        // a completion (tag, status)
        Exists,        // "* N EXISTS": new mail in the selected folder
        Expunge,       // "* N EXPUNGE" / VANISHED
        Fetch,         // "* N FETCH (FLAGS ...)": flags changed
        Status,        // "* STATUS mailbox (...)": NOTIFY news of another folder
        Bye,           // the server is closing the connection
        Other,         // anything else (OK keepalives, CAPABILITY, ...)
    };
    Kind kind = Kind::Other;
    std::uint32_t number = 0;  // Exists/Expunge/Fetch: the number
    std::string tag;           // Tagged
    std::string status;        // Tagged/Bye: OK, NO, BAD, BYE
    std::string mailbox;       // Status: the server's mailbox name (decoded from literal/quoted)
    std::string text;          // the response without literals' bytes, for messages
    // True when this event means a folder may hold new mail.
    bool wakes() const { return kind == Kind::Exists || kind == Kind::Status; }
};

// Splits the server's bytes into IdleEvents. Throws Error(Protocol) on
// malformed input (see ImapResponseParser); then drop the connection.
class IdleDecoder {
public:
    std::vector<IdleEvent> feed(std::string_view bytes);

private:
    class Collector;
    ImapResponseParser parser_;
    std::string text_;
    std::vector<std::string> literals_;
    std::string literal_;
    std::uint64_t literal_total_ = 0;  // literal bytes of the current response
};

// Classifies one complete response (literals as "{#N}" placeholders).
IdleEvent classify_idle_response(const std::string& text, const std::vector<std::string>& literals);

// The NOTIFY SET command (without tag) asking for MessageNew and
// MessageExpunge in the given mailboxes (command arguments, already
// encoded/quoted by the session), as STATUS responses since none is selected.
std::string notify_set_command(const std::vector<std::string>& mailbox_args);

}  // namespace pullmail
