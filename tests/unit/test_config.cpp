// Tests of config: every field of a valid file, [defaults] inheritance, each
// class of error with its exact "file:line:column: key" prefix, one-off
// accounts from the command line, and the environment-derived defaults.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "config.h"
#include "config_support.h"
#include "error.h"

using namespace pullmail;

namespace {

ConfigEnv test_env() { return test::config_env(); }

std::string cwd() {
    char buf[4096];
    REQUIRE(::getcwd(buf, sizeof buf) != nullptr);
    return buf;
}

using test::config_error;

std::string oneoff_error(const OneOffOptions& o, const ConfigEnv& env = test_env()) {
    try {
        make_oneoff_account(o, env);
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Config);
        return e.what();
    }
    FAIL("no error for one-off account");
    return "";
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

#define CHECK_PREFIX(msg, prefix) CHECK_MESSAGE(starts_with(msg, prefix), "message: " << msg)
#define CHECK_CONTAINS(msg, part) CHECK_MESSAGE((msg).find(part) != std::string::npos, "message: " << msg)

// A minimal valid POP3 account, for error tests that change one line.
const std::string kHead = "[accounts.home]\n"
                          "url = \"pop3s://pop.example.com\"\n"
                          "user = \"me\"\n"
                          "password_command = \"pass show mail\"\n"
                          "deliver = \"maildir:/m\"\n";

}  // namespace

