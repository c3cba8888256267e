#include "transport.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "error.h"
#include "text_util.h"
#include "trust_store.h"
#include "fs_util.h"
#include "log.h"
#include "login.h"
#include "secrets.h"
#include "test_hooks.h"

namespace pullmail {

namespace {

class CurlConnection final : public Connection {
public:
    CurlConnection(CURL* h, curl_socket_t sock, SSL* ssl, std::vector<std::string> login_lines)
        : h_(h), sock_(sock), ssl_(ssl), login_lines_(std::move(login_lines)) {}
    ~CurlConnection() override { curl_easy_cleanup(h_); }

    std::size_t try_send(std::string_view data) override {
        std::size_t sent = 0;
        CURLcode rc = curl_easy_send(h_, data.data(), data.size(), &sent);
        if (rc == CURLE_AGAIN) return 0;
        if (rc != CURLE_OK)
            throw Error(ErrorKind::Temporary,
                        std::string("connection lost while sending: ") + curl_easy_strerror(rc), true);
        return sent;
    }

    std::size_t try_recv(char* buf, std::size_t n, bool& eof) override {
        std::size_t got = 0;
        CURLcode rc = curl_easy_recv(h_, buf, n, &got);
        if (rc == CURLE_AGAIN) return 0;
        if (rc != CURLE_OK)
            throw Error(ErrorKind::Temporary,
                        std::string("connection lost while receiving: ") + curl_easy_strerror(rc), true);
        if (got == 0) eof = true;
        return got;
    }

    bool wait(bool for_read, bool for_write, int timeout_ms) override {
        // With read-ahead, TLS records may already sit in OpenSSL's buffer
        // while the socket has nothing more to say.
        if (for_read && ssl_ && SSL_has_pending(ssl_)) return true;
        pollfd p{};
        p.fd = sock_;
        p.events = static_cast<short>((for_read ? POLLIN : 0) | (for_write ? POLLOUT : 0));
        for (;;) {
            int r = ::poll(&p, 1, timeout_ms);
            if (r < 0 && errno == EINTR) continue;
            return r > 0;
        }
    }

    std::vector<std::string> login_lines() const override { return login_lines_; }
    bool encrypted() const override { return ssl_ != nullptr; }
    int poll_fd() const override { return static_cast<int>(sock_); }

private:
    CURL* h_;
    curl_socket_t sock_;
    SSL* ssl_;  // owned by libcurl; null without TLS
    std::vector<std::string> login_lines_;
};

struct CurlContext {
    const ConnectOptions* opts;
    std::string last_server_line;
    TrustSources trust;
    TrustError trust_error;   // why the trust store could not be set up
    SSL* ssl = nullptr;       // the TLS session, once its handshake is done
    std::vector<std::string> server_lines;  // what the server said during login (bounded)
};

// Where the SSL callbacks find the CurlContext of their SSL_CTX.
int context_index() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

// libcurl does not hand out the SSL of a CONNECT_ONLY connection
// (CURLINFO_TLS_SSL_PTR is empty once the transfer is done): note it when
// its handshake completes.
void info_cb(const SSL* ssl, int where, int) {
    if (!(where & SSL_CB_HANDSHAKE_DONE)) return;
    auto* ctx = static_cast<CurlContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), context_index()));
    if (ctx) ctx->ssl = const_cast<SSL*>(ssl);
}

int debug_cb(CURL*, curl_infotype type, char* data, size_t size, void* userp) {
    auto* ctx = static_cast<CurlContext*>(userp);
    std::string_view text(data, size);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
    Logger* log = ctx->opts->log;
    bool trace = log && ctx->opts->verbosity >= 3;
    switch (type) {
        case CURLINFO_HEADER_IN:
            if (!text.empty()) ctx->last_server_line = std::string(text);
            if (ctx->server_lines.size() < 200) ctx->server_lines.emplace_back(text.substr(0, 1000));
            if (trace) log->trace(ctx->opts->account, "S: " + std::string(text));
            break;
        case CURLINFO_HEADER_OUT:
            if (trace) log->trace(ctx->opts->account, "C: " + mask_credentials(text));
            break;
        case CURLINFO_TEXT:
            if (trace) log->trace(ctx->opts->account, "* " + std::string(text));
            break;
        default:
            break;
    }
    return 0;
}

