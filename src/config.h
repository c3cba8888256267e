// config.h — the immutable configuration of a run.
//
// A Config is built once (from the TOML file, or from command-line options for
// a one-off account) and never changed afterwards; per-run state lives in the
// session and runner objects. Every validation error is a pullmail::Error of
// kind Config whose message names "file:line:column" and the key, so that a
// typo never silently changes behaviour.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pullmail {

// Smtp and Lmtp only in a relay delivery target (deliver = "smtp://...").
enum class Protocol { Pop3, Imap, Smtp, Lmtp };

// pop3s/imaps: Implicit. pop3/imap: StartTls (required; the connection fails
// when the server does not offer it). Off only with an explicit tls = "off".
// IfOffered: an smtp:// delivery target without a tls setting (STARTTLS
// when the server offers it).
enum class TlsMode { Implicit, StartTls, Off, IfOffered };

struct OAuth2Client;

// Where a password comes from. It is read only when the account runs, never
// logged, never put on a command line.
struct PasswordSource {
    // OAuth2: an access token from the refresh token kept in the state
    // directory (oauth2.h); value is the account name, client the settings.
    enum class Kind { None, Literal, Command, File, Env, OAuth2 } kind = Kind::None;
    std::string value;  // the password, the shell command, the file path, or the variable name
    std::shared_ptr<const OAuth2Client> client;  // Kind::OAuth2 only

    PasswordSource() = default;
    PasswordSource(Kind k, std::string v, std::shared_ptr<const OAuth2Client> c = nullptr)
        : kind(k), value(std::move(v)), client(std::move(c)) {}
};

// An account's oauth2 = { ... } table (oauth2.h). Endpoints are https, or
// http only to a loopback address (a local test or proxy server).
struct OAuth2Client {
    std::string provider;             // "google", "microsoft" or "custom"
    std::string client_id;
    PasswordSource client_secret;     // Literal or Command; None for a public client
    std::string token_url, device_url, auth_url, scope;  // filled from the provider unless custom
    std::string store_path;           // <state_dir>/<account>.oauth2: the refresh token
    std::string proxy;                // the account's proxy (Endpoint::proxy) for the token endpoints; empty = none
};

// A server to talk to: the account's source, or an IMAP delivery target.
struct Endpoint {
    std::string url;        // as written, for messages
    Protocol protocol = Protocol::Pop3;
    TlsMode tls = TlsMode::Implicit;
    std::string host;       // name or address; an IPv6 literal without brackets (display() adds them)
    int port = 0;           // parse_endpoint_url fills the protocol default (110/995/143/993)
    std::string path;       // URL path after the host, percent-decoded, without leading '/'
    std::string user;
    PasswordSource password;
    std::string ca_file;    // extra trust anchor, added to the system store
    bool oauth2 = false;    // the password source (oauth2_token_command) yields an OAuth2 access token
    std::string proxy;      // "socks5h://host:port" or "http://host:port" (CONNECT); empty = none
    std::string auth;       // login method: "USER", "APOP", "PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "OAUTHBEARER"; empty = auto (sasl.h)
    std::string socket_path;  // lmtp:/path: the Unix socket (host is then "localhost")

    // "pop3s://host:995" — the URL with no path and no credentials, for logs.
    std::string display() const;
};

struct DeliveryTarget {
    enum class Kind { Maildir, Mbox, Mda, Imap, Relay } kind = Kind::Maildir;
    std::string path;                 // Maildir directory or mbox file, '~' expanded
    bool maildir_plus_plus = false;   // Maildir: "maildir++:PATH", one Maildir++ subfolder per source folder
    std::string command;              // MDA command line, run by /bin/sh -c, message on stdin
    std::optional<Endpoint> imap;     // IMAP target; path = target folder with '/' separators
    // Relay: an SMTP or LMTP server (deliver_smtp.h); user empty = no AUTH.
    std::optional<Endpoint> relay;
    std::vector<std::string> recipients;  // Relay: the envelope recipients (recipient = ...)
    int relay_connections = 0;  // Relay: connections = n of the deliver table; 0 = the default (deliver_smtp.h)
};

// What to do with a message larger than max_size (sync_plan.h).
enum class Oversize { Skip, Headers, Delete };

