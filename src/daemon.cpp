#include "daemon.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>
#include <condition_variable>
#include <algorithm>
#include <mutex>
#include <set>
#include <thread>

#include "folder_watch.h"
#include "log.h"
#include "runner.h"
#include "sync_link.h"
#include "test_hooks.h"

namespace pullmail {

namespace {

using namespace std::chrono_literals;

bool is_auth(const Error& e) { return e.kind() == ErrorKind::Auth; }

// PULLMAIL_TEST_WATCHER_THROWS=1: the first watcher connection of the
// process throws std::bad_alloc once, right after its catch-up wake-up (the
// test that a std::exception in a watcher does not end the daemon).
bool test_watcher_throws() {
    static std::atomic<bool> armed{std::getenv("PULLMAIL_TEST_WATCHER_THROWS") != nullptr};
    return armed.exchange(false);
}

// A pipe that makes a sleeping watcher look at its stop condition.
class WakePipe {
public:
    WakePipe() {
        if (::pipe2(fd_, O_CLOEXEC | O_NONBLOCK) != 0) fd_[0] = fd_[1] = -1;
    }
    ~WakePipe() {
        for (int f : fd_)
            if (f >= 0) ::close(f);
    }
    WakePipe(const WakePipe&) = delete;
    WakePipe& operator=(const WakePipe&) = delete;
    int read_end() const { return fd_[0]; }
    void poke() const {
        if (fd_[1] >= 0) (void)!::write(fd_[1], "x", 1);
    }
    void drain() const {
        char buf[64];
        while (fd_[0] >= 0 && ::read(fd_[0], buf, sizeof buf) > 0) {
        }
    }

private:
    int fd_[2] = {-1, -1};
};

// One account in the daemon: its scheduler thread and its watchers.
class AccountService {
public:
    AccountService(const Account& acc, std::string state_dir, const DaemonOptions& opts, Logger& log)
        : acc_(acc),
          state_dir_(std::move(state_dir)),
          opts_(opts),
          log_(log),
          schedule_(*opts.clock, poll_interval_of(acc.poll_interval, opts.default_interval)),
          jumps_(*opts.clock, 30s),
          links_(*opts.clock) {
        run_opts_ = opts.run;
        if (acc.server.protocol == Protocol::Imap && !test_no_kept_sync()) run_opts_.sync_links = &links_;
        run_opts_.daemon = true;
        run_opts_.wait_lock = false;
        run_opts_.interrupted = opts.stop;
    }
    ~AccountService() { stop(); }

    void start() { loop_ = std::thread([this] { loop(); }); }
    void stop() {
        {
            std::lock_guard<std::mutex> l(mu_);
            leaving_ = true;
            poke_watchers();
        }
        cv_.notify_all();
        if (loop_.joinable()) loop_.join();
        for (auto& t : watchers_) t.join();
        watchers_.clear();
        links_.close();
    }
    void poll_now() {
        {
            std::lock_guard<std::mutex> l(mu_);
            poll_requested_ = true;
        }
        cv_.notify_all();
    }

private:
    void loop();
    bool wait_for_work(std::set<std::string>& folders, bool& full);
    void sync(const std::set<std::string>& folders, bool full);
    void start_watchers();
    void watch(std::vector<std::string> folders, bool notify);
    void wake(const std::vector<std::string>& folders) {
        {
            std::lock_guard<std::mutex> l(mu_);
            for (const auto& f : folders) dirty_.insert(f);
        }
        cv_.notify_all();
    }
    bool leaving() {
        std::lock_guard<std::mutex> l(mu_);
        return leaving_;
    }
    // Sleeps up to d; false when the daemon is leaving.
    bool pause(std::chrono::milliseconds d, unsigned generation) {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait_for(l, d, [&] { return leaving_ || generation_ != generation; });
        return !leaving_;
    }
    // With mu_ held: every sleeping watcher looks at leaving_/generation_.
    void poke_watchers() {
        for (const WakePipe* p : pipes_) p->poke();
    }
    // Logs an account-level state change once.
    // `note` is shown but not compared (a backoff delay that grows).
    void set_state(WatchState s, const std::string& why, const std::string& note = "");

