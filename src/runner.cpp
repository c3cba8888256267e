#include "runner.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <thread>

#include "account_context.h"
#include "credentials.h"
#include "deliver_imap.h"
#include "deliver_smtp.h"
#include "folder_sync.h"
#include "fs_util.h"
#include "intake.h"
#include "log.h"
#include "progress.h"
#include "report.h"
#include "test_hooks.h"
#include "transport.h"

namespace pullmail {

std::string state_path(const std::string& state_dir, const std::string& account) {
    return state_dir + "/" + account + ".state";
}

std::pair<unsigned, unsigned> parse_shard(const std::string& text) {
    unsigned k = 0, n = 0;
    char extra = 0;
    if (std::sscanf(text.c_str(), "%u/%u%c", &k, &n, &extra) != 2 || n == 0 || k == 0 || k > n)
        throw Error(ErrorKind::Usage, "--shard wants K/N with 1 <= K <= N, e.g. --shard 2/8");
    return {k, n};
}

std::vector<const Account*> shard_of(const std::vector<const Account*>& accounts, unsigned k, unsigned n) {
    std::vector<const Account*> mine;
    for (const Account* a : accounts)
        if (crc32(a->name) % n == k - 1) mine.push_back(a);
    return mine;
}

std::string lock_path(const std::string& state_dir, const std::string& account) {
    return state_dir + "/" + account + ".lock";
}

namespace {

// One pullmail per account at a time: cron may start a run while a slow one
// is still going. flock is released by the kernel when the process dies, so
// a crash never leaves a stale lock.
class AccountLock {
public:
    AccountLock(const std::string& path, const std::string& account, bool wait) {
        // Never through a symlink, never someone else's file (a hard link
        // planted before the directory was made private): it is truncated.
        fd_ = open_no_follow(path, O_RDWR | O_CREAT, 0600);
        if (fd_ < 0) throw Error(ErrorKind::LocalIO, "cannot open lock file " + path + ": " + open_error_text(errno));
        struct stat st {};
        if (::fstat(fd_, &st) != 0 || st.st_uid != ::geteuid() || st.st_nlink != 1) {
            ::close(fd_);
            fd_ = -1;
            throw Error(ErrorKind::LocalIO, "lock file " + path + " is not a file of pullmail's own (another owner "
                                            "or a hard link); remove it");
        }
        int rc;
        while ((rc = ::flock(fd_, LOCK_EX | (wait ? 0 : LOCK_NB))) != 0 && errno == EINTR) {
        }
        if (rc != 0) {
            int e = errno;
            ::close(fd_);
            fd_ = -1;
            if (e == EWOULDBLOCK)
                throw Error(ErrorKind::Temporary,
                            "account is busy: another pullmail is fetching it (use --wait-lock to wait)", true);
            throw Error(ErrorKind::LocalIO, "cannot lock " + path + ": " + std::strerror(e));
        }
        std::string pid = std::to_string(::getpid()) + "\n";
        if (::ftruncate(fd_, 0) == 0) (void)!::write(fd_, pid.data(), pid.size());
    }
    ~AccountLock() {
        if (fd_ >= 0) ::close(fd_);
    }
    AccountLock(const AccountLock&) = delete;
    AccountLock& operator=(const AccountLock&) = delete;

private:
    int fd_ = -1;
};

// Resolves the intents left by a run that was killed (see deliver.h).
void recover_intents(StateJournal& state, Deliverer& deliverer, Logger& log, const std::string& account) {
    auto pending = state.pending_intents();
    if (pending.empty()) return;
    std::size_t done = 0, rolled_back = 0;
    for (const auto& p : pending) {
        // An oversize stub (intake.h) is recorded as one: never deleted.
        std::string_view intent = p.intent;
        bool stub = intent.rfind(kHeadersOnlyIntent, 0) == 0;
        if (stub) intent.remove_prefix(kHeadersOnlyIntent.size());
        if (deliverer.recover(std::string(intent)) == Deliverer::Recovery::Delivered) {
            state.record_seen(p.key, SeenEntry{0, "-", {}, false, stub ? Delivered::HeadersOnly : Delivered::Whole, 0});
            ++done;
        } else {
            state.drop_intent(p.key);
            ++rolled_back;
        }
    }
    state.sync();
    log.warn(account, "the previous run was interrupted: " + std::to_string(done) +
                          " message(s) found delivered, " + std::to_string(rolled_back) +
                          " unfinished one(s) rolled back and fetched again");
}

}  // namespace

namespace {

std::unique_ptr<Deliverer> make_deliverer(const Account& account, const std::string& state_dir,
                                          const RunOptions& opts, Logger& log) {
    if (account.deliver.kind == DeliveryTarget::Kind::Imap) {
        ImapTargetOptions topts;
        topts.account = account.name;
        topts.verbosity = opts.verbosity;
        topts.log = &log;
        topts.connect_timeout = account.connect_timeout;
        topts.timeout = account.timeout;
        topts.spool_dir = state_dir;
        return make_imap_deliverer(*account.deliver.imap, topts);
    }
    if (account.deliver.kind == DeliveryTarget::Kind::Relay) {
        RelayTargetOptions ropts{account.name, opts.verbosity, &log, account.connect_timeout, account.timeout,
                                 state_dir};
        return make_relay_deliverer(account.deliver, ropts);
    }
    DeliveryOptions dopts;
    dopts.account = account.name;
    dopts.mda_timeout_seconds = account.mda_timeout;
    dopts.spool_dir = state_dir;
    return make_file_deliverer(account.deliver, dopts);
}

PlanOptions plan_options(const RunOptions& opts, bool keep) {
    PlanOptions p;
    p.all = opts.all;
    p.keep = keep;
    p.check = opts.check;
    p.dry_run = opts.dry_run;
    p.adopt = opts.adopt;
    return p;
}

// The account's retention and limits (sync_plan.h), with the clock of this run.
void add_retention(PlanOptions& p, const Account& account, const RunOptions& opts) {
    p.now = clock_now();
    p.delete_after = account.delete_after;
    p.max_size = account.max_size;
    p.oversize = account.oversize;
    if (account.max_messages > 0) p.max_messages = static_cast<std::size_t>(account.max_messages);
    // -k keeps every message on the server (man page): no expiry, and oversize
    // messages are skipped rather than deleted.
    if (opts.keep.value_or(false)) {
        p.delete_after = 0;
        if (p.oversize == Oversize::Delete) p.oversize = Oversize::Skip;
    }
}

// Lock, state, recovery, the protocol flow, the summary. Throws Error.
void run_locked(const Account& account, const std::string& state_dir, const RunOptions& opts, Logger& log,
                AccountResult& result) {
    // --check and --dry-run write nothing: no state directory, file or lock.
    const bool read_only = opts.check || opts.dry_run;
    std::optional<AccountLock> lock;
    if (!read_only) {
        make_dirs(state_dir, 0700);
        check_dir_safe(state_dir, DirTrust::Private, "state directory");
        lock.emplace(lock_path(state_dir, account.name), account.name, opts.wait_lock);
    }
    StateJournal state(state_path(state_dir, account.name), read_only);
    if (!state.load_warning().empty()) log.warn(account.name, state.load_warning());
    auto deliverer = make_deliverer(account, state_dir, opts, log);
    if (!read_only) recover_intents(state, *deliverer, log, account.name);

    if (account.server.tls == TlsMode::Off)
        log.warn(account.name, "tls = \"off\": the password and all mail travel unencrypted to " +
                                   account.server.display());
    bool keep = opts.keep.value_or(account.keep);
    AccountContext ctx{account, opts, log, state, *deliverer, keep, result,
                   resolve_password(account.server.password, account.name, account.connect_timeout)};
    SyncShared shared{account, plan_options(opts, keep), log, state, *deliverer, result, {}, {}};
    add_retention(shared.options, account, opts);
    if (account.server.protocol == Protocol::Pop3)
        fetch_pop3(ctx, shared);
    else
        fetch_imap(ctx, shared);
    finish_sync(shared);
    bool quiet = opts.daemon && result.new_messages == 0 && result.deleted == 0 && result.failed == 0;
    if (!opts.check && !opts.dry_run && !opts.adopt && !quiet)
        log.info(account.name, summary_line(result, deliverer->describe(), keep));
    if (opts.interrupted && opts.interrupted->load())
        throw Error(ErrorKind::Temporary,
                    "interrupted by a signal after delivering " + std::to_string(result.delivered) +
                        " message(s); state saved, the rest is fetched by the next run",
                    true);
}

}  // namespace

AccountResult run_account(const Account& account, const std::string& state_dir, const RunOptions& opts,
                          Logger& log) {
    AccountResult result;
    result.name = account.name;
    // The account's live progress line, while a display runs (progress.h).
    struct ProgressScope {
        const std::string& name;
        explicit ProgressScope(const std::string& n) : name(n) { progress_begin(name); }
        ~ProgressScope() { progress_end(name); }
    } progress_scope(account.name);
    try {
        run_locked(account, state_dir, opts, log, result);
    } catch (Error& e) {
        e.set_account(account.name);
        result.errors.push_back(e);
        if (!opts.daemon) log.error(account.name, e.detail());
    } catch (const std::exception& e) {
        Error err(ErrorKind::Internal, std::string("internal error: ") + e.what());
        err.set_account(account.name);
        result.errors.push_back(err);
        if (!opts.daemon) log.error(account.name, err.what());
    }
    for (const auto& e : result.errors) result.exit_status = worse_status(result.exit_status, exit_status(e));
    return result;
}

std::vector<AccountResult> run_accounts(const std::vector<const Account*>& accounts, const std::string& state_dir,
                                        const RunOptions& opts, Logger& log) {
    std::vector<AccountResult> results(accounts.size());
    std::atomic<std::size_t> next{0};
    auto worker = [&] {
        for (;;) {
            std::size_t i = next.fetch_add(1);
            if (i >= accounts.size()) return;
            results[i] = run_account(*accounts[i], state_dir, opts, log);
        }
    };
    std::size_t n = std::max<std::size_t>(1, std::min<std::size_t>(opts.jobs, accounts.size()));
    std::vector<std::thread> threads;
    for (std::size_t t = 1; t < n; ++t) threads.emplace_back(worker);
    worker();
    for (auto& t : threads) t.join();
    return results;
}

}  // namespace pullmail
