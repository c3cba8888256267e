#include "oauth2.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>
#include <vector>

#include "credentials.h"
#include "error.h"
#include "oauth2_store.h"
#include "secrets.h"
#include "trust_store.h"

namespace pullmail {
namespace {

using Form = std::vector<std::pair<std::string, std::string>>;
constexpr std::int64_t kAheadSeconds = 120;  // refresh this long before expiry
constexpr std::size_t kMaxReply = 1 << 20;

// Bounds of what a server may ask for: a token valid for at most a year, a
// device code for at most a day, polls at most a minute apart.
constexpr std::int64_t kMaxTokenSeconds = 366LL * 86400;
constexpr std::int64_t kMaxDeviceSeconds = 86400;
constexpr std::int64_t kMaxPollSeconds = 60;

std::int64_t now_seconds() { return static_cast<std::int64_t>(std::time(nullptr)); }

struct HttpReply {
    long status = 0;
    nlohmann::json json;  // discarded (null) when the body is not JSON
};

size_t collect_body(char* data, size_t size, size_t n, void* userp) {
    auto* body = static_cast<std::string*>(userp);
    if (body->size() + size * n > kMaxReply) return 0;
    body->append(data, size * n);
    return size * n;
}

// Verification as for the mail connections: libcurl's system CA locations
// through the shared store, peer and host name checked.
CURLcode ssl_ctx_cb(CURL*, void* sslctx, void* userp) {
    TrustError err;
    X509_STORE* store = shared_trust_store(*static_cast<TrustSources*>(userp), err);
    if (!store) return CURLE_SSL_CACERT_BADFILE;
    long ok = SSL_CTX_set1_verify_cert_store(static_cast<SSL_CTX*>(sslctx), store);
    X509_STORE_free(store);
    return ok == 1 ? CURLE_OK : CURLE_SSL_CACERT_BADFILE;
}

// POST an application/x-www-form-urlencoded form; the reply's JSON. Network
// and TLS failures are Error(Unreachable/Tls) naming the URL.
HttpReply post_form(const std::string& url, const std::string& proxy, const Form& form, int timeout_seconds) {
    std::string body;
    for (const auto& [k, v] : form) body += (body.empty() ? "" : "&") + form_escape(k) + "=" + form_escape(v);
    CURL* h = curl_easy_init();
    if (!h) throw Error(ErrorKind::Internal, "cannot initialise libcurl");
    TrustSources trust;
    char* f = nullptr;
    char* d = nullptr;
    if (curl_easy_getinfo(h, CURLINFO_CAINFO, &f) == CURLE_OK && f) trust.system_file = f;
    if (curl_easy_getinfo(h, CURLINFO_CAPATH, &d) == CURLE_OK && d) trust.system_dir = d;
    std::string reply;
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_slist* headers = curl_slist_append(nullptr, "Accept: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, static_cast<long>(timeout_seconds > 0 ? timeout_seconds : 30));
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_CAINFO, nullptr);
    curl_easy_setopt(h, CURLOPT_CAPATH, nullptr);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, &trust);
    // Like the mail connections (transport.cpp): never $https_proxy and
    // friends, only the account's proxy.
    curl_easy_setopt(h, CURLOPT_PROXY, proxy.c_str());
    if (!proxy.empty()) curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, 1L);
    CURLcode rc = curl_easy_perform(h);
    wipe(body);
    HttpReply r;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        wipe(reply);
        bool tls = rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_SSL_CACERT_BADFILE;
        throw Error(tls ? ErrorKind::Tls : ErrorKind::Unreachable,
                    "OAuth2 endpoint " + url + ": " + sanitize(errbuf[0] ? errbuf : curl_easy_strerror(rc), 200), !tls);
    }
    r.json = nlohmann::json::parse(reply, nullptr, false);
    wipe(reply);
    if (r.json.is_discarded() || !r.json.is_object())
        throw Error(ErrorKind::Protocol, "OAuth2 endpoint " + url + " answered HTTP " + std::to_string(r.status) +
                                             " without a JSON object");
    return r;
}