    Account acc_;  // a copy: a SIGHUP replaces the Config it came from
    std::string state_dir_;
    const DaemonOptions& opts_;
    RunOptions run_opts_;
    Logger& log_;
    AccountSchedule schedule_;
    ClockJumpDetector jumps_;
    SyncLinkKeeper links_;  // the sync connection kept between syncs (loop thread only)

    std::mutex mu_;
    std::condition_variable cv_;
    bool leaving_ = false;
    bool poll_requested_ = false;
    bool full_needed_ = true;        // the next sync covers every folder
    std::set<std::string> dirty_;    // folders a watcher woke
    unsigned generation_ = 0;        // bumped on a clock jump: watchers reconnect
    bool watchers_started_ = false;
    std::vector<const WakePipe*> pipes_;  // of the running watchers
    WatchState state_ = WatchState::Starting;
    std::string state_why_;

    std::thread loop_;
    std::vector<std::thread> watchers_;
};

void AccountService::set_state(WatchState s, const std::string& why, const std::string& note) {
    std::lock_guard<std::mutex> l(mu_);
    if (s == state_ && why == state_why_) return;
    bool bad = s == WatchState::Retrying || s == WatchState::AuthFailed;
    std::string line = std::string(watch_state_name(s)) + (why.empty() ? "" : ": " + why) + note;
    if (bad) log_.error(acc_.name, line);
    else if (state_ == WatchState::Retrying || state_ == WatchState::AuthFailed) log_.info(acc_.name, "recovered; " + line);
    else log_.detail(acc_.name, line);
    state_ = s;
    state_why_ = why;
}

// Waits until a sync is due; says which folders (or all). False = leave.
bool AccountService::wait_for_work(std::set<std::string>& folders, bool& full) {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
        if (leaving_) return false;
        if (jumps_.jumped()) {
            // Resumed from suspend, or the clock was set: idle connections
            // are presumed dead. Reconnect them and catch up everywhere.
            log_.info(acc_.name, "the clock jumped (suspend/resume?): reconnecting and catching up");
            ++generation_;
            full_needed_ = true;
            poke_watchers();
            cv_.notify_all();
            links_.close();  // idle across the jump: presumed dead as well
        }
        if (poll_requested_ || schedule_.is_due()) full_needed_ = true;
        if (full_needed_ || !dirty_.empty()) break;
        auto left = schedule_.due() - opts_.clock->steady();
        links_.expire();
        // Wake at least every 30 s to notice clock jumps (and expire the kept link).
        cv_.wait_for(l, std::min<std::chrono::steady_clock::duration>(left, 30s));
    }
    full = full_needed_;
    folders.swap(dirty_);
    dirty_.clear();
    full_needed_ = false;
    poll_requested_ = false;
    return true;
}

void AccountService::sync(const std::set<std::string>& folders, bool full) {
    Account subset = acc_;
    if (!full) subset.folders.assign(folders.begin(), folders.end());
    test_mark(std::string(full ? "daemon: sync of every folder starts: " : "daemon: sync of the woken folder(s) starts: ") +
              acc_.name);
    AccountResult r = run_account(full ? acc_ : subset, state_dir_, run_opts_, log_);
    test_mark("daemon: sync ended");
    if (r.errors.empty()) {
        schedule_.synced();
        set_state(watchers_started_ ? WatchState::Idle : WatchState::Polling, "");
        return;
    }
    if (opts_.stop->load()) return;  // stopping: the sync wound down on purpose
    const Error& e = r.errors.front();
    std::string why = e.detail() + (r.errors.size() > 1 ? " (and " + std::to_string(r.errors.size() - 1) + " more)" : "");
    if (is_auth(e)) {
        // Not retried in a tight loop: a wrong password stays wrong.
        schedule_.auth_failed();
        set_state(WatchState::AuthFailed, why, "; trying again every " + std::to_string(schedule_.interval().count()) + " s");
        return;
    }
    if (e.temporary() || e.kind() == ErrorKind::Unreachable || e.kind() == ErrorKind::Tls ||
        e.kind() == ErrorKind::Protocol) {
        auto d = schedule_.failed_temporarily();  // the due time brings the retry, with a full sync
        set_state(WatchState::Retrying, why, "; retrying with backoff (first in " + std::to_string(d.count() / 1000) + " s)");
        return;
    }
    // Delivery, local or state trouble: the next poll tries again.
    schedule_.synced();
    set_state(WatchState::Retrying, why);
}

void AccountService::loop() {
    std::set<std::string> folders;
    bool full = false;
    while (wait_for_work(folders, full)) {
        sync(folders, full);
        if (!watchers_started_ && acc_.idle && acc_.server.protocol == Protocol::Imap && state_ != WatchState::AuthFailed &&
            state_ != WatchState::Retrying)
            start_watchers();
    }
}

void AccountService::start_watchers() {
    WatchOffer offer;
    try {
        offer = discover_watch(acc_, run_opts_.verbosity, log_);
    } catch (const Error& e) {
        log_.detail(acc_.name, "cannot learn what the server offers for push (" + e.detail() + "); will try again");
        return;
    } catch (const std::exception& e) {
        log_.warn(acc_.name, std::string("cannot learn what the server offers for push (unexpected error: ") +
                                 e.what() + "); will try again");
        return;
    }
    watchers_started_ = true;
    if (!offer.idle || offer.folders.empty()) {
        log_.info(acc_.name, "the server offers no IDLE: polling every " + std::to_string(schedule_.interval().count()) + " s");
        return;
    }
    if (offer.notify) {
        watchers_.emplace_back([this, f = offer.folders] { watch(f, true); });
    } else {
        std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(std::max(1, acc_.connections)), offer.folders.size());
        for (std::size_t i = 0; i < n; ++i) watchers_.emplace_back([this, f = offer.folders[i]] { watch({f}, false); });
        if (n < offer.folders.size())
            log_.info(acc_.name, std::to_string(offer.folders.size() - n) + " folder(s) beyond connections = " +
                                     std::to_string(acc_.connections) + " are polled every " +
                                     std::to_string(schedule_.interval().count()) + " s");
    }
    log_.info(acc_.name, std::string("push: ") + (offer.notify ? "NOTIFY on " : "IDLE on ") +
                             std::to_string(offer.notify ? offer.folders.size() : watchers_.size()) + " folder(s)");
    set_state(WatchState::Idle, "");
}

