// Tests of RateGuard: the minimum rate over a window of waiting time.
#include <doctest/doctest.h>

#include "rate_guard.h"

using namespace pullmail;

TEST_CASE("rate guard: a steady slow but sufficient server passes, a trickle fails after one window") {
    RateGuard ok(100, 10);
    for (int i = 0; i < 1000; ++i) REQUIRE(ok.record(100, 10));  // 100 bytes/s for 100 s
    RateGuard trickle(100, 10);
    int ms = 0;
    bool alive = true;
    while (alive && ms < 60000) {
        alive = trickle.record(5000, 1);  // one byte every 5 s
        ms += 5000;
    }
    CHECK_FALSE(alive);
    CHECK(ms == 10000);  // judged as soon as a full window was seen, not before
    CHECK(trickle.window_bytes() < 1000);
}

TEST_CASE("rate guard: a burst keeps the window alive only while it is inside it") {
    RateGuard g(100, 10);
    CHECK(g.record(0, 5000));             // a burst at the start
    for (int i = 0; i < 9; ++i) CHECK(g.record(1000, 0));
    CHECK(g.record(1000, 0));             // 10 s: the burst is still in the window
    CHECK_FALSE(g.record(1000, 0));       // 11 s: it left the window, nothing since
}

TEST_CASE("rate guard: a long silence empties the window; 0 turns it off") {
    RateGuard g(10, 5);
    CHECK(g.record(0, 1000));
    CHECK_FALSE(g.record(60000, 0));
    CHECK(g.window_bytes() == 0);
    RateGuard off(0, 5);
    CHECK(off.record(3600 * 1000, 0));
}
