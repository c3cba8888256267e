// imap_watch.h — an IMAP connection that waits for news: IDLE (RFC 2177) on
// the folder selected by the ImapSession before, or NOTIFY (RFC 5465) + IDLE
// with none selected, so that one connection watches many folders. The
// ImapSession has finished with the channel when a watcher takes it over;
// from then on only the watcher speaks on it (tags "W1", "W2", ...).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "imap_idle.h"
#include "transport.h"

namespace pullmail {

class ImapWatcher {
public:
    ImapWatcher(Connection& conn, Channel& channel) : conn_(conn), ch_(channel) {}

    // NOTIFY SET for these mailboxes (command arguments). Throws
    // Error(Protocol) when the server refuses.
    void notify(const std::vector<std::string>& mailbox_args);

    struct Wake {
        bool selected = false;               // news in the selected folder (EXISTS)
        std::vector<std::string> mailboxes;  // NOTIFY: server names of folders with news
        bool any() const { return selected || !mailboxes.empty(); }
    };
    // IDLE until news arrives, `max_ms` pass (then DONE: re-idling keeps
    // NATs and providers from dropping the connection), or stop() returns
    // true. stop() is asked whenever `wake_fd` becomes readable (the caller
    // drains it), else every `slice_ms` (a connection without poll_fd(), or
    // wake_fd -1). Ends the IDLE with DONE before it returns. Throws
    // Error(Temporary) when the connection drops or the server says BYE,
    // Error(Protocol) when it refuses IDLE.
    Wake idle(int max_ms, int slice_ms, int wake_fd, const std::function<bool()>& stop);

private:
    std::string run_until_tagged(const std::string& tag, Wake& wake);
    void take(const std::vector<IdleEvent>& events, Wake& wake);
    void check_bye(const IdleEvent& e);
    // Waits up to ms for the connection or wake_fd; true when the connection may be readable.
    bool wait_readable(int ms, int slice_ms, int wake_fd);

    Connection& conn_;
    Channel& ch_;
    IdleDecoder decoder_;
    unsigned tags_ = 0;
    std::string waiting_tag_;   // the tag whose completion is awaited
    std::string completion_;    // its status once seen
    bool continued_ = false;    // "+" seen
};

}  // namespace pullmail