CURLcode ssl_ctx_cb(CURL*, void* sslctx, void* userp) {
    auto* ctx = static_cast<CurlContext*>(userp);
    // The peer is verified against the process-wide store of libcurl's own
    // CA file and directory plus ca_file (an extra anchor, never a
    // replacement and never a way around verification). libcurl's per-
    // connection store stays empty: it would parse the whole bundle again.
    X509_STORE* store = shared_trust_store(ctx->trust, ctx->trust_error);
    if (!store) return CURLE_SSL_CACERT_BADFILE;
    auto* ssl_ctx = static_cast<SSL_CTX*>(sslctx);
    long ok = SSL_CTX_set1_verify_cert_store(ssl_ctx, store);
    X509_STORE_free(store);  // set1 took its own reference
    if (ok != 1) {
        ctx->trust_error.message = "cannot install the CA certificates";
        return CURLE_SSL_CACERT_BADFILE;
    }
    // Room for several TLS records per recv() once read-ahead is on (after
    // login, see connect_and_login).
    SSL_CTX_set_default_read_buffer_len(ssl_ctx, 64 * 1024);
    if (context_index() >= 0 && SSL_CTX_set_ex_data(ssl_ctx, context_index(), ctx) == 1)
        SSL_CTX_set_info_callback(ssl_ctx, info_cb);
    return CURLE_OK;
}

std::once_flag curl_init_once;

std::atomic<const std::atomic<bool>*> g_stop_flag{nullptr};

bool stop_requested() {
    const std::atomic<bool>* flag = g_stop_flag.load();
    return flag && flag->load(std::memory_order_relaxed);
}

// Called by libcurl about once a second and whenever it has waited (also
// while connecting and logging in): a non-zero return aborts the transfer.
int progress_cb(void*, curl_off_t, curl_off_t, curl_off_t, curl_off_t) { return stop_requested() ? 1 : 0; }

// OpenSSL's words when the peer offers only protocol versions below our floor.
bool refused_old_tls(const std::string& detail) {
    return detail.find("unsupported protocol") != std::string::npos ||
           detail.find("no protocols available") != std::string::npos ||
           detail.find("alert protocol version") != std::string::npos;
}
const char* const tls_floor_hint =
    " (pullmail requires TLS 1.2 or later; the server seems to offer only an older version)";

const char* scheme_of(const Endpoint& ep) {
    if (ep.protocol == Protocol::Pop3) return ep.tls == TlsMode::Implicit ? "pop3s" : "pop3";
    if (ep.protocol == Protocol::Smtp) return ep.tls == TlsMode::Implicit ? "smtps" : "smtp";
    if (ep.protocol == Protocol::Lmtp) return "http";  // a bare connection, see set_login_options
    return ep.tls == TlsMode::Implicit ? "imaps" : "imap";
}

}  // namespace

void set_stop_flag(const std::atomic<bool>* flag) { g_stop_flag.store(flag); }

std::string mask_credentials(std::string_view line) {
    auto w = split_words(line);
    if (w.empty()) return std::string(line);
    std::size_t cmd = 0;
    std::string first = ascii_upper(w[0]);
    static const char* kCommands[] = {"USER", "PASS", "APOP", "AUTH", "LOGIN", "AUTHENTICATE", "CAPA",
                                      "CAPABILITY", "STLS", "STARTTLS", "QUIT", "LOGOUT", "NOOP", "ID",
                                      "ENABLE", "SELECT", "EXAMINE"};
    auto known = [&](const std::string& word) {
        return std::any_of(std::begin(kCommands), std::end(kCommands), [&](const char* c) { return word == c; });
    };
    // IMAP lines start with a tag.
    if (!known(first) && w.size() >= 2 && known(ascii_upper(w[1]))) cmd = 1;
    std::string c = ascii_upper(w[cmd]);
    if (!known(c)) return "****";
    std::string prefix;
    for (std::size_t i = 0; i <= cmd; ++i) prefix += std::string(w[i]) + (i < cmd ? " " : "");
    if (c == "CAPA" || c == "CAPABILITY" || c == "STLS" || c == "STARTTLS" || c == "QUIT" || c == "LOGOUT" ||
        c == "NOOP")
        return std::string(line);
    if (c == "USER" || c == "SELECT" || c == "EXAMINE") return std::string(line);
    if ((c == "AUTH" || c == "AUTHENTICATE") && w.size() > cmd + 1) {
        prefix += " " + std::string(w[cmd + 1]);
        return w.size() > cmd + 2 ? prefix + " ****" : prefix;
    }
    if (c == "APOP" && w.size() > cmd + 1) return prefix + " " + std::string(w[cmd + 1]) + " ****";
    return w.size() > cmd + 1 ? prefix + " ****" : prefix;
}

