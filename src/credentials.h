// credentials.h — where an account's password comes from: the configuration
// itself, a file, an environment variable, or a command's output.
#pragma once

#include <string>

#include "config.h"
#include "login.h"

namespace pullmail {

// Fetches the password from its source (literal, command, file, environment).
// Throws Error(Config) naming the source (never the secret) on failure: a
// missing or empty file, an unset or empty variable, a command that fails,
// prints nothing, or has not finished after `timeout_seconds` (the account's
// connect_timeout; then its whole process group is killed). The command runs
// through the process runner (no secret variables in its environment, stdin
// on /dev/null, stderr's first line in the error).
std::string resolve_password(const PasswordSource& src, const std::string& account, int timeout_seconds);

// What connect_and_login needs to log in to `ep` with `secret` (resolved by
// resolve_password): an OAuth2 access token for oauth2_token_command (and
// for auth = "xoauth2"/"oauthbearer"), which is then run once more for a
// fresh token when the server refuses the first.
LoginCredentials login_credentials(const Endpoint& ep, std::string secret, const std::string& account,
                                   int timeout_seconds);

}  // namespace pullmail
