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
#include "seen_state.h"
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

}  // namespace

int cli_main(int argc, char** argv) {
    CLI::App app{"pullmail — fetch mail from POP3 and IMAP servers into Maildir, mbox, an MDA", "pullmail"};
    app.footer(kExamples);
    std::string config_file, state_dir, repair;
    std::vector<std::string> names;
    bool keep = false, no_keep = false, all = false, check = false, dry_run = false, json = false, version = false,
         wait_lock = false;
    int verbose = 0, jobs = 4;
    bool quiet = false;
    OneOffOptions one;

    app.add_option("-f,--file", config_file, "Configuration file (default $XDG_CONFIG_HOME/pullmail/config.toml)");
    app.add_option("accounts", names, "Accounts to fetch (default: every enabled account)");
    app.add_flag("-k,--keep", keep, "Keep fetched messages on the server (overrides keep)");
    app.add_flag("-K,--no-keep", no_keep, "Delete delivered messages from the server (overrides keep)");
    app.add_flag("-a,--all", all, "Fetch messages already seen, too");
    app.add_flag("-c,--check", check, "Only count new messages; exit 0 when there are some, 1 when none");
    app.add_flag("-n,--dry-run", dry_run, "Say what would be fetched and delivered, change nothing");
    app.add_flag("-v,--verbose", verbose, "More output; -vv shows the protocol (credentials masked)");
    app.add_flag("-q,--quiet", quiet, "Only warnings and errors");
    app.add_option("--state-dir", state_dir, "Directory of the state files (overrides state_dir)");
    app.add_flag("--json", json, "Print a JSON summary on stdout at the end");
    app.add_option("-j,--jobs", jobs, "Accounts fetched in parallel (default 4)")->check(CLI::Range(1, 256));
    app.add_flag("--wait-lock", wait_lock, "Wait for an account another pullmail is fetching instead of failing");
    app.add_option("--repair-state", repair, "Rebuild ACCOUNT's damaged state file from its valid records");
    std::string shard;
    app.add_option("--shard", shard, "Run only shard K of N (K/N, 1-based): a stable split of the accounts "
                                     "for several machines or job runners");
    app.add_flag("-V,--version", version, "Print the version");
    app.add_option("--url", one.url, "One-off account: server URL (pop3s://host[:port], imaps://...)")
                    ->group("One-off account (no config file)");
    app.add_option("--user", one.user, "User name")->group("One-off account (no config file)");
    app.add_option("--deliver", one.deliver, "maildir:PATH, mbox:PATH, mda:COMMAND or imaps://host[:port]/Folder")
        ->group("One-off account (no config file)");
    app.add_option("--password-command", one.password_command,
                   "Command printing the password (else $PULLMAIL_PASSWORD)")
        ->group("One-off account (no config file)");
    app.add_option("--ca-file", one.ca_file, "Extra trusted CA certificate (PEM)")
        ->group("One-off account (no config file)");
    app.add_option("--folder", one.folders, "IMAP folder, '/' separated (repeatable; default INBOX)")
        ->group("One-off account (no config file)");
    app.add_option("--tls", one.tls, "off | starttls | implicit")->group("One-off account (no config file)");
    app.add_option("--auth", one.auth, "SASL mechanism to use (PLAIN, LOGIN, ...)")
        ->group("One-off account (no config file)");
    app.add_option("--deliver-user", one.deliver_user, "User on an IMAP delivery target")
        ->group("One-off account (no config file)");
    app.add_option("--deliver-ca-file", one.deliver_ca_file, "Extra trusted CA certificate for the IMAP target")
        ->group("One-off account (no config file)");
    app.add_option("--deliver-password-command", one.deliver_password_command,
                   "Password command for the IMAP target (else $PULLMAIL_DELIVER_PASSWORD)")
        ->group("One-off account (no config file)");

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
    if (version) {
        std::cout << "pullmail " << PULLMAIL_VERSION << "\n";
        return 0;
    }

    int level = quiet ? 0 : 1 + verbose;
    Logger log(level);
    try {
        if (keep && no_keep) throw Error(ErrorKind::Usage, "--keep and --no-keep contradict each other");
        if (check && dry_run) throw Error(ErrorKind::Usage, "--check and --dry-run cannot be combined");
        // "pullmail adopt ACCOUNT...": mark everything on the server as seen.
        // "adopt" as the first word is always this command.
        bool adopt = !names.empty() && names.front() == "adopt";
        if (adopt) {
            names.erase(names.begin());
            if (names.empty() && one.url.empty())
                throw Error(ErrorKind::Usage, "adopt needs the accounts to adopt: pullmail adopt ACCOUNT...");
        }
        ConfigEnv env = ConfigEnv::from_process();
        Config config;
        bool one_off = !one.url.empty();
        if (one_off) {
            if (!config_file.empty() || !names.empty())
                throw Error(ErrorKind::Usage, "--url defines a one-off account; it cannot be combined with -f or "
                                              "account names");
            one.keep = !no_keep;
            config.state_dir = default_state_dir(env);
            config.accounts.push_back(make_oneoff_account(one, env));
        } else {
            if (!one.user.empty() || !one.deliver.empty())
                throw Error(ErrorKind::Usage, "--user and --deliver go with --url");
            config = load_config(config_file.empty() ? default_config_path(env) : config_file, env);
        }
        std::string sdir = state_dir.empty() ? config.state_dir : expand_home(state_dir, env);

        if (!repair.empty()) {
            if (!config.find(repair)) throw Error(ErrorKind::Usage, "no account named '" + repair + "'");
            std::string backup;
            std::size_t kept = SeenState::repair(state_path(sdir, repair), &backup);
            log.info(repair, "state file rebuilt with " + std::to_string(kept) + " valid record(s); the damaged file "
                             "was kept as " + backup);
            return 0;
        }


        std::vector<const Account*> selected;
        if (names.empty()) {
            for (const auto& a : config.accounts)
                if (a.enabled) selected.push_back(&a);
        } else {
            for (const auto& n : names) {
                const Account* a = config.find(n);
                if (!a) throw Error(ErrorKind::Usage, "no account named '" + n + "' in " + config.path);
                selected.push_back(a);
            }
        }
        if (!shard.empty()) {
            unsigned k = 0, n = 0;
            char extra = 0;
            if (std::sscanf(shard.c_str(), "%u/%u%c", &k, &n, &extra) != 2 || n == 0 || k == 0 || k > n)
                throw Error(ErrorKind::Usage, "--shard wants K/N with 1 <= K <= N, e.g. --shard 2/8");
            // By a hash of the name, so the split does not change when
            // accounts are added or reordered elsewhere in the list.
            std::vector<const Account*> mine;
            for (const Account* a : selected)
                if (crc32(a->name) % n == k - 1) mine.push_back(a);
            selected.swap(mine);
        }
        if (selected.empty()) {
            log.info("", "no enabled accounts in " + config.path);
            if (json) std::cout << json_report({}, 0);
            return check ? 1 : 0;
        }

        install_signals();
        set_stop_flag(&g_interrupted);  // connections give up within a second of a signal
        RunOptions opts;
        if (keep) opts.keep = true;
        if (no_keep) opts.keep = false;
        opts.all = all;
        opts.check = check;
        opts.dry_run = dry_run;
        opts.verbosity = level;
        opts.jobs = jobs;
        opts.wait_lock = wait_lock;
        opts.adopt = adopt;
        opts.interrupted = &g_interrupted;
        auto results = run_accounts(selected, sdir, opts, log);
        int status = run_exit_status(results, check);
        if (check && !json && level >= 1) {
            for (const auto& r : results)
                if (r.errors.empty())
                    log.info(r.name, std::to_string(r.new_messages) + " new message(s)");
        }
        if (json) std::cout << json_report(results, status) << std::flush;
        return status;
    } catch (const Error& e) {
        log.error(e.account(), e.detail());
        int status = exit_status(e);
        if (json) std::cout << "{\"accounts\":[],\"error\":\"" << json_escape(e.detail()) << "\",\"exit_status\":"
                            << status << "}\n";
        return status;
    }
}

}  // namespace pullmail