TEST_CASE("config: a full valid file round-trips every field") {
    const std::string text =
        "state_dir = \"~/.local/state/pm\"\n"                        // 1
        "[defaults]\n"                                                 // 2
        "keep = true\n"                                                // 3
        "timeout = 90\n"                                               // 4
        "[accounts.home]\n"                                            // 5
        "url = \"POP3S://pop.example.com\"\n"                          // 6
        "user = \"me@example.com\"\n"                                  // 7
        "password_command = \"pass show mail/home\"\n"                 // 8
        "deliver = \"maildir:~/Mail/inbox\"\n"                         // 9
        "keep = false\n"                                               // 10
        "enabled = false\n"                                            // 11
        "received_header = true\n"                                     // 12
        "pipelining = false\n"                                         // 13
        "connect_timeout = 5\n"                                        // 14
        "mda_timeout = 86400\n"                                        // 15
        "auth = \"plain\"\n"                                           // 16
        "[accounts.work]\n"                                            // 17
        "url = \"imaps://imap.example.com:1993\"\n"                    // 18
        "user = \"me\"\n"                                              // 19
        "password_file = \"~/.config/pullmail/work.pass\"\n"           // 20
        "folders = [\"INBOX\", \"Lists/cpp\", \"Entwürfe\"]\n"         // 21
        "deliver = \"mbox:~/Mail/work.mbox\"\n"                        // 22
        "ca_file = \"/etc/ssl/local-ca.pem\"\n"                        // 23
        "connections = 16\n"                                           // 24
        "[accounts.\"a-plain_one.x\"]\n"                               // 25
        "url = \"imap://[::1]\"\n"                                     // 26
        "tls = \"off\"\n"                                              // 27
        "user = \"u\"\n"                                               // 28
        "password = \"secret\"\n"                                      // 29
        "deliver = \"mda:procmail -d me\"\n"                           // 30
        "[accounts.mig]\n"                                             // 31
        "url = \"pop3://10.0.0.1:1110\"\n"                             // 32
        "tls = \"starttls\"\n"                                         // 33
        "user = \"old\"\n"                                             // 34
        "password = \"p\"\n"                                           // 35
        "deliver = { url = \"imaps://imap.new.example/Archive/old%20isp/\", user = \"me@new.example\", "
        "password_command = \"pass new\", ca_file = \"~/ca.pem\", auth = \"login\" }\n"  // 36
        "[accounts.rel]\n"                                             // 37
        "url = \"imap://h\"\n"                                         // 38
        "tls = \"StartTLS\"\n"                                         // 39
        "user = \"u\"\n"                                               // 40
        "password = \"p\"\n"                                           // 41
        "deliver = \"maildir:Mail/rel\"\n";                            // 42

    Config c = parse_config(text, "config.toml", test_env());
    CHECK(c.path == "config.toml");
    CHECK(c.state_dir == "/home/u/.local/state/pm");
    REQUIRE(c.accounts.size() == 5);
    // File order, not the key order of the TOML table.
    CHECK(c.accounts[0].name == "home");
    CHECK(c.accounts[1].name == "work");
    CHECK(c.accounts[2].name == "a-plain_one.x");
    CHECK(c.accounts[3].name == "mig");
    CHECK(c.accounts[4].name == "rel");

    const Account& h = c.accounts[0];
    CHECK(h.source == "config.toml:5");
    CHECK(h.server.url == "POP3S://pop.example.com");
    CHECK(h.server.protocol == Protocol::Pop3);
    CHECK(h.server.tls == TlsMode::Implicit);
    CHECK(h.server.host == "pop.example.com");
    CHECK(h.server.port == 995);
    CHECK(h.server.path.empty());
    CHECK(h.server.user == "me@example.com");
    CHECK(h.server.password.kind == PasswordSource::Kind::Command);
    CHECK(h.server.password.value == "pass show mail/home");
    CHECK(h.server.ca_file.empty());
    CHECK(h.server.auth == "PLAIN");
    CHECK(h.server.display() == "pop3s://pop.example.com:995");
    CHECK(h.folders == std::vector<std::string>{"INBOX"});
    CHECK(h.deliver.kind == DeliveryTarget::Kind::Maildir);
    CHECK(h.deliver.path == "/home/u/Mail/inbox");
    CHECK_FALSE(h.deliver.imap.has_value());
    CHECK(h.keep == false);
    CHECK(h.enabled == false);
    CHECK(h.received_header == true);
    CHECK(h.pipelining == false);
    CHECK(h.connections == 1);
    CHECK(h.connect_timeout == 5);
    CHECK(h.timeout == 90);
    CHECK(h.mda_timeout == 86400);

    const Account& w = c.accounts[1];
    CHECK(w.source == "config.toml:17");
    CHECK(w.server.protocol == Protocol::Imap);
    CHECK(w.server.tls == TlsMode::Implicit);
    CHECK(w.server.port == 1993);
    CHECK(w.server.display() == "imaps://imap.example.com:1993");
    CHECK(w.server.password.kind == PasswordSource::Kind::File);
    CHECK(w.server.password.value == "/home/u/.config/pullmail/work.pass");
    CHECK(w.server.ca_file == "/etc/ssl/local-ca.pem");
    CHECK(w.server.auth.empty());
    CHECK(w.folders == std::vector<std::string>{"INBOX", "Lists/cpp", "Entwürfe"});
    CHECK(w.deliver.kind == DeliveryTarget::Kind::Mbox);
    CHECK(w.deliver.path == "/home/u/Mail/work.mbox");
    CHECK(w.keep == true);  // from [defaults]
    CHECK(w.enabled == true);
    CHECK(w.received_header == false);
    CHECK(w.pipelining == true);
    CHECK(w.connections == 16);
    CHECK(w.connect_timeout == 30);
    CHECK(w.mda_timeout == 300);

    const Account& p = c.accounts[2];
    CHECK(p.server.host == "::1");
    CHECK(p.server.port == 143);
    CHECK(p.server.tls == TlsMode::Off);
    CHECK(p.server.display() == "imap://[::1]:143");
    CHECK(p.server.password.kind == PasswordSource::Kind::Literal);
    CHECK(p.server.password.value == "secret");
    CHECK(p.deliver.kind == DeliveryTarget::Kind::Mda);
    CHECK(p.deliver.command == "procmail -d me");

    const Account& m = c.accounts[3];
    CHECK(m.server.tls == TlsMode::StartTls);
    CHECK(m.server.port == 1110);
    CHECK(m.server.display() == "pop3://10.0.0.1:1110");
    CHECK(m.deliver.kind == DeliveryTarget::Kind::Imap);
    CHECK(m.deliver.path == "Archive/old isp");
    REQUIRE(m.deliver.imap.has_value());
    const Endpoint& t = *m.deliver.imap;
    CHECK(t.protocol == Protocol::Imap);
    CHECK(t.tls == TlsMode::Implicit);
    CHECK(t.host == "imap.new.example");
    CHECK(t.port == 993);
    CHECK(t.path == "Archive/old isp");
    CHECK(t.user == "me@new.example");
    CHECK(t.password.kind == PasswordSource::Kind::Command);
    CHECK(t.password.value == "pass new");
    CHECK(t.ca_file == "/home/u/ca.pem");
    CHECK(t.auth == "LOGIN");

    const Account& r = c.accounts[4];
    CHECK(r.server.tls == TlsMode::StartTls);
    CHECK(r.server.port == 143);
    CHECK(r.deliver.path == cwd() + "/Mail/rel");

    CHECK(c.find("work") == &c.accounts[1]);
    CHECK(c.find("nope") == nullptr);
}

