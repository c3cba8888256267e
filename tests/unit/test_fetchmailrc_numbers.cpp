// What fuzz_fetchmailrc (tests/fuzz/) found: a number written with leading
// zeros in a fetchmailrc ("timeout 03", fetchmail reads it as 3) was copied
// into the TOML as it was, and TOML forbids leading zeros in integers, so
// the imported file did not load.
#include <doctest/doctest.h>

#include <string>

#include "config.h"
#include "fetchmailrc.h"
#include "fetchmailrc_toml.h"

using namespace pullmail;

TEST_CASE("fetchmailrc import: numbers with leading zeros are written as TOML integers") {
    std::string toml = fetchmailrc_to_toml(
        parse_fetchmailrc("set daemon 0300\npoll h.example user u pass p timeout 030 fetchlimit 007\n", "rc"), "rc", "me");
    INFO(toml);
    ConfigEnv env;
    env.vars["HOME"] = "/home/me";
    Config c = parse_config(toml, "imported.toml", env);
    REQUIRE(c.accounts.size() == 1);
    CHECK(toml.find("poll_interval = 300 ") != std::string::npos);
    CHECK(toml.find("timeout = 30\n") != std::string::npos);
    CHECK(toml.find("max_messages = 7\n") != std::string::npos);
}

TEST_CASE("fetchmailrc import: a timeout or fetchlimit of zeros is what fetchmail means by 0") {
    std::string toml = fetchmailrc_to_toml(
        parse_fetchmailrc("poll h.example user u pass p timeout 00 fetchlimit 000\n", "rc"), "rc", "me");
    INFO(toml);
    ConfigEnv env;
    env.vars["HOME"] = "/home/me";
    CHECK(parse_config(toml, "imported.toml", env).accounts.size() == 1);
    CHECK(toml.find("max_messages") == std::string::npos);  // fetchlimit 0: no limit
    CHECK(toml.find("timeout = ") == std::string::npos);
}
