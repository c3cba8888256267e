#include "cli.h"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <pwd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string_view>
#include <utility>

#include "config.h"
#include "daemon.h"
#include "error.h"
#include "fetchmailrc.h"
#include "fetchmailrc_toml.h"
#include "log.h"
#include "oauth2.h"
#include "progress.h"
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
  pullmail -n                    show what would be fetched and where it would go, one line per message
  pullmail -K home               fetch 'home' and delete what was delivered from the server
  pullmail adopt home            mark everything now on the server as seen, without fetching it
  pullmail import-fetchmailrc > ~/.config/pullmail/config.toml   convert ~/.fetchmailrc
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
         version = false, wait_lock = false, quiet = false, progress = false, no_progress = false,
         list_accounts = false;
    bool auth_device = false, auth_browser = false, auth_paste = false;  // pullmail auth
    int verbose = 0, jobs = 4;
    bool daemon = false;
    int daemon_interval = 0;  // -d SECONDS
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
    app.add_flag("--progress", a.progress, "Show live progress lines on stderr even when it is not a terminal");
    app.add_flag("--no-progress", a.no_progress, "No live progress lines, even on a terminal");
    // For the shell completions (scripts/completions): the account names, one a line.
    app.add_flag("--list-accounts", a.list_accounts, "")->group("");
    app.add_flag("-V,--version", a.version, "Print the version");
    app.add_flag("--device", a.auth_device, "pullmail auth: sign in with the device-code flow");
    app.add_flag("--browser", a.auth_browser, "pullmail auth: sign in in a browser (redirect to 127.0.0.1)");
    app.add_flag("--paste", a.auth_paste, "pullmail auth: sign in in a browser anywhere, then paste the address");
    app.add_flag("--daemon", a.daemon, "Keep running: push (IMAP IDLE/NOTIFY) and polling until SIGTERM");
    app.add_option("-d", a.daemon_interval, "Daemon with this default poll interval in seconds (as fetchmail -d)")
        ->check(CLI::Range(1, 86400));
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

// The options that describe a one-off account mean nothing with a config
// file; silently ignoring one (--tls off, --ca-file) would run the account
// other than asked, so each is an error naming it and the key to set instead.
void reject_oneoff_options(const OneOffOptions& o) {
    const std::pair<bool, const char*> given[] = {
        {!o.user.empty(), "--user|user"},
        {!o.deliver.empty(), "--deliver|deliver"},
        {!o.password_command.empty(), "--password-command|password_command"},
        {!o.ca_file.empty(), "--ca-file|ca_file"},
        {!o.folders.empty(), "--folder|folders"},
        {!o.tls.empty(), "--tls|tls"},
        {!o.auth.empty(), "--auth|auth"},
        {!o.deliver_user.empty(), "--deliver-user|user in the deliver table"},
        {!o.deliver_ca_file.empty(), "--deliver-ca-file|ca_file in the deliver table"},
        {!o.deliver_password_command.empty(), "--deliver-password-command|password_command in the deliver table"},
    };
    for (const auto& [set, names] : given) {
        if (!set) continue;
        std::string_view n(names);
        auto bar = n.find('|');
        throw Error(ErrorKind::Usage, std::string(n.substr(0, bar)) +
                                          " is an option of a one-off account and goes with --url; with a "
                                          "config file, set " + std::string(n.substr(bar + 1)) +
                                          " in the account's table instead");
    }
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
    reject_oneoff_options(a.one);
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
    return selected;
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
    ProgressDisplay progress(2);
    if (!a.check && !a.dry_run && want_progress(2, log.level(), a.progress, a.no_progress)) progress.start();
    auto results = run_accounts(selected, sdir, opts, log);
    progress.stop();
    int status = run_exit_status(results, a.check);
    if (a.check && !a.json && log.level() >= 1) {
        for (const auto& r : results)
            if (r.errors.empty()) log.info(r.name, std::to_string(r.new_messages) + " new message(s)");
    }
    if (a.json) std::cout << json_report(results, status) << std::flush;
    return status;
}

// "pullmail import-fetchmailrc [FILE]": the equivalent configuration on stdout.
int import_fetchmailrc(const CliArgs& a, const ConfigEnv& env) {
    if (a.names.size() > 2) throw Error(ErrorKind::Usage, "import-fetchmailrc takes one file at most");
    std::string path = a.names.size() == 2 ? a.names[1] : expand_home("~/.fetchmailrc", env);
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(ErrorKind::Config, path + ": cannot read the fetchmail run control file");
    std::ostringstream text;
    text << in.rdbuf();
    const char* user = std::getenv("USER");
    std::string login = user ? user : "";
    if (login.empty())
        if (const struct passwd* pw = ::getpwuid(::geteuid())) login = pw->pw_name;
    std::cout << fetchmailrc_to_toml(parse_fetchmailrc(text.str(), path), path, login.empty() ? "me" : login)
              << std::flush;
    return 0;
}

