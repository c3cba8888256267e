#include "runner.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "account_run.h"
#include "deliver_imap.h"
#include "fs_util.h"
#include "log.h"
#include "test_hooks.h"
#include "transport.h"

namespace pullmail {

std::string state_path(const std::string& state_dir, const std::string& account) {
    return state_dir + "/" + account + ".state";
}

std::string lock_path(const std::string& state_dir, const std::string& account) {
    return state_dir + "/" + account + ".lock";
}

ServerLink connect_account(const AccountRun& run) {
    const Account& acc = run.account;
    ConnectOptions copts{acc.name, acc.connect_timeout, run.opts.verbosity, &run.log};
    ServerLink link;
    link.conn = connect_and_login(acc.server, run.password, copts);
    test_step("logged in");
    link.channel = std::make_unique<Channel>(*link.conn, acc.timeout, acc.name, &run.log, run.opts.verbosity);
    link.channel->set_min_rate(static_cast<std::uint64_t>(acc.min_rate), acc.min_rate_window);
    link.channel->set_deadline(acc.run_timeout);
    return link;
}

namespace {

// One pullmail per account at a time: cron may start a run while a slow one
// is still going. flock is released by the kernel when the process dies, so
// a crash never leaves a stale lock.
class AccountLock {
public:
    AccountLock(const std::string& path, const std::string& account, bool wait) {
        fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd_ < 0) throw Error(ErrorKind::LocalIO, "cannot open lock file " + path + ": " + std::strerror(errno));
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
void recover_intents(SeenState& state, Deliverer& deliverer, Logger& log, const std::string& account) {
    auto pending = state.pending_intents();
    if (pending.empty()) return;
    std::size_t done = 0, rolled_back = 0;
    for (const auto& p : pending) {
        if (deliverer.recover(p.intent) == Deliverer::Recovery::Delivered) {
            state.record_seen(p.key, 0, "-");
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

AccountResult run_account(const Account& account, const std::string& state_dir, const RunOptions& opts,
                          Logger& log) {
    AccountResult result;
    result.name = account.name;
    try {
        make_dirs(state_dir, 0700);
        AccountLock lock(lock_path(state_dir, account.name), account.name, opts.wait_lock);
        SeenState state(state_path(state_dir, account.name));
        if (!state.load_warning().empty()) log.warn(account.name, state.load_warning());
        DeliveryOptions dopts;
        dopts.account = account.name;
        dopts.mda_timeout_seconds = account.mda_timeout;
        std::unique_ptr<Deliverer> deliverer;
        if (account.deliver.kind == DeliveryTarget::Kind::Imap) {
            ImapTargetOptions topts;
            topts.account = account.name;
            topts.verbosity = opts.verbosity;
            topts.log = &log;
            topts.connect_timeout = account.connect_timeout;
            topts.timeout = account.timeout;
            topts.spool_dir = state_dir;
            deliverer = make_imap_deliverer(*account.deliver.imap, topts);
        } else {
            deliverer = make_file_deliverer(account.deliver, dopts);
        }
        recover_intents(state, *deliverer, log, account.name);

        if (account.server.tls == TlsMode::Off)
            log.warn(account.name, "tls = \"off\": the password and all mail travel unencrypted to " +
                                       account.server.display());
        AccountRun run{account, opts, log, state, *deliverer,
                       opts.keep.value_or(account.keep), result, resolve_password(account.server.password, account.name)};
        if (account.server.protocol == Protocol::Pop3)
            fetch_pop3(run);
        else
            fetch_imap(run);
        if (!opts.check && !opts.dry_run && !opts.adopt)
            log.info(account.name, std::to_string(result.fetched) + " new message(s), " +
                                       std::to_string(result.bytes) + " bytes delivered to " + deliverer->describe() +
                                       (run.keep ? "" : ", " + std::to_string(result.deleted) + " deleted on the server"));
        if (opts.interrupted && opts.interrupted->load())
            throw Error(ErrorKind::Temporary,
                        "interrupted by a signal after delivering " + std::to_string(result.fetched) +
                            " message(s); state saved, the rest is fetched by the next run",
                        true);
    } catch (Error& e) {
        e.set_account(account.name);
        result.errors.push_back(e);
        log.error(account.name, e.detail());
    } catch (const std::exception& e) {
        Error err(ErrorKind::Internal, std::string("internal error: ") + e.what());
        err.set_account(account.name);
        result.errors.push_back(err);
        log.error(account.name, err.what());
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
