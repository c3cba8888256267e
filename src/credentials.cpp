#include "credentials.h"

#include <cstdlib>

#include "error.h"
#include "fs_util.h"
#include "oauth2.h"
#include "process_runner.h"
#include "secret_file.h"
#include "secrets.h"

namespace pullmail {
namespace {

// The password is the first line; `s` is wiped.
std::string first_line(std::string& s) {
    std::string line = s.substr(0, s.find_first_of("\r\n"));
    wipe(s);
    return line;
}

std::string from_file(const PasswordSource& src) {
    check_secret_file(src.value, "password_file", true);
    std::string data;
    try {
        if (!read_file_if_exists(src.value, data))
            throw Error(ErrorKind::Config, "password_file " + src.value + " does not exist");
    } catch (const Error& e) {
        throw Error(ErrorKind::Config, e.what());
    }
    std::string pw = first_line(data);
    // An empty password would only earn a "wrong password?" from the server.
    if (pw.empty())
        throw Error(ErrorKind::Config, "password_file " + src.value + " is empty (its first line is the password)");
    return pw;
}

std::string from_command(const PasswordSource& src, int timeout_seconds) {
    ProcessSpec spec;
    spec.command = src.value;
    spec.capture_stdout = true;
    spec.may_use_terminal = true;  // a prompt on /dev/tty (pinentry-tty, read -s)
    spec.timeout = std::chrono::seconds(timeout_seconds > 0 ? timeout_seconds : 30);
    ProcessResult r = run_process(spec);
    std::string said = first_line_of(r.err);
    if (!said.empty()) said = ": " + said;
    if (!r.exited_ok()) {
        wipe(r.out);
        std::string how = r.timed_out ? r.describe(spec.timeout) + " (connect_timeout)" : r.describe(spec.timeout);
        throw Error(ErrorKind::Config, "password_command '" + sanitize(src.value, 100) + "' failed: " + how + said);
    }
    std::string pw = first_line(r.out);
    if (pw.empty())
        throw Error(ErrorKind::Config, "password_command '" + sanitize(src.value, 100) + "' printed no password" + said);
    return pw;
}

}  // namespace

std::string resolve_password(const PasswordSource& src, const std::string& account, int timeout_seconds) {
    switch (src.kind) {
        case PasswordSource::Kind::Literal:
            return src.value;
        case PasswordSource::Kind::File:
            return from_file(src);
        case PasswordSource::Kind::Env: {
            const char* v = std::getenv(src.value.c_str());
            if (!v || !*v)
                throw Error(ErrorKind::Config, "no password: give --password-command or set the environment variable " +
                                                   src.value);
            return v;
        }
        case PasswordSource::Kind::Command:
            return from_command(src, timeout_seconds);
        case PasswordSource::Kind::OAuth2:
            return oauth2_access_token(*src.client, account, timeout_seconds, false);
        case PasswordSource::Kind::None:
            break;
    }
    throw Error(ErrorKind::Config, "no password source for account '" + account + "'");
}

LoginCredentials login_credentials(const Endpoint& ep, std::string secret, const std::string& account,
                                   int timeout_seconds) {
    LoginCredentials c;
    c.secret = std::move(secret);
    c.token = ep.oauth2 || ep.auth == "XOAUTH2" || ep.auth == "OAUTHBEARER";
    if (c.token && ep.password.kind == PasswordSource::Kind::Command) {
        PasswordSource src = ep.password;
        c.fresh_token = [src, account, timeout_seconds] { return resolve_password(src, account, timeout_seconds); };
    } else if (c.token && ep.password.kind == PasswordSource::Kind::OAuth2) {
        // Refused: one new access token from the refresh token.
        auto client = ep.password.client;
        c.fresh_token = [client, account, timeout_seconds] {
            return oauth2_access_token(*client, account, timeout_seconds, true);
        };
    }
    return c;
}

}  // namespace pullmail