// --daemon / -d: the configuration is loaded again on SIGHUP (a one-off
// account from --url stays as it was).
int run_daemon_mode(CliArgs& a, const ConfigEnv& env, Logger& log) {
    if (a.check || a.dry_run || a.json || a.all)
        throw Error(ErrorKind::Usage, "--daemon cannot be combined with --check, --dry-run, --all or --json");
    install_signals();
    set_stop_flag(&g_interrupted);
    DaemonOptions d;
    d.default_interval = a.daemon_interval;
    if (a.keep) d.run.keep = true;
    if (a.no_keep) d.run.keep = false;
    d.run.verbosity = log.level();
    d.stop = &g_interrupted;
    auto load = [&a, &env] {
        DaemonSetup s;
        auto config = std::make_shared<Config>(load_accounts(a, env));
        s.state_dir = a.state_dir.empty() ? config->state_dir : expand_home(a.state_dir, env);
        s.accounts = select_accounts(*config, a);
        if (!a.shard.empty()) {  // several daemons may share the accounts, as one-shot runs do
            auto [k, n] = parse_shard(a.shard);
            s.accounts = shard_of(s.accounts, k, n);
        }
        s.config = std::move(config);
        return s;
    };
    return run_daemon(load, d, log);
}

// "pullmail auth ACCOUNT": the OAuth2 sign-in of an account with an
// oauth2 table (oauth2.h); instructions on stderr, the pasted address on stdin.
int sign_in(const CliArgs& a, const Config& config) {
    if (a.names.size() != 2) throw Error(ErrorKind::Usage, "auth signs in one account: pullmail auth ACCOUNT");
    const Account* acc = config.find(a.names[1]);
    if (!acc) throw Error(ErrorKind::Usage, "no account named '" + a.names[1] + "' in " + config.path);
    if (acc->server.password.kind != PasswordSource::Kind::OAuth2)
        throw Error(ErrorKind::Usage, "account '" + acc->name + "' has no oauth2 table; pullmail auth is for those");
    if (a.auth_device + a.auth_browser + a.auth_paste > 1)
        throw Error(ErrorKind::Usage, "--device, --browser and --paste exclude each other");
    SignInFlow flow = a.auth_device ? SignInFlow::Device : a.auth_browser ? SignInFlow::Browser
                      : a.auth_paste ? SignInFlow::Paste : SignInFlow::Default;
    oauth2_sign_in(*acc->server.password.client, acc->name, flow, std::cin, std::cerr);
    return 0;
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
    if (!a.names.empty() && a.names.front() == "import-fetchmailrc") return import_fetchmailrc(a, env);
    if (a.progress && a.no_progress) throw Error(ErrorKind::Usage, "--progress and --no-progress contradict each other");
    Config config = load_accounts(a, env);
    if (a.list_accounts) {
        for (const auto& acc : config.accounts) std::cout << acc.name << "\n";
        return 0;
    }
    if (!a.names.empty() && a.names.front() == "auth") return sign_in(a, config);
    std::string sdir = a.state_dir.empty() ? config.state_dir : expand_home(a.state_dir, env);
    if (!a.repair.empty()) {
        if (!config.find(a.repair)) throw Error(ErrorKind::Usage, "no account named '" + a.repair + "'");
        std::string path = state_path(sdir, a.repair);
        auto r = StateJournal::repair(path);
        using Outcome = StateJournal::Repair::Outcome;
        if (r.outcome == Outcome::Missing)
            log.info(a.repair, "no state file " + path + "; nothing to repair");
        else if (r.outcome == Outcome::Healthy)
            log.info(a.repair, "state file " + path + " is healthy (" + std::to_string(r.records) +
                                   " valid record(s)); nothing changed");
        else
            log.info(a.repair, "state file rebuilt with " + std::to_string(r.records) +
                                   " valid record(s); the damaged file was kept as " + r.backup);
        return 0;
    }
    if (a.daemon || a.daemon_interval) {
        if (adopt) throw Error(ErrorKind::Usage, "--daemon cannot be combined with adopt");
        return run_daemon_mode(a, env, log);
    }
    auto selected = select_accounts(config, a);
    if (!a.shard.empty()) {
        auto [k, n] = parse_shard(a.shard);  // a malformed value is an error, accounts or not
        std::size_t before = selected.size();
        selected = shard_of(selected, k, n);
        if (selected.empty() && before > 0) {
            // Normal with more shards than accounts: nothing to do, no error.
            log.info("", "shard " + a.shard + " is empty: none of the " + std::to_string(before) +
                             " selected account(s) falls in it");
            if (a.json) std::cout << json_report({}, 0);
            return a.check ? 1 : 0;
        }
    }
    if (selected.empty()) {
        log.info("", "no enabled accounts in " + config.path);
        if (a.json) std::cout << json_report({}, 0);
        return a.check ? 1 : 0;
    }
    return run_selected(selected, sdir, a, adopt, log);
}

// --json among the arguments before a "--" (which ends the options).
bool json_requested(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string_view arg(argv[i]);
        if (arg == "--") return false;
        if (arg == "--json") return true;
    }
    return false;
}

// The JSON summary of a run that failed before any account started.
void print_json_failure(const std::string& message, int status) {
    std::cout << json_error_report(message, status) << std::flush;
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
        std::string message = sanitize(e.what(), std::string::npos);
        std::cerr << "pullmail: " << message << " (see pullmail --help)\n";
        int status = exit_status(ErrorKind::Usage, false);
        // The man page promises the JSON line for every failure before an
        // account starts; the parser failed, so look for --json ourselves.
        if (json_requested(argc, argv)) print_json_failure(message, status);
        return status;
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
        if (a.json) print_json_failure(e.detail(), status);
        return status;
    }
}

}  // namespace pullmail
