#include "folder_watch.h"

#include <algorithm>
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

void watch_folders(const Account& acc, const std::vector<std::string>& folders, bool use_notify,
                   const WatchHooks& hooks, int verbosity, Logger& log, int reidle_ms) {
    WatchLink l = open_link(acc, verbosity, log);
    ImapSession& s = *l.session;
    if (!s.has_capability("IDLE")) throw Error(ErrorKind::Protocol, "the server no longer offers IDLE");
    std::map<std::string, std::string> by_server_name;  // server's name -> folder
    for (const auto& f : folders) by_server_name[s.server_name(f)] = f;
    ImapWatcher watcher(*l.conn, *l.channel);
    if (use_notify) {
        std::vector<std::string> args;
        for (const auto& f : folders) args.push_back(s.mailbox_arg(f));
        watcher.notify(args);
    } else {
        s.select(folders.at(0), true);  // EXAMINE: watching changes nothing
    }
    log.detail(acc.name, "watching " + std::to_string(folders.size()) + " folder(s) with " +
                             (use_notify ? "NOTIFY" : "IDLE on '" + folders.at(0) + "'"));
    hooks.wake(folders);  // catch up with what came while nobody watched
    while (!hooks.stop()) {
        auto w = watcher.idle(reidle_ms, 1000, hooks.wake_fd, hooks.stop);
        std::vector<std::string> news;
        if (w.selected && !use_notify) news.push_back(folders.at(0));
        for (const auto& m : w.mailboxes) {
            auto it = by_server_name.find(m);
            if (it != by_server_name.end()) news.push_back(it->second);
        }
        if (!news.empty()) {
            test_mark("watcher: IDLE ended, account woken: " + acc.name);
            hooks.wake(news);
        }
    }
    s.logout(false);
}

}  // namespace pullmail
