// oauth2.h — the built-in OAuth2 client of an account's oauth2 = { ... }
// table: access tokens from the stored refresh token, and `pullmail auth`.
//
// HTTP goes through libcurl with the certificate verification of the mail
// connections (the shared trust store of trust_store.h, libcurl's system
// CA files); the endpoints are https except on a loopback address (checked
// when the configuration is loaded). No token or secret is ever logged,
// put in an error message, on a command line or in a child's environment:
// errors carry the endpoint's `error` code and the URL only.
#pragma once

#include <iosfwd>
#include <string>

#include <cstdint>

#include "config.h"

namespace pullmail {

// An access token for the account: the stored one while it is valid for at
// least another two minutes (refreshed ahead of expiry), else a new one
// from the refresh token (force = always a new one: the server refused the
// last). A rotated refresh token is saved. No stored grant, or a refresh
// token the endpoint refuses (invalid_grant: revoked or expired), is
// Error(Auth) telling the user to run `pullmail auth ACCOUNT`.
std::string oauth2_access_token(const OAuth2Client& client, const std::string& account, int timeout_seconds,
                                bool force);

enum class SignInFlow { Default, Device, Browser, Paste };

// `pullmail auth ACCOUNT`: signs in interactively and stores the grant.
// Device: RFC 8628 device authorization (prints the URL and code, polls
// honouring interval, slow_down and authorization_pending). Browser: the
// authorization code flow with PKCE (S256) and a redirect listener on
// 127.0.0.1 (prints the URL to open). Paste: the same without a listener;
// the user pastes the address the browser was sent to on `in`. Default:
// device for microsoft (and custom with a device_url), else browser.
// Instructions go to `out`; nothing secret does.
void oauth2_sign_in(const OAuth2Client& client, const std::string& account, SignInFlow flow, std::istream& in,
                    std::ostream& out);

// A number of seconds the server sent under `key` of a JSON object (an
// integer or a numeric string), clamped to [lo, hi]: expires_in and
// interval are used for time arithmetic and sleeps, so a hostile or broken
// endpoint must not overflow them or make a sleep last for ever. dflt when
// absent or not a number.
std::int64_t json_seconds(const std::string& json, const char* key, std::int64_t dflt, std::int64_t lo,
                          std::int64_t hi);

// Percent-encoding of a form or query value (RFC 3986 unreserved kept).
std::string form_escape(const std::string& s);
// base64url without padding, for PKCE.
std::string base64url(const unsigned char* data, std::size_t len);
// The value of `key` in a query string "a=1&b=2" (percent-decoded), or "".
std::string query_value(const std::string& query, const std::string& key);

}  // namespace pullmail
