// test_hooks.h — fault injection for the crash tests (issue: never lose,
// never duplicate). When the environment variable PULLMAIL_TEST_KILL_AFTER=N
// is set, the N-th call of step() sends SIGKILL to the process, so tests can
// kill pullmail between any two protocol or delivery steps. Without the
// variable, step() costs one relaxed atomic increment.
#pragma once

namespace pullmail {

void test_step(const char* what);

}  // namespace pullmail
