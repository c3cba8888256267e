#include "sasl.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>

#include "error.h"
#include "secrets.h"
#include "text_util.h"

namespace pullmail {
namespace {

struct MethodName {
    AuthMethod method;
    const char* config;  // lower case, as configured
    const char* sasl;    // SASL mechanism name, or null for USER/APOP
};
constexpr std::array<MethodName, 7> kMethods{{
    {AuthMethod::User, "user", nullptr},
    {AuthMethod::Apop, "apop", nullptr},
    {AuthMethod::Plain, "plain", "PLAIN"},
    {AuthMethod::Login, "login", "LOGIN"},
    {AuthMethod::CramMd5, "cram-md5", "CRAM-MD5"},
    {AuthMethod::XOAuth2, "xoauth2", "XOAUTH2"},
    {AuthMethod::OAuthBearer, "oauthbearer", "OAUTHBEARER"},
}};

const char* sasl_name(AuthMethod m) {
    for (const auto& n : kMethods)
        if (n.method == m) return n.sasl;
    return nullptr;
}

std::string hex(const unsigned char* p, std::size_t n) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
        out += digits[p[i] >> 4];
        out += digits[p[i] & 15];
    }
    return out;
}

std::string trim_right(std::string_view s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return std::string(s);
}

// The capability words of an IMAP line: "* CAPABILITY a b", "* OK
// [CAPABILITY a b] ...", "TAG OK [CAPABILITY a b] ...". Empty if none.
std::optional<std::vector<std::string_view>> imap_capabilities(std::string_view line) {
    auto w = split_words(line);
    if (w.size() >= 2 && w[0] == "*" && ascii_iequals(w[1], "CAPABILITY"))
        return std::vector<std::string_view>(w.begin() + 2, w.end());
    auto at = line.find("[CAPABILITY ");
    if (at == std::string_view::npos) at = line.find("[capability ");
    if (at == std::string_view::npos) return std::nullopt;
    auto rest = line.substr(at + 12);
    auto close = rest.find(']');
    return split_words(rest.substr(0, close));
}

void add_imap_caps(ServerOffer& o, const std::vector<std::string_view>& caps) {
    o.sasl.clear();
    o.user_command = true;
    o.sasl_ir = o.literal_plus = false;
    for (auto c : caps) {
        std::string u = ascii_upper(c);
        if (u.starts_with("AUTH=")) o.sasl.insert(u.substr(5));
        if (u == "LOGINDISABLED") o.user_command = false;
        if (u == "SASL-IR") o.sasl_ir = true;
        if (u == "LITERAL+") o.literal_plus = true;
    }
}

ServerOffer parse_pop3(const std::vector<std::string>& lines) {
    ServerOffer o;
    o.protocol = Protocol::Pop3;
    if (!lines.empty() && lines[0].starts_with("+OK")) {
        auto lt = lines[0].find('<');
        auto gt = lt == std::string::npos ? lt : lines[0].find('>', lt);
        if (gt != std::string::npos && lines[0].find('@', lt) < gt) o.apop_timestamp = lines[0].substr(lt, gt - lt + 1);
    }
    // The last CAPA listing: the lines between the last "." and the "+OK"
    // before it (after STLS libcurl asks again; the later listing counts).
    std::size_t end = lines.size();
    while (end > 1 && trim_right(lines[end - 1]) != ".") --end;
    if (end <= 1) return o;  // no listing: RFC 1939 USER, and APOP with a timestamp
    std::size_t begin = end - 1;
    while (begin > 1 && !lines[begin - 1].starts_with("+OK")) --begin;
    o.user_command = false;
    for (std::size_t i = begin; i + 1 < end; ++i) {
        const std::string line = trim_right(lines[i]);
        auto w = split_words(line);
        if (w.empty()) continue;
        std::string cap = ascii_upper(w[0]);
        if (cap == "USER") o.user_command = true;
        if (cap == "SASL")
            for (std::size_t k = 1; k < w.size(); ++k) o.sasl.insert(ascii_upper(w[k]));
    }
    return o;
}

}  // namespace

std::optional<AuthMethod> auth_method_from_name(std::string_view name) {
    if (name.empty() || ascii_iequals(name, "auto")) return AuthMethod::Auto;
    for (const auto& n : kMethods)
        if (ascii_iequals(name, n.config)) return n.method;
    return std::nullopt;
}