namespace {

// Every option of a CONNECT_ONLY login: TLS policy, certificate checks
// through the shared trust store (ssl_ctx_cb), timeouts, tracing.
void set_login_options(CURL* h, const Endpoint& ep, const std::string& relay_password, const ConnectOptions& opts,
                       CurlContext& ctx, const std::string& url, char* errbuf) {
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    // POP3 and IMAP: no CURLOPT_USERNAME: libcurl then ends its connect
    // phase after the capability exchange (Curl_sasl_can_authenticate() is
    // false) and the login is ours (login.cpp): USER despite an APOP
    // timestamp, SASL initial responses only where the server allows them.
    // An SMTP relay with a user: libcurl's own SMTP AUTH after EHLO (and
    // STARTTLS); without one libcurl stops after EHLO and hands it over.
    bool relay = ep.protocol == Protocol::Smtp || ep.protocol == Protocol::Lmtp;
    if (relay && !ep.user.empty()) {
        curl_easy_setopt(h, CURLOPT_USERNAME, ep.user.c_str());
        curl_easy_setopt(h, CURLOPT_PASSWORD, relay_password.c_str());
    }
    long use_ssl = ep.tls == TlsMode::Off ? (long)CURLUSESSL_NONE
                   : ep.tls == TlsMode::IfOffered ? (long)CURLUSESSL_TRY
                                                  : (long)CURLUSESSL_ALL;
    curl_easy_setopt(h, CURLOPT_USE_SSL, use_ssl);
    // LMTP: libcurl only connects (an http:// URL with CONNECT_ONLY sends
    // nothing); the relay codec reads the greeting and says LHLO itself.
    if (ep.protocol == Protocol::Lmtp && !ep.socket_path.empty())
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, ep.socket_path.c_str());
    // Never through $http_proxy and friends; only the configured proxy.
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    // Nothing older than TLS 1.2, whatever the system's OpenSSL
    // configuration allows (a permissive openssl.cnf must not lower it).
    curl_easy_setopt(h, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, static_cast<long>(opts.connect_timeout));
    curl_easy_setopt(h, CURLOPT_TIMEOUT, static_cast<long>(opts.connect_timeout));
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, debug_cb);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, &ctx);
    curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    // One easy handle (and so one connection cache) per account session:
    // nothing is ever reused across TLS profiles (libcurl-7.88.md,
    // CVE-2026-4873). CURLOPT_FORBID_REUSE must not be set: it would close
    // the CONNECT_ONLY connection right after login.
    if (!ep.proxy.empty()) {
        // socks5h:// resolves the server's name at the proxy; http:// tunnels
        // with CONNECT. The server's certificate is verified as without one.
        curl_easy_setopt(h, CURLOPT_PROXY, ep.proxy.c_str());
        curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, 1L);
    }
    curl_easy_setopt(h, CURLOPT_CAINFO, nullptr);
    curl_easy_setopt(h, CURLOPT_CAPATH, nullptr);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, &ctx);
}

bool dropped_mid_handshake(const std::string& detail, long os_errno) {
    return os_errno == ECONNRESET || os_errno == EPIPE || detail.find("SSL_ERROR_SYSCALL") != std::string::npos ||
           detail.find("unexpected eof") != std::string::npos ||
           detail.find("Connection reset") != std::string::npos ||
           detail.find("Recv failure") != std::string::npos || detail.find("Send failure") != std::string::npos;
}

