// sync_link.h — the daemon's kept sync connection of one IMAP account. A
// wake-up of push (daemon.h) runs the ordinary folder sync; opening a new
// connection for it (TCP, TLS, login) was most of a wake-up's latency. The
// keeper holds the sync's logged-in connection between syncs instead, and
// hands it to the next one after a health check. It holds a connection, no
// rule: what to fetch and delete is still the planner's, every sync still
// takes the account's lock (runner.h), and a kept connection has no folder
// selected between syncs (UNSELECT), so nothing on it can change mail.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "daemon_schedule.h"
#include "imap_session.h"
#include "transport.h"

namespace pullmail {

class Logger;

// A logged-in IMAP connection with its channel and started session.
struct SyncLink {
    std::unique_ptr<Connection> conn;
    std::unique_ptr<Channel> channel;
    std::unique_ptr<ImapSession> session;
    ~SyncLink();  // the session before the channel before the connection
};

// Kept links are closed after this long without a sync: well below the
// autologout of servers (RFC 3501 asks for at least 30 minutes) and the
// watchers' re-IDLE (folder_watch.h), so that NATs that drop quiet
// connections seldom get the chance.
inline constexpr std::chrono::minutes kSyncLinkIdle{5};

class SyncLinkKeeper {
public:
    explicit SyncLinkKeeper(const DaemonClock& clock, std::chrono::milliseconds idle_limit = kSyncLinkIdle);
    ~SyncLinkKeeper();  // logs out a kept link
    SyncLinkKeeper(const SyncLinkKeeper&) = delete;
    SyncLinkKeeper& operator=(const SyncLinkKeeper&) = delete;

    // The kept link, when it was kept less than the idle limit ago, the
    // server sent nothing on it meanwhile (a close, a BYE: an unselected
    // connection gets no news) and it answers NOOP; else nullptr, and the
    // link is closed (the caller opens a new one). Never throws.
    std::unique_ptr<SyncLink> take(const std::string& account, Logger& log);
    // Keeps the link of a sync that ended cleanly, after UNSELECT; a link
    // whose folder cannot be left that way is logged out instead.
    void keep(std::unique_ptr<SyncLink> link);
    // Logs out a link kept for the idle limit or longer; the daemon calls
    // it at least every 30 s.
    void expire();
    // Logs out the kept link, if any.
    void close();

    // For the log and the tests: links handed out again, links refused by
    // the health check (closed by the server, cut, silent past the limit).
    unsigned reused() const;
    unsigned dropped() const;

private:
    const DaemonClock& clock_;
    std::chrono::milliseconds idle_limit_;
    mutable std::mutex mu_;
    std::unique_ptr<SyncLink> link_;
    DaemonClock::Steady kept_at_{};
    unsigned reused_ = 0, dropped_ = 0;
};

}  // namespace pullmail
