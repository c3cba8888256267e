// login.h — logging in over a connection libcurl has set up (TCP, TLS or
// STARTTLS, the greeting and the capability exchange) but not authenticated:
// the SASL/login codec (sasl.h) decides and speaks, this file feeds it the
// server's lines and sends its steps.
#pragma once

#include <functional>
#include <string>

#include "config.h"
#include "transport.h"

namespace pullmail {

struct LoginCredentials {
    std::string secret;  // password, or OAuth2 access token when `token`
    bool token = false;
    // For a token: fetches a fresh one after the server refused the first
    // (oauth2_token_command rerun, or a refresh); null = no second try.
    std::function<std::string()> fresh_token;
};

// Logs in on `conn` as ep.user with ep.auth (empty = auto, see
// choose_auth_method). Throws Error(Config) when the method is not offered
// (the message lists what is), Error(Auth) when the server refuses, naming
// the server and the user, never the secret; Error(Protocol/Temporary) for a
// broken or dropped dialogue.
void log_in(Connection& conn, const Endpoint& ep, LoginCredentials& creds, const ConnectOptions& opts);

}  // namespace pullmail