// One watching connection, reconnected with backoff until the daemon leaves.
void AccountService::watch(std::vector<std::string> folders, bool notify) {
    Backoff backoff(schedule_.interval());
    std::string where = notify ? "NOTIFY watcher" : "folder '" + folders.front() + "'";
    std::string last_error;
    WakePipe pipe;
    {
        std::lock_guard<std::mutex> l(mu_);
        pipes_.push_back(&pipe);
    }
    struct Unregister {
        AccountService& s;
        const WakePipe* p;
        ~Unregister() {
            std::lock_guard<std::mutex> l(s.mu_);
            s.pipes_.erase(std::find(s.pipes_.begin(), s.pipes_.end(), p));
        }
    } unregister{*this, &pipe};
    for (;;) {
        unsigned gen;
        pipe.drain();
        {
            std::lock_guard<std::mutex> l(mu_);
            if (leaving_) return;
            gen = generation_;
        }
        bool connected = false;
        WatchHooks hooks;
        hooks.wake = [&](const std::vector<std::string>& f) {
            if (!connected) {
                connected = true;
                backoff.reset();
                if (!last_error.empty()) log_.info(acc_.name, where + ": watching again");
                last_error.clear();
            }
            wake(f);
        };
        hooks.stop = [&] {
            std::lock_guard<std::mutex> l(mu_);
            return leaving_ || generation_ != gen;
        };
        hooks.wake_fd = pipe.read_end();
        std::chrono::milliseconds delay{0};
        std::string why;
        try {
            if (test_watcher_throws()) {
                auto wake = hooks.wake;
                hooks.wake = [wake](const std::vector<std::string>& f) {
                    wake(f);
                    throw std::bad_alloc();
                };
            }
            watch_folders(acc_, folders, notify, hooks, run_opts_.verbosity, log_);
            continue;  // stopped, or a clock jump: reconnect at once
        } catch (const Error& e) {
            delay = is_auth(e) ? std::chrono::milliseconds(schedule_.interval()) : backoff.next();
            why = e.detail();
        } catch (const std::exception& e) {
            // Not a server's or network's doing (bad_alloc, system_error):
            // escaping this thread would end the daemon (std::terminate).
            // Treated as a dropped connection: the others go on meanwhile.
            delay = backoff.next();
            why = std::string("unexpected error: ") + e.what();
        }
        if (why != last_error)
            log_.warn(acc_.name, where + ": " + why + "; reconnecting in " + std::to_string(delay.count() / 1000) + "." +
                                     std::to_string(delay.count() % 1000 / 100) + " s (with backoff)");
        else
            log_.detail(acc_.name, where + ": " + why);
        last_error = why;
        if (!pause(delay, gen)) return;
    }
}

