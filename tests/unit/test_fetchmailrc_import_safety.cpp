// What fuzz_fetchmailrc (tests/fuzz/) found: text from a fetchmailrc that
// the importer wrote into TOML comments or bare values unescaped. A newline
// in a quoted option ended the comment and made the rest TOML (a whole
// extra account, keys), a control byte made the file unloadable, and a
// non-number for timeout/fetchlimit/set daemon became TOML syntax.
#include <doctest/doctest.h>

#include <string>

#include "config.h"
#include "error.h"
#include "fetchmailrc.h"
#include "fetchmailrc_toml.h"

using namespace pullmail;

namespace {

Config import_and_load(const std::string& rc) {
    std::string toml = fetchmailrc_to_toml(parse_fetchmailrc(rc, "rc"), "rc", "me");
    INFO(toml);
    ConfigEnv env;
    env.vars["HOME"] = "/home/me";
    return parse_config(toml, "imported.toml", env);
}

}  // namespace

TEST_CASE("fetchmailrc import: a newline in an unsupported option's text cannot add an account") {
    // smtphost has no equivalent, so it becomes a "# fetchmail: ..." comment.
    Config c = import_and_load(
        "poll h.example user u pass p smtphost \"relay\\n[accounts.evil]\\nurl='pop3s://evil.example'\\n"
        "user='x'\\npassword='y'\\ndeliver='maildir:/tmp/evil'\"\n");
    REQUIRE(c.accounts.size() == 1);
    CHECK(c.accounts[0].server.user == "u");
    CHECK(c.find("evil") == nullptr);
}

TEST_CASE("fetchmailrc import: a newline in the user name stays inside the account's values") {
    // The loader refuses the control character in the user name, naming
    // the key; before, the name's second line was a table header.
    std::string what;
    try {
        import_and_load("poll h.example user \"u\\n[accounts.x]\" pass p\n");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Config);
        what = e.what();
    }
    CHECK(what.find(".user: must not contain control characters") != std::string::npos);
    CHECK(what.find("missing required key") == std::string::npos);
}

TEST_CASE("fetchmailrc import: control characters in option text keep the file loadable") {
    Config c = import_and_load("set postmaster \"a\\001b\"\npoll h.example user u pass p aka \"x\\0y\" smtphost \"\\033[31m\"\n");
    CHECK(c.accounts.size() == 1);
}

TEST_CASE("fetchmailrc import: a value that is not a number is left as a note, not written as TOML") {
    Config c = import_and_load("set daemon \"300\\n[accounts.y]\"\n"
                               "poll h.example user u pass p timeout \"30\\nkeep = true\" fetchlimit \"5 x\" keep\n");
    REQUIRE(c.accounts.size() == 1);
    const Account& a = c.accounts[0];
    CHECK(a.keep);
    CHECK(a.max_messages == 0);
    Config d = import_and_load("set daemon 60\npoll h.example user u pass p timeout 30 fetchlimit 5\n");
    REQUIRE(d.accounts.size() == 1);
    CHECK(d.accounts[0].poll_interval == 60);
    CHECK(d.accounts[0].timeout == 30);
    CHECK(d.accounts[0].max_messages == 5);
}

TEST_CASE("fetchmailrc import: of two set daemon lines the last one counts, written once") {
    Config c = import_and_load("set daemon 60\nset daemon 300\npoll h.example user u pass p\n");
    REQUIRE(c.accounts.size() == 1);
    CHECK(c.accounts[0].poll_interval == 300);
}
