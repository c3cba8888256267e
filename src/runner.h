// runner.h — runs accounts: the per-account flow (lock, state, recovery,
// connect, list, fetch, deliver, delete, prune) and the parallel scheduling of
// several accounts. Errors are caught here, per account, so one broken
// account never stops the others.
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config.h"
#include "error.h"
#include "run_types.h"

namespace pullmail {

class Logger;

// Runs one account; never throws.
AccountResult run_account(const Account& account, const std::string& state_dir, const RunOptions& opts,
                          Logger& log);

// Runs the accounts in parallel (opts.jobs at a time), results in input order.
std::vector<AccountResult> run_accounts(const std::vector<const Account*>& accounts,
                                        const std::string& state_dir, const RunOptions& opts, Logger& log);

// --shard K/N: "K/N" parsed (throws Error(Usage) unless 1 <= K <= N), and
// the accounts of shard K, by a hash of the name: the split does not change
// when accounts are added or reordered, and every account is in exactly one
// shard.
std::pair<unsigned, unsigned> parse_shard(const std::string& text);
std::vector<const Account*> shard_of(const std::vector<const Account*>& accounts, unsigned k, unsigned n);

// Path of an account's state file and lock file.
std::string state_path(const std::string& state_dir, const std::string& account);
std::string lock_path(const std::string& state_dir, const std::string& account);

}  // namespace pullmail