TEST_CASE("config: defaults are inherited and overridden") {
    const std::string text =
        "[defaults]\n"
        "keep = false\n"
        "user = \"shared\"\n"
        "password_command = \"pass default\"\n"
        "deliver = \"mbox:~/all.mbox\"\n"
        "folders = [\"INBOX\", \"Sent\"]\n"
        "connections = 4\n"
        "[accounts.a]\n"
        "url = \"imaps://a.example\"\n"
        "[accounts.b]\n"
        "url = \"pop3s://b.example\"\n"
        "keep = true\n"
        "user = \"own\"\n"
        "password_file = \"~/b.pass\"\n"
        "deliver = \"maildir:/b\"\n";
    Config c = parse_config(text, "config.toml", test_env());
    REQUIRE(c.accounts.size() == 2);
    const Account& a = c.accounts[0];
    CHECK(a.keep == false);
    CHECK(a.server.user == "shared");
    CHECK(a.server.password.kind == PasswordSource::Kind::Command);
    CHECK(a.deliver.path == "/home/u/all.mbox");
    CHECK(a.folders == std::vector<std::string>{"INBOX", "Sent"});
    CHECK(a.connections == 4);

    const Account& b = c.accounts[1];
    CHECK(b.keep == true);
    CHECK(b.server.user == "own");
    // An account's own password source replaces the default one.
    CHECK(b.server.password.kind == PasswordSource::Kind::File);
    CHECK(b.server.password.value == "/home/u/b.pass");
    CHECK(b.deliver.kind == DeliveryTarget::Kind::Maildir);
    // Folders from [defaults] apply to IMAP accounts only.
    CHECK(b.folders == std::vector<std::string>{"INBOX"});
}

TEST_CASE("config: defaults may hold a deliver table") {
    Config c = parse_config(
        "[defaults.deliver]\nurl = \"imap://localhost/Inbox\"\nuser = \"t\"\npassword = \"x\"\n"
        "[accounts.a]\nurl = \"pop3s://a\"\nuser = \"u\"\npassword = \"p\"\n",
        "config.toml", test_env());
    REQUIRE(c.accounts.size() == 1);
    REQUIRE(c.accounts[0].deliver.imap.has_value());
    CHECK(c.accounts[0].deliver.imap->tls == TlsMode::StartTls);
    CHECK(c.accounts[0].deliver.path == "Inbox");
}

TEST_CASE("config: an empty file has no accounts and the XDG state dir") {
    Config c = parse_config("", "config.toml", test_env());
    CHECK(c.accounts.empty());
    CHECK(c.state_dir == "/xdg/state/pullmail");
}

TEST_CASE("config: unknown keys, with a suggestion") {
    CHECK(config_error(kHead + "kep = false\n") ==
          "config.toml:6:1: accounts.home: unknown key 'kep' (did you mean 'keep'?)");
    CHECK(config_error("acounts = 1\n") == "config.toml:1:1: unknown key 'acounts' (did you mean 'accounts'?)");
    CHECK(config_error("[defaults]\n  pasword = \"x\"\n") ==
          "config.toml:2:3: defaults: unknown key 'pasword' (did you mean 'password'?)");
    // Nothing close: no suggestion.
    CHECK(config_error(kHead + "colour = \"blue\"\n") == "config.toml:6:1: accounts.home: unknown key 'colour'");
    CHECK(config_error("[accounts.home]\ndeliver = { url = \"imaps://h\", usr = \"x\" }\n") ==
          "config.toml:2:32: accounts.home.deliver: unknown key 'usr' (did you mean 'user'?)");
}

TEST_CASE("config: wrong types and ranges") {
    CHECK(config_error(kHead + "keep = \"yes\"\n") ==
          "config.toml:6:8: accounts.home.keep: expected true or false, not a string");
    CHECK(config_error(kHead + "timeout = 1.5\n") ==
          "config.toml:6:11: accounts.home.timeout: expected an integer, not a floating-point number");
    CHECK(config_error(kHead + "connections = 17\n") ==
          "config.toml:6:15: accounts.home.connections: must be from 1 to 16, not 17");
    CHECK(config_error(kHead + "mda_timeout = 0\n") ==
          "config.toml:6:15: accounts.home.mda_timeout: must be from 1 to 86400, not 0");
    CHECK(config_error(kHead + "url = 3\n") != "");  // TOML itself refuses the redefinition
    CHECK(config_error("state_dir = []\n") == "config.toml:1:13: state_dir: expected a string, not an array");
    CHECK(config_error("accounts = 1\n") == "config.toml:1:12: accounts: expected a table, not an integer");
    CHECK(config_error("[accounts]\nhome = \"x\"\n") == "config.toml:2:8: accounts.home: expected a table, not a string");
    CHECK(config_error(kHead + "folders = [\"INBOX\", 3]\n") ==
          "config.toml:6:21: accounts.home.folders: expected an array of strings, found an integer in it");
    CHECK(config_error(kHead + "deliver = 1\n") != "");
    CHECK(config_error("[accounts.home]\ndeliver = 1\n") ==
          "config.toml:2:11: accounts.home.deliver: expected a string or a table, not an integer");
    CHECK(config_error("[accounts.home]\nuser = \"\"\n") == "config.toml:2:8: accounts.home.user: must not be empty");
    CHECK(config_error("[accounts.home]\nauth = \"PLAIN LOGIN\"\nurl = \"pop3s://h\"\nuser = \"u\"\npassword = \"p\"\n"
                       "deliver = \"mbox:/x\"\n") ==
          "config.toml:2:8: accounts.home.auth: \"PLAIN LOGIN\" is not a login method: use \"user\", \"apop\", "
          "\"plain\", \"login\", \"cram-md5\", \"xoauth2\", \"oauthbearer\" or \"auto\"");
    CHECK(config_error("[accounts.home]\ntls = \"yes\"\nurl = \"pop3://h\"\nuser = \"u\"\npassword = \"p\"\n"
                       "deliver = \"mbox:/x\"\n") ==
          "config.toml:2:7: accounts.home.tls: unknown tls mode \"yes\": use \"implicit\", \"starttls\" or \"off\"");
}

