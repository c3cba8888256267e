// daemon_schedule.h — the pure timing rules of daemon mode (daemon.h):
// reconnect backoff with jitter, the clock the daemon reads (injectable, so
// tests of backoff and intervals never sleep), and the detection of a clock
// jump (resume from suspend: the monotonic clock stood still while the wall
// clock went on). No threads, no I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace pullmail {

// What the daemon reads the time from. steady() drives every interval and
// backoff; wall() is read only to notice suspends and clock changes.
class DaemonClock {
public:
    using Steady = std::chrono::steady_clock::time_point;
    using Wall = std::chrono::system_clock::time_point;
    virtual ~DaemonClock() = default;
    virtual Steady steady() const = 0;
    virtual Wall wall() const = 0;
    static DaemonClock& system();  // the process clocks
};

// A clock tests move by hand.
class ManualClock final : public DaemonClock {
public:
    Steady steady() const override { return steady_; }
    Wall wall() const override { return wall_; }
    void advance(std::chrono::milliseconds d) {
        steady_ += d;
        wall_ += d;
    }
    // A suspend: the wall clock moves, the monotonic one does not.
    void suspend(std::chrono::milliseconds d) { wall_ += d; }

private:
    Steady steady_{std::chrono::hours(1000)};
    Wall wall_{std::chrono::hours(500000)};
};

// Exponential backoff with jitter: 1 s, 2 s, 4 s ... up to `cap`, each
// delay drawn uniformly from [d/2, d] so that many connections cut at the
// same instant (a server restart) do not come back in lockstep. `random`
// returns a value in [0, 1); injectable for tests.
class Backoff {
public:
    explicit Backoff(std::chrono::milliseconds cap, std::function<double()> random = {});
    // The delay before the next attempt; each call doubles the next one.
    std::chrono::milliseconds next();
    void reset() { attempt_ = 0; }
    unsigned attempts() const { return attempt_; }

private:
    std::chrono::milliseconds cap_;
    std::function<double()> random_;
    unsigned attempt_ = 0;
};

// Notices when the monotonic and wall clocks drift apart by more than
// `tolerance` between two checks: a resume from suspend, or the wall clock
// set. Connections that were idle across it are presumed dead.
class ClockJumpDetector {
public:
    ClockJumpDetector(const DaemonClock& clock, std::chrono::seconds tolerance);
    // True when the clocks jumped apart since the last call (or construction).
    bool jumped();

private:
    const DaemonClock& clock_;
    std::chrono::seconds tolerance_;
    DaemonClock::Steady last_steady_;
    DaemonClock::Wall last_wall_;
};

// The state of one account in the daemon, for "log once per change".
enum class WatchState { Starting, Idle, Polling, Retrying, AuthFailed, Stopped };
const char* watch_state_name(WatchState s);

// The poll interval of an account: its own, else -d's, else 300 s.
std::chrono::seconds poll_interval_of(int account_value, int daemon_default);

// When an account's next sync is due: every poll interval after a good one;
// after a temporary failure (a drop, a busy lock, a server restart) with
// backoff, at most the interval; after a refused login only at the next
// interval, never in a tight loop.
class AccountSchedule {
public:
    AccountSchedule(const DaemonClock& clock, std::chrono::seconds interval, std::function<double()> random = {});
    DaemonClock::Steady due() const { return due_; }
    bool is_due() const { return clock_.steady() >= due_; }
    std::chrono::seconds interval() const { return interval_; }
    void synced();
    // Returns the delay chosen.
    std::chrono::milliseconds failed_temporarily();
    void auth_failed();
    void poll_now() { due_ = clock_.steady(); }

private:
    const DaemonClock& clock_;
    std::chrono::seconds interval_;
    Backoff backoff_;
    DaemonClock::Steady due_;
};

}  // namespace pullmail
