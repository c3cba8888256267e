// test_hooks.h — fault injection for the crash tests (the promise: never lose,
// never duplicate). When the environment variable PULLMAIL_TEST_KILL_AFTER=N
// is set, the N-th call of step() sends SIGKILL to the process, so tests can
// kill pullmail between any two protocol or delivery steps.
// PULLMAIL_TEST_TRACE_STEPS=1 prints every step with its number on stderr
// (to count the steps of a run). Without either variable, step() only reads
// two cached flags.
#pragma once

#include <string>

namespace pullmail {

void test_step(const char* what);

// PULLMAIL_TEST_TRACE_TIMES=1: every step and every mark is printed on
// stderr as "time <monotonic ms>.<us> [<thread id>]: <what>", for measuring where the
// time of a daemon wake-up goes (bench/daemon_push --timing). A mark is not
// a step: it never counts towards PULLMAIL_TEST_KILL_AFTER. Without the
// variable, test_mark() only reads a cached flag.
void test_mark(const char* what);
void test_mark(const std::string& what);
bool test_marks_on();

// PULLMAIL_TEST_NO_KEPT_SYNC=1: the daemon opens a new connection for every
// sync, as before sync_link.h, so a benchmark can compare both in one build
// and a test can show what the kept connection changes.
bool test_no_kept_sync();

// The wall clock in Unix seconds, for the times in the state file and the
// delete_after rule. PULLMAIL_TEST_NOW=<Unix seconds> replaces it, so that
// the tests of expiry never wait for days.
long long clock_now();

}  // namespace pullmail