TEST_CASE("config: missing required keys name the account table") {
    const std::string url = "url = \"pop3s://h\"\n", user = "user = \"u\"\n", pw = "password = \"p\"\n",
                      del = "deliver = \"mbox:/x\"\n";
    CHECK(config_error("\n[accounts.home]\n" + user + pw + del) ==
          "config.toml:2:1: accounts.home: missing required key 'url'");
    CHECK(config_error("\n[accounts.home]\n" + url + pw + del) ==
          "config.toml:2:1: accounts.home: missing required key 'user'");
    CHECK(config_error("\n[accounts.home]\n" + url + user + pw) ==
          "config.toml:2:1: accounts.home: missing required key 'deliver'");
    CHECK(config_error("\n[accounts.home]\n" + url + user + del) ==
          "config.toml:2:1: accounts.home: no password source: set one of password, password_command, password_file or "
          "oauth2_token_command");
}

TEST_CASE("config: two password sources are a contradiction") {
    CHECK(config_error(kHead + "password = \"x\"\n") ==
          "config.toml:6:1: accounts.home: password and password_command are both set; use exactly one password source");
    CHECK(config_error("[defaults]\npassword_file = \"/f\"\npassword_command = \"c\"\npassword = \"p\"\n") ==
          "config.toml:4:1: defaults: password, password_command and password_file are all set; use exactly one "
          "password source");
    CHECK(config_error("[accounts.h]\ndeliver = { url = \"imaps://h\", password = \"a\", password_file = \"b\" }\n") ==
          "config.toml:2:48: accounts.h.deliver: password and password_file are both set; use exactly one password source");
}

TEST_CASE("config: tls contradictions") {
    auto with = [](const std::string& url, const std::string& tls) {
        return "[accounts.home]\nurl = \"" + url + "\"\ntls = \"" + tls +
               "\"\nuser = \"u\"\npassword = \"p\"\ndeliver = \"mbox:/x\"\n";
    };
    CHECK(config_error(with("pop3s://h", "starttls")) ==
          "config.toml:3:7: accounts.home.tls: tls = \"starttls\" contradicts pop3s://, which is TLS from the first byte; "
          "use pop3:// for STARTTLS");
    CHECK(config_error(with("pop3://h", "implicit")) ==
          "config.toml:3:7: accounts.home.tls: tls = \"implicit\" contradicts pop3://, which starts in plain text; use "
          "pop3s://");
    CHECK(config_error(with("imaps://h", "off")) ==
          "config.toml:3:7: accounts.home.tls: tls = \"off\" contradicts imaps://; use imap:// for an unencrypted connection");
    // Consistent pairs are fine.
    CHECK(parse_config(with("imaps://h", "implicit"), "c", test_env()).accounts[0].server.tls == TlsMode::Implicit);
    // An inherited tls says where it came from.
    CHECK(config_error("[defaults]\ntls = \"starttls\"\n" + kHead) ==
          "config.toml:2:7: defaults.tls (inherited by accounts.home): tls = \"starttls\" contradicts pop3s://, which is "
          "TLS from the first byte; use pop3:// for STARTTLS");
}

