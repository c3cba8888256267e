// config_support.h — the config fixtures shared by the unit tests that parse
// configuration text.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "config.h"
#include "error.h"

namespace pullmail::test {

// The environment config tests parse in: a home directory and an XDG state
// directory, so expanded paths are predictable.
inline ConfigEnv config_env() {
    ConfigEnv env;
    env.vars["HOME"] = "/home/u";
    env.vars["XDG_STATE_HOME"] = "/xdg/state";
    return env;
}

// The message of the Config error that parsing text raises, "" when it
// parses; an error of another kind fails the test.
inline std::string config_error_if_any(const std::string& text, const ConfigEnv& env = config_env()) {
    try {
        parse_config(text, "config.toml", env);
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Config);
        return e.what();
    }
    return "";
}

// The same, and the test fails when text parses.
inline std::string config_error(const std::string& text, const ConfigEnv& env = config_env()) {
    std::string e = config_error_if_any(text, env);
    if (e.empty()) FAIL("no error for:\n" << text);
    return e;
}

// The one account that text configures.
inline Account parse_one_account(const std::string& text, const ConfigEnv& env = config_env()) {
    Config c = parse_config(text, "config.toml", env);
    REQUIRE(c.accounts.size() == 1);
    return c.accounts[0];
}

}  // namespace pullmail::test
