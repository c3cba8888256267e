// sasl.h — the login dialogue of POP3 and IMAP as a codec: what the server
// offered (greeting and capabilities, as libcurl read them before handing the
// unauthenticated connection over) goes in, the choice of a method and the
// lines to send come out, one server line at a time. No sockets here, so the
// unit tests drive every exchange directly (tests/unit/test_sasl.cpp).
//
// Methods: USER/PASS (POP3) or LOGIN (IMAP) — "user"; APOP (POP3); and the
// SASL mechanisms PLAIN, LOGIN, CRAM-MD5, XOAUTH2, OAUTHBEARER (RFC 7628).
// Initial responses follow the protocol's rules: IMAP only when the server
// advertises SASL-IR (RFC 4959); POP3 only while the AUTH line stays within
// RFC 5034's 255 octets, and never for XOAUTH2, which Microsoft's POP3 wants
// as "AUTH XOAUTH2" with the response on a second line.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"

namespace pullmail {

enum class AuthMethod { Auto, User, Apop, Plain, Login, CramMd5, XOAuth2, OAuthBearer };

// "USER", "APOP", "PLAIN", ... as written in configuration (Endpoint::auth,
// upper case; empty or "AUTO" = Auto). nullopt for anything else.
std::optional<AuthMethod> auth_method_from_name(std::string_view name);
// The configuration name, lower case ("user", "cram-md5", ...).
const char* auth_method_name(AuthMethod m);
bool is_oauth(AuthMethod m);

// What the server offered before login.
struct ServerOffer {
    Protocol protocol = Protocol::Pop3;
    std::string apop_timestamp;   // POP3: "<...>" of the greeting, empty if none
    std::set<std::string> sasl;   // SASL mechanisms offered, upper case
    bool user_command = true;     // POP3 USER (RFC 2449 CAPA), IMAP LOGIN (not LOGINDISABLED)
    bool sasl_ir = false;         // IMAP SASL-IR
    bool literal_plus = false;    // IMAP LITERAL+ (non-synchronising literals for LOGIN)

    bool offers(AuthMethod m) const;
    // "USER, APOP, SASL PLAIN" etc.: the methods a user could configure.
    std::string describe() const;
};

// Reads the greeting and the last capability listing from the server lines
// libcurl saw (Connection::login_lines(); after STARTTLS the listing that
// followed it). POP3 without a CAPA listing: USER (and APOP when the
// greeting has a timestamp), as RFC 1939 servers offer.
ServerOffer parse_offer(Protocol protocol, const std::vector<std::string>& login_lines);

// The method to use for `requested` against `offer`. Auto takes, with a
// token, OAUTHBEARER then XOAUTH2; with a password and TLS: SASL PLAIN, SASL
// LOGIN, then USER/LOGIN (they work with any password store; CRAM-MD5 and
// APOP need the server to hold the plaintext password and are often offered
// where it does not); with a password and no TLS only CRAM-MD5 or APOP,
// never a plaintext password. Throws Error(Config) naming the methods the
// server does offer when nothing fits, or when the method asked for is not
// offered, or is a POP3-only method on IMAP.
AuthMethod choose_auth_method(AuthMethod requested, const ServerOffer& offer, bool have_token, bool tls,
                              const std::string& where);

// One login dialogue. start() gives the first thing to send; then each
// complete server line (without CRLF) goes to feed() until the step is Done
// or Refused. Lines the exchange does not care about (IMAP untagged data)
// give a Step of kind Wait.
class LoginExchange {
public:
    struct Step {
        enum class Kind { Send, Wait, Done, Refused } kind = Kind::Wait;
        std::string bytes;   // Send: bytes to write, CRLF included
        std::string trace;   // Send: what a -vv trace may show (secrets masked)
        std::string server;  // Refused: the server's final words (an OAuth2 error decoded)
    };

    // `secret` is the password, or the OAuth2 access token for XOAUTH2 and
    // OAUTHBEARER; `host`/`port` go into the OAUTHBEARER GS2 header.
    LoginExchange(AuthMethod method, const ServerOffer& offer, std::string user, std::string secret,
                  std::string host, int port);
    ~LoginExchange();
    LoginExchange(const LoginExchange&) = delete;
    LoginExchange& operator=(const LoginExchange&) = delete;

    Step start();
    // Throws Error(Protocol) on a line that fits no state (a reply before a
    // command, a challenge a mechanism cannot answer).
    Step feed(std::string_view line);

private:
    Step send(std::string bytes, std::string trace);
    Step answer_challenge(std::string_view payload);
    Step final_reply(std::string_view line, bool ok);
    std::string initial_response() const;

    AuthMethod method_;
    ServerOffer offer_;
    std::string user_, secret_, host_;
    int port_;
    int challenges_ = 0;        // continuations answered so far
    bool oauth_error_ = false;  // the server sent an OAuth2 error challenge
    std::string oauth_detail_;
    std::vector<std::string> pending_;  // IMAP LOGIN literal segments still to send
    enum class Phase { Fresh, User, Pass, Auth, Done } phase_ = Phase::Fresh;
};

// Whether a refused login says the refusal is temporary, by its response
// code: POP3 [IN-USE], [LOGIN-DELAY], [SYS/TEMP] (RFC 2449, 3206), IMAP
// [UNAVAILABLE], [INUSE], [LIMIT] (RFC 5530). `line` is the server's final
// reply ("-ERR [IN-USE] ..." or "A1 NO [UNAVAILABLE] ...").
bool refusal_is_temporary(std::string_view line);

// The SASL payloads and digests, exposed for the unit tests.
std::string base64_encode(std::string_view bytes);
// nullopt when `text` is not base64.
std::optional<std::string> base64_decode(std::string_view text);
std::string apop_digest(std::string_view timestamp, std::string_view password);
std::string cram_md5_response(std::string_view user, std::string_view password, std::string_view challenge);
std::string xoauth2_payload(std::string_view user, std::string_view token);
std::string oauthbearer_payload(std::string_view user, std::string_view token, std::string_view host, int port);

}  // namespace pullmail
