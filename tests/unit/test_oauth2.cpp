// The built-in OAuth2 client (issue 12): the oauth2 table of the
// configuration, and the small codecs of oauth2.h (form escaping, base64url
// for PKCE, query values of a redirect).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <thread>

#include "config.h"
#include "config_support.h"
#include "error.h"
#include "oauth2.h"
#include "oauth2_store.h"
#include "test_support.h"

using namespace pullmail;

namespace {

const std::string kHead = "state_dir = \"/st\"\n[accounts.a]\nurl = \"imaps://h\"\nuser = \"u\"\ndeliver = \"mbox:/x\"\n";

std::string error_of(const std::string& text) { return test::config_error_if_any(text); }

}  // namespace

TEST_CASE("config: oauth2 table with provider defaults") {
    Config c = parse_config(kHead + "oauth2 = { provider = \"microsoft\", client_id = \"id\" }\n", "config.toml",
                            ConfigEnv{});
    const Endpoint& ep = c.accounts.at(0).server;
    REQUIRE(ep.password.kind == PasswordSource::Kind::OAuth2);
    CHECK(ep.oauth2);
    REQUIRE(ep.password.client);
    CHECK(ep.password.client->device_url.find("login.microsoftonline.com") != std::string::npos);
    CHECK(ep.password.client->scope.find("offline_access") != std::string::npos);
    CHECK(ep.password.client->store_path == "/st/a.oauth2");
    Config g = parse_config(kHead + "oauth2 = { provider = \"google\", client_id = \"id\", client_secret = \"s\" }\n",
                            "config.toml", ConfigEnv{});
    CHECK(g.accounts.at(0).server.password.client->scope == "https://mail.google.com/");
    CHECK(g.accounts.at(0).server.password.client->client_secret.kind == PasswordSource::Kind::Literal);
}

TEST_CASE("config: oauth2 errors; http only to loopback") {
    CHECK(error_of(kHead + "oauth2 = { provider = \"yahoo\", client_id = \"i\" }\n").find("provider") != std::string::npos);
    CHECK(error_of(kHead + "oauth2 = { provider = \"google\" }\n").find("client_id") != std::string::npos);
    CHECK(error_of(kHead + "oauth2 = { provider = \"google\", client_id = \"i\", token_url = \"https://x\" }\n")
              .find("built in") != std::string::npos);
    CHECK(error_of(kHead + "oauth2 = { provider = \"custom\", client_id = \"i\", token_url = \"http://auth.example/t\", "
                           "device_url = \"https://auth.example/d\" }\n")
              .find("not an https:// URL") != std::string::npos);
    CHECK(error_of(kHead + "oauth2 = { provider = \"custom\", client_id = \"i\", token_url = \"http://127.0.0.1:9/t\", "
                           "device_url = \"http://127.0.0.1:9/d\" }\n") == "");
    CHECK(error_of(kHead + "password = \"p\"\noauth2 = { provider = \"google\", client_id = \"i\" }\n")
              .find("use exactly one password source") != std::string::npos);
    CHECK(error_of(kHead + "oauth2 = { provider = \"google\", client_id = \"i\", clientid = \"x\" }\n")
              .find("unknown key") != std::string::npos);
}

TEST_CASE("config: oauth2 http:// only when the host is exactly loopback") {
    auto custom = [](const std::string& url) {
        return kHead + "oauth2 = { provider = \"custom\", client_id = \"i\", token_url = \"" + url +
               "\", device_url = \"https://auth.example/d\" }\n";
    };
    for (std::string good : {"http://127.0.0.1:9/t", "http://127.3.2.1/t", "http://localhost:9/t", "http://LOCALHOST/t",
                             "http://[::1]:9/t", "http://localhost", "https://auth.example/t"})
        CHECK_MESSAGE(error_of(custom(good)) == "", good);
    // A prefix test passes all of these; the host is what counts.
    for (std::string bad : {"http://127.0.0.1@evil.example/t", "http://127.attacker.example/t",
                            "http://localhost:x@evil.example/t", "http://localhost.evil.example/t",
                            "http://127.0.0.1.evil.example/t", "http://[::1]@evil.example/t", "http://[::2]/t",
                            "http://10.0.0.1/t"})
        CHECK_MESSAGE(error_of(custom(bad)).find("token_url") != std::string::npos, bad);
    // Credentials in the URL are refused even with https.
    CHECK(error_of(custom("https://u:p@auth.example/t")).find("user") != std::string::npos);
    CHECK(error_of(custom("ftp://auth.example/t")).find("not an https:// URL") != std::string::npos);
}

