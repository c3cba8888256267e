// account_context.h — what the protocol flows (fetch_pop3.cpp, fetch_imap.cpp)
// get from the runner for one account's run. Internal to the runner.
#pragma once

#include <memory>
#include <vector>
#include <string>

#include "config.h"
#include "deliver.h"
#include "retrieval.h"
#include "run_types.h"
#include "secrets.h"
#include "state_journal.h"
#include "sync_link.h"
#include "transport.h"

namespace pullmail {

class Logger;

struct AccountContext {
    const Account& account;
    const RunOptions& opts;
    Logger& log;
    StateJournal& state;
    Deliverer& deliverer;
    bool keep;                 // effective keep after -k/-K
    AccountResult& result;
    std::string password;      // resolved once per run; never logged; wiped at the end of the run

    ~AccountContext() { wipe(password); }
};

// The account's server, connected and logged in, with its channel.
struct ServerLink {
    std::unique_ptr<Connection> conn;
    std::unique_ptr<Channel> channel;
};
ServerLink connect_account(const AccountContext& ctx);
// The IMAP sync's first connection, with its session started: the daemon's
// kept one (opts.sync_links) when it passes the health check, else a new
// one. The run's limits (min_rate, run_timeout) count from now either way.
std::unique_ptr<SyncLink> open_imap_sync_link(const AccountContext& ctx);

// Protocol flows: connect, then sync each folder with the common executor
// (folder_sync.h). They throw Error for account-level failures; per-message
// failures are counted in shared.result.
struct SyncShared;
void fetch_pop3(AccountContext& ctx, SyncShared& shared);
void fetch_imap(AccountContext& ctx, SyncShared& shared);

}  // namespace pullmail
