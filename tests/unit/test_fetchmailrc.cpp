// Unit tests for the fetchmailrc reader and the TOML it becomes: realistic
// rc files (several users per poll entry, quoted strings with escapes,
// here/there noise words, defaults entries, comments), and the output read
// back by pullmail's own configuration parser.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "config.h"
#include "config_support.h"
#include "error.h"
#include "fetchmailrc.h"
#include "fetchmailrc_toml.h"

using namespace pullmail;

namespace {

ConfigEnv test_env() { return test::config_env(); }

// The import of `rc`, loaded back by the config parser.
Config round_trip(const std::string& rc, std::string* toml = nullptr) {
    std::string out = fetchmailrc_to_toml(parse_fetchmailrc(rc, "rc"), "rc", "me");
    if (toml) *toml = out;
    INFO(out);
    return parse_config(out, "imported.toml", test_env());
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

const char* kTwoUsers = R"(# A household: two people on one POP3 server, and an IMAP account.
set postmaster "me"
set logfile "/var/log/fetchmail.log"

defaults
    proto pop3
    keep

poll pop.example.org with proto pop3 port 995 and options ssl sslcertck:
    user "alice" there with password "s3cr\"et\\x" is alice here,
    user 'bob' there has pass "tab\there" is "robert" here nokeep fetchall;

poll imap.example.com protocol IMAP
    user "carol@example.com" is carol here
    password "p w"
    ssl sslcertfile "/etc/ssl/example-ca.pem"
    folder INBOX, "Lists/cpp"
    mda "/usr/bin/procmail -d %T"
    timeout 90
    smtphost mail.local   # ignored by pullmail
)";

}  // namespace

TEST_CASE("fetchmailrc: tokens, quoted strings with escapes, comments and punctuation") {
    auto t = tokenize_fetchmailrc("poll a.example # comment \"x\n user \"q\\\"t\\x41\\101\\n\", pass 'it''s'; x", "rc");
    REQUIRE(t.size() == 8);
    CHECK(t[0].text == "poll");
    CHECK(t[3].text == "q\"tAA\n");
    CHECK(t[3].quoted);
    CHECK(t[3].line == 2);
    CHECK(t[5].text == "it");
    CHECK(t[6].text == "s");
    CHECK(t[7].text == "x");
    CHECK_THROWS_WITH_AS(tokenize_fetchmailrc("poll x\n user \"open", "rc"), "rc:2: unterminated quoted string", Error);
}

TEST_CASE("fetchmailrc: entries, users, here/there, defaults, globals") {
    Fetchmailrc rc = parse_fetchmailrc(kTwoUsers, "rc");
    REQUIRE(rc.globals.size() == 2);
    CHECK(rc.globals[0].name == "postmaster");
    REQUIRE(rc.entries.size() == 3);
    CHECK(rc.entries[0].kind == RcEntry::Kind::Defaults);
    const RcEntry& pop = rc.entries[1];
    CHECK(pop.host == "pop.example.org");
    REQUIRE(pop.users.size() == 2);
    CHECK(pop.users[0].remote == "alice");
    CHECK(pop.users[0].local == std::vector<std::string>{"alice"});
    REQUIRE(pop.users[0].options.size() == 1);
    CHECK(pop.users[0].options[0].args[0] == "s3cr\"et\\x");
    CHECK(pop.users[1].remote == "bob");
    CHECK(pop.users[1].local == std::vector<std::string>{"robert"});
    CHECK(pop.users[1].options[0].args[0] == "tab\there");
    CHECK(pop.users[1].options[1].name == "nokeep");
    const RcEntry& imap = rc.entries[2];
    REQUIRE(imap.users.size() == 1);
    auto folder = std::find_if(imap.users[0].options.begin(), imap.users[0].options.end(),
                               [](const RcOption& o) { return o.name == "folder"; });
    REQUIRE(folder != imap.users[0].options.end());
    CHECK(folder->args == std::vector<std::string>{"INBOX", "Lists/cpp"});
    // "user X here is Y there": local X, server login Y
    Fetchmailrc rev = parse_fetchmailrc("poll h user pat here is patrick there pass x", "rc");
    CHECK(rev.entries[0].users[0].remote == "patrick");
    CHECK(rev.entries[0].users[0].local == std::vector<std::string>{"pat"});
    CHECK_THROWS_WITH_AS(parse_fetchmailrc("keep\npoll h", "rc"), "rc:1: expected poll, skip, defaults or set, not 'keep'", Error);
    CHECK_THROWS_WITH_AS(parse_fetchmailrc("poll h user", "rc"), "rc:1: user needs a name", Error);
    CHECK_THROWS_WITH_AS(parse_fetchmailrc("poll h port\n", "rc"), "rc:1: port needs a value", Error);
}

