// account_run.h — the state of one account's run, shared by the protocol
// flows (fetch_pop3.cpp, fetch_imap.cpp). Internal to the runner.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <vector>
#include <string>

#include "config.h"
#include "deliver.h"
#include "retrieval.h"
#include "runner.h"
#include "secrets.h"
#include "seen_state.h"
#include "transport.h"

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
    std::string password;      // resolved once per run; never logged; wiped at the end of the run

    ~AccountRun() { wipe(password); }
};

// Messages delivered before under another identity — the account switched
// between POP3 and IMAP, or an IMAP folder got a new UIDVALIDITY — are
// recognised by header fingerprint (fingerprint.h) instead of being fetched
// again. `headers` maps a message (POP3 number / IMAP UID, as returned by
// id_of) to its header block. Recognised messages are recorded as seen (not
// in --check/--dry-run) and removed from `candidates`. With run.opts.adopt,
// every candidate is recorded as seen (pullmail adopt). Returns the count.
// `is_current(key)` says which state entries belong to the current identity
// (those are never matched against).
std::size_t recognise_delivered(AccountRun& run, std::vector<RemoteMessage>& candidates,
                                const std::map<std::uint32_t, std::string>& headers,
                                std::uint32_t (*id_of)(const RemoteMessage&),
                                const std::function<bool(const std::string&)>& is_current);
// True when the state holds fingerprints of messages of another identity, so
// that fetching headers to recognise them is worth it.
bool has_foreign_fingerprints(const AccountRun& run, const std::function<bool(const std::string&)>& is_current);

// The account's server, connected and logged in, with its channel.
struct ServerLink {
    std::unique_ptr<Connection> conn;
    std::unique_ptr<Channel> channel;
};
ServerLink connect_account(const AccountRun& run);

// Protocol flows. They throw Error for account-level failures; per-message
// failures are recorded in run.result by the delivery handler.
void fetch_pop3(AccountRun& run);
void fetch_imap(AccountRun& run);

}  // namespace pullmail