// The TLS failures of a login, as the user should read them.
[[noreturn]] void throw_tls_error(CURLcode rc, const Endpoint& ep, const CurlContext& ctx, const std::string& detail,
                                  long os_errno) {
    const std::string where = ep.display();
    if (rc == CURLE_SSL_CACERT_BADFILE && !ctx.trust_error.message.empty())
        throw Error(ctx.trust_error.ca_file ? ErrorKind::Config : ErrorKind::Tls,
                    ctx.trust_error.message + " for " + where);
    if (rc != CURLE_SSL_CONNECT_ERROR)
        throw Error(ErrorKind::Tls, "the TLS certificate of " + where + " could not be verified (" + detail +
                                        "); if the server uses a private CA, set ca_file to its certificate");
    if (refused_old_tls(detail))
        throw Error(ErrorKind::Tls, "TLS handshake with " + where + " failed: " + detail + tls_floor_hint);
    // A peer that vanishes mid-handshake is a dropped connection (retry
    // later), not a TLS policy failure.
    if (dropped_mid_handshake(detail, os_errno))
        throw Error(ErrorKind::Temporary, "connection to " + where + " dropped during the TLS handshake: " + detail,
                    true);
    throw Error(ErrorKind::Tls, "TLS handshake with " + where + " failed: " + detail);
}

// Maps a failed login to the one Error a user should see.
[[noreturn]] void throw_login_error(CURLcode rc, const Endpoint& ep, const ConnectOptions& opts,
                                    const CurlContext& ctx, const std::string& detail, long os_errno) {
    const std::string where = ep.display();
    auto server = [&](Error e) {
        if (!ctx.last_server_line.empty()) e.set_server_text(ctx.last_server_line);
        return e;
    };
    switch (rc) {
        case CURLE_COULDNT_RESOLVE_HOST:
            throw Error(ErrorKind::Unreachable, "cannot resolve host name " + ep.host + ": " + detail);
        case CURLE_COULDNT_CONNECT:
            throw Error(ErrorKind::Unreachable, "cannot connect to " + where + ": " + detail);
        case CURLE_ABORTED_BY_CALLBACK:
            throw Error(ErrorKind::Temporary, "interrupted by a signal while connecting to " + where, true);
        case CURLE_OPERATION_TIMEDOUT:
            throw Error(ErrorKind::Temporary,
                        "no answer from " + where + " within " + std::to_string(opts.connect_timeout) +
                            " s while connecting and logging in",
                        true);
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_CONNECT_ERROR:
            throw_tls_error(rc, ep, ctx, detail, os_errno);
        case CURLE_USE_SSL_FAILED:
            // No server text: the last line is the end of its capability
            // list ("." or "A001 OK"), which says nothing about the refusal.
            throw Error(ErrorKind::Tls, "the server " + where +
                                            " does not offer STARTTLS; refusing to log in without encryption "
                                            "(use pop3s:// or imaps://, or tls = \"off\" only on a trusted "
                                            "network)");
        case CURLE_LOGIN_DENIED:
            throw server(Error(ErrorKind::Auth, "the server " + where + " refused the login of user '" + ep.user +
                                                    "' (wrong user name or password?)"));
        case CURLE_GOT_NOTHING:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
            throw server(
                Error(ErrorKind::Temporary, "connection to " + where + " dropped while logging in: " + detail, true));
        default:
            throw server(Error(ErrorKind::Protocol, "cannot log in to " + where + ": " + detail));
    }
}

}  // namespace

std::unique_ptr<Connection> connect_and_login(const Endpoint& ep, const std::string& password,
                                              const ConnectOptions& opts) {
    LoginCredentials creds;
    creds.secret = password;
    creds.token = ep.oauth2 || ep.auth == "XOAUTH2" || ep.auth == "OAUTHBEARER";
    auto conn = connect_and_login(ep, creds, opts);
    wipe(creds.secret);
    return conn;
}

