// Configuration of logins (issue 12): auth methods, oauth2_token_command, proxy.
#include <doctest/doctest.h>

#include "config.h"
#include "config_support.h"
#include "error.h"

using namespace pullmail;

namespace {

std::string error_of(const std::string& text) { return test::config_error_if_any(text); }

const std::string kHead = "[accounts.a]\nurl = \"imaps://h\"\nuser = \"u\"\ndeliver = \"mbox:/x\"\n";

}  // namespace

TEST_CASE("config: oauth2_token_command is a password source that yields a token") {
    Config c = parse_config(kHead + "oauth2_token_command = \"oama access u\"\nauth = \"OAuthBearer\"\n", "config.toml",
                            ConfigEnv{});
    const Endpoint& ep = c.accounts.at(0).server;
    CHECK(ep.oauth2);
    CHECK(ep.password.kind == PasswordSource::Kind::Command);
    CHECK(ep.password.value == "oama access u");
    CHECK(ep.auth == "OAUTHBEARER");
    CHECK(error_of(kHead + "password = \"p\"\noauth2_token_command = \"x\"\n").find("use exactly one password source") !=
          std::string::npos);
    Config d = parse_config(kHead + "password = \"p\"\nauth = \"auto\"\n", "config.toml", ConfigEnv{});
    CHECK_FALSE(d.accounts.at(0).server.oauth2);
    CHECK(d.accounts.at(0).server.auth.empty());
}

TEST_CASE("config: proxy URLs") {
    Config c = parse_config(kHead + "password = \"p\"\nproxy = \"socks5h://127.0.0.1:1080\"\n", "config.toml",
                            ConfigEnv{});
    CHECK(c.accounts.at(0).server.proxy == "socks5h://127.0.0.1:1080");
    CHECK(error_of(kHead + "password = \"p\"\nproxy = \"ftp://x\"\n") ==
          "config.toml:6:9: accounts.a.proxy: \"ftp://x\" is not a proxy URL: use \"socks5h://HOST:PORT\" or "
          "\"http://HOST:PORT\"");
    CHECK(error_of(kHead + "password = \"p\"\nproxy = \"http://\"\n") != "");
}
