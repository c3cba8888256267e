#include "cli.h"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <iostream>

#include "config.h"
#include "error.h"
#include "log.h"
#include "report.h"
#include "runner.h"
#include "state_journal.h"
#include "transport.h"

namespace pullmail {

namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_stop_signal(int) {
    // First signal: finish cleanly (roll back the message in hand, save
    // state, QUIT/LOGOUT). A second one kills as usual.
    g_interrupted.store(true);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
}

void install_signals() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    // Writing to an MDA that exited must be an error (EPIPE), not a kill;
    // a full RLIMIT_FSIZE must be an error (EFBIG), not a kill.
    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGXFSZ, SIG_IGN);
}

const char* kExamples = R"(
Examples:
  pullmail                       fetch every enabled account of ~/.config/pullmail/config.toml
  pullmail home work             fetch only the accounts 'home' and 'work'
  pullmail -c && echo new mail   count new messages without fetching
  pullmail -n -v                 show what would be fetched and where it would go
  pullmail -K home               fetch 'home' and delete what was delivered from the server
  pullmail adopt home            mark everything now on the server as seen, without fetching it
  pullmail -f migrate.toml -j 8 --shard 1/4 --json   one quarter of a long list of migrations
  PULLMAIL_PASSWORD=... pullmail --url pop3s://pop.example.com --user me --deliver maildir:~/Mail/inbox
  pullmail --url imaps://imap.example.com --user me --password-command 'pass mail' \
           --folder INBOX --folder Lists/cpp --deliver mbox:~/Mail/work.mbox
  pullmail --url pop3s://pop.old.example --user me --password-command 'pass old' \
           --deliver imaps://imap.new.example/INBOX --deliver-user me@new.example \
           --deliver-password-command 'pass new'      move a POP3 mailbox into IMAP

Exit status: 0 ok (mail or no mail; with --check: 0 new mail, 1 none), 64 usage, 65 damaged state
file, 69 server unreachable, 70 internal error, 73 delivery failed, 74 local I/O error, 75 temporary
failure (retry later), 76 TLS or protocol error, 77 login refused, 78 configuration error.
See pullmail(1).)";

// Everything the command line says.
struct CliArgs {
    std::string config_file, state_dir, repair, shard;
    std::vector<std::string> names;
    bool keep = false, no_keep = false, all = false, check = false, dry_run = false, json = false,
         version = false, wait_lock = false, quiet = false;
    int verbose = 0, jobs = 4;
    OneOffOptions one;
};

void add_options(CLI::App& app, CliArgs& a) {
    app.add_option("-f,--file", a.config_file, "Configuration file (default $XDG_CONFIG_HOME/pullmail/config.toml)");
    app.add_option("accounts", a.names, "Accounts to fetch (default: every enabled account)");
    app.add_flag("-k,--keep", a.keep, "Keep fetched messages on the server (overrides keep)");
    app.add_flag("-K,--no-keep", a.no_keep, "Delete delivered messages from the server (overrides keep)");
    app.add_flag("-a,--all", a.all, "Fetch messages already seen, too");
    app.add_flag("-c,--check", a.check, "Only count new messages; exit 0 when there are some, 1 when none");
    app.add_flag("-n,--dry-run", a.dry_run, "Say what would be fetched and delivered, change nothing");
    app.add_flag("-v,--verbose", a.verbose, "More output; -vv shows the protocol (credentials masked)");
    app.add_flag("-q,--quiet", a.quiet, "Only warnings and errors");
    app.add_option("--state-dir", a.state_dir, "Directory of the state files (overrides state_dir)");
    app.add_flag("--json", a.json, "Print a JSON summary on stdout at the end");
    app.add_option("-j,--jobs", a.jobs, "Accounts fetched in parallel (default 4)")->check(CLI::Range(1, 256));
    app.add_flag("--wait-lock", a.wait_lock, "Wait for an account another pullmail is fetching instead of failing");
    app.add_option("--repair-state", a.repair, "Rebuild ACCOUNT's damaged state file from its valid records");
    app.add_option("--shard", a.shard, "Run only shard K of N (K/N, 1-based): a stable split of the accounts "
                                       "for several machines or job runners");
    app.add_flag("-V,--version", a.version, "Print the version");
    const char* g = "One-off account (no config file)";
    OneOffOptions& one = a.one;
    app.add_option("--url", one.url, "One-off account: server URL (pop3s://host[:port], imaps://...)")->group(g);
    app.add_option("--user", one.user, "User name")->group(g);
    app.add_option("--deliver", one.deliver, "maildir:PATH, mbox:PATH, mda:COMMAND or imaps://host[:port]/Folder")
        ->group(g);
    app.add_option("--password-command", one.password_command,
                   "Command printing the password (else $PULLMAIL_PASSWORD)")
        ->group(g);
    app.add_option("--ca-file", one.ca_file, "Extra trusted CA certificate (PEM)")->group(g);
    app.add_option("--folder", one.folders, "IMAP folder, '/' separated (repeatable; default INBOX)")->group(g);
    app.add_option("--tls", one.tls, "off | starttls | implicit")->group(g);
    app.add_option("--auth", one.auth, "login method: user, apop, plain, login, cram-md5, xoauth2, oauthbearer or auto (default)")->group(g);
    app.add_option("--deliver-user", one.deliver_user, "User on an IMAP delivery target")->group(g);
    app.add_option("--deliver-ca-file", one.deliver_ca_file, "Extra trusted CA certificate for the IMAP target")
        ->group(g);
    app.add_option("--deliver-password-command", one.deliver_password_command,
                   "Password command for the IMAP target (else $PULLMAIL_DELIVER_PASSWORD)")
        ->group(g);
}

