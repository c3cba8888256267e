// test_hooks.h — fault injection for the crash tests (issue: never lose,
// never duplicate). When the environment variable PULLMAIL_TEST_KILL_AFTER=N
// is set, the N-th call of step() sends SIGKILL to the process, so tests can
// kill pullmail between any two protocol or delivery steps.
// PULLMAIL_TEST_TRACE_STEPS=1 prints every step with its number on stderr
// (to count the steps of a run). Without either variable, step() only reads
// two cached flags.
#pragma once

namespace pullmail {

void test_step(const char* what);

// The wall clock in Unix seconds, for the times in the state file and the
// delete_after rule. PULLMAIL_TEST_NOW=<Unix seconds> replaces it, so that
// the tests of expiry never wait for days.
long long clock_now();

}  // namespace pullmail
