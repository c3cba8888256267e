#include "fetchmailrc_toml.h"

#include <cctype>
#include <cstdio>
#include <map>
#include <set>
#include <vector>

#include "error.h"
#include "text_util.h"

namespace pullmail {

namespace {

using Options = std::vector<RcOption>;

// Text from the rc file as it may stand in a TOML comment: one line, no
// control characters, valid UTF-8 (sanitize() escapes the rest), so that a
// newline in a quoted option cannot end the comment and start TOML.
std::string one_line(const std::string& s) { return sanitize(s, 1 << 16); }

bool all_digits(const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos; }

// Digits without their leading zeros ("0" for zeros only): fetchmail reads
// "030" as 30, and TOML forbids leading zeros in an integer.
std::string decimal(const std::string& s) {
    std::size_t i = s.find_first_not_of('0');
    return i == std::string::npos ? "0" : s.substr(i);
}

// True for a whole number TOML may take bare, as decimal() writes it (at
// most 9 digits).
bool plain_number(const std::string& s) { return all_digits(s) && decimal(s).size() <= 9; }

// fetchmail's "0" (in any number of zeros) for "no limit".
bool is_zero(const std::string& s) { return all_digits(s) && decimal(s) == "0"; }

// The last of `names` in opts (later options win, as in fetchmail).
const RcOption* last(const Options& opts, std::initializer_list<const char*> names) {
    for (auto it = opts.rbegin(); it != opts.rend(); ++it)
        for (const char* n : names)
            if (it->name == n) return &*it;
    return nullptr;
}

std::string joined(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : " ") + (s.find_first_of(" \t\"") == std::string::npos ? s : toml_quote(s));
    return out;
}

std::string shown(const RcOption& o) {
    std::string name = o.name;
    if (name[0] == '?') name = name.substr(1);
    else if (name.starts_with("no") && name != "nodetach") name = "no " + name.substr(2);
    if (o.name == "pass" || o.name == "password" || o.name == "esmtppassword") return name + " ...";
    return o.args.empty() ? name : name + " " + joined(o.args);
}

// Why an option has no pullmail equivalent, for its comment.
std::string reason(const std::string& name) {
    static const std::map<std::string, std::string> r = {
        {"smtphost", "to forward by SMTP set deliver = \"smtp://HOST\" and recipient = \"ADDRESS\""},
        {"smtp", "to forward by SMTP set deliver = \"smtp://HOST\" and recipient = \"ADDRESS\""},
        {"smtpname", "the envelope recipient is recipient = \"ADDRESS\" (deliver = \"smtp://HOST\")"},
        {"smtpaddress", "the envelope recipient is recipient = \"ADDRESS\" (deliver = \"smtp://HOST\")"},
        {"fetchall", "pullmail fetches every message it has not delivered yet; `pullmail -a` fetches all once"},
        {"flush", "pullmail never deletes a message it has not delivered"},
        {"limitflush", "the nearest is max_size with oversize = \"delete\""},
        {"sslcertck", "always on in pullmail"},
        {"nosslcertck", "pullmail always verifies certificates; for a self-signed server put its certificate in ca_file"},
        {"sslcertpath", "put the one CA certificate in ca_file (the system store is trusted as well)"},
        {"sslfingerprint", "pullmail verifies the certificate chain and host name instead"},
        {"sslproto", "pullmail uses OpenSSL's default TLS versions"},
        {"interval", "every account is polled at its poll_interval"},
        {"uidl", "pullmail always remembers what it delivered"},
        {"nouidl", "pullmail always remembers what it delivered"},
        {"fetchsizelimit", "pullmail lists sizes itself"},
        {"fastuidl", "pullmail lists sizes itself"},
        {"mimedecode", "pullmail stores messages byte for byte"},
        {"stripcr", "pullmail stores LF line endings in files"},
        {"forcecr", "pullmail stores LF line endings in files"},
        {"pass8bits", "pullmail stores messages byte for byte"},
        {"dropstatus", "pullmail stores messages byte for byte"},
        {"dropdelivered", "pullmail stores messages byte for byte"},
        {"rewrite", "pullmail stores messages byte for byte"},
        {"norewrite", "pullmail never rewrites headers"},
        {"envelope", "single-drop delivery: there is no envelope recipient to look for"},
        {"qvirtual", "single-drop delivery: there is no envelope recipient to look for"},
        {"localdomains", "multidrop is not supported: every message goes to deliver"},
        {"aka", "multidrop is not supported: every message goes to deliver"},
        {"preconnect", "run the command before pullmail instead (cron, systemd ExecStartPre=)"},
        {"postconnect", "run the command after pullmail instead (systemd ExecStartPost=)"},
        {"plugin", "pullmail connects itself (TLS, STARTTLS)"},
        {"plugout", "no plugout; deliver = \"smtp://HOST\" or lmtp: connect directly"},
        {"bsmtp", "use deliver = \"mbox:PATH\" or an MDA"},
        {"lmtp", "set deliver = \"lmtp:/run/dovecot/lmtp\" (a socket) or \"lmtp://HOST\", with recipient = \"ADDRESS\""},
        {"antispam", "a refusal by an SMTP target keeps the message on the server (exit 73)"},
        {"warnings", "oversized messages are reported once"},
        {"expunge", "pullmail expunges once per folder, after the state is on disk"},
        {"batchlimit", "pullmail does not forward by SMTP"},
    };
    auto it = r.find(name);
    return it == r.end() ? "no equivalent in pullmail" : it->second;
}

std::string account_name(const std::string& host, const std::string& user, std::set<std::string>& used) {
    std::string raw = user.empty() ? host : host + "-" + user;
    std::string name;
    for (char c : raw) name += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') ? c : '_';
    if (name.empty() || name == "." || name == "..") name = "account";
    std::string unique = name;
    for (int n = 2; !used.insert(unique).second; ++n) unique = name + "-" + std::to_string(n);
    return unique;
}


// One account. `opts` = defaults, then entry, then user options.
class AccountWriter {
public:
    AccountWriter(std::string& out, const Options& opts, const std::string& source, int line)
        : out_(out), opts_(opts), source_(source), line_(line) {}

