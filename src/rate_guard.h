// rate_guard.h — the minimum transfer rate a server must keep up while it
// answers (the `min_rate` and `min_rate_window` settings).
//
// A server that sends one byte every few seconds never trips the silence
// timeout, yet can hold a run (and the account's lock) for days. RateGuard
// watches the time spent waiting for the server's bytes and the bytes that
// arrived in it, on a clock of its own that advances only while the caller
// waits (time spent delivering, in an MDA or on a slow disk, is not the
// server's fault). Pure logic, no clock of its own: the caller says how much
// time passed.
#pragma once

#include <cstdint>
#include <vector>

namespace pullmail {

class RateGuard {
public:
    // min_rate bytes per second averaged over window_s seconds of waiting;
    // min_rate 0 turns the guard off.
    RateGuard(std::uint64_t min_rate, int window_s);

    // `elapsed_ms` more of waiting, during which `bytes` arrived. Returns
    // false once a full window has been observed and the bytes in the last
    // window are fewer than min_rate * window_s.
    bool record(std::uint64_t elapsed_ms, std::uint64_t bytes);

    std::uint64_t window_bytes() const { return sum_; }
    int window_seconds() const { return window_s_; }
    std::uint64_t min_rate() const { return min_rate_; }

private:
    std::uint64_t min_rate_;
    int window_s_;
    std::vector<std::uint64_t> buckets_;  // bytes per second of waiting, a ring of window_s + 1
    std::uint64_t now_ms_ = 0;            // waiting time observed so far
    std::uint64_t sum_ = 0;               // bytes in the buckets
};

}  // namespace pullmail
