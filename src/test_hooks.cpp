#include "test_hooks.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace pullmail {

namespace {
long kill_after() {
    static const long n = [] {
        const char* v = std::getenv("PULLMAIL_TEST_KILL_AFTER");
        return v ? std::atol(v) : 0L;
    }();
    return n;
}
std::atomic<long> steps{0};
}  // namespace

void test_step(const char* what) {
    long limit = kill_after();
    if (limit <= 0) return;
    long n = steps.fetch_add(1, std::memory_order_relaxed) + 1;
    if (std::getenv("PULLMAIL_TEST_TRACE_STEPS")) std::fprintf(stderr, "step %ld: %s\n", n, what);
    if (n >= limit) ::kill(::getpid(), SIGKILL);
}

}  // namespace pullmail
