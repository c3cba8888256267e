// report.h — the end-of-run summary: --json output and the exit status of
// the whole run (the worst of all accounts), decided here and only here.
#pragma once

#include <string>
#include <vector>

#include "runner.h"

namespace pullmail {

// {"accounts":[{"name":..,"new":..,"fetched":..,"delivered":..,"already_present":..,
//   "recognised":..,"skipped":..,"failed":..,"bytes":..,"deleted":..,"exit_status":..,
//   "errors":[{"kind":..,"temporary":..,"message":..}]}],"exit_status":N}
std::string json_report(const std::vector<AccountResult>& results, int exit_status);

// "N new message(s): D delivered[, P already present][, F failed][, S skipped];
// B bytes to TARGET[, X deleted on the server]" — the one line per account run.
std::string summary_line(const AccountResult& r, const std::string& target, bool keep);

// The process exit status: worst account status; with --check, 0 when any
// account has new mail and 1 when none has (errors still win).
int run_exit_status(const std::vector<AccountResult>& results, bool check);

// {"accounts":[],"error":MESSAGE,"exit_status":N}: a run that failed before
// any account ran (configuration, command line).
std::string json_error_report(const std::string& message, int exit_status);

}  // namespace pullmail
