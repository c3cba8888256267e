// account_run.h — the state of one account's run, shared by the protocol
// flows (fetch_pop3.cpp, fetch_imap.cpp). Internal to the runner.
#pragma once

#include <memory>
#include <string>

#include "config.h"
#include "deliver.h"
#include "runner.h"
#include "seen_state.h"

namespace pullmail {

class Logger;

struct AccountRun {
    const Account& account;
    const RunOptions& opts;
    Logger& log;
    SeenState& state;
    Deliverer& deliverer;
    bool keep;                 // effective keep after -k/-K
    AccountResult& result;
    std::string password;      // resolved once per run; never logged
};

// Protocol flows. They throw Error for account-level failures; per-message
// failures are recorded in run.result by the delivery handler.
void fetch_pop3(AccountRun& run);
void fetch_imap(AccountRun& run);

}  // namespace pullmail