std::unique_ptr<Connection> connect_and_login(const Endpoint& ep, LoginCredentials& creds,
                                              const ConnectOptions& opts) {
    std::call_once(curl_init_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    if (!ep.ca_file.empty() && ::access(ep.ca_file.c_str(), R_OK) != 0)
        throw Error(ErrorKind::Config, "cannot read ca_file " + ep.ca_file + ": " + std::strerror(errno));
    CURL* h = curl_easy_init();
    if (!h) throw Error(ErrorKind::Internal, "cannot initialise libcurl");
    CurlContext ctx{&opts, {}, {}, {}, nullptr, {}};
    ctx.trust.ca_file = ep.ca_file;
    // libcurl's built-in CA locations, loaded by ssl_ctx_cb into the shared
    // store instead of into every connection's own.
    char* default_file = nullptr;
    char* default_dir = nullptr;
    if (curl_easy_getinfo(h, CURLINFO_CAINFO, &default_file) == CURLE_OK && default_file)
        ctx.trust.system_file = default_file;
    if (curl_easy_getinfo(h, CURLINFO_CAPATH, &default_dir) == CURLE_OK && default_dir)
        ctx.trust.system_dir = default_dir;
    char errbuf[CURL_ERROR_SIZE] = {0};
    std::string host = ep.host.find(':') != std::string::npos ? "[" + ep.host + "]" : ep.host;
    std::string url = std::string(scheme_of(ep)) + "://" + host + ":" + std::to_string(ep.port) + "/";
    set_login_options(h, ep, creds.secret, opts, ctx, url, errbuf);

    CURLcode rc = curl_easy_perform(h);
    // Detach the callbacks: ctx lives on this stack frame only.
    curl_easy_setopt(h, CURLOPT_VERBOSE, 0L);
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, nullptr);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, nullptr);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    if (rc != CURLE_OK) {
        std::string detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
        long os_errno = 0;
        curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
        curl_easy_cleanup(h);
        throw_login_error(rc, ep, opts, ctx, detail, os_errno);
    }
    curl_socket_t sock = CURL_SOCKET_BAD;
    curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &sock);
    if (sock == CURL_SOCKET_BAD) {
        curl_easy_cleanup(h);
        throw Error(ErrorKind::Internal, "libcurl returned no socket for " + ep.display());
    }
    // From here on we read the connection ourselves: let OpenSSL read
    // whatever TLS records have arrived with one recv() instead of two per
    // record (header, then body) — a fifteenth of the system calls for a
    // mailbox. Not during login: libcurl 7.88 waits on the socket and would
    // not see records already buffered (CurlConnection::wait does).
    SSL* ssl = ctx.ssl;
    if (ssl) {
        SSL_CTX_set_ex_data(SSL_get_SSL_CTX(ssl), context_index(), nullptr);  // ctx dies with this frame
        SSL_set_read_ahead(ssl, 1);
    }
    auto conn = std::make_unique<CurlConnection>(h, sock, ssl, std::move(ctx.server_lines));
    test_mark("transport: connected (TCP + TLS)");
    // A relay (SMTP, LMTP) is logged in already, or needs no login.
    if (ep.protocol != Protocol::Smtp && ep.protocol != Protocol::Lmtp) log_in(*conn, ep, creds, opts);
    return conn;
}

Channel::Channel(Connection& conn, int timeout_seconds, std::string account, Logger* log, int verbosity)
    : conn_(conn), timeout_ms_(timeout_seconds * 1000), account_(std::move(account)), log_(log), verbosity_(verbosity) {}

void Channel::queue(std::string_view bytes) {
    if (out_pos_ == out_.size()) {
        out_.clear();
        out_pos_ = 0;
    }
    out_.append(bytes);
}

void Channel::command(std::string_view line, std::string_view trace) {
    if (log_ && verbosity_ >= 3) log_->trace(account_, "C: " + std::string(trace.empty() ? line : trace));
    queue(line);
    queue("\r\n");
}

void Channel::trace_in(std::string_view line) {
    if (log_ && verbosity_ >= 3) log_->trace(account_, "S: " + std::string(line));
}