std::string json_string(const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::int64_t json_int(const nlohmann::json& j, const char* key, std::int64_t dflt) {
    auto it = j.find(key);
    if (it == j.end()) return dflt;
    if (it->is_number_unsigned()) return static_cast<std::int64_t>(std::min<std::uint64_t>(it->get<std::uint64_t>(), INT64_MAX));
    if (it->is_number_integer()) return it->get<std::int64_t>();
    if (it->is_string()) try { return std::stoll(it->get<std::string>()); } catch (...) {}
    return dflt;
}

std::int64_t clamped(const nlohmann::json& j, const char* key, std::int64_t dflt, std::int64_t lo, std::int64_t hi) {
    return std::clamp(json_int(j, key, dflt), lo, hi);
}

// The client_id and, for a confidential client, the secret (run through
// credentials.h: a command runs without secrets in its environment).
void add_client(Form& form, const OAuth2Client& c, const std::string& account, int timeout) {
    form.emplace_back("client_id", c.client_id);
    if (c.client_secret.kind != PasswordSource::Kind::None)
        form.emplace_back("client_secret", resolve_password(c.client_secret, account, timeout));
}

void wipe_form(Form& form) {
    for (auto& kv : form) wipe(kv.second);
}

// The token endpoint's answer to a grant: the tokens, or an error. A
// missing refresh_token in a refresh answer keeps the old one.
StoredGrant token_request(const OAuth2Client& c, const std::string& account, Form form, int timeout,
                          const std::string& keep_refresh, std::string* error_code = nullptr) {
    add_client(form, c, account, timeout);
    HttpReply r = post_form(c.token_url, c.proxy, form, timeout);
    wipe_form(form);
    std::string err = json_string(r.json, "error");
    if (!err.empty() || r.status != 200) {
        if (error_code) {
            *error_code = err;
            if (!err.empty()) return {};
        }
        if (err == "invalid_grant")
            throw Error(ErrorKind::Auth, "the OAuth2 refresh token was refused (revoked or expired): sign in again "
                                         "with: pullmail auth " + account);
        throw Error(ErrorKind::Auth, "the OAuth2 token endpoint " + c.token_url + " refused the request (HTTP " +
                                         std::to_string(r.status) + (err.empty() ? "" : ", " + sanitize(err, 60)) + ")");
    }
    StoredGrant g;
    g.access_token = json_string(r.json, "access_token");
    g.refresh_token = json_string(r.json, "refresh_token");
    if (g.refresh_token.empty()) g.refresh_token = keep_refresh;
    g.expires_at = now_seconds() + clamped(r.json, "expires_in", 3600, 0, kMaxTokenSeconds);
    r.json = nullptr;
    if (g.access_token.empty())
        throw Error(ErrorKind::Protocol, "the OAuth2 token endpoint " + c.token_url + " sent no access_token");
    return g;
}

std::string random_url_safe(std::size_t bytes) {
    std::vector<unsigned char> b(bytes);
    if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) throw Error(ErrorKind::Internal, "no random bytes");
    return base64url(b.data(), b.size());
}

void store(const OAuth2Client& c, StoredGrant& g, std::ostream& out, const std::string& account) {
    if (g.refresh_token.empty())
        throw Error(ErrorKind::Auth, "the OAuth2 token endpoint sent no refresh_token (for Google, the scope must "
                                     "be granted for offline access)");
    {
        GrantLock lock(c.store_path, 30);  // not in the middle of a refresh
        save_grant(c.store_path, g);
    }
    wipe(g.refresh_token);
    wipe(g.access_token);
    out << "pullmail: signed in; account '" << account << "' keeps its OAuth2 grant in " << c.store_path << "\n";
}

}  // namespace

std::string form_escape(const std::string& s) {
    static const char* hex = "0123456789ABCDEF";
    std::string o;
    for (unsigned char ch : s) {
        if (std::isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            o += static_cast<char>(ch);
        } else {
            o += '%';
            o += hex[ch >> 4];
            o += hex[ch & 15];
        }
    }
    return o;
}

std::string base64url(const unsigned char* data, std::size_t len) {
    static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string o;
    for (std::size_t i = 0; i < len; i += 3) {
        unsigned v = data[i] << 16 | (i + 1 < len ? data[i + 1] << 8 : 0) | (i + 2 < len ? data[i + 2] : 0);
        o += a[v >> 18 & 63];
        o += a[v >> 12 & 63];
        if (i + 1 < len) o += a[v >> 6 & 63];
        if (i + 2 < len) o += a[v & 63];
    }
    return o;
}

