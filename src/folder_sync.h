// folder_sync.h — the executor of a sync plan (sync_plan.h): open and list,
// plan, header fields when the plan asks for recognition, retrieve into the
// delivery handler, flush, make the state durable, remove, and collect what
// to prune. It knows no protocol (mail_source.h) and decides nothing itself.
//
// One folder sync is one call, so that an IDLE wake-up can make it too.
// Order, and why: nothing is removed on the server before the records that
// allow it (plan_removal) are fsynced; pruning happens after the whole
// account was listed (finish_sync), so a run that fails half-way forgets
// nothing it might still need.
#pragma once

#include <map>
#include <condition_variable>
#include <mutex>
#include <string>
#include <unordered_set>

#include "config.h"
#include "deliver.h"
#include "mail_source.h"
#include "run_types.h"
#include "state_journal.h"
#include "sync_plan.h"

namespace pullmail {

class Intake;
class Logger;

// What the folder syncs of one account run share. `mu` guards the state,
// the result and `prune`; it is never held across network I/O.
struct SyncShared {
    const Account& account;
    PlanOptions options;
    Logger& log;
    StateJournal& state;
    Deliverer& deliverer;
    AccountResult& result;
    std::mutex mu;
    std::unordered_set<std::string> prune;  // keys to forget at the end
    std::map<std::string, FolderMark> marks{};  // folder -> mark to record after the prune
    // max_messages is the account's per run (options.max_messages, the
    // whole budget): `planned` is what the plans so far took of it. Folders
    // claim it in their configured order (`order` of sync_folder), also on
    // several connections: a folder waits on `turn` until the folders
    // before it have planned (or failed), never while holding `mu` across I/O.
    std::size_t planned = 0;
    std::size_t turn_next = 0;  // the order whose turn it is to claim the budget
    std::condition_variable turn{};
};

// Syncs one folder ("" for POP3) over `source`. Throws Error for what stops
// the account (the connection broke, the state cannot be written); a folder
// the server refuses to open is reported and skipped when the error says
// it is scoped to that folder. `status`: the folder as STATUS reported it
// (IMAP), when known; a folder unchanged since its last complete sync
// (folder_unchanged) is then not opened at all. `order`: the folder's place
// in the configured order (0, 1, ...; each once per run), the order in
// which folders take the max_messages budget.
void sync_folder(MailSource& source, const std::string& folder, Intake& handler, SyncShared& shared,
                 const FolderMark* status = nullptr, std::size_t order = 0);

// A folder to sync, as sync_folder() takes it.
struct FolderTask {
    std::string folder;
    const FolderMark* status = nullptr;
    std::size_t order = 0;
};
// sync_folder() of several folders of one connection together, in three
// flights where the source pipelines (IMAP): every folder is opened and
// listed (MailSource::open_many), then planned in order, then the messages
// of all of them retrieved at once (the next folder's SELECT behind the
// current folder's FETCH), then flushed; removal and marks follow per
// folder, after the flush (nothing is removed before its record is
// durable). A folder's failure to open is reported and skips that folder
// only, as in sync_folder(). The listings of all the folders are held at
// once: the caller bounds how many go together.
void sync_folders(MailSource& source, const std::vector<FolderTask>& tasks, Intake& handler, SyncShared& shared);

// Adds a handler's counts and errors to the account result (after flush()).
void account_for(const Intake& handler, SyncShared& shared);

// Forgets the keys collected by the folder syncs (state compaction), then
// records the folders' marks and writes the marks file (state_journal.h).
// Not with --check / --dry-run.
void finish_sync(SyncShared& shared);

}  // namespace pullmail