    // `value` as a TOML string. Bytes that are not UTF-8 (a Latin-1 file,
    // or an escape such as \301) cannot be in one: Error(Config) naming
    // the line and `what` (the option, or the account's line for line 0),
    // with the value shown escaped unless it is a secret.
    std::string quoted(const std::string& value, const std::string& what, int line, bool secret = false) const {
        if (!valid_utf8(value))
            throw Error(ErrorKind::Config, one_line(source_) + ":" + std::to_string(line ? line : line_) + ": " + what +
                                               (secret ? "" : " '" + sanitize(value, 200) + "'") +
                                               " is not valid UTF-8, which a TOML configuration cannot hold; "
                                               "write it in UTF-8 in the fetchmailrc");
        return toml_quote(value);
    }

    void key(const std::string& k, const std::string& value, const std::string& comment = "") {
        out_ += k + " = " + value;
        if (!comment.empty()) out_ += "  # " + one_line(comment);
        out_ += '\n';
    }
    void note(const std::string& text) { out_ += "# fetchmail: " + one_line(text) + "\n"; }
    // Marks the names as handled; the others get a comment at the end.
    const RcOption* take(std::initializer_list<const char*> names) {
        for (const char* n : names) handled_.insert(n);
        return last(opts_, names);
    }
    void comment_rest() {
        std::set<std::string> done;
        for (const auto& o : opts_) {
            if (handled_.count(o.name)) continue;
            std::string base = o.name[0] == '?' ? o.name.substr(1) : o.name;
            note(shown(o) + " -- " + (o.name[0] == '?' ? "unknown option, not carried over" : reason(base)));
        }
    }

private:
    std::string& out_;
    const Options& opts_;
    const std::string& source_;
    int line_;
    std::set<std::string> handled_;
};

void write_server(AccountWriter& w, const RcEntry& e, bool& imap) {
    const RcOption* proto = w.take({"proto", "protocol"});
    std::string p = proto ? proto->args[0] : "auto";
    for (auto& c : p) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    imap = p.starts_with("imap") || p == "auto";
    if (p == "auto") w.note("proto auto -- IMAP assumed (fetchmail tried IMAP, then POP3)");
    else if (p == "apop") w.note("proto apop -- POP3 assumed; to insist on APOP set auth = \"apop\"");
    else if (p == "kpop" || p == "sdps" || p == "rpop") w.note("proto " + p + " -- plain POP3 with SASL or USER/PASS instead");
    else if (p != "pop3" && !imap) w.note("proto " + p + " -- not supported; POP3 assumed, check the server");
    const RcOption* ssl = w.take({"ssl", "nossl"});
    const RcOption* sslproto = w.take({"sslproto"});
    bool tls_off = sslproto && sslproto->args[0].empty();
    bool implicit = ssl && ssl->name == "ssl" && !tls_off;
    const RcOption* port = w.take({"port", "service"});
    const RcOption* via = w.take({"via"});
    std::string host = via ? via->args[0] : e.host;
    if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
    std::string url = std::string(imap ? "imap" : "pop3") + (implicit ? "s" : "") + "://" + host +
                      (port ? ":" + port->args[0] : "");
    // The port ends up inside the url; checked on its own first so a
    // non-UTF-8 port is reported on the port option's line, not the poll's.
    if (port) w.quoted(port->args[0], port->name, port->line);
    w.key("url", via ? w.quoted(url, "via", via->line) : w.quoted(url, "poll", e.line), via ? "fetchmail: via " + via->args[0] + " (poll name " + e.host + ")" : "");
    if (tls_off)
        w.key("tls", "\"off\"", "fetchmail: sslproto '' -- no TLS: the password travels unencrypted");
    else if (!implicit)
        w.note("no ssl -- pullmail requires STARTTLS on " + url + " (fetchmail used it when offered)");
    if (sslproto && !tls_off && sslproto->args[0] != "auto") w.note("sslproto " + sslproto->args[0] + " -- " + reason("sslproto"));
    if (const RcOption* f = w.take({"sslcertfile"})) w.key("ca_file", w.quoted(f->args[0], f->name, f->line));
    if (const RcOption* ck = w.take({"sslcertck", "nosslcertck"}); ck && ck->name == "nosslcertck")
        w.note("no sslcertck -- " + reason("nosslcertck"));
    if (const RcOption* a = w.take({"auth", "authenticate"})) {
        std::string m = a->args[0];
        for (auto& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        // Only what the loader accepts (normalize_auth); the rest as a comment.
        if (m == "CRAM-MD5") w.key("auth", toml_quote(m));
        else if (m == "XOAUTH2" || m == "OAUTHBEARER")
            w.note("auth " + a->args[0] + " -- set oauth2_token_command (a command printing the access token) or an "
                   "oauth2 table, then auth = \"" + a->args[0] + "\"");
        else if (m != "PASSWORD" && m != "ANY") w.note("auth " + a->args[0] + " -- not supported by pullmail");
    }
    if (const RcOption* t = w.take({"timeout"})) {
        const std::string& v = t->args[0];
        if (all_digits(v) && decimal(v).size() <= 6 && decimal(v) != "0" && std::stoi(decimal(v)) <= 86400)
            w.key("timeout", decimal(v));
        else
            w.note("timeout " + v + " -- not a number of seconds; left out");
    }
}

void write_delivery(AccountWriter& w, const std::string& local, const RcUser& u) {
    if (u.local.size() > 1 || (u.local.size() == 1 && u.local[0] == "*"))
        w.note("is " + joined(u.local) + " -- multidrop is not supported: every message goes to deliver");
    if (const RcOption* mda = w.take({"mda"})) {
        std::string cmd = mda->args[0], out;
        for (std::size_t i = 0; i < cmd.size(); ++i) {
            if (cmd[i] == '%' && i + 1 < cmd.size() && cmd[i + 1] == 'T') {
                out += shell_word(local);
                ++i;
            } else {
                out += cmd[i];
            }
        }
        if (out.find("%F") != std::string::npos)
            w.note("mda %F (the envelope sender) is not substituted by pullmail; edit the command");
        w.key("deliver", w.quoted("mda:" + out, mda->name, mda->line));
        return;
    }
    w.key("deliver", w.quoted("mda:/usr/sbin/sendmail -i -- " + shell_word(local), "local user (is/to)", u.line),
          "fetchmail forwarded to the local MTA by SMTP; or \"maildir:~/Maildir\"");
}

void write_user_keys(AccountWriter& w, bool imap) {
    const RcOption* keep = w.take({"keep", "nokeep"});
    if (keep) w.key("keep", keep->name == "keep" ? "true" : "false");
    else w.key("keep", "false", "fetchmail's default: delete what was delivered");
    if (const RcOption* f = w.take({"folder", "folders"})) {
        if (!imap) {
            w.note("folder " + joined(f->args) + " -- POP3 has one mailbox only");
        } else {
            std::string list;
            for (const auto& s : f->args) list += (list.empty() ? "" : ", ") + w.quoted(s, f->name, f->line);
            bool dotted = false;
            for (const auto& s : f->args) dotted = dotted || s.find('.') != std::string::npos;
            w.key("folders", "[" + list + "]",
                  dotted ? "pullmail separates levels with '/': \"INBOX.Lists\" may need to be \"INBOX/Lists\"" : "");
        }
    }
    if (const RcOption* l = w.take({"limit"}); l && !is_zero(l->args[0]))
        w.key("max_size", w.quoted(l->args[0], l->name, l->line), "fetchmail: limit " + l->args[0] + " (bytes); larger ones stay on the server");
    if (const RcOption* l = w.take({"fetchlimit"}); l && !is_zero(l->args[0])) {
        if (plain_number(l->args[0])) w.key("max_messages", decimal(l->args[0]));
        else w.note("fetchlimit " + l->args[0] + " -- not a number, not carried over");
    }
    if (const RcOption* i = w.take({"idle", "noidle"})) w.key("idle", i->name == "idle" ? "true" : "false");
}

}  // namespace

std::string toml_quote(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04X", c);
            out += buf;
        } else out += static_cast<char>(c);
    }
    return out + "\"";
}

