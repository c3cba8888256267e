#include "daemon_schedule.h"

#include <algorithm>
#include <random>

namespace pullmail {

namespace {

class SystemClock final : public DaemonClock {
public:
    Steady steady() const override { return std::chrono::steady_clock::now(); }
    Wall wall() const override { return std::chrono::system_clock::now(); }
};

double default_random() {
    thread_local std::mt19937_64 gen{std::random_device{}()};
    return std::uniform_real_distribution<double>(0.0, 1.0)(gen);
}

}  // namespace

DaemonClock& DaemonClock::system() {
    static SystemClock clock;
    return clock;
}

Backoff::Backoff(std::chrono::milliseconds cap, std::function<double()> random)
    : cap_(std::max(cap, std::chrono::milliseconds(1000))), random_(random ? std::move(random) : default_random) {}

std::chrono::milliseconds Backoff::next() {
    // 1 s << attempt, without overflowing for a long outage.
    std::int64_t full = cap_.count();
    if (attempt_ < 30) full = std::min<std::int64_t>(full, std::int64_t{1000} << attempt_);
    ++attempt_;
    double r = std::clamp(random_(), 0.0, 1.0);
    return std::chrono::milliseconds(full / 2 + static_cast<std::int64_t>(static_cast<double>(full / 2) * r));
}

ClockJumpDetector::ClockJumpDetector(const DaemonClock& clock, std::chrono::seconds tolerance)
    : clock_(clock), tolerance_(tolerance), last_steady_(clock.steady()), last_wall_(clock.wall()) {}

bool ClockJumpDetector::jumped() {
    auto s = clock_.steady();
    auto w = clock_.wall();
    auto ds = std::chrono::duration_cast<std::chrono::milliseconds>(s - last_steady_);
    auto dw = std::chrono::duration_cast<std::chrono::milliseconds>(w - last_wall_);
    last_steady_ = s;
    last_wall_ = w;
    auto drift = dw - ds;
    return drift > tolerance_ || drift < -tolerance_;
}

const char* watch_state_name(WatchState s) {
    switch (s) {
        case WatchState::Starting: return "starting";
        case WatchState::Idle: return "idle";
        case WatchState::Polling: return "polling";
        case WatchState::Retrying: return "retrying";
        case WatchState::AuthFailed: return "login refused";
        case WatchState::Stopped: return "stopped";
    }
    return "?";
}

std::chrono::seconds poll_interval_of(int account_value, int daemon_default) {
    if (account_value > 0) return std::chrono::seconds(account_value);
    if (daemon_default > 0) return std::chrono::seconds(daemon_default);
    return std::chrono::seconds(300);
}

AccountSchedule::AccountSchedule(const DaemonClock& clock, std::chrono::seconds interval,
                                 std::function<double()> random)
    : clock_(clock), interval_(interval), backoff_(interval, std::move(random)), due_(clock.steady()) {}

void AccountSchedule::synced() {
    backoff_.reset();
    due_ = clock_.steady() + interval_;
}

std::chrono::milliseconds AccountSchedule::failed_temporarily() {
    auto d = backoff_.next();
    due_ = clock_.steady() + d;
    return d;
}

void AccountSchedule::auth_failed() {
    backoff_.reset();
    due_ = clock_.steady() + interval_;
}

}  // namespace pullmail
