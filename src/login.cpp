#include "login.h"

#include "error.h"
#include "log.h"
#include "sasl.h"
#include "secrets.h"

namespace pullmail {
namespace {

constexpr std::size_t kMaxLoginLine = 64 * 1024;

// One server line (without CRLF) from the channel; `buf` keeps what came
// after it (nothing, from a server that answers in turn).
std::string next_line(Channel& ch, std::string& buf) {
    // Sends what is queued while reading: a quick server's answer may come
    // in the same pump (Channel::flush would throw it away).
    auto complete = [&] {
        return !ch.has_output() && (buf.find('\n') != std::string::npos || buf.size() > kMaxLoginLine);
    };
    if (!complete()) ch.pump([&](std::string_view bytes) { buf.append(bytes); }, complete);
    auto nl = buf.find('\n');
    if (nl == std::string::npos) throw_protocol_error("the server sent an over-long line during login");
    std::string line = buf.substr(0, nl);
    buf.erase(0, nl + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    ch.trace_in(line);
    return line;
}

// Runs one exchange to its end. Returns the server's final line, empty on
// success.
// A refused login: Auth (exit 77), unless the server's response code says
// the refusal is temporary (a locked maildrop, a server in maintenance),
// which is retried later like any temporary failure (exit 75).
Error refusal_error(const std::string& server, const Endpoint& ep, AuthMethod method, bool token) {
    const std::string what = "the server " + ep.display() + " refused the " + auth_method_name(method) +
                             " login of user '" + sanitize(ep.user, 100) + "'";
    Error e = refusal_is_temporary(server)
                  ? Error(ErrorKind::Temporary, what + " for now (it says the refusal is temporary)")
                  : Error(ErrorKind::Auth, what + (token ? " (the OAuth2 access token was not accepted)"
                                                         : " (wrong user name or password?)"));
    e.set_server_text(server);
    return e;
}

std::optional<std::string> run_exchange(Channel& ch, LoginExchange& ex, std::string& pending) {
    std::string& buf = pending;
    LoginExchange::Step step = ex.start();
    for (;;) {
        if (step.kind == LoginExchange::Step::Kind::Send) {
            // Channel::command would append CRLF and trace the bytes: queue
            // them whole and trace the masked form.
            ch.trace_out(step.trace);
            ch.queue(step.bytes);
            wipe(step.bytes);
        } else if (step.kind == LoginExchange::Step::Kind::Done) {
            return std::nullopt;
        } else if (step.kind == LoginExchange::Step::Kind::Refused) {
            return step.server;
        }
        step = ex.feed(next_line(ch, buf));
    }
}

}  // namespace

void log_in(Connection& conn, const Endpoint& ep, LoginCredentials& creds, const ConnectOptions& opts) {
    const ServerOffer offer = parse_offer(ep.protocol, conn.login_lines());
    auto requested = auth_method_from_name(ep.auth);
    if (!requested) throw Error(ErrorKind::Config, "unknown auth method '" + sanitize(ep.auth, 40) + "'");
    const AuthMethod method =
        choose_auth_method(*requested, offer, creds.token, ep.tls != TlsMode::Off, ep.display());
    if (is_oauth(method) != creds.token)
        throw Error(ErrorKind::Config, std::string("auth = \"") + auth_method_name(method) + "\" needs " +
                                           (creds.token ? "a password, but an OAuth2 token is configured"
                                                        : "an OAuth2 access token (oauth2_token_command or an "
                                                          "oauth2 table), but only a password is configured"));
    Channel ch(conn, opts.connect_timeout, opts.account, opts.log, opts.verbosity);
    std::string pending;  // server bytes read but not yet used
    for (int attempt = 0;; ++attempt) {
        std::optional<std::string> refused;
        {
            LoginExchange ex(method, offer, ep.user, creds.secret, ep.host, ep.port);
            refused = run_exchange(ch, ex, pending);
        }
        if (!refused) return;
        if (creds.token && creds.fresh_token && attempt == 0) {
            if (opts.log) opts.log->info(opts.account, "the server refused the OAuth2 access token; getting a new one");
            wipe(creds.secret);
            creds.secret = creds.fresh_token();
            continue;
        }
        throw refusal_error(*refused, ep, method, creds.token);
    }
}

}  // namespace pullmail
