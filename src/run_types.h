// run_types.h — what a run is asked to do (RunOptions, from the command
// line) and what one account's run did (AccountResult, for the summary line,
// --json and the exit status). Shared by the runner and the flows below it.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "error.h"

namespace pullmail {

class SyncLinkKeeper;

struct RunOptions {
    std::optional<bool> keep;      // -k / -K override
    bool all = false;              // -a: fetch messages already seen, too
    bool check = false;            // -c: only count new messages
    bool dry_run = false;          // -n
    int verbosity = 1;             // 0 -q, 1 default, 2 -v, 3 -vv
    int jobs = 4;                  // accounts in parallel
    bool wait_lock = false;        // wait for a busy account instead of failing
    bool adopt = false;            // pullmail adopt: mark everything on the server as seen
    const std::atomic<bool>* interrupted = nullptr;  // set by SIGTERM/SIGINT
    // Daemon mode (daemon.h): the summary line only for a sync that found
    // something, and errors left to the daemon, which logs each change once.
    bool daemon = false;
    // Daemon mode, IMAP: the account's sync connection is taken from and
    // given back to this keeper between syncs (sync_link.h); null: each run
    // connects and logs out.
    SyncLinkKeeper* sync_links = nullptr;
};

struct AccountResult {
    std::string name;
    std::size_t new_messages = 0;     // new on the server (for --check / --dry-run: would be fetched)
    std::size_t delivered = 0;        // stored by the target this run
    std::size_t already_present = 0;  // the IMAP target already held them: recorded, not stored again
    std::size_t recognised = 0;       // recognised as delivered before under another identity, or adopted
    std::size_t skipped = 0;          // deliberately left on the server (shared UIDL)
    std::size_t failed = 0;           // delivery failed or the server could not hand them out
    std::uint64_t bytes = 0;          // bytes delivered (after CRLF -> LF)
    std::size_t deleted = 0;          // removed from the server, confirmed by the server
    std::vector<Error> errors;
    int exit_status = 0;
    // Delivered or already present: handled, so removable per keep.
    std::size_t fetched() const { return delivered + already_present; }
};

}  // namespace pullmail