TEST_CASE("fetchmailrc import: two users per poll entry, defaults, quoted passwords, IMAP with mda") {
    std::string toml;
    Config c = round_trip(kTwoUsers, &toml);
    REQUIRE(c.accounts.size() == 3);
    const Account& alice = c.accounts[0];
    CHECK(alice.name == "pop.example.org-alice");
    CHECK(alice.server.protocol == Protocol::Pop3);
    CHECK(alice.server.tls == TlsMode::Implicit);
    CHECK(alice.server.port == 995);
    CHECK(alice.server.user == "alice");
    CHECK(alice.server.password.kind == PasswordSource::Kind::Literal);
    CHECK(alice.server.password.value == "s3cr\"et\\x");
    CHECK(alice.keep);  // from defaults
    CHECK(alice.deliver.kind == DeliveryTarget::Kind::Mda);
    CHECK(alice.deliver.command == "/usr/sbin/sendmail -i -- alice");
    const Account& bob = c.accounts[1];
    CHECK(bob.server.user == "bob");
    CHECK(bob.server.password.value == "tab\there");
    CHECK_FALSE(bob.keep);  // nokeep wins over the defaults' keep
    CHECK(bob.deliver.command == "/usr/sbin/sendmail -i -- robert");
    const Account& carol = c.accounts[2];
    CHECK(carol.server.protocol == Protocol::Imap);
    CHECK(carol.server.tls == TlsMode::Implicit);
    CHECK(carol.server.user == "carol@example.com");
    CHECK(carol.server.password.value == "p w");
    CHECK(carol.server.ca_file == "/etc/ssl/example-ca.pem");
    CHECK(carol.folders == std::vector<std::string>{"INBOX", "Lists/cpp"});
    CHECK(carol.deliver.command == "/usr/bin/procmail -d carol");
    CHECK(carol.timeout == 90);
    CHECK(carol.keep);  // the defaults entry applies to every entry after it
    // Every option without an equivalent is a comment, where it was.
    CHECK(contains(toml, "# fetchmail: fetchall -- "));
    CHECK(contains(toml, "# fetchmail: smtphost mail.local -- to forward by SMTP set deliver"));
    CHECK(contains(toml, "# fetchmail: set postmaster me -- "));
    CHECK(contains(toml, "# fetchmail: set logfile /var/log/fetchmail.log -- "));
    CHECK(contains(toml, "# fetchmail: defaults (rc:5) -- folded into the accounts below"));
    CHECK_FALSE(contains(toml, "sslcertck --"));  // has an equivalent: always on
}

TEST_CASE("fetchmailrc import: skip, STARTTLS and no TLS, via, auth, user without a password, unknown options") {
    const char* rc = R"(
skip old.example.net proto imap user "x" pass "y" and wants keep
poll mail.example.net via 192.0.2.7 proto pop3 auth cram-md5 uidl
  user joe pass "j" no keep sslproto TLS1.2 bogusopt 12 mimedecode
poll plain.example.net proto pop3 sslproto ''
  user "kim" no sslcertck
poll home.example.net proto pop3
)";
    std::string toml;
    Config c = round_trip(rc, &toml);
    REQUIRE(c.accounts.size() == 4);
    CHECK_FALSE(c.accounts[0].enabled);
    CHECK(c.accounts[0].keep);
    CHECK(c.accounts[0].server.tls == TlsMode::StartTls);
    CHECK(c.accounts[1].server.host == "192.0.2.7");
    CHECK(c.accounts[1].server.auth == "CRAM-MD5");
    CHECK(c.accounts[1].server.tls == TlsMode::StartTls);
    CHECK_FALSE(c.accounts[1].keep);
    CHECK(c.accounts[2].server.tls == TlsMode::Off);
    CHECK(c.accounts[2].server.password.kind == PasswordSource::Kind::Command);
    CHECK(c.accounts[3].server.user == "me");  // no user: fetchmail's default, the local login
    CHECK(contains(toml, "# fetchmail: sslproto TLS1.2 -- pullmail uses OpenSSL's default TLS versions"));
    CHECK(contains(toml, "# fetchmail: bogusopt 12 -- unknown option, not carried over"));
    CHECK(contains(toml, "# fetchmail: mimedecode -- "));
    CHECK(contains(toml, "# fetchmail: uidl -- "));
    CHECK(contains(toml, "# fetchmail: no sslcertck -- pullmail always verifies certificates"));
    CHECK(contains(toml, "# fetchmail: no password in the file"));
    CHECK(contains(toml, "via 192.0.2.7 (poll name mail.example.net)"));
}