TEST_CASE("config: bad URLs") {
    auto with = [](const std::string& url) {
        return "[accounts.home]\nurl = \"" + url + "\"\nuser = \"u\"\npassword = \"p\"\ndeliver = \"mbox:/x\"\n";
    };
    const std::string at = "config.toml:2:7: accounts.home.url: ";
    CHECK(config_error(with("http://h")) == at + "unknown URL scheme 'http': use pop3, pop3s, imap or imaps");
    CHECK(config_error(with("pop.example.com")) ==
          at + "'pop.example.com' is not a URL: expected pop3s://host, imaps://host, pop3://host or imap://host");
    CHECK(config_error(with("pop3s://h:0")) == at + "invalid port '0': must be a number from 1 to 65535");
    CHECK(config_error(with("pop3s://h:65536")) == at + "invalid port '65536': must be a number from 1 to 65535");
    CHECK(config_error(with("pop3s://h:")) == at + "invalid port '': must be a number from 1 to 65535");
    CHECK(config_error(with("pop3s://h:99x")) == at + "invalid port '99x': must be a number from 1 to 65535");
    CHECK(config_error(with("pop3s://[::1]:0")) == at + "invalid port '0': must be a number from 1 to 65535");
    CHECK(config_error(with("pop3s://me:pw@h")) ==
          at + "credentials in the URL are not allowed: put the user in user = and the password in password_command");
    CHECK(config_error(with("pop3s://h/INBOX")) == at + "a POP3 URL has no path");
    CHECK(config_error(with("imaps://h/INBOX")) ==
          at + "an IMAP account URL has no path: use folders = [...] to choose folders");
    CHECK(config_error(with("imaps://")) == at + "the URL has no host name");
    CHECK(config_error(with("imaps://bad host")) == at + "invalid host name 'bad host'");
    CHECK(config_error(with("imaps://[fe80::1")) == at + "unterminated IPv6 address '[' in URL");
    CHECK(config_error(with("imaps://[zz]")) == at + "invalid IPv6 address '[zz]'");
    CHECK(config_error(with("imaps://h?x")) ==
          at + "a URL query or fragment ('?', '#') is not supported; percent-encode them in folder names");
    // A trailing slash is no path.
    CHECK(parse_config(with("imaps://h/"), "c", test_env()).accounts[0].server.path.empty());
}

TEST_CASE("config: folders") {
    CHECK(config_error(kHead + "folders = [\"INBOX\"]\n") ==
          "config.toml:6:11: accounts.home.folders: folders is for IMAP accounts; a POP3 server has only one mailbox");
    const std::string imap = "[accounts.w]\nurl = \"imaps://h\"\nuser = \"u\"\npassword = \"p\"\ndeliver = \"mbox:/x\"\n";
    CHECK(config_error(imap + "folders = [\"INBOX\", \"a\", \"inbox\"]\n") ==
          "config.toml:6:26: accounts.w.folders: folder \"inbox\" is listed twice");
    CHECK(config_error(imap + "folders = [\"a\", \"\"]\n") == "config.toml:6:17: accounts.w.folders: must not be empty");
    CHECK(config_error(imap + "folders = []\n") ==
          "config.toml:6:11: accounts.w.folders: must list at least one folder (the default is [\"INBOX\"])");
    CHECK(config_error(imap + "folders = [\"a\\r\\nX LOGOUT\"]\n") ==
          "config.toml:6:12: accounts.w.folders: folder name must not contain control characters");
    // Case matters for names other than INBOX.
    CHECK(parse_config(imap + "folders = [\"a\", \"A\"]\n", "c", test_env()).accounts[0].folders.size() == 2);
}

TEST_CASE("config: account names become file names") {
    CHECK(config_error("[accounts.\"my home\"]\n") ==
          "config.toml:1:11: accounts.\"my home\": invalid account name: use only letters A-Z a-z, digits, '.', '_' and '-'");
    CHECK(config_error("[accounts.\"a/b\"]\n") != "");
    CHECK(config_error("[accounts.\"..\"]\n") != "");
    CHECK(config_error("[accounts.\"\"]\n") != "");
}

TEST_CASE("config: deliver strings") {
    auto with = [](const std::string& deliver) {
        return "[accounts.home]\nurl = \"pop3s://h\"\nuser = \"u\"\npassword = \"p\"\ndeliver = \"" + deliver + "\"\n";
    };
    const std::string at = "config.toml:5:11: accounts.home.deliver: ";
    CHECK(config_error(with("maildr:/x")) ==
          at + "unknown delivery \"maildr:/x\": use maildir:PATH, maildir++:PATH, mbox:PATH, mda:COMMAND, lmtp:SOCKET, "
               "lmtp://host, smtp(s)://host or an IMAP target deliver = { url = \"imaps://host/Folder\", ... }");
    CHECK(config_error(with("~/Mail")) != "");
    CHECK(config_error(with("maildir:")) == at + "maildir: needs a path, as in maildir:~/Mail/inbox");
    CHECK(config_error(with("mbox:")) == at + "mbox: needs a path, as in mbox:~/Mail/inbox.mbox");
    CHECK(config_error(with("mda: ")) == at + "mda: needs a command, as in mda:procmail -d me");
    CHECK(config_error(with("imaps://new.example/Archive")) ==
          at + "IMAP delivery needs user and a password source: use the table form deliver = { url = ..., user = ..., "
               "password_command = ... }");
    CHECK(config_error(with("pop3s://new.example")) ==
          at + "cannot deliver to a POP3 server: a delivery URL must be imap:// or imaps://");
    CHECK(config_error(with("maildir:~/x"), ConfigEnv{}) == at + "cannot expand '~': HOME is not set");
}