// The configuration: a one-off account from --url, or the file.
Config load_accounts(CliArgs& a, const ConfigEnv& env) {
    Config config;
    if (!a.one.url.empty()) {
        if (!a.config_file.empty() || !a.names.empty())
            throw Error(ErrorKind::Usage, "--url defines a one-off account; it cannot be combined with -f or "
                                          "account names");
        a.one.keep = !a.no_keep;
        config.state_dir = default_state_dir(env);
        config.accounts.push_back(make_oneoff_account(a.one, env));
        return config;
    }
    if (!a.one.user.empty() || !a.one.deliver.empty())
        throw Error(ErrorKind::Usage, "--user and --deliver go with --url");
    return load_config(a.config_file.empty() ? default_config_path(env) : a.config_file, env);
}

// The named accounts, or every enabled one; then the --shard part of them.
std::vector<const Account*> select_accounts(const Config& config, const CliArgs& a) {
    std::vector<const Account*> selected;
    if (a.names.empty()) {
        for (const auto& acc : config.accounts)
            if (acc.enabled) selected.push_back(&acc);
    } else {
        for (const auto& n : a.names) {
            const Account* acc = config.find(n);
            if (!acc) throw Error(ErrorKind::Usage, "no account named '" + n + "' in " + config.path);
            selected.push_back(acc);
        }
    }
    if (a.shard.empty()) return selected;
    auto [k, n] = parse_shard(a.shard);
    return shard_of(selected, k, n);
}

int run_selected(const std::vector<const Account*>& selected, const std::string& sdir, const CliArgs& a,
                 bool adopt, Logger& log) {
    install_signals();
    set_stop_flag(&g_interrupted);  // connections give up within a second of a signal
    RunOptions opts;
    if (a.keep) opts.keep = true;
    if (a.no_keep) opts.keep = false;
    opts.all = a.all;
    opts.check = a.check;
    opts.dry_run = a.dry_run;
    opts.verbosity = log.level();
    opts.jobs = a.jobs;
    opts.wait_lock = a.wait_lock;
    opts.adopt = adopt;
    opts.interrupted = &g_interrupted;
    auto results = run_accounts(selected, sdir, opts, log);
    int status = run_exit_status(results, a.check);
    if (a.check && !a.json && log.level() >= 1) {
        for (const auto& r : results)
            if (r.errors.empty()) log.info(r.name, std::to_string(r.new_messages) + " new message(s)");
    }
    if (a.json) std::cout << json_report(results, status) << std::flush;
    return status;
}

// Everything after parsing; throws Error.
int run_command(CliArgs& a, Logger& log) {
    if (a.keep && a.no_keep) throw Error(ErrorKind::Usage, "--keep and --no-keep contradict each other");
    if (a.check && a.dry_run) throw Error(ErrorKind::Usage, "--check and --dry-run cannot be combined");
    // "pullmail adopt ACCOUNT...": mark everything on the server as seen.
    // "adopt" as the first word is always this command.
    bool adopt = !a.names.empty() && a.names.front() == "adopt";
    if (adopt) {
        a.names.erase(a.names.begin());
        if (a.names.empty() && a.one.url.empty())
            throw Error(ErrorKind::Usage, "adopt needs the accounts to adopt: pullmail adopt ACCOUNT...");
    }
    ConfigEnv env = ConfigEnv::from_process();
    Config config = load_accounts(a, env);
    std::string sdir = a.state_dir.empty() ? config.state_dir : expand_home(a.state_dir, env);
    if (!a.repair.empty()) {
        if (!config.find(a.repair)) throw Error(ErrorKind::Usage, "no account named '" + a.repair + "'");
        std::string backup;
        std::size_t kept = StateJournal::repair(state_path(sdir, a.repair), &backup);
        log.info(a.repair, "state file rebuilt with " + std::to_string(kept) +
                               " valid record(s); the damaged file was kept as " + backup);
        return 0;
    }
    auto selected = select_accounts(config, a);
    if (selected.empty()) {
        log.info("", "no enabled accounts in " + config.path);
        if (a.json) std::cout << json_report({}, 0);
        return a.check ? 1 : 0;
    }
    return run_selected(selected, sdir, a, adopt, log);
}

}  // namespace

int cli_main(int argc, char** argv) {
    CLI::App app{"pullmail — fetch mail from POP3 and IMAP servers into Maildir, mbox, an MDA", "pullmail"};
    app.footer(kExamples);
    CliArgs a;
    add_options(app, a);
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << "pullmail: " << sanitize(e.what(), std::string::npos) << " (see pullmail --help)\n";
        return exit_status(ErrorKind::Usage, false);
    }
    if (a.version) {
        std::cout << "pullmail " << PULLMAIL_VERSION << "\n";
        return 0;
    }
    Logger log(a.quiet ? 0 : 1 + a.verbose);
    try {
        return run_command(a, log);
    } catch (const Error& e) {
        log.error(e.account(), e.detail());
        int status = exit_status(e);
        if (a.json)
            std::cout << "{\"accounts\":[],\"error\":\"" << json_escape(e.detail()) << "\",\"exit_status\":" << status
                      << "}\n";
        return status;
    }
}

}  // namespace pullmail