void Channel::trace_out(std::string_view line) {
    if (log_ && verbosity_ >= 3) log_->trace(account_, "C: " + std::string(line));
}

void Channel::flush() {
    pump([](std::string_view) {}, [this] { return !has_output(); });
}

void Channel::set_min_rate(std::uint64_t bytes_per_second, int window_s) {
    // A window shorter than the silence timeout would turn a legitimately
    // silent wait (a server computing a big SELECT) into a rate failure.
    rate_ = RateGuard(bytes_per_second, std::max(window_s, timeout_ms_ / 1000));
}

void Channel::set_deadline(int seconds) {
    deadline_s_ = seconds;
    deadline_ = Clock::now() + std::chrono::seconds(seconds);
}

void Channel::check_stop(Clock::time_point& last) {
    auto now = Clock::now();
    if (deadline_s_ > 0 && now >= deadline_)
        throw Error(ErrorKind::Temporary,
                    "the connection reached run_timeout = " + std::to_string(deadline_s_) +
                        " s; what was delivered is recorded, the rest is fetched by the next run",
                    true);
    const std::atomic<bool>* flag = g_stop_flag.load();
    if (flag && flag->load(std::memory_order_relaxed)) {
        stop_spent_ms_ += static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(now - last).count());
        if (stop_spent_ms_ >= kStopGraceMs)
            throw Error(ErrorKind::Temporary,
                        "interrupted by a signal while waiting for the server; what was delivered is recorded, the "
                        "rest is fetched by the next run",
                        true);
    }
    last = now;
}

void Channel::charge(bool answered, Clock::time_point& mark, std::uint64_t bytes) {
    auto now = Clock::now();
    auto ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now - mark).count());
    mark = now;
    if (!answered || rate_.record(ms, bytes)) return;
    throw Error(ErrorKind::Temporary,
                "the server sent only " + std::to_string(rate_.window_bytes()) + " bytes in " +
                    std::to_string(rate_.window_seconds()) + " s, below min_rate = " +
                    std::to_string(rate_.min_rate()) + " bytes/s (a stalled or deliberately slow server)",
                true);
}

void Channel::wait_for_io(bool& answered, Clock::time_point& mark) {
    const auto start = Clock::now();
    auto last = start;
    for (;;) {
        auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
        if (waited >= timeout_ms_)
            throw Error(ErrorKind::Temporary,
                        "the server did not answer for " + std::to_string(timeout_ms_ / 1000) + " s", true);
        int slice = static_cast<int>(std::min<long long>(kStopPollMs, timeout_ms_ - waited));
        bool ready = conn_.wait(true, has_output(), slice);
        check_stop(last);
        charge(answered, mark, 0);
        if (ready) return;
    }
}

void Channel::pump(const std::function<void(std::string_view)>& sink, const std::function<bool()>& done) {
    // Per channel: a delivery target with a connection of its own (IMAP)
    // pumps its channel from inside this one's callbacks.
    auto& buf = buf_;
    if (buf.empty()) buf.resize(recv_size_);
    // Silence before the first byte of an answer is the timeout's business
    // alone; from then on the waiting counts against the minimum rate.
    bool answered = false;
    auto mark = Clock::now();
    auto last = mark;
    for (;;) {
        check_stop(last);
        bool progress = false;
        if (has_output()) {
            std::size_t n = conn_.try_send(std::string_view(out_).substr(out_pos_));
            out_pos_ += n;
            progress = n > 0;
        }
        for (;;) {
            bool eof = false;
            std::size_t n = conn_.try_recv(buf.data(), buf.size(), eof);
            if (n > 0) {
                progress = true;
                charge(answered, mark, n);
                answered = true;
                sink(std::string_view(buf.data(), n));
                mark = Clock::now();  // delivering is not waiting for the server
                if (done()) return;
                check_stop(last);
                continue;
            }
            if (eof) {
                if (done()) return;
                throw Error(ErrorKind::Temporary, "the server closed the connection unexpectedly", true);
            }
            break;
        }
        if (done()) return;
        if (progress) continue;
        wait_for_io(answered, mark);
    }
}

}  // namespace pullmail
