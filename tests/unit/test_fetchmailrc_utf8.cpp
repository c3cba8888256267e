// What fuzz_fetchmailrc (tests/fuzz/) found: an escape in a quoted
// fetchmailrc value (\301, \xC1) makes bytes that are not UTF-8, and the
// importer wrote them into a TOML string, so the file it printed did not
// load ("invalid utf-8 sequence"). TOML cannot hold such bytes: a value
// that would reach a TOML string is refused, naming the file, line and
// option; text that only reaches a "# fetchmail:" note is escaped there.
#include <doctest/doctest.h>

#include <string>

#include "config.h"
#include "error.h"
#include "fetchmailrc.h"
#include "fetchmailrc_toml.h"

using namespace pullmail;

namespace {

std::string import(const std::string& rc) { return fetchmailrc_to_toml(parse_fetchmailrc(rc, "rc"), "rc", "me"); }

Config load(const std::string& toml) {
    INFO(toml);
    ConfigEnv env;
    env.vars["HOME"] = "/home/me";
    return parse_config(toml, "imported.toml", env);
}

// The import's error for rc; "" when it did not throw.
std::string import_error(const std::string& rc) {
    try {
        std::string toml = import(rc);
        INFO(toml);
        return "";
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Config);
        return e.what();
    }
}

}  // namespace

TEST_CASE("fetchmailrc import: a user name escaped to bytes that are not UTF-8 is refused, naming line and option") {
    std::string what = import_error("# latin-1 login\npoll h.example user \"a\\301b\" pass p\n");
    INFO(what);
    CHECK(what.starts_with("rc:2: "));
    CHECK(what.find("user") != std::string::npos);
    CHECK(what.find("UTF-8") != std::string::npos);
    CHECK(what.find("a\\xc1b") != std::string::npos);  // shown escaped, so the user finds it
    CHECK(what.find('\xc1') == std::string::npos);
}

TEST_CASE("fetchmailrc import: a password that is not UTF-8 is refused without showing it") {
    std::string what = import_error("poll h.example\n  user u\n  pass \"s3cr\\xC1t\"\n");
    INFO(what);
    CHECK(what.starts_with("rc:3: "));
    CHECK(what.find("pass") != std::string::npos);
    CHECK(what.find("UTF-8") != std::string::npos);
    CHECK(what.find("s3cr") == std::string::npos);
}

TEST_CASE("fetchmailrc import: host, folder and mda values that are not UTF-8 are refused") {
    CHECK(import_error("poll \"h\\377.example\" user u pass p\n").find("UTF-8") != std::string::npos);
    CHECK(import_error("poll h.example proto imap user u pass p folder \"Lists/\\301\"\n").find("folder") !=
          std::string::npos);
    CHECK(import_error("poll h.example user u pass p mda \"procmail -d \\xff\"\n").find("mda") != std::string::npos);
    // Raw bytes in the file, not only escapes.
    CHECK(import_error("poll h.example user \"\xe9t\xe9\" pass p\n").find("UTF-8") != std::string::npos);
}

TEST_CASE("fetchmailrc import: escapes that spell UTF-8 are carried over and load") {
    Config c = load(import("poll h.example user \"m\\303\\274ller\" pass \"p\\xc3\\xa4ss\"\n"));
    REQUIRE(c.accounts.size() == 1);
    CHECK(c.accounts[0].server.user == "m\xc3\xbcller");
}

TEST_CASE("fetchmailrc import: bytes that are not UTF-8 in an option left as a note keep the file loadable") {
    // smtphost and aka have no pullmail key: their text is only a comment.
    std::string toml = import("poll h.example user u pass p smtphost \"relay\\301\" aka \"\\377\"\n");
    CHECK(load(toml).accounts.size() == 1);
    CHECK(toml.find("relay\\xc1") != std::string::npos);
}
