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

    struct Wake {
        bool selected = false;               // news in the selected folder (EXISTS)
        std::vector<std::string> mailboxes;  // NOTIFY: server names of folders with news
        bool any() const { return selected || !mailboxes.empty(); }
    };
    // NOTIFY SET for these mailboxes (command arguments). Returns what the
    // server reported before its completion. Throws Error(Protocol) when the
    // server refuses.
    Wake notify(const std::vector<std::string>& mailbox_args);

    // NOTIFY NONE, then NOTIFY SET: a fresh watch on the server's side.
    // Why not a second NOTIFY SET alone: Dovecot 2.3 (mailbox-list-index-
    // notify.c) watches its list index log with inotify on the file it had
    // when NOTIFY was set, so after that log rotates (64 KiB of changes, or
    // 8 KiB and 5 minutes) only its mailbox_idle_check_interval fallback
    // (30 s) reports changes, and a new NOTIFY SET watches the current file;
    // but a NOTIFY SET that replaces a context watching the same file leaves
    // the connection deaf (the old context's teardown takes the watch both
    // share), every second time. Ending the old context first avoids that.
    // Changes between the two commands are not reported: the caller catches
    // up on every folder afterwards. What the server reported meanwhile is
    // added to `heard`. Returns false when the server refuses NOTIFY NONE:
    // its NOTIFY stays as it was, and no re-arm is tried again on this
    // connection (the workaround is for Dovecot, which takes NOTIFY NONE).
    bool rearm_notify(const std::vector<std::string>& mailbox_args, Wake& heard);

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
    // A tagged command; its completion status ("OK", "NO", "BAD").
    std::string send(const std::string& text, Wake& heard);
    // The same; throws Error(Protocol) unless OK.
    void command(const std::string& text, Wake& heard);
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
    bool no_rearm_ = false;     // the server refused NOTIFY NONE
};

}  // namespace pullmail