TEST_CASE("config: deliver tables") {
    const std::string head = "[accounts.home]\nurl = \"pop3s://h\"\nuser = \"u\"\npassword = \"p\"\n";
    CHECK(config_error(head + "deliver = { url = \"imaps://n\", password = \"x\" }\n") ==
          "config.toml:5:11: accounts.home.deliver: missing required key 'user'");
    CHECK(config_error(head + "deliver = { url = \"imaps://n\", user = \"x\" }\n") ==
          "config.toml:5:11: accounts.home.deliver: no password source: set one of password, password_command, "
          "password_file or oauth2_token_command");
    CHECK(config_error(head + "deliver = { url = \"pop3s://n\", user = \"x\", password = \"y\" }\n") ==
          "config.toml:5:19: accounts.home.deliver.url: cannot deliver to a POP3 server: a delivery URL must be imap:// "
          "or imaps://");
    CHECK(config_error(head + "deliver = { url = \"imaps://n/a//b\", user = \"x\", password = \"y\" }\n") ==
          "config.toml:5:19: accounts.home.deliver.url: empty folder name in the URL path 'a//b'");
    CHECK(config_error(head + "deliver = { url = \"imaps://n/a%2\", user = \"x\", password = \"y\" }\n") ==
          "config.toml:5:19: accounts.home.deliver.url: incomplete %-escape in URL path");
    CHECK(config_error(head + "deliver = { url = \"imaps://n/%ff\", user = \"x\", password = \"y\" }\n") ==
          "config.toml:5:19: accounts.home.deliver.url: folder name is not valid UTF-8");
    CHECK(config_error(head + "deliver = { url = \"imaps://n\", tls = \"starttls\", user = \"x\", password = \"y\" }\n") ==
          "config.toml:5:38: accounts.home.deliver.tls: tls = \"starttls\" contradicts imaps://, which is TLS from the "
          "first byte; use imap:// for STARTTLS");
    Config c = parse_config(head + "deliver = { url = \"imap://n:1143\", tls = \"off\", user = \"x\", password = \"y\" }\n",
                            "c", test_env());
    const DeliveryTarget& t = c.accounts[0].deliver;
    CHECK(t.path == "INBOX");
    REQUIRE(t.imap.has_value());
    CHECK(t.imap->tls == TlsMode::Off);
    CHECK(t.imap->display() == "imap://n:1143");
}

TEST_CASE("config: TOML syntax errors keep the same format") {
    CHECK(config_error("a = 1\nb = = 2\n") == "config.toml:2:5: Error while parsing value: could not determine value type");
    std::string dup = config_error(kHead + "keep = true\nkeep = false\n");
    CHECK_PREFIX(dup, "config.toml:7:");
    CHECK_CONTAINS(dup, "keep");
}

TEST_CASE("config: load_config reads a file and names it in errors") {
    std::string path = "/tmp/pullmail_test_config_" + std::to_string(::getpid()) + ".toml";
    {
        std::ofstream out(path);
        out << kHead << "kep = 1\n";
    }
    try {
        load_config(path, test_env());
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Config);
        CHECK(std::string(e.what()) == path + ":6:1: accounts.home: unknown key 'kep' (did you mean 'keep'?)");
    }
    {
        std::ofstream out(path);
        out << kHead;
    }
    Config c = load_config(path, test_env());
    CHECK(c.path == path);
    CHECK(c.accounts.at(0).source == path + ":1");
    std::remove(path.c_str());

    try {
        load_config(path, test_env());
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Config);
        CHECK(std::string(e.what()) == path + ": cannot read the config file: No such file or directory");
    }
}

TEST_CASE("config: parse_endpoint_url and parse_delivery directly") {
    Endpoint e = parse_endpoint_url("IMAP://Mail.Example:10143", "starttls", "x");
    CHECK(e.protocol == Protocol::Imap);
    CHECK(e.tls == TlsMode::StartTls);
    CHECK(e.host == "Mail.Example");
    CHECK(e.port == 10143);
    CHECK(e.display() == "imap://Mail.Example:10143");
    CHECK(parse_endpoint_url("pop3://h", "", "x").port == 110);
    CHECK(parse_endpoint_url("pop3://h", "", "x").tls == TlsMode::StartTls);
    CHECK_THROWS_WITH_AS(parse_endpoint_url("imaps://h", "off", "c.toml:1:1: k"),
                         "c.toml:1:1: k: tls = \"off\" contradicts imaps://; use imap:// for an unencrypted connection",
                         Error);

    DeliveryTarget t = parse_delivery("imaps://h/Lists%2Fcpp/sub", "x", test_env());
    CHECK(t.kind == DeliveryTarget::Kind::Imap);
    CHECK(t.path == "Lists/cpp/sub");
    REQUIRE(t.imap.has_value());
    CHECK(t.imap->user.empty());
    CHECK(t.imap->password.kind == PasswordSource::Kind::None);
    CHECK(parse_delivery("MAILDIR:./m", "x", test_env()).path == cwd() + "/./m");
    CHECK(parse_delivery("mbox:~", "x", test_env()).path == "/home/u");
}

