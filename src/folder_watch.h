// folder_watch.h — one watching connection of the daemon: connect, log in,
// then IDLE on one folder (EXAMINE + IDLE) or, with NOTIFY, on many (NOTIFY
// SET + IDLE, nothing selected), re-idling every few minutes, and report
// which folders have news. A NOTIFY watcher re-arms NOTIFY a short while
// after news and then wakes every folder (imap_watch.h, rearm_notify:
// Dovecot's watch goes deaf when its log rotates). It fetches nothing: the
// daemon answers a wake-up with the ordinary folder sync (folder_sync.h) on
// a connection of its own.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "config.h"

namespace pullmail {

class Logger;

// What the server offers a watcher, learned at the first connection.
struct WatchOffer {
    bool idle = false;
    bool notify = false;
    std::vector<std::string> folders;  // the configured ones, '*' expanded
};
// Connects, logs in, reads the capabilities and the folders, logs out.
// Throws Error.
WatchOffer discover_watch(const Account& account, int verbosity, Logger& log);

struct WatchHooks {
    // Folders that may have new mail; also called with every watched folder
    // right after each (re)connection, so mail that arrived while the
    // watcher was away is fetched.
    std::function<void(const std::vector<std::string>& folders)> wake;
    std::function<bool()> stop;  // leave as soon as possible
    int wake_fd = -1;            // readable when stop() may have changed (-1: stop() is polled every second)
};

// Re-IDLE at least this often: providers and NATs drop idle connections
// long before RFC 2177's 29 minutes.
inline constexpr int kReidleMs = 9 * 60 * 1000;

// Watches `folders` (one without NOTIFY) until hooks.stop() returns true,
// then logs out and returns. Throws Error when the connection fails or the
// server refuses; the caller reconnects with backoff.
void watch_folders(const Account& account, const std::vector<std::string>& folders, bool use_notify,
                   const WatchHooks& hooks, int verbosity, Logger& log, int reidle_ms = kReidleMs);

}  // namespace pullmail