TEST_CASE("oauth2 codecs") {
    CHECK(form_escape("a b&c=d/é~") == "a%20b%26c%3Dd%2F%C3%A9~");
    const unsigned char bytes[] = {0xfb, 0xff, 0x00, 0x01};
    CHECK(base64url(bytes, 4) == "-_8AAQ");
    CHECK(query_value("code=ab%2Fc&state=x+y", "code") == "ab/c");
    CHECK(query_value("code=ab%2Fc&state=x+y", "state") == "x y");
    CHECK(query_value("xcode=1", "code") == "");
    CHECK(query_value("code=%zz", "code") == "%zz");
}

TEST_CASE("oauth2 refresh: under a lock beside the grant file; a token saved meanwhile wins") {
    test::TempDir tmp;
    OAuth2Client c;
    c.provider = "custom";
    c.client_id = "id";
    c.token_url = "http://127.0.0.1:1/token";  // nothing listens: any refresh fails
    c.store_path = tmp.path + "/a.oauth2";
    save_grant(c.store_path, StoredGrant{"refresh-1", "", 0});  // expired: needs a refresh
    // Another process (a watcher, `pullmail auth`) is refreshing right now.
    int fd = ::open((c.store_path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX) == 0);
    std::string got, error;
    std::thread t([&] {
        try {
            got = oauth2_access_token(c, "a", 5, false);
        } catch (const Error& e) {
            error = e.what();
        }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    // It saves a rotated grant with a fresh access token, then unlocks.
    save_grant(c.store_path, StoredGrant{"refresh-2", "fresh-token", std::time(nullptr) + 3600});
    ::flock(fd, LOCK_UN);
    ::close(fd);
    t.join();
    CHECK_MESSAGE(error.empty(), error);
    CHECK(got == "fresh-token");
    StoredGrant g;
    REQUIRE(load_grant(c.store_path, g));
    CHECK(g.refresh_token == "refresh-2");
}

TEST_CASE("oauth2: expires_in and interval from the server are clamped") {
    CHECK(json_seconds(R"({"expires_in": 3599})", "expires_in", 3600, 0, 366 * 86400) == 3599);
    CHECK(json_seconds(R"({"expires_in": 9223372036854775807})", "expires_in", 3600, 0, 366 * 86400) == 366 * 86400);
    CHECK(json_seconds(R"({"expires_in": 18446744073709551615})", "expires_in", 3600, 0, 100) == 100);
    CHECK(json_seconds(R"({"expires_in": -5})", "expires_in", 3600, 0, 100) == 0);
    CHECK(json_seconds(R"({"interval": "99999999999999999999"})", "interval", 5, 1, 60) == 5);
    CHECK(json_seconds(R"({"interval": "1000000"})", "interval", 5, 1, 60) == 60);
    CHECK(json_seconds(R"({"interval": 0})", "interval", 5, 1, 60) == 1);
    CHECK(json_seconds("not json", "interval", 5, 1, 60) == 5);
}

TEST_CASE("oauth2 grant file: readable by others is a config error (exit 78) with the chmod to run") {
    test::TempDir tmp;
    std::string path = tmp.path + "/a.oauth2";
    save_grant(path, StoredGrant{"refresh-1", "", 0});
    ::chmod(path.c_str(), 0644);
    StoredGrant g;
    try {
        load_grant(path, g);
        FAIL("loaded");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Config);
        CHECK(std::string(e.what()).find("chmod 600 " + path) != std::string::npos);
    }
    ::chmod(path.c_str(), 0600);
    CHECK(load_grant(path, g));
}