TEST_CASE("config: one-off accounts") {
    ConfigEnv env = test_env();
    env.vars["PULLMAIL_PASSWORD"] = "s3cret";
    env.vars["PULLMAIL_DELIVER_PASSWORD"] = "t0p";

    OneOffOptions o;
    o.url = "imaps://imap.example.com";
    o.user = "me";
    o.deliver = "maildir:~/Mail/cli";
    o.folders = {"INBOX", "Sent"};
    o.keep = false;
    o.auth = "xoauth2";
    o.ca_file = "~/ca.pem";
    Account a = make_oneoff_account(o, env);
    CHECK(a.name == "me@imap.example.com:993");  // one state file per mailbox
    CHECK(a.server.display() == "imaps://imap.example.com:993");
    CHECK(a.server.user == "me");
    CHECK(a.server.password.kind == PasswordSource::Kind::Env);
    CHECK(a.server.password.value == "PULLMAIL_PASSWORD");  // the variable, never the secret
    CHECK(a.server.auth == "XOAUTH2");
    CHECK(a.server.ca_file == "/home/u/ca.pem");
    CHECK(a.folders == std::vector<std::string>{"INBOX", "Sent"});
    CHECK(a.keep == false);
    CHECK(a.deliver.kind == DeliveryTarget::Kind::Maildir);
    CHECK(a.deliver.path == "/home/u/Mail/cli");

    o.password_command = "pass x";
    o.folders.clear();
    o.tls = "";
    o.url = "pop3://p.example:1110";
    o.tls = "starttls";
    o.deliver = "imaps://new.example/Archive";
    o.deliver_user = "me@new";
    o.deliver_ca_file = "~/new-ca.pem";
    a = make_oneoff_account(o, env);
    CHECK(a.server.password.kind == PasswordSource::Kind::Command);
    CHECK(a.server.password.value == "pass x");
    CHECK(a.server.tls == TlsMode::StartTls);
    CHECK(a.folders == std::vector<std::string>{"INBOX"});
    REQUIRE(a.deliver.imap.has_value());
    CHECK(a.deliver.path == "Archive");
    CHECK(a.deliver.imap->user == "me@new");
    CHECK(a.deliver.imap->password.kind == PasswordSource::Kind::Env);
    CHECK(a.deliver.imap->password.value == "PULLMAIL_DELIVER_PASSWORD");
    CHECK(a.deliver.imap->ca_file == "/home/u/new-ca.pem");

    o.deliver_password_command = "pass new";
    a = make_oneoff_account(o, env);
    CHECK(a.deliver.imap->password.kind == PasswordSource::Kind::Command);
    CHECK(a.deliver.imap->password.value == "pass new");
}

TEST_CASE("config: one-off account errors name the option") {
    ConfigEnv env = test_env();
    env.vars["PULLMAIL_PASSWORD"] = "s3cret";
    OneOffOptions base;
    base.url = "pop3s://h";
    base.user = "me";
    base.deliver = "mbox:/x";

    OneOffOptions o = base;
    o.url.clear();
    CHECK(oneoff_error(o, env) == "--url is required for a one-off account");
    o = base;
    o.user.clear();
    CHECK(oneoff_error(o, env) == "--user is required with --url");
    o = base;
    o.deliver.clear();
    CHECK(oneoff_error(o, env) == "--deliver is required with --url");
    CHECK(oneoff_error(base, test_env()) == "--password-command or the environment variable PULLMAIL_PASSWORD is required");
    o = base;
    o.url = "pops://h";
    CHECK(oneoff_error(o, env) == "--url: unknown URL scheme 'pops': use pop3, pop3s, imap or imaps");
    o = base;
    o.tls = "starttls";
    CHECK_PREFIX(oneoff_error(o, env), "--tls: tls = \"starttls\" contradicts pop3s://");
    o.tls = "maybe";
    CHECK_PREFIX(oneoff_error(o, env), "--tls: unknown tls mode \"maybe\"");
    o = base;
    o.folders = {"INBOX"};
    CHECK(oneoff_error(o, env) == "--folder: folders are for IMAP accounts");
    o.url = "imaps://h";
    o.folders = {"a", "a"};
    CHECK(oneoff_error(o, env) == "--folder: folder \"a\" is given twice");
    o = base;
    o.deliver = "procmail";
    CHECK_PREFIX(oneoff_error(o, env), "--deliver: unknown delivery \"procmail\"");
    o = base;
    o.deliver = "imaps://n/x";
    CHECK(oneoff_error(o, env) == "--deliver-user is required with an IMAP --deliver");
    o.deliver_user = "me";
    CHECK(oneoff_error(o, env) ==
          "--deliver-password-command or the environment variable PULLMAIL_DELIVER_PASSWORD is required");
    o = base;
    o.deliver_user = "me";
    CHECK(oneoff_error(o, env) == "--deliver-user: is only for an IMAP --deliver target");
    o = base;
    o.url = "pop3s://u:p@h";
    CHECK_PREFIX(oneoff_error(o, env), "--url: credentials in the URL are not allowed");
}