std::string fetchmailrc_to_toml(const Fetchmailrc& rc, const std::string& source, const std::string& login) {
    std::string out = "# pullmail configuration written by `pullmail import-fetchmailrc` from " + one_line(source) +
                      ".\n# Lines \"# fetchmail: ...\" are options without an exact equivalent: read them.\n"
                      "# The file holds passwords: keep it private (chmod 600).\n";
    std::string globals;
    // The last numeric `set daemon` counts, as in fetchmail; one key only.
    const RcOption* daemon = nullptr;
    for (const auto& g : rc.globals)
        if (g.name == "daemon" && !g.args.empty() && plain_number(g.args[0])) daemon = &g;
    for (const auto& g : rc.globals) {
        if (&g == daemon)
            globals += "poll_interval = " + decimal(g.args[0]) + "  # fetchmail: set daemon " + g.args[0] + " (seconds)\n";
        else
            globals += "# fetchmail: set " +
                       one_line(shown(g) + " -- " +
                                (g.name == "daemon" ? (daemon ? "overridden by a later set daemon"
                                                              : "not a number of seconds, not carried over")
                                 : g.name == "logfile" || g.name == "syslog"
                                     ? "pullmail logs to stderr (journald under systemd)"
                                 : g.name == "postmaster" || g.name == "nobouncemail"
                                     ? "pullmail does not forward or bounce mail"
                                     : reason(g.name))) +
                       "\n";
    }
    if (!globals.empty()) out += "\n[defaults]\n" + globals;
    Options defaults;
    std::set<std::string> used;
    for (const auto& e : rc.entries) {
        if (e.kind == RcEntry::Kind::Defaults) {
            defaults.insert(defaults.end(), e.options.begin(), e.options.end());
            for (const auto& u : e.users) defaults.insert(defaults.end(), u.options.begin(), u.options.end());
            out += "\n# fetchmail: defaults (" + one_line(source) + ":" + std::to_string(e.line) +
                   ") -- folded into the accounts below\n";
            continue;
        }
        std::vector<RcUser> users = e.users.empty() ? std::vector<RcUser>{RcUser{}} : e.users;
        for (const auto& u : users) {
            Options opts = defaults;
            opts.insert(opts.end(), e.options.begin(), e.options.end());
            opts.insert(opts.end(), u.options.begin(), u.options.end());
            std::string remote = u.remote.empty() ? (u.local.size() == 1 ? u.local[0] : login) : u.remote;
            std::string local = u.local.empty() || u.local[0] == "*" ? login : u.local[0];
            std::string name = account_name(e.host, remote, used);
            out += "\n# " + one_line(source + ":" + std::to_string(u.line ? u.line : e.line) + ": " +
                                   (e.kind == RcEntry::Kind::Skip ? "skip " : "poll ") + e.host + ", user " + remote) +
                   "\n";
            out += "[accounts." + toml_quote(name) + "]\n";
            AccountWriter w(out, opts, source, u.line ? u.line : e.line);
            bool imap = false;
            write_server(w, e, imap);
            w.key("user", w.quoted(remote, "user", u.line));
            if (const RcOption* p = w.take({"pass", "password"}))
                w.key("password", w.quoted(p->args[0], p->name, p->line, true));
            else
                w.key("password_command", "\"false\"",
                      "fetchmail: no password in the file (asked, or ~/.netrc): set password_command or password_file");
            write_delivery(w, local, u);
            write_user_keys(w, imap);
            if (e.kind == RcEntry::Kind::Skip) w.key("enabled", "false", "fetchmail: skip -- polled only when named");
            w.comment_rest();
        }
    }
    return out;
}

}  // namespace pullmail