TEST_CASE("fetchmailrc import: limit, fetchlimit, idle and set daemon under their pullmail names") {
    const char* rc = "set daemon 300\npoll imap.example.org proto imap user u pass p ssl idle limit 2000000 fetchlimit 50\n";
    std::string toml = fetchmailrc_to_toml(parse_fetchmailrc(rc, "rc"), "rc", "me");
    CHECK(contains(toml, "[defaults]\npoll_interval = 300"));
    CHECK(contains(toml, "\nmax_size = \"2000000\""));
    CHECK(contains(toml, "\nmax_messages = 50\n"));
    CHECK(contains(toml, "\nidle = true\n"));
    // The whole output loads, with those keys meaning what fetchmail meant.
    Config c = parse_config(toml, "imported.toml", test_env());
    REQUIRE(c.accounts.size() == 1);
    const Account& a = c.accounts[0];
    CHECK(a.server.protocol == Protocol::Imap);
    CHECK(a.poll_interval == 300);
    CHECK(a.max_size == 2000000);
    CHECK(a.max_messages == 50);
    CHECK(a.idle);
}

TEST_CASE("fetchmailrc import: account names are unique and valid") {
    Config c = round_trip("poll h.example user \"a b@x\" pass 1 user \"a b@x\" pass 2\n");
    REQUIRE(c.accounts.size() == 2);
    CHECK(c.accounts[0].name == "h.example-a_b_x");
    CHECK(c.accounts[1].name == "h.example-a_b_x-2");
    CHECK(c.accounts[1].server.user == "a b@x");
}

TEST_CASE("toml_quote escapes quotes, backslashes and control characters") {
    CHECK(toml_quote("a\"b\\c\n\x01") == "\"a\\\"b\\\\c\\n\\u0001\"");
}

TEST_CASE("fetchmailrc: a misplaced quoted string is not echoed (it may be a password)") {
    try {
        parse_fetchmailrc("poll h user u password \"s3cr3t-pw\" \"0ther-s3cret\"\n", "rc");
        FAIL("parsed");
    } catch (const Error& e) {
        std::string msg = e.what();
        CHECK(msg.find("0ther-s3cret") == std::string::npos);
        CHECK(msg.find("s3cr3t-pw") == std::string::npos);
        CHECK(msg.find("rc:1: expected an option, not a quoted string") != std::string::npos);
    }
}

TEST_CASE("fetchmailrc import: only auth values the loader accepts; timeout validated; comments stay comments") {
    for (std::string m : {"ntlm", "gssapi", "external", "xoauth2", "oauthbearer", "kerberos_v5"}) {
        std::string toml;
        Config c = round_trip("poll h proto imap auth " + m + " user u pass p\n", &toml);
        CHECK_MESSAGE(c.accounts.at(0).server.auth.empty(), toml);
        CHECK_MESSAGE(!contains(toml, "libcurl picks"), toml);
    }
    std::string toml;
    round_trip("poll h proto pop3 auth cram-md5 user u pass p\n", &toml);
    CHECK(contains(toml, "auth = \"CRAM-MD5\""));
    Config c = round_trip("poll h proto imap timeout \"9\nkeep = false\" user u pass p\n", &toml);
    CHECK_MESSAGE(!contains(toml, "\ntimeout = "), toml);
    CHECK(c.accounts.at(0).timeout == 60);
    c = round_trip("poll h proto imap timeout 45 user u pass p\n", &toml);
    CHECK(c.accounts.at(0).timeout == 45);
    // A line break in a commented-out value does not escape the comment.
    c = round_trip("poll h proto imap user u pass p sslproto \"x\n[accounts.evil]\"\n", &toml);
    CHECK_MESSAGE(c.accounts.size() == 1, toml);
}

TEST_CASE("fetchmailrc import: no outdated advice about SMTP and LMTP") {
    std::string toml;
    round_trip("poll h proto imap user u pass p smtphost mx smtpaddress me@x lmtp antispam 571\n", &toml);
    CHECK_MESSAGE(!contains(toml, "does not forward by SMTP"), toml);
    CHECK_MESSAGE(!contains(toml, "MDA that speaks LMTP"), toml);
    CHECK(contains(toml, "smtp://HOST"));
}