TEST_CASE("config: expand_home") {
    ConfigEnv env = test_env();
    CHECK(expand_home("~/x/y", env) == "/home/u/x/y");
    CHECK(expand_home("~", env) == "/home/u");
    CHECK(expand_home("~other/x", env) == "~other/x");
    CHECK(expand_home("/abs/~/x", env) == "/abs/~/x");
    CHECK(expand_home("rel", env) == "rel");
    env.vars["HOME"] = "/home/u/";
    CHECK(expand_home("~/x", env) == "/home/u/x");
    CHECK(expand_home("~/x", ConfigEnv{}) == "~/x");
}

TEST_CASE("config: XDG defaults") {
    ConfigEnv env;
    env.vars["HOME"] = "/home/u";
    CHECK(default_config_path(env) == "/home/u/.config/pullmail/config.toml");
    CHECK(default_state_dir(env) == "/home/u/.local/state/pullmail");
    env.vars["XDG_CONFIG_HOME"] = "/cfg";
    env.vars["XDG_STATE_HOME"] = "/state";
    CHECK(default_config_path(env) == "/cfg/pullmail/config.toml");
    CHECK(default_state_dir(env) == "/state/pullmail");
    // The XDG spec says to ignore relative and empty values.
    env.vars["XDG_CONFIG_HOME"] = "cfg";
    env.vars["XDG_STATE_HOME"] = "";
    CHECK(default_config_path(env) == "/home/u/.config/pullmail/config.toml");
    CHECK(default_state_dir(env) == "/home/u/.local/state/pullmail");
    CHECK(env.get("UNSET").empty());
    CHECK_FALSE(ConfigEnv::from_process().get("HOME").empty());
}

TEST_CASE("config: min_rate, min_rate_window and run_timeout") {
    Config c = parse_config(kHead + "min_rate = 0\nmin_rate_window = 300\nrun_timeout = 3600\n", "config.toml",
                            test_env());
    REQUIRE(c.accounts.size() == 1);
    CHECK(c.accounts[0].min_rate == 0);
    CHECK(c.accounts[0].min_rate_window == 300);
    CHECK(c.accounts[0].run_timeout == 3600);
    // Defaults that a slow but working link never trips.
    Config d = parse_config(kHead, "config.toml", test_env());
    CHECK(d.accounts[0].min_rate == 8);
    CHECK(d.accounts[0].min_rate_window == 60);
    CHECK(d.accounts[0].run_timeout == 0);
    // Inherited from [defaults].
    Config e = parse_config("[defaults]\nmin_rate = 1000\n" + kHead, "config.toml", test_env());
    CHECK(e.accounts[0].min_rate == 1000);
    CHECK(config_error(kHead + "min_rate = -1\n") ==
          "config.toml:6:12: accounts.home.min_rate: must be from 0 to 1073741824, not -1");
    CHECK(config_error(kHead + "min_rate_window = 0\n") ==
          "config.toml:6:19: accounts.home.min_rate_window: must be from 1 to 86400, not 0");
    CHECK(config_error(kHead + "run_timeout = 604801\n") ==
          "config.toml:6:15: accounts.home.run_timeout: must be from 0 to 604800, not 604801");
    CHECK(config_error(kHead + "min_rate = \"fast\"\n") ==
          "config.toml:6:12: accounts.home.min_rate: expected an integer, not a string");
}

TEST_CASE("config: max_size may not overflow (n times the unit is bounded)") {
    auto load = [](const std::string& size) {
        return parse_config("[accounts.a]\nurl = \"pop3s://h\"\nuser = \"u\"\npassword = \"p\"\ndeliver = \"mbox:/m\"\n"
                            "max_size = \"" + size + "\"\n", "config.toml", ConfigEnv{});
    };
    CHECK(load("1024G").accounts.at(0).max_size == (1ULL << 40));
    CHECK(load("10M").accounts.at(0).max_size == 10ULL << 20);
    // 17179869185 * 2^30 wraps to 2^30 in 64 bits.
    for (std::string bad : {"17179869185G", "1025G", "99999999999G", "1099511627777"})
        CHECK_THROWS_WITH_AS(load(bad), doctest::Contains("must be a size"), Error);
}
