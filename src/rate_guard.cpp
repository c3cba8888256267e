#include "rate_guard.h"

#include <algorithm>

namespace pullmail {

RateGuard::RateGuard(std::uint64_t min_rate, int window_s)
    : min_rate_(min_rate), window_s_(std::max(1, window_s)), buckets_(static_cast<std::size_t>(window_s_) + 1, 0) {}

bool RateGuard::record(std::uint64_t elapsed_ms, std::uint64_t bytes) {
    if (min_rate_ == 0) return true;
    const std::uint64_t n = buckets_.size();
    std::uint64_t from = now_ms_ / 1000;
    now_ms_ += elapsed_ms;
    std::uint64_t to = now_ms_ / 1000;
    // One bucket per second: the last window_s whole seconds and the one in
    // progress. Seconds that began since the last call start empty; a gap of
    // a whole window or more empties everything.
    for (std::uint64_t s = from + 1; s <= to && s <= from + n; ++s) {
        auto& b = buckets_[s % n];
        sum_ -= b;
        b = 0;
    }
    buckets_[to % n] += bytes;
    sum_ += bytes;
    const std::uint64_t window = n - 1;
    if (now_ms_ < window * 1000) return true;
    return sum_ >= min_rate_ * window;
}

}  // namespace pullmail
