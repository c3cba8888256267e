#include "folder_watch.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "credentials.h"
#include "error.h"
#include "imap_session.h"
#include "imap_watch.h"
#include "log.h"
#include "secrets.h"
#include "test_hooks.h"
#include "transport.h"

namespace pullmail {

namespace {

// A logged-in connection with its channel and session.
struct WatchLink {
    std::unique_ptr<Connection> conn;
    std::unique_ptr<Channel> channel;
    std::unique_ptr<ImapSession> session;
};

WatchLink open_link(const Account& acc, int verbosity, Logger& log) {
    std::string password = resolve_password(acc.server.password, acc.name, acc.connect_timeout);
    WatchLink l;
    try {
        l.conn = connect_and_login(acc.server, password, ConnectOptions{acc.name, acc.connect_timeout, verbosity, &log});
    } catch (...) {
        wipe(password);
        throw;
    }
    wipe(password);
    // No minimum rate and no deadline: a watcher is silent by design; the
    // silence timeout applies only while a command awaits its answer.
    l.channel = std::make_unique<Channel>(*l.conn, acc.timeout, acc.name, &log, verbosity);
    l.session = std::make_unique<ImapSession>(*l.channel);
    l.session->start();
    return l;
}

}  // namespace

WatchOffer discover_watch(const Account& acc, int verbosity, Logger& log) {
    WatchLink l = open_link(acc, verbosity, log);
    WatchOffer o;
    o.idle = l.session->has_capability("IDLE");
    o.notify = l.session->has_capability("NOTIFY");
    for (const auto& f : acc.folders) {
        if (f == "*") {
            for (auto& name : l.session->list_all_folders()) o.folders.push_back(std::move(name));
        } else {
            o.folders.push_back(f);
        }
    }
    std::vector<std::string> unique;
    for (const auto& f : o.folders)
        if (std::find(unique.begin(), unique.end(), f) == unique.end()) unique.push_back(f);
    o.folders = std::move(unique);
    l.session->logout(false);
    return o;
}

namespace {

// A NOTIFY watcher re-arms NOTIFY (ImapWatcher::rearm_notify) this long
// after news: by then the syncs the news started, whose writes may have
// rotated the server's list index log, are done. One re-arm per burst of
// news, none while no mail comes, so idling costs nothing more.
constexpr int kRearmMs = 2000;

using ByServerName = std::map<std::string, std::string>;  // server's name -> folder

// The watched folders that STATUS responses in `w` name: every STATUS is
// news (a repeat only costs a sync that finds the folder's mark unchanged).
std::vector<std::string> status_news(const ImapWatcher::Wake& w, const ByServerName& folders) {
    std::vector<std::string> out;
    for (const auto& m : w.mailboxes) {
        auto it = folders.find(m);
        if (it != folders.end()) out.push_back(it->second);
    }
    return out;
}

// The NOTIFY loop of watch_folders: idles, wakes the folders with news and
// re-arms NOTIFY a while after news. After a re-arm every folder is woken:
// what changed between NOTIFY NONE and NOTIFY SET was reported to nobody.
void watch_notify(const Account& acc, ImapWatcher& watcher, const std::vector<std::string>& folders,
                  const std::vector<std::string>& args, const ByServerName& by_server_name, const WatchHooks& hooks,
                  int reidle_ms) {
    using Clock = std::chrono::steady_clock;
    watcher.notify(args);
    hooks.wake(folders);  // catch up with what came while nobody watched (after NOTIFY SET: nothing slips between)
    bool rearm = false;   // re-arm due at rearm_at
    Clock::time_point rearm_at{};
    while (!hooks.stop()) {
        int max_ms = reidle_ms;
        if (rearm) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(rearm_at - Clock::now()).count();
            max_ms = static_cast<int>(std::clamp<long long>(left, 0, reidle_ms));
        }
        if (max_ms > 0) {
            auto news = status_news(watcher.idle(max_ms, 1000, hooks.wake_fd, hooks.stop), by_server_name);
            if (!news.empty()) {
                test_mark("watcher: IDLE ended, account woken: " + acc.name);
                hooks.wake(news);
                if (!rearm) {
                    rearm = true;
                    rearm_at = Clock::now() + std::chrono::milliseconds(kRearmMs);
                }
            }
        }
        if (rearm && Clock::now() >= rearm_at && !hooks.stop()) {
            rearm = false;
            ImapWatcher::Wake heard;
            if (watcher.rearm_notify(args, heard)) {
                test_mark("watcher: NOTIFY re-armed: " + acc.name);
                hooks.wake(folders);
            } else if (auto news = status_news(heard, by_server_name); !news.empty()) {
                hooks.wake(news);
            }
        }
    }
}

}  // namespace

void watch_folders(const Account& acc, const std::vector<std::string>& folders, bool use_notify,
                   const WatchHooks& hooks, int verbosity, Logger& log, int reidle_ms) {
    WatchLink l = open_link(acc, verbosity, log);
    ImapSession& s = *l.session;
    if (!s.has_capability("IDLE")) throw Error(ErrorKind::Protocol, "the server no longer offers IDLE");
    ByServerName by_server_name;
    for (const auto& f : folders) by_server_name[s.server_name(f)] = f;
    ImapWatcher watcher(*l.conn, *l.channel);
    if (!use_notify) s.select(folders.at(0), true);  // EXAMINE: watching changes nothing
    log.detail(acc.name, "watching " + std::to_string(folders.size()) + " folder(s) with " +
                             (use_notify ? "NOTIFY" : "IDLE on '" + folders.at(0) + "'"));
    if (use_notify) {
        std::vector<std::string> args;
        for (const auto& f : folders) args.push_back(s.mailbox_arg(f));
        watch_notify(acc, watcher, folders, args, by_server_name, hooks, reidle_ms);
        s.logout(false);
        return;
    }
    hooks.wake(folders);  // catch up with what came while nobody watched
    while (!hooks.stop()) {
        auto w = watcher.idle(reidle_ms, 1000, hooks.wake_fd, hooks.stop);
        if (w.selected) {
            test_mark("watcher: IDLE ended, account woken: " + acc.name);
            hooks.wake({folders.at(0)});
        }
    }
    s.logout(false);
}

}  // namespace pullmail