// The signals the daemon handles, delivered to one thread by sigtimedwait.
sigset_t daemon_signals() {
    sigset_t s;
    sigemptyset(&s);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&s, sig);
    return s;
}

std::vector<std::unique_ptr<AccountService>> start_services(const DaemonSetup& setup, const DaemonOptions& opts,
                                                            Logger& log) {
    std::vector<std::unique_ptr<AccountService>> out;
    for (const Account* a : setup.accounts) {
        out.push_back(std::make_unique<AccountService>(*a, setup.state_dir, opts, log));
        out.back()->start();
    }
    log.info("", "daemon serving " + std::to_string(out.size()) + " account(s)");
    return out;
}

using Services = std::vector<std::unique_ptr<AccountService>>;

// SIGTERM/SIGINT: finish or roll back what is in hand, save, log out.
void stop_all(Services& services, int sig, const DaemonOptions& opts, Logger& log) {
    log.info("", std::string("stopping on ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") +
                     ": finishing what is in hand, saving state, logging out");
    opts.stop->store(true);
    // A second signal kills as usual.
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &stop_set, nullptr);
    for (auto& s : services) s->stop();
    services.clear();
    log.info("", "daemon stopped");
}

// Stops the services for a reload (their syncs run to the end) while
// watching for SIGTERM/SIGINT: returns that signal, with opts.stop set so
// the syncs wind down at once, or 0. SIGHUP and SIGUSR1 stay pending.
int stop_for_reload(Services& services, const DaemonOptions& opts, Logger& log) {
    std::atomic<bool> done{false};
    std::thread stopper([&] {
        for (auto& s : services) s->stop();
        done = true;
    });
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    int term = 0;
    while (!done && term == 0) {
        timespec slice{0, 50 * 1000 * 1000};
        int sig = sigtimedwait(&stop_set, nullptr, &slice);
        if (sig == SIGTERM || sig == SIGINT) {
            term = sig;
            log.info("", std::string(sig == SIGTERM ? "SIGTERM" : "SIGINT") + " during the reload: not restarting");
            opts.stop->store(true);
        }
    }
    stopper.join();
    if (term == 0) {
        timespec none{0, 0};
        int sig = sigtimedwait(&stop_set, nullptr, &none);  // came just as the last one stopped
        if (sig == SIGTERM || sig == SIGINT) term = sig;
    }
    if (term == 0) services.clear();
    return term;
}

}  // namespace

int run_daemon(const std::function<DaemonSetup()>& load, const DaemonOptions& opts, Logger& log) {
    // Blocked in every thread (they inherit the mask); this thread takes
    // them with sigtimedwait. Children get a clean mask (process_runner).
    sigset_t set = daemon_signals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    DaemonSetup setup = load();
    auto services = start_services(setup, opts, log);
    for (;;) {
        int sig = sigwaitinfo(&set, nullptr);
        if (sig == SIGTERM || sig == SIGINT) {
            stop_all(services, sig, opts, log);
            return 0;
        }
        if (sig == SIGUSR1) {
            log.info("", "SIGUSR1: polling every account now");
            for (auto& s : services) s->poll_now();
        } else if (sig == SIGHUP) {
            DaemonSetup next;
            try {
                next = load();
            } catch (const Error& e) {
                log.error(e.account(), "SIGHUP: the configuration was not reloaded, the old one stays in use: " + e.detail());
                continue;
            }
            log.info("", "SIGHUP: configuration reloaded; restarting the accounts");
            // The old services finish their syncs first; a SIGTERM or SIGINT
            // meanwhile stops at once instead of after the new ones started.
            if (int term = stop_for_reload(services, opts, log)) {
                stop_all(services, term, opts, log);
                return 0;
            }
            setup = std::move(next);
            services = start_services(setup, opts, log);
        }
    }
}

}  // namespace pullmail
