// pop3_session.h — a POP3 client transaction (RFC 1939) over an already
// authenticated Channel, pipelined per RFC 2449 when the server allows it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "retrieval.h"
#include "transport.h"

namespace pullmail {

class Pop3Session {
public:
    // Commands in flight at once when the server allows pipelining. mpop
    // uses 100; the bound keeps the send buffer small while the pipe stays full.
    static constexpr std::size_t kPipelineWindow = 100;

    // allow_pipelining = the account's `pipelining` setting; pipelining is
    // used only when the server also advertises PIPELINING in CAPA.
    Pop3Session(Channel& channel, bool allow_pipelining);

    // CAPA (after login: servers may advertise more then, as mpop notes).
    void start();
    bool pipelining() const { return pipelining_; }
    bool has_capability(const std::string& cap) const { return caps_.count(cap) != 0; }
    // True once the server accepted UTF8 (RFC 6856), which start() and
    // start_and_list() send when CAPA after login lists it.
    bool utf8() const { return utf8_; }

    // UIDL and LIST: number, UIDL and size of each message (no state key:
    // message_key.h is the sync layer's). Throws Error(Protocol) when the
    // server cannot do UIDL.
    std::vector<RemoteMessage> list();

    // start() and list() in one flight (one round trip less) when the
    // server announced PIPELINING before login, which RFC 2449 says stays
    // available after it (`login_lines`: Connection::login_lines()).
    // Otherwise the same as start() followed by list().
    std::vector<RemoteMessage> start_and_list(const std::vector<std::string>& login_lines);

    // RETR each message (in order), streaming replies to the handler; many
    // RETRs are in flight when pipelining. A -ERR for one message is reported
    // through handler.failed and does not stop the others.
    void retrieve(const std::vector<RemoteMessage>& msgs, MessageHandler& handler);

    // TOP n 0 of each message: the header block, for fingerprints without
    // downloading bodies. Messages the server refuses are left out.
    std::map<std::uint32_t, std::string> headers(const std::vector<std::uint32_t>& numbers);

    struct QuitResult {
        bool committed = false;       // QUIT answered +OK: the deletions took effect
        std::size_t marked = 0;       // DELE answered +OK
        std::string server_text;      // server's words when QUIT or a DELE failed
    };
    // DELE every message number, then QUIT, pipelined when possible, and
    // checks QUIT's reply: only then has the server removed the messages.
    QuitResult delete_and_quit(const std::vector<std::uint32_t>& numbers);
    // QUIT without deleting; errors are ignored (nothing depends on it).
    // wait_for_reply = false: QUIT is sent and its answer not awaited (one
    // round trip less), for sessions that deleted nothing: the answer could
    // not change anything.
    void quit(bool wait_for_reply = true) noexcept;

    // What one reply of transact() may make us hold (limits.h).
    struct ReplyLimits {
        std::size_t keep = static_cast<std::size_t>(-1);  // payload bytes kept; the rest is dropped
        std::size_t max_bytes;                            // kept bytes beyond this are an error
        std::size_t max_lines;                            // payload lines beyond this are an error
        ReplyLimits();
    };

    // Takes the lines of one multi-line reply as they arrive (line ends
    // removed, as split_lines() does), so that a listing is never held as text.
    using LineSink = std::function<void(std::string_view)>;

private:
    struct Reply {
        bool ok = false;
        std::string status;
        std::string data;  // multi-line payload (small replies only)
    };
    // Sends commands and collects their (small) replies.
    // `window` bounds the commands in flight when pipelining.
    std::vector<Reply> transact(const std::vector<std::pair<std::string, bool>>& commands,
                                std::size_t window = kPipelineWindow, const ReplyLimits& lim = ReplyLimits(),
                                const std::vector<LineSink>& sinks = {});
    // Throws when the server refused UIDL or LIST (their lines went to a
    // ListingBuilder in pop3_session.cpp, a message at a time).
    static void check_listing(const Reply& uidl, const Reply& list);

    Channel& ch_;
    bool allow_pipelining_;
    bool pipelining_ = false;
    std::set<std::string> caps_;
    bool utf8_ = false;
    void enable_utf8();
};

}  // namespace pullmail
