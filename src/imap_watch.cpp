#include "imap_watch.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "error.h"
#include "test_hooks.h"

namespace pullmail {

void ImapWatcher::check_bye(const IdleEvent& e) {
    if (e.kind == IdleEvent::Kind::Bye)
        throw Error(ErrorKind::Temporary, "the server ended the session (BYE)", true).set_server_text(e.text);
}

void ImapWatcher::take(const std::vector<IdleEvent>& events, Wake& wake) {
    for (const auto& e : events) {
        ch_.trace_in(e.text.size() > 300 ? e.text.substr(0, 300) + "..." : e.text);
        check_bye(e);
        if (e.kind == IdleEvent::Kind::Exists) wake.selected = true;
        if (e.kind == IdleEvent::Kind::Status) wake.mailboxes.push_back(e.mailbox);
        if (e.wakes()) test_mark("watcher: news (EXISTS/STATUS) read");
        if (e.kind == IdleEvent::Kind::Continuation) continued_ = true;
        if (e.kind == IdleEvent::Kind::Tagged && e.tag == waiting_tag_) completion_ = e.status.empty() ? "?" : e.status;
    }
}

// Pumps until the completion of `tag` (or, for IDLE, its continuation).
std::string ImapWatcher::run_until_tagged(const std::string& tag, Wake& wake) {
    waiting_tag_ = tag;
    completion_.clear();
    ch_.pump([&](std::string_view b) { take(decoder_.feed(b), wake); },
             [&] { return !completion_.empty() || (continued_ && !ch_.has_output()); });
    return completion_;
}

std::string ImapWatcher::send(const std::string& text, Wake& heard) {
    std::string tag = "W" + std::to_string(++tags_);
    ch_.command(tag + " " + text);
    continued_ = false;
    return run_until_tagged(tag, heard);
}

void ImapWatcher::command(const std::string& text, Wake& heard) {
    if (send(text, heard) != "OK") throw Error(ErrorKind::Protocol, "the server refused NOTIFY");
}

ImapWatcher::Wake ImapWatcher::notify(const std::vector<std::string>& mailbox_args) {
    Wake heard;
    command(notify_set_command(mailbox_args), heard);
    return heard;
}

bool ImapWatcher::rearm_notify(const std::vector<std::string>& mailbox_args, Wake& heard) {
    if (no_rearm_) return false;
    if (send("NOTIFY NONE", heard) != "OK") {
        no_rearm_ = true;
        return false;
    }
    command(notify_set_command(mailbox_args), heard);
    return true;
}

bool ImapWatcher::wait_readable(int ms, int slice_ms, int wake_fd) {
    int sock = conn_.poll_fd();
    if (sock < 0 || wake_fd < 0) return conn_.wait(true, false, std::min(ms, slice_ms));
    if (conn_.wait(true, false, 0)) return true;  // TLS bytes already buffered
    // One sleep for the whole wait: an idle daemon costs no CPU.
    pollfd p[2] = {{sock, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int r = ::poll(p, 2, ms);
    if (r < 0 && errno == EINTR) return false;
    if (r > 0 && p[1].revents != 0) {
        // Drained before stop() is asked: a byte written before the change
        // stop() sees would otherwise keep the pipe readable and this loop
        // busy (a clock jump between the caller's drain and its reading of
        // the state poked it).
        char buf[64];
        (void)!::read(wake_fd, buf, sizeof buf);  // one read: readable, so it does not block
    }
    return r > 0 && p[0].revents != 0;
}

ImapWatcher::Wake ImapWatcher::idle(int max_ms, int slice_ms, int wake_fd, const std::function<bool()>& stop) {
    Wake wake;
    std::string tag = "W" + std::to_string(++tags_);
    ch_.command(tag + " IDLE");
    continued_ = false;
    std::string st = run_until_tagged(tag, wake);
    if (!st.empty()) throw Error(ErrorKind::Protocol, "the server refused IDLE (" + st + ")");

    // Idling: nothing to send, so read the connection directly, in slices,
    // without the channel's silence timeout (silence is the point here).
    using Clock = std::chrono::steady_clock;
    const auto end = Clock::now() + std::chrono::milliseconds(max_ms);
    char buf[4096];
    while (!wake.any() && completion_.empty() && !stop()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
        if (left <= 0) break;
        if (!wait_readable(static_cast<int>(left), slice_ms, wake_fd)) continue;
        for (;;) {
            bool eof = false;
            std::size_t n = conn_.try_recv(buf, sizeof buf, eof);
            if (n > 0) {
                take(decoder_.feed(std::string_view(buf, n)), wake);
                continue;
            }
            if (eof) throw Error(ErrorKind::Temporary, "the server closed the idle connection", true);
            break;
        }
    }
    // A server may end IDLE on its own (a tagged reply): then no DONE.
    if (completion_.empty()) {
        ch_.queue("DONE\r\n");
        continued_ = false;
        st = run_until_tagged(tag, wake);
    } else {
        st = completion_;
    }
    if (st != "OK") throw Error(ErrorKind::Protocol, "the server ended IDLE with " + st);
    return wake;
}

}  // namespace pullmail