std::string query_value(const std::string& query, const std::string& key) {
    std::size_t pos = 0;
    while (pos <= query.size()) {
        std::size_t amp = query.find('&', pos);
        std::string part = query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
        std::size_t eq = part.find('=');
        if (part.substr(0, eq) == key && eq != std::string::npos) {
            std::string v;
            for (std::size_t i = eq + 1; i < part.size(); ++i) {
                if (part[i] == '+') v += ' ';
                else if (part[i] == '%' && i + 2 < part.size() + 0 && std::isxdigit(static_cast<unsigned char>(part[i + 1])) &&
                         std::isxdigit(static_cast<unsigned char>(part[i + 2]))) {
                    v += static_cast<char>(std::stoi(part.substr(i + 1, 2), nullptr, 16));
                    i += 2;
                } else v += part[i];
            }
            return v;
        }
        if (amp == std::string::npos) break;
        pos = amp + 1;
    }
    return {};
}

std::int64_t json_seconds(const std::string& json, const char* key, std::int64_t dflt, std::int64_t lo,
                          std::int64_t hi) {
    nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
    return j.is_object() ? clamped(j, key, dflt, lo, hi) : dflt;
}

std::string oauth2_access_token(const OAuth2Client& c, const std::string& account, int timeout, bool force) {
    // Read under the lock: a token another process saved while we waited
    // for it wins, and a rotated refresh token is never posted twice.
    GrantLock lock(c.store_path, timeout);
    StoredGrant g;
    if (!load_grant(c.store_path, g))
        throw Error(ErrorKind::Auth, "not signed in with OAuth2 yet (no " + c.store_path + "): run pullmail auth " +
                                         account);
    if (!force && !g.access_token.empty() && g.expires_at - kAheadSeconds > now_seconds()) {
        wipe(g.refresh_token);
        return g.access_token;
    }
    StoredGrant fresh = token_request(c, account, {{"grant_type", "refresh_token"}, {"refresh_token", g.refresh_token}},
                                      timeout, g.refresh_token);
    wipe(g.refresh_token);
    wipe(g.access_token);
    save_grant(c.store_path, fresh);  // a rotated refresh token replaces the old one
    wipe(fresh.refresh_token);
    return fresh.access_token;
}

namespace {

void device_flow(const OAuth2Client& c, const std::string& account, std::ostream& out) {
    if (c.device_url.empty())
        throw Error(ErrorKind::Config, "the oauth2 table of account '" + account + "' has no device_url");
    Form form{{"scope", c.scope}};
    form.emplace_back("client_id", c.client_id);
    HttpReply r = post_form(c.device_url, c.proxy, form, 30);
    std::string device_code = json_string(r.json, "device_code");
    std::string user_code = json_string(r.json, "user_code");
    std::string uri = json_string(r.json, "verification_uri");
    if (uri.empty()) uri = json_string(r.json, "verification_url");  // Google's spelling
    if (device_code.empty() || user_code.empty() || uri.empty())
        throw Error(ErrorKind::Protocol, "the OAuth2 device endpoint " + c.device_url + " refused the request (" +
                                             sanitize(json_string(r.json, "error"), 60) + ")");
    std::int64_t interval = clamped(r.json, "interval", 5, 1, kMaxPollSeconds);
    std::int64_t deadline = now_seconds() + clamped(r.json, "expires_in", 900, 1, kMaxDeviceSeconds);
    out << "To sign in account '" << account << "', open " << sanitize(uri, 300) << " and enter the code "
        << sanitize(user_code, 40) << "\n" << std::flush;
    while (now_seconds() < deadline) {
        std::this_thread::sleep_for(std::chrono::seconds(interval));
        std::string err;
        StoredGrant g = token_request(c, account,
                                      {{"grant_type", "urn:ietf:params:oauth:grant-type:device_code"},
                                       {"device_code", device_code}},
                                      30, "", &err);
        if (err == "authorization_pending") continue;
        if (err == "slow_down") {
            interval = std::min<std::int64_t>(interval + 5, kMaxPollSeconds);  // RFC 8628 section 3.5
            continue;
        }
        if (!err.empty())
            throw Error(ErrorKind::Auth, "sign-in of account '" + account + "' failed: " + sanitize(err, 60));
        wipe(device_code);
        return store(c, g, out, account);
    }
    throw Error(ErrorKind::Auth, "the device code expired before the sign-in of account '" + account + "' was approved");
}

// A listener on 127.0.0.1, an ephemeral port.
int listen_loopback(int& port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        if (fd >= 0) ::close(fd);
        throw Error(ErrorKind::LocalIO, "cannot listen on 127.0.0.1 for the OAuth2 redirect");
    }
    port = ntohs(a.sin_port);
    return fd;
}