const char* auth_method_name(AuthMethod m) {
    for (const auto& n : kMethods)
        if (n.method == m) return n.config;
    return "auto";
}

bool is_oauth(AuthMethod m) { return m == AuthMethod::XOAuth2 || m == AuthMethod::OAuthBearer; }

bool ServerOffer::offers(AuthMethod m) const {
    if (m == AuthMethod::User) return user_command;
    if (m == AuthMethod::Apop) return protocol == Protocol::Pop3 && !apop_timestamp.empty();
    const char* s = sasl_name(m);
    return s && sasl.count(s);
}

std::string ServerOffer::describe() const {
    std::vector<std::string> names;
    for (const auto& n : kMethods)
        if (offers(n.method)) names.emplace_back(n.config);
    for (const auto& s : sasl)
        if (!std::any_of(kMethods.begin(), kMethods.end(), [&](const MethodName& n) { return n.sasl && s == n.sasl; }))
            names.push_back(ascii_lower(s) + " (not supported by pullmail)");
    if (names.empty()) return "none";
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

ServerOffer parse_offer(Protocol protocol, const std::vector<std::string>& lines) {
    if (protocol == Protocol::Pop3) return parse_pop3(lines);
    ServerOffer o;
    o.protocol = Protocol::Imap;
    for (const auto& l : lines)
        if (auto caps = imap_capabilities(l)) add_imap_caps(o, *caps);
    return o;
}

AuthMethod choose_auth_method(AuthMethod requested, const ServerOffer& offer, bool have_token, bool tls,
                              const std::string& where) {
    const std::string offered = " (the server offers: " + offer.describe() + ")";
    if (requested == AuthMethod::Apop && offer.protocol == Protocol::Imap)
        throw Error(ErrorKind::Config, "auth = \"apop\" is a POP3 method; " + where + " is an IMAP server" + offered);
    if (requested != AuthMethod::Auto) {
        if (!offer.offers(requested))
            throw Error(ErrorKind::Config, "auth = \"" + std::string(auth_method_name(requested)) + "\": " + where +
                                               " does not offer it" + offered);
        return requested;
    }
    std::vector<AuthMethod> order;
    if (have_token)
        order = {AuthMethod::OAuthBearer, AuthMethod::XOAuth2};
    else if (tls)
        order = {AuthMethod::Plain, AuthMethod::Login, AuthMethod::User, AuthMethod::CramMd5, AuthMethod::Apop};
    else
        order = {AuthMethod::CramMd5, AuthMethod::Apop};
    for (AuthMethod m : order)
        if (offer.offers(m)) return m;
    if (have_token)
        throw Error(ErrorKind::Config, where + " offers no OAuth2 login (XOAUTH2 or OAUTHBEARER)" + offered);
    if (!tls)
        throw Error(ErrorKind::Config, where + " offers no login that keeps the password secret without TLS; "
                                               "name a plaintext method with auth = only on a trusted network" +
                                           offered);
    throw Error(ErrorKind::Config, where + " offers no password login pullmail supports" + offered);
}

// --- payloads -------------------------------------------------------------

std::string base64_encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    std::size_t pad = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
        if (c == '=' && i + 2 >= text.size()) {
            ++pad;
            continue;
        }
        if (!alpha || pad) return std::nullopt;
    }
    std::string out(text.size() / 4 * 3 + 1, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
    if (n < 0) return std::nullopt;
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

std::string apop_digest(std::string_view timestamp, std::string_view password) {
    std::string data = std::string(timestamp) + std::string(password);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr);
    wipe(data);
    return hex(md, len);
}

std::string cram_md5_response(std::string_view user, std::string_view password, std::string_view challenge) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_md5(), password.data(), static_cast<int>(password.size()),
         reinterpret_cast<const unsigned char*>(challenge.data()), challenge.size(), md, &len);
    return std::string(user) + " " + hex(md, len);
}

std::string xoauth2_payload(std::string_view user, std::string_view token) {
    return "user=" + std::string(user) + "\x01" + "auth=Bearer " + std::string(token) + "\x01\x01";
}