struct Account {
    std::string name;
    Endpoint server;
    std::vector<std::string> folders{"INBOX"};  // IMAP only, '/' as separator, UTF-8
    DeliveryTarget deliver;
    bool keep = true;
    bool enabled = true;
    bool received_header = false;
    bool pipelining = true;            // POP3: use PIPELINING when the server offers it
    int connections = 1;               // IMAP: parallel connections for folders
    int connect_timeout = 30;          // seconds, connect + TLS + login
    int timeout = 60;                  // seconds without progress while waiting for a reply
    int mda_timeout = 300;             // seconds an MDA may take for one message
    // Once the server has started answering, at least min_rate bytes/s
    // averaged over min_rate_window seconds of waiting (raised to timeout
    // when shorter); 0 = no minimum. Stops trickling servers.
    int min_rate = 8;
    int min_rate_window = 60;
    int run_timeout = 0;               // seconds a connection may last after login; 0 = no limit
    // Retention and limits (sync_plan.h): delete_after = "30d" (seconds
    // after delivery, with keep; 0 = never), max_size = "10M" (octets, 0 =
    // no limit) with oversize, max_messages per run of the account (0 = all).
    std::int64_t delete_after = 0;
    std::uint64_t max_size = 0;
    Oversize oversize = Oversize::Skip;
    int max_messages = 0;
    // IMAP provider quirks. keep = false removes a message by
    // EXPUNGE, or by moving it to the \Trash special-use folder (Gmail only
    // drops a label on EXPUNGE). folders = ["*"] leaves out the folders with
    // these SPECIAL-USE attributes (RFC 6154; lower case, no backslash).
    enum class DeleteMode { Expunge, Trash } delete_mode = DeleteMode::Expunge;
    std::vector<std::string> skip_special_use{"all", "junk", "trash"};
    // Daemon mode (daemon.h): seconds between polls, 0 = from -d, else 300;
    // idle = use IMAP IDLE/NOTIFY when the server offers it.
    int poll_interval = 0;
    bool idle = true;
    std::string source;                // "file:line" of the account table, for messages; "command line" for one-off
};

struct Config {
    std::string path;                  // the file it came from, empty for one-off accounts
    std::string state_dir;             // '~' expanded; default $XDG_STATE_HOME/pullmail
    std::vector<Account> accounts;     // in file order

    const Account* find(const std::string& name) const;
};

// The environment the loader may consult (HOME, XDG_*), injectable for tests.
struct ConfigEnv {
    std::map<std::string, std::string> vars;
    static ConfigEnv from_process();
    std::string get(const std::string& key) const;
};

// Default config path: $XDG_CONFIG_HOME/pullmail/config.toml, else
// ~/.config/pullmail/config.toml.
std::string default_config_path(const ConfigEnv& env);
// Default state directory: $XDG_STATE_HOME/pullmail, else ~/.local/state/pullmail.
std::string default_state_dir(const ConfigEnv& env);
// "~/x" -> "$HOME/x"; anything else unchanged.
std::string expand_home(const std::string& path, const ConfigEnv& env);

// Parse TOML text. source_name is used in error messages ("config.toml:3:1").
// Accounts keep file order. An account's value for a key wins over [defaults];
// password, password_command and password_file count as one setting there.
// folders in [defaults] apply to the IMAP accounts only; in a POP3 account's
// own table it is an error.
Config parse_config(const std::string& text, const std::string& source_name, const ConfigEnv& env);
// Read and parse a file; a missing or unreadable file is a Config error.
Config load_config(const std::string& path, const ConfigEnv& env);

// The options of a one-off account given on the command line
// (pullmail --url ... --user ... --deliver ...).
struct OneOffOptions {
    std::string url, user, deliver, password_command, ca_file, tls, auth;
    std::vector<std::string> folders;
    bool keep = true;
    // IMAP delivery target credentials
    std::string deliver_user, deliver_password_command, deliver_ca_file;
};
// Builds an account named "user@host:port" (its own state file per mailbox)
// with the same validation as the file. The
// password comes from password_command when given, else from the environment
// variable PULLMAIL_PASSWORD (PULLMAIL_DELIVER_PASSWORD for the target): a
// PasswordSource of kind Env naming the variable, read when connecting. The
// variable must be set in env now, so a forgotten export is a Config error at
// start. Errors name the option: "--user is required with --url",
// "--folder: ...", "--deliver-user: is only for an IMAP --deliver target".
Account make_oneoff_account(const OneOffOptions& opts, const ConfigEnv& env);

// Parse "pop3s://host:port/path" into an Endpoint (protocol, tls, host, port,
// path). tls_key is the value of the tls setting ("" when absent, "off",
// "starttls", "implicit"); where is the "file:line:col key" prefix for errors.
Endpoint parse_endpoint_url(const std::string& url, const std::string& tls_key, const std::string& where);

// Parse a deliver string: "maildir:PATH", "mbox:PATH", "mda:COMMAND", or an
// imap(s):// URL. Paths are '~' expanded and made absolute against the current
// directory. For a URL the target folder (percent-decoded, default "INBOX") is
// in both path and imap->path, and imap has no user or password: the caller
// adds them (the file's table form, or --deliver-user).
DeliveryTarget parse_delivery(const std::string& text, const std::string& where, const ConfigEnv& env);

}  // namespace pullmail