// The query of the first request with a code or an error, answered with a
// short page; other requests (a favicon) get 404.
std::string accept_redirect(int fd) {
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 600 * 1000) <= 0)
            throw Error(ErrorKind::Auth, "no redirect from the browser within 10 minutes");
        int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        std::string req;
        char buf[4096];
        while (req.find("\r\n") == std::string::npos && req.size() < 16384) {
            pollfd q{c, POLLIN, 0};
            if (::poll(&q, 1, 10000) <= 0) break;
            ssize_t n = ::read(c, buf, sizeof buf);
            if (n <= 0) break;
            req.append(buf, static_cast<std::size_t>(n));
        }
        std::string line = req.substr(0, req.find("\r\n"));
        wipe(req);
        std::size_t q = line.find('?');
        std::size_t sp = line.find(' ', q == std::string::npos ? 0 : q);
        std::string query = q == std::string::npos ? "" : line.substr(q + 1, sp == std::string::npos ? sp : sp - q - 1);
        wipe(line);
        bool ours = !query_value(query, "code").empty() || !query_value(query, "error").empty();
        std::string page = ours ? "pullmail: sign-in received; you can close this window.\n" : "not found\n";
        std::string resp = std::string(ours ? "HTTP/1.1 200 OK" : "HTTP/1.1 404 Not Found") +
                           "\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: " +
                           std::to_string(page.size()) + "\r\n\r\n" + page;
        (void)!::write(c, resp.data(), resp.size());
        ::close(c);
        if (ours) return query;
    }
}

void browser_flow(const OAuth2Client& c, const std::string& account, bool paste, std::istream& in,
                  std::ostream& out) {
    if (c.auth_url.empty())
        throw Error(ErrorKind::Config, "the oauth2 table of account '" + account + "' has no auth_url");
    int port = 0;
    int fd = paste ? -1 : listen_loopback(port);
    // Paste mode: a redirect to a loopback port nothing listens on; the
    // browser shows an error page whose address the user copies.
    std::string redirect = "http://127.0.0.1:" + std::to_string(paste ? 1 : port) + "/";
    std::string verifier = random_url_safe(32);
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(verifier.data()), verifier.size(), digest);
    std::string state = random_url_safe(16);
    std::string url = c.auth_url + (c.auth_url.find('?') == std::string::npos ? "?" : "&") +
                      "response_type=code&client_id=" + form_escape(c.client_id) + "&redirect_uri=" +
                      form_escape(redirect) + "&scope=" + form_escape(c.scope) + "&state=" + state +
                      "&code_challenge=" + base64url(digest, sizeof digest) +
                      "&code_challenge_method=S256&access_type=offline&prompt=consent";
    out << "To sign in account '" << account << "', open this address in a browser:\n" << url << "\n";
    if (paste) out << "then paste here the address the browser ends up on (it starts with " << redirect << "):\n";
    out << std::flush;
    std::string query;
    if (paste) {
        std::string line;
        if (!std::getline(in, line)) throw Error(ErrorKind::Auth, "no redirect address pasted");
        std::size_t q = line.find('?');
        query = q == std::string::npos ? line : line.substr(q + 1);
        wipe(line);
    } else {
        try {
            query = accept_redirect(fd);
        } catch (...) {
            ::close(fd);
            throw;
        }
        ::close(fd);
    }
    if (query_value(query, "state") != state)
        throw Error(ErrorKind::Auth, "the redirect's state does not match this sign-in (a stale or forged redirect)");
    std::string err = query_value(query, "error");
    if (!err.empty()) throw Error(ErrorKind::Auth, "sign-in of account '" + account + "' refused: " + sanitize(err, 60));
    std::string code = query_value(query, "code");
    wipe(query);
    StoredGrant g = token_request(c, account,
                                  {{"grant_type", "authorization_code"}, {"code", code},
                                   {"redirect_uri", redirect}, {"code_verifier", verifier}},
                                  30, "");
    wipe(code);
    store(c, g, out, account);
}

}  // namespace

void oauth2_sign_in(const OAuth2Client& c, const std::string& account, SignInFlow flow, std::istream& in,
                    std::ostream& out) {
    if (flow == SignInFlow::Default)
        flow = c.provider == "microsoft" || (c.provider == "custom" && !c.device_url.empty()) ? SignInFlow::Device
                                                                                               : SignInFlow::Browser;
    if (flow == SignInFlow::Device) return device_flow(c, account, out);
    browser_flow(c, account, flow == SignInFlow::Paste, in, out);
}

}  // namespace pullmail
