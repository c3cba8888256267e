// imap_watch.h — an IMAP connection that waits for news: IDLE (RFC 2177) on
// the folder selected by the ImapSession before, or NOTIFY (RFC 5465) + IDLE
// with none selected, so that one connection watches many folders. The
// ImapSession has finished with the channel when a watcher takes it over;
// from then on only the watcher speaks on it (tags "W1", "W2", ...).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "imap_idle.h"
#include "transport.h"

namespace pullmail {

class ImapWatcher {
public:
    ImapWatcher(Connection& conn, Channel& channel) : conn_(conn), ch_(channel) {}

    struct Wake {
        bool selected = false;               // news in the selected folder (EXISTS)
        std::vector<std::string> mailboxes;  // NOTIFY: server names of folders with news
        std::vector<MailboxCounts> counts;   // what each STATUS said, parallel to mailboxes
        bool any() const { return selected || !mailboxes.empty(); }
    };
    // NOTIFY SET for these mailboxes (command arguments); with `status`,
    // NOTIFY SET STATUS, and the STATUS answers (every mailbox's counts) are
    // returned. A second NOTIFY SET replaces the first. Throws
    // Error(Protocol) when the server refuses.
    Wake notify(const std::vector<std::string>& mailbox_args, bool status = false);

    // IDLE until news arrives, `max_ms` pass (then DONE: re-idling keeps
    // NATs and providers from dropping the connection), or stop() returns
    // true. stop() is asked whenever `wake_fd` becomes readable (drained
    // first, so a byte whose change stop() has already seen cannot keep the
    // watcher busy), else every `slice_ms` (a connection without poll_fd(),
    // or wake_fd -1). Ends the IDLE with DONE before it returns. Throws
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

// What a NOTIFY watcher last heard of each mailbox (by server name), to tell
// news from repeats. Why a watcher re-arms NOTIFY at all: Dovecot 2.3 (and
// its current code, mailbox-list-index-notify.c) watches the list index log
// with inotify on the file it had when NOTIFY was set; once that log is
// rotated (64 KiB of changes, or 8 KiB and 5 minutes) the watch sees nothing
// and changes reach the client only by its mailbox_idle_check_interval
// fallback (30 s). A new NOTIFY SET watches the current file. A re-armed
// watcher compares the STATUS answers of NOTIFY SET STATUS with what it
// heard: what changed between the two NOTIFY SETs is woken, nothing lost.
// Dovecot also repeats a STATUS of unchanged mailboxes after a NOTIFY SET;
// those are no news (else each re-arm would wake the next one).
class NotifyCounts {
public:
    // Records what a STATUS said; true when it is news: the mailbox was not
    // heard of, the STATUS carried no counts, or a count it carried differs.
    bool update(const std::string& mailbox, const MailboxCounts& c);

private:
    std::map<std::string, MailboxCounts> known_;
};

}  // namespace pullmail
