#include "test_hooks.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

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

bool trace_steps() {
    static const bool on = std::getenv("PULLMAIL_TEST_TRACE_STEPS") != nullptr;
    return on;
}

bool test_marks_on() {
    static const bool on = std::getenv("PULLMAIL_TEST_TRACE_TIMES") != nullptr;
    return on;
}

bool test_no_kept_sync() {
    static const bool on = std::getenv("PULLMAIL_TEST_NO_KEPT_SYNC") != nullptr;
    return on;
}

void test_mark(const char* what) {
    if (!test_marks_on()) return;
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::steady_clock::now().time_since_epoch()).count();
    std::fprintf(stderr, "time %lld.%03lld [%ld]: %s\n", static_cast<long long>(us / 1000),
                 static_cast<long long>(us % 1000), static_cast<long>(::gettid()), what);
}

void test_mark(const std::string& what) {
    if (test_marks_on()) test_mark(what.c_str());
}

void test_step(const char* what) {
    test_mark(what);
    long limit = kill_after();
    if (limit <= 0 && !trace_steps()) return;
    long n = steps.fetch_add(1, std::memory_order_relaxed) + 1;
    if (trace_steps()) std::fprintf(stderr, "step %ld: %s\n", n, what);
    if (limit > 0 && n >= limit) ::kill(::getpid(), SIGKILL);
}

long long clock_now() {
    if (const char* v = std::getenv("PULLMAIL_TEST_NOW")) {
        char* end = nullptr;
        long long t = std::strtoll(v, &end, 10);
        if (end != v && *end == '\0' && t > 0) return t;
    }
    return static_cast<long long>(std::time(nullptr));
}

}  // namespace pullmail
