#include "folder_sync.h"

#include <algorithm>
#include <memory>

#include "intake.h"
#include "log.h"
#include "message_key.h"
#include "progress.h"
#include "test_hooks.h"

namespace pullmail {

namespace {

std::string where_of(const std::string& folder) { return folder.empty() ? "" : "folder '" + folder + "': "; }

std::string describe(const RemoteMessage& m) {
    if (m.uid) return m.folder() + " UID " + std::to_string(m.uid);
    return "message " + std::to_string(m.number) + " (UIDL " + (m.uidl.empty() ? pop3_uidl(m.key) : m.uidl) + ")";
}

bool synced_before(const StateJournal& state, const SourceIdentity& id) {
    if (id.protocol == SourceProtocol::Pop3) return state.pop3_synced();
    auto v = state.uidvalidity(id.folder);
    return v && *v == id.uidvalidity;
}

void warn_untouched(const Plan& plan, SyncShared& sh) {
    std::map<std::string, std::size_t> shared_keys;
    for (const auto& m : plan.untouched) {
        std::string uidl = m.uidl.empty() ? pop3_uidl(m.key) : m.uidl;
        ++shared_keys[uidl.empty() ? m.key : uidl];
    }
    for (const auto& [uidl, n] : shared_keys)
        sh.log.warn(sh.account.name, "the server lists " + std::to_string(n) + " messages with the same UIDL '" +
                                         uidl + "'; they are left on the server untouched");
}

// A folder's turn to claim the max_messages budget (SyncShared::turn).
// Without a limit there is nothing to wait for. Passing the turn on (at
// the latest when the folder sync ends, whatever the outcome) lets the
// next folder plan.
class BudgetTurn {
public:
    BudgetTurn(SyncShared& sh, std::size_t order) : sh_(sh), order_(order) {}
    BudgetTurn(const BudgetTurn&) = delete;
    BudgetTurn& operator=(const BudgetTurn&) = delete;
    ~BudgetTurn() {
        std::lock_guard<std::mutex> lock(sh_.mu);
        pass(lock);
    }
    // Waits (lock held on `mu`) until the folders before this one claimed.
    void wait(std::unique_lock<std::mutex>& lock) {
        if (sh_.options.max_messages) sh_.turn.wait(lock, [&] { return sh_.turn_next >= order_; });
    }
    // The options of this folder's plan: the limit is what is left.
    PlanOptions options() const {
        PlanOptions o = sh_.options;
        if (o.max_messages) o.max_messages = *o.max_messages - std::min(*o.max_messages, sh_.planned);
        return o;
    }
    // For a folder that plans nothing (unchanged, or refused): waits for its
    // turn and passes it on, so that the folders after it claim in order.
    void done() {
        std::unique_lock<std::mutex> lock(sh_.mu);
        wait(lock);
        pass(lock);
    }
    // Takes what the plan fetches from the budget and passes the turn on.
    template <class Lock>
    void claim(const Plan& plan, Lock& lock) {
        if (passed_) return;
        sh_.planned += plan.fetch.size() + plan.headers_only.size();
        pass(lock);
    }

private:
    template <class Lock>
    void pass(Lock&) {
        if (passed_) return;
        passed_ = true;
        if (sh_.turn_next <= order_) sh_.turn_next = order_ + 1;
        sh_.turn.notify_all();
    }
    SyncShared& sh_;
    std::size_t order_;
    bool passed_ = false;
};

// Plans the listing under the lock and records the identity as synced.
// The budget is claimed here, or after recognition when that is pending.
Plan make_plan(const MailSource::Opened& opened, SyncShared& sh, BudgetTurn& turn) {
    const SourceIdentity& id = opened.identity;
    std::unique_lock<std::mutex> lock(sh.mu);
    turn.wait(lock);
    Plan plan = plan_folder(opened.listing, id, sh.state.entries(), synced_before(sh.state, id), turn.options());
    if (!plan.need_headers) turn.claim(plan, lock);
    if (plan.records) sh.state.reserve_seen(plan.fetch.size() + plan.headers_only.size() + plan.report_oversize.size());
    if (id.protocol == SourceProtocol::Imap) {
        auto old = sh.state.uidvalidity(id.folder);
        if (old && *old != id.uidvalidity)
            sh.log.warn(sh.account.name, "folder '" + id.folder + "' has a new UIDVALIDITY (" + std::to_string(*old) +
                                             " -> " + std::to_string(id.uidvalidity) +
                                             "): messages already delivered are recognised by their headers and "
                                             "size, the others fetched");
        if (plan.records) sh.state.record_uidvalidity(id.folder, id.uidvalidity);
    } else if (plan.records) {
        sh.state.record_pop3_synced();
    }
    sh.result.skipped += plan.untouched.size();
    return plan;
}

// Header fields of the new messages, matched against the old identity's
// records; recognised messages are recorded under their current key.
// Each message's INTERNALDATE (IMAP) is set on copies in `dated`, which
// plan.fetch then points into (so `dated` must outlive the plan's use).
void recognise(MailSource& source, Plan& plan, const SourceIdentity& id, SyncShared& sh,
               std::vector<RemoteMessage>& dated, BudgetTurn& turn) {
    if (!plan.need_headers) return;
    dated = plan.fetch.copy();
    std::map<std::uint32_t, std::string> dates;
    auto headers = source.headers(dated, &dates);
    for (auto& m : dated)
        if (auto d = dates.find(m.uid); d != dates.end()) m.set_internal_date(d->second);
    plan.fetch = MessageRefs();
    for (const auto& m : dated) plan.fetch.push_back(m);
    std::lock_guard<std::mutex> lock(sh.mu);
    auto found = recognise_delivered(plan, id, sh.state.entries(), headers, turn.options());
    turn.claim(plan, lock);
    if (plan.records)
        for (const auto& r : found)
            sh.state.record_seen(r.message.key,
                                 SeenEntry{r.message.size, r.fingerprint, {}, r.keep_on_server, Delivered::Whole,
                                           r.recorded_at});
    sh.result.recognised += found.size();
    if (!found.empty())
        sh.log.info(sh.account.name,
                    where_of(id.folder) + std::to_string(found.size()) +
                        (sh.options.adopt ? " message(s) adopted: marked as seen without fetching them"
                                          : " message(s) recognised as already delivered by their headers and size"));
}

std::string too_large(const RemoteMessage& m, const SyncShared& sh) {
    return describe(m) + " is " + std::to_string(m.size) + " bytes, more than max_size (" +
           std::to_string(sh.options.max_size) + " bytes)";
}

// oversize = "skip": each message is reported once and recorded as Skipped,
// so that the next runs stay quiet about it.
void report_oversize(const Plan& plan, SyncShared& sh) {
    if (plan.report_oversize.empty() || sh.options.check || sh.options.adopt) return;
    std::lock_guard<std::mutex> lock(sh.mu);
    for (const auto& m : plan.report_oversize) {
        sh.log.warn(sh.account.name, (sh.options.dry_run ? "would leave " : "left ") + too_large(m, sh) +
                                         " on the server (oversize = \"skip\"; reported once)");
        if (plan.records) sh.state.record_seen(m.key, SeenEntry{m.size, "-", {}, false, Delivered::Skipped, 0});
    }
    sh.result.skipped += plan.report_oversize.size();
}

// oversize = "headers": the header block and a note (sync_plan.h,
// oversize_stub), delivered and recorded like a message but as HeadersOnly.
void deliver_headers_only(MailSource& source, const Plan& plan, Intake& handler, SyncShared& sh) {
    if (plan.headers_only.empty() || handler.stop_requested()) return;
    auto blocks = source.header_blocks(plan.headers_only);
    handler.set_headers_only(true);
    for (const auto& m : plan.headers_only) {
        if (handler.stop_requested()) break;
        auto b = blocks.find(header_id(m));
        if (b == blocks.end()) {
            handler.failed(m, "the server did not return its header");
            continue;
        }
        handler.begin(m);
        handler.data(oversize_stub(b->second, m.size, sh.options.max_size));
        handler.end(m);
    }
    handler.set_headers_only(false);
    if (!plan.headers_only.empty())
        sh.log.info(sh.account.name, where_of(plan.headers_only.front().folder()) +
                                         std::to_string(plan.headers_only.size()) +
                                         " message(s) over max_size: only their headers were delivered");
}

void report_dry_run(const Plan& plan, const std::vector<RemoteMessage>& removal, SyncShared& sh) {
    for (const auto& m : plan.fetch)
        sh.log.info(sh.account.name, "would fetch " + describe(m) + " (" + std::to_string(m.size) + " bytes) into " +
                                         sh.deliverer.describe());
    for (const auto& m : plan.headers_only)
        sh.log.info(sh.account.name, "would deliver only the header of " + too_large(m, sh) + " into " +
                                         sh.deliverer.describe());
    for (const auto& m : plan.remove_unread)
        sh.log.info(sh.account.name, "would delete " + too_large(m, sh) + " without delivering it (oversize = \"delete\")");
    for (const auto& m : plan_expired(plan, sh.state.entries(), sh.options))
        sh.log.info(sh.account.name, "would delete " + describe(m) + ": delivered " +
                                         std::to_string((sh.options.now - sh.state.find(m.key)->recorded_at) / 3600) +
                                         " hour(s) ago, delete_after has passed");
    if (plan.deferred)
        sh.log.info(sh.account.name, "would leave " + std::to_string(plan.deferred) +
                                         " new message(s) for later runs (max_messages)");
    if (!sh.options.keep)
        sh.log.info(sh.account.name, "would delete " + std::to_string(removal.size()) +
                                         " already delivered message(s) and every message fetched");
}

// Removes what the state allows, once the state is durable.
void remove_delivered(MailSource& source, const Plan& plan, SyncShared& sh) {
    std::vector<RemoteMessage> removal;
    {
        std::lock_guard<std::mutex> lock(sh.mu);
        removal = plan_removal(plan, sh.state.entries(), sh.options);
        if (!removal.empty()) sh.state.sync();  // durable before the server forgets them
    }
    if (removal.empty()) return;
    test_step("before delete");
    auto removed = source.remove(removal);
    if (!removed.warning.empty()) sh.log.warn(sh.account.name, removed.warning);
    std::lock_guard<std::mutex> lock(sh.mu);
    if (removed.error) {
        removed.error->set_account(sh.account.name);
        sh.log.error(sh.account.name, removed.error->detail());
        sh.result.errors.push_back(*removed.error);
    }
    sh.result.deleted += removed.keys.size();
    for (auto& k : removed.keys) sh.prune.insert(std::move(k));
}

// A folder that STATUS shows unchanged since its last complete sync.
bool skip_unchanged(const std::string& folder, const FolderMark* status, SyncShared& sh) {
    if (!status) return false;
    std::lock_guard<std::mutex> lock(sh.mu);
    if (!folder_unchanged(*status, sh.state.mark(folder), sh.options)) return false;
    sh.log.detail(sh.account.name, where_of(folder) + "unchanged since the last sync (UIDVALIDITY, UIDNEXT and "
                                                      "message count): not listed");
    return true;
}

// The folder's mark, to be recorded by finish_sync once the prune is done.
void collect_mark(const MailSource::Opened& opened, const Plan& plan, SyncShared& sh) {
    if (opened.identity.protocol != SourceProtocol::Imap) return;
    std::lock_guard<std::mutex> lock(sh.mu);
    FolderMark at_open{opened.identity.uidvalidity, opened.uidnext, opened.exists};
    if (auto m = mark_after_sync(plan, at_open, sh.state.entries(), sh.options))
        sh.marks[opened.identity.folder] = *m;
    else
        sh.marks.erase(opened.identity.folder);
}

// One folder of the folders synced together (sync_folders).
struct FolderRun {
    const FolderTask* task = nullptr;
    std::unique_ptr<BudgetTurn> turn;
    bool opened_ok = false;
    MailSource::Opened opened;
    Plan plan;
    std::vector<RemoteMessage> dated;  // plan.fetch points here after recognition
    bool fetches = false;              // planned, and a real run: retrieve, remove, mark
};

// Opens the folders not unchanged (all in one flight where the source can);
// a folder the server refuses is reported and left out.
void open_folders(MailSource& source, std::vector<FolderRun>& runs, bool read_only, SyncShared& sh) {
    std::vector<std::string> names;
    std::vector<FolderRun*> open;
    for (auto& r : runs) {
        if (skip_unchanged(r.task->folder, r.task->status, sh)) continue;
        names.push_back(r.task->folder);
        open.push_back(&r);
    }
    if (names.empty()) return;
    auto got = source.open_many(names, read_only);
    for (std::size_t k = 0; k < got.size(); ++k) {
        if (!got[k].error) {
            open[k]->opened = std::move(got[k].opened);
            open[k]->opened_ok = true;
            continue;
        }
        Error& e = *got[k].error;
        if (!e.folder_scoped()) throw e;
        // The folder is missing or refused; the others are still synced.
        e.set_account(sh.account.name);
        std::lock_guard<std::mutex> lock(sh.mu);
        sh.log.error(sh.account.name, e.detail());
        sh.result.errors.push_back(e);
    }
}

// Plans an opened folder (with recognition and oversize reports); true
// when its plan is to be carried out (not --check, --adopt, --dry-run).
bool plan_run(MailSource& source, FolderRun& r, SyncShared& sh) {
    const std::string& folder = r.task->folder;
    r.plan = make_plan(r.opened, sh, *r.turn);
    Plan& plan = r.plan;
    warn_untouched(plan, sh);
    recognise(source, plan, r.opened.identity, sh, r.dated, *r.turn);
    report_oversize(plan, sh);
    {
        std::lock_guard<std::mutex> lock(sh.mu);
        sh.result.new_messages += plan.fetch.size() + plan.headers_only.size();
        if (plan.deferred && !sh.options.dry_run && !sh.options.check)
            sh.log.info(sh.account.name, where_of(folder) + std::to_string(plan.deferred) +
                                             " new message(s) left for the next run (max_messages)");
        if (plan.records)
            for (const auto& k : plan.prune) sh.prune.insert(k);
    }
    if (sh.options.check || sh.options.adopt) return false;
    if (sh.options.dry_run) {
        std::lock_guard<std::mutex> lock(sh.mu);
        PlanOptions o = sh.options;
        o.dry_run = false;  // what a real run would remove before fetching
        report_dry_run(plan, plan_removal(plan, sh.state.entries(), o), sh);
        return false;
    }
    return true;
}

// Retrieves what the plans fetch, the folders' messages one after the
// other in as few retrieve() calls as the target's needs allow (a folder's
// target_may_hold is the handler's for all of a call), a slice at a time:
// a plan of a million messages is never copied whole.
void retrieve_runs(MailSource& source, std::vector<FolderRun>& runs, Intake& handler) {
    constexpr std::size_t kSlice = 4096;
    std::vector<RemoteMessage> batch;
    std::optional<bool> may_hold;  // the handler's target_may_hold for `batch`
    auto send = [&] {
        if (!batch.empty() && !handler.stop_requested()) source.retrieve(batch, handler);
        batch.clear();
    };
    for (auto& r : runs) {
        if (!r.fetches || handler.stop_requested()) continue;
        if (may_hold != r.plan.target_may_hold) {
            send();
            may_hold = r.plan.target_may_hold;
            handler.set_target_may_hold(*may_hold);
        }
        const std::size_t n = r.plan.fetch.size();
        for (std::size_t from = 0; from < n;) {
            std::size_t take = std::min(kSlice - batch.size(), n - from);
            auto part = r.plan.fetch.copy(from, take);
            batch.insert(batch.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
            from += take;
            if (batch.size() >= kSlice) send();
        }
    }
    send();
}

}  // namespace

void sync_folder(MailSource& source, const std::string& folder, Intake& handler, SyncShared& sh,
                 const FolderMark* status, std::size_t order) {
    FolderTask task{folder, status, order};
    sync_folders(source, std::vector<FolderTask>{task}, handler, sh);
}

void sync_folders(MailSource& source, const std::vector<FolderTask>& tasks, Intake& handler, SyncShared& sh) {
    std::vector<FolderRun> runs(tasks.size());  // never resized: the plans point into the listings
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        runs[i].task = &tasks[i];
        runs[i].turn = std::make_unique<BudgetTurn>(sh, tasks[i].order);
    }
    const PlanOptions& po = sh.options;
    bool read_only = !may_remove(po) || po.check || po.dry_run || po.adopt;
    open_folders(source, runs, read_only, sh);
    std::uint64_t messages = 0, bytes = 0;
    for (auto& r : runs) {
        if (!r.opened_ok) {
            r.turn->done();
            continue;
        }
        r.fetches = plan_run(source, r, sh);
        if (!r.fetches) continue;
        messages += r.plan.fetch.size();
        for (const auto& m : r.plan.fetch) bytes += m.size;
    }
    if (AccountProgress* p = progress_for(sh.account.name); p && messages) p->plan(messages, bytes);
    // Who already has each partly delivered message (relay targets), for
    // every folder's plan: keys are unique across folders.
    std::unordered_map<std::string, std::vector<std::string>> delivered_to;
    for (auto& r : runs)
        if (r.fetches) delivered_to.insert(r.plan.delivered_to.begin(), r.plan.delivered_to.end());
    handler.set_delivered_to(&delivered_to);
    try {
        retrieve_runs(source, runs, handler);
        for (auto& r : runs) {
            if (!r.fetches || r.plan.headers_only.empty()) continue;
            handler.set_target_may_hold(r.plan.target_may_hold);
            deliver_headers_only(source, r.plan, handler, sh);
        }
    } catch (...) {
        // Complete messages in hand are delivered and recorded; nothing was
        // removed in these folders yet.
        handler.flush();
        handler.set_delivered_to(nullptr);
        throw;
    }
    handler.flush();
    handler.set_delivered_to(nullptr);
    for (auto& r : runs) {
        if (!r.fetches) continue;
        test_step("folder fetched");
        remove_delivered(source, r.plan, sh);
        collect_mark(r.opened, r.plan, sh);
    }
}

void account_for(const Intake& handler, SyncShared& sh) {
    std::lock_guard<std::mutex> lock(sh.mu);
    sh.result.delivered += handler.delivered();
    sh.result.already_present += handler.already_present();
    sh.result.bytes += handler.bytes();
    sh.result.failed += handler.failed_count();
    for (const auto& e : handler.errors()) sh.result.errors.push_back(e);
}

void finish_sync(SyncShared& sh) {
    if (sh.options.check || sh.options.dry_run) return;
    std::lock_guard<std::mutex> lock(sh.mu);
    // Records never loaded (every folder unchanged): nothing was listed, so
    // nothing is to be pruned, and nothing was appended that could change
    // the last compaction's verdict; reading them now would undo the point.
    if (!sh.prune.empty() || sh.state.records_loaded())
        sh.state.compact([&](const std::string& key) { return sh.prune.count(key) == 0; });
    for (const auto& [folder, mark] : sh.marks) sh.state.record_mark(folder, mark);
    sh.state.sync();
    // After the records it stands for are durable.
    sh.state.save_marks();
}

}  // namespace pullmail
