// daemon.h — `pullmail --daemon` / `-d SECONDS`: one process serves the
// accounts until SIGTERM. Per account, one scheduler thread runs the
// ordinary account sync (runner.h: lock, state, folder_sync) when a poll is
// due (poll_interval), when a watcher (folder_watch.h: IDLE or NOTIFY)
// reports news, or on SIGUSR1; watchers run in threads of their own, so one
// account's (or folder's) trouble never delays another. Failures are retried
// with backoff and jitter (daemon_schedule.h); a refused login waits for the
// next interval. SIGHUP reloads the configuration (a broken one keeps the
// old); SIGTERM/SIGINT finish the syncs in hand, save, log out, exit 0.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "daemon_schedule.h"
#include "run_types.h"

namespace pullmail {

class Logger;

// What one (re)load of the configuration gives the daemon.
struct DaemonSetup {
    std::shared_ptr<const Config> config;
    std::vector<const Account*> accounts;  // the ones to serve (into *config)
    std::string state_dir;
};

struct DaemonOptions {
    int default_interval = 0;           // -d SECONDS; 0 = 300 unless the account says
    RunOptions run;                     // for every sync (verbosity, -k/-K, ...)
    std::atomic<bool>* stop = nullptr;  // the process stop flag (SIGTERM/SIGINT), never null
    const DaemonClock* clock = &DaemonClock::system();
};

// Runs until SIGTERM/SIGINT; returns the exit status (0 after a clean stop).
// `load` is called at start (its Error ends the daemon) and on SIGHUP (its
// Error is logged and the old configuration kept).
int run_daemon(const std::function<DaemonSetup()>& load, const DaemonOptions& opts, Logger& log);

}  // namespace pullmail