std::string oauthbearer_payload(std::string_view user, std::string_view token, std::string_view host, int port) {
    // RFC 7628 3.1: gs2-header "n,a=USER," with ',' and '=' in the name
    // escaped (RFC 5801), then kvpairs separated by ^A.
    std::string authz;
    for (char c : user) {
        if (c == ',') authz += "=2C";
        else if (c == '=') authz += "=3D";
        else authz += c;
    }
    return "n,a=" + authz + ",\x01host=" + std::string(host) + "\x01port=" + std::to_string(port) +
           "\x01" + "auth=Bearer " + std::string(token) + "\x01\x01";
}

// --- the exchange -----------------------------------------------------------

namespace {

constexpr const char* kTag = "L1";
constexpr std::size_t kPop3MaxAuthLine = 255;  // RFC 5034 4: with CRLF

bool plain_quotable(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

// IMAP LOGIN's two astrings, as the segments to send: a synchronising
// literal ends a segment (the next goes after the server's "+").
std::vector<std::string> imap_login_segments(const std::string& user, const std::string& pass, bool literal_plus) {
    std::vector<std::string> segs{std::string(kTag) + " LOGIN"};
    for (const std::string* arg : {&user, &pass}) {
        if (plain_quotable(*arg)) {
            std::string q = " \"";
            for (char c : *arg) {
                if (c == '"' || c == '\\') q += '\\';
                q += c;
            }
            segs.back() += q + "\"";
        } else {
            segs.back() += " {" + std::to_string(arg->size()) + (literal_plus ? "+}\r\n" : "}\r\n");
            if (literal_plus)
                segs.back() += *arg;
            else
                segs.push_back(*arg);
        }
    }
    segs.back() += "\r\n";
    return segs;
}

}  // namespace

LoginExchange::LoginExchange(AuthMethod method, const ServerOffer& offer, std::string user, std::string secret,
                             std::string host, int port)
    : method_(method), offer_(offer), user_(std::move(user)), secret_(std::move(secret)), host_(std::move(host)),
      port_(port) {}

LoginExchange::~LoginExchange() {
    wipe(secret_);
    for (auto& s : pending_) wipe(s);
}

LoginExchange::Step LoginExchange::send(std::string bytes, std::string trace) {
    Step s;
    s.kind = Step::Kind::Send;
    s.bytes = std::move(bytes);
    s.trace = std::move(trace);
    return s;
}

std::string LoginExchange::initial_response() const {
    switch (method_) {
        case AuthMethod::Plain: return std::string("\0", 1) + user_ + std::string("\0", 1) + secret_;
        case AuthMethod::XOAuth2: return xoauth2_payload(user_, secret_);
        case AuthMethod::OAuthBearer: return oauthbearer_payload(user_, secret_, host_, port_);
        default: return {};
    }
}

LoginExchange::Step LoginExchange::start() {
    const bool pop3 = offer_.protocol == Protocol::Pop3;
    if (method_ == AuthMethod::User) {
        if (pop3) {
            phase_ = Phase::User;
            return send("USER " + user_ + "\r\n", "USER " + user_);
        }
        phase_ = Phase::Pass;
        pending_ = imap_login_segments(user_, secret_, offer_.literal_plus);
        std::string first = pending_.front();
        pending_.erase(pending_.begin());
        return send(std::move(first), std::string(kTag) + " LOGIN \"" + sanitize(user_, 100) + "\" ****");
    }
    if (method_ == AuthMethod::Apop) {
        phase_ = Phase::Pass;
        return send("APOP " + user_ + " " + apop_digest(offer_.apop_timestamp, secret_) + "\r\n",
                    "APOP " + user_ + " ****");
    }
    phase_ = Phase::Auth;
    const std::string mech = sasl_name(method_);
    const std::string cmd = pop3 ? "AUTH " + mech : std::string(kTag) + " AUTHENTICATE " + mech;
    std::string ir = initial_response();
    bool with_ir = !ir.empty() && (pop3 ? method_ != AuthMethod::XOAuth2 &&
                                              cmd.size() + 1 + 4 * ((ir.size() + 2) / 3) + 2 <= kPop3MaxAuthLine
                                        : offer_.sasl_ir);
    std::string line = with_ir ? cmd + " " + base64_encode(ir) + "\r\n" : cmd + "\r\n";
    wipe(ir);
    if (with_ir) challenges_ = 1;  // the first (empty) challenge is answered already
    return send(std::move(line), with_ir ? cmd + " ****" : cmd);
}

LoginExchange::Step LoginExchange::answer_challenge(std::string_view payload) {
    ++challenges_;
    std::optional<std::string> decoded = base64_decode(payload);
    if (!decoded) throw_protocol_error("the server sent a SASL challenge that is not base64", payload);
    std::string reply;
    if (is_oauth(method_) && challenges_ > 1) {
        // RFC 7628 3.2.3 (and Google's XOAUTH2): an error challenge, answered
        // with a dummy response; the failure reply follows.
        oauth_error_ = true;
        oauth_detail_ = *decoded;
        reply = method_ == AuthMethod::OAuthBearer ? "\x01" : "";
    } else if (method_ == AuthMethod::Login) {
        if (challenges_ > 2) throw_protocol_error("the server sent more SASL LOGIN challenges than user and password");
        reply = challenges_ == 1 ? user_ : secret_;
    } else if (method_ == AuthMethod::CramMd5) {
        if (challenges_ > 1) throw_protocol_error("the server sent a second CRAM-MD5 challenge");
        reply = cram_md5_response(user_, secret_, *decoded);
    } else {
        if (challenges_ > 1) throw_protocol_error("the server sent an unexpected SASL challenge", payload);
        reply = initial_response();
    }
    std::string line = base64_encode(reply) + "\r\n";
    wipe(reply);
    return send(std::move(line), "****");
}

bool refusal_is_temporary(std::string_view line) {
    // The code follows the status word: "-ERR [", or "tag NO [".
    auto words = split_words(line);
    std::size_t at = !words.empty() && words[0] == "-ERR" ? 1 : 2;
    if (words.size() <= at || !words[at].starts_with("[")) return false;
    std::string code = ascii_upper(words[at].substr(1));
    if (auto end = code.find(']'); end != std::string::npos) code.resize(end);
    for (const char* temporary : {"IN-USE", "LOGIN-DELAY", "SYS/TEMP", "UNAVAILABLE", "INUSE", "LIMIT"})
        if (code == temporary) return true;
    return false;
}

LoginExchange::Step LoginExchange::final_reply(std::string_view line, bool ok) {
    phase_ = Phase::Done;
    Step s;
    s.kind = ok ? Step::Kind::Done : Step::Kind::Refused;
    s.server = oauth_error_ ? trim_right(line) + " " + sanitize(oauth_detail_, 300) : trim_right(line);
    return s;
}

LoginExchange::Step LoginExchange::feed(std::string_view line) {
    if (phase_ == Phase::Fresh || phase_ == Phase::Done) throw_protocol_error("the server spoke out of turn", line);
    const bool pop3 = offer_.protocol == Protocol::Pop3;
    const bool continuation = line == "+" || line.starts_with("+ ");
    if (continuation) {
        std::string_view payload = line.size() > 2 ? line.substr(2) : std::string_view{};
        while (!payload.empty() && (payload.back() == ' ' || payload.back() == '\r')) payload.remove_suffix(1);
        if (!pending_.empty()) {  // IMAP LOGIN: the server is ready for the literal
            std::string seg = std::move(pending_.front());
            pending_.erase(pending_.begin());
            return send(std::move(seg), "****");
        }
        if (phase_ != Phase::Auth) throw_protocol_error("the server sent a continuation outside SASL", line);
        return answer_challenge(payload);
    }
    if (pop3) {
        bool ok = line.starts_with("+OK");
        if (!ok && !line.starts_with("-ERR")) throw_protocol_error("the server sent a malformed login reply", line);
        if (ok && phase_ == Phase::User) {
            phase_ = Phase::Pass;
            return send("PASS " + secret_ + "\r\n", "PASS ****");
        }
        return final_reply(line, ok);
    }
    if (line.starts_with("* ")) return Step{};  // untagged data (CAPABILITY) during login
    auto w = split_words(line);
    if (w.size() < 2 || w[0] != kTag) throw_protocol_error("the server sent an unexpected line during login", line);
    if (ascii_iequals(w[1], "OK")) return final_reply(line, true);
    if (ascii_iequals(w[1], "NO") || ascii_iequals(w[1], "BAD")) return final_reply(line, false);
    throw_protocol_error("the server sent a malformed login reply", line);
}

}  // namespace pullmail
