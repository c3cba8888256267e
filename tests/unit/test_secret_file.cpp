// The permission rules for the config file (secret_file.h): refused with
// exit 78 and the chmod to run when it holds a password and others may read
// or write it, or when others may write it at all.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <string>

#include "config.h"
#include "error.h"
#include "test_support.h"

using namespace pullmail;
using pullmail::test::TempDir;
using pullmail::test::write_file;

namespace {

const char* kWithPassword =
    "[accounts.a]\nurl = \"pop3s://h\"\nuser = \"u\"\npassword = \"pw\"\ndeliver = \"maildir:/tmp/m\"\n";
const char* kWithTargetPassword =
    "[accounts.a]\nurl = \"pop3s://h\"\nuser = \"u\"\npassword_command = \"true\"\n"
    "deliver = { url = \"imaps://t/INBOX\", user = \"v\", password = \"pw\" }\n";
const char* kWithRelayPassword =
    "[accounts.a]\nurl = \"pop3s://h\"\nuser = \"u\"\npassword_command = \"true\"\nrecipient = \"me@x\"\n"
    "deliver = { url = \"smtps://mx\", user = \"v\", password = \"pw\" }\n";
const char* kWithClientSecret =
    "[accounts.a]\nurl = \"imaps://h\"\nuser = \"u\"\ndeliver = \"maildir:/tmp/m\"\n"
    "oauth2 = { provider = \"google\", client_id = \"i\", client_secret = \"s3cret\" }\n";
const char* kWithProxyPassword =
    "[accounts.a]\nurl = \"pop3s://h\"\nuser = \"u\"\npassword_command = \"true\"\n"
    "deliver = \"maildir:/tmp/m\"\nproxy = \"socks5h://joe:pw@127.0.0.1:1080\"\n";
const char* kWithRelayProxyPassword =
    "[accounts.a]\nurl = \"pop3s://h\"\nuser = \"u\"\npassword_command = \"true\"\nrecipient = \"me@x\"\n"
    "deliver = { url = \"smtps://mx\", user = \"v\", password_command = \"true\", "
    "proxy = \"http://joe:pw@127.0.0.1:3128\" }\n";
const char* kWithoutPassword =
    "[accounts.a]\nurl = \"pop3s://h\"\nuser = \"u\"\npassword_command = \"pass x\"\ndeliver = \"maildir:/tmp/m\"\n";

std::string load_error(const std::string& path) {
    try {
        load_config(path, ConfigEnv{{{"HOME", "/tmp"}}});
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Config);
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("config file: a password readable or writable by others is refused") {
    TempDir tmp;
    std::string path = tmp.path + "/config.toml";
    for (const char* text : {kWithPassword, kWithTargetPassword, kWithRelayPassword, kWithClientSecret,
                             kWithProxyPassword, kWithRelayProxyPassword}) {
        std::string shown = text;
        CAPTURE(shown);
        write_file(path, text);
        for (mode_t mode : {0644, 0640, 0604, 0660, 0606}) {
            ::chmod(path.c_str(), mode);
            std::string err = load_error(path);
            CHECK(err.find("holds a password") != std::string::npos);
            CHECK(err.find("run: chmod 600 " + path) != std::string::npos);
        }
        ::chmod(path.c_str(), 0600);
        CHECK(load_error(path).empty());
        ::chmod(path.c_str(), 0400);
        CHECK(load_error(path).empty());
    }
}

TEST_CASE("config file: without a password others may read it, not write it") {
    TempDir tmp;
    std::string path = tmp.path + "/config.toml";
    write_file(path, kWithoutPassword);
    ::chmod(path.c_str(), 0644);
    CHECK(load_error(path).empty());
    // A client secret from a command and a proxy without credentials are no passwords.
    write_file(path, "[accounts.a]\nurl = \"imaps://h\"\nuser = \"u\"\ndeliver = \"maildir:/tmp/m\"\n"
                     "proxy = \"socks5h://127.0.0.1:1080\"\n"
                     "oauth2 = { provider = \"google\", client_id = \"i\", client_secret_command = \"pass g\" }\n");
    CHECK(load_error(path).empty());
    write_file(path, kWithoutPassword);
    for (mode_t mode : {0664, 0646, 0666}) {
        ::chmod(path.c_str(), mode);
        std::string err = load_error(path);
        CHECK(err.find("writable by others") != std::string::npos);
        CHECK(err.find("run: chmod 600 " + path) != std::string::npos);
    }
}
