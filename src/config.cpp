// config.cpp — TOML and command-line configuration, validated up front.
//
// Every rule lives here so that nothing later in a run has to re-check a
// setting: a Config that exists is complete and consistent. Error positions
// come from toml++ source regions; value errors point at the value, unknown
// keys at the key, missing keys at the table that lacks them.
#include "config.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <span>
#include <sstream>
#include <string_view>

#include <curl/curl.h>
#include <toml++/toml.h>

#include "error.h"
#include "text_util.h"
#include "secret_file.h"

namespace pullmail {

namespace {

[[noreturn]] void fail(const std::string& where, const std::string& message) {
    throw Error(ErrorKind::Config, where + ": " + message);
}

std::string to_lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string to_upper(std::string s) {
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

// " (did you mean 'keep'?)" for the closest known key, or "" when nothing is
// close enough to be a plausible typo (at most 2 edits, and fewer than half
// the letters of the key).
std::string suggestion(std::string_view key, std::span<const std::string_view> known) {
    std::string_view best;
    std::size_t best_distance = 3;
    for (std::string_view k : known) {
        std::size_t d = edit_distance(to_lower(std::string(key)), k);
        if (d < best_distance && d * 2 < std::max(key.size(), k.size())) {
            best = k;
            best_distance = d;
        }
    }
    return best.empty() ? "" : " (did you mean '" + std::string(best) + "'?)";
}

bool has_control(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char ch) {
        auto c = static_cast<unsigned char>(ch);
        return c < 0x20 || c == 0x7f;
    });
}

// A folder name goes into IMAP commands; a CR or LF in it would let a config
// value inject commands, so control characters are refused here once.
void check_folder_name(std::string_view name, const std::string& where) {
    if (name.empty()) fail(where, "a folder name must not be empty");
    if (!valid_utf8(name)) fail(where, "folder name is not valid UTF-8");
    if (has_control(name)) fail(where, "folder name must not contain control characters");
}

// Folders compare case-sensitively, except INBOX, which IMAP defines as
// case-insensitive (RFC 3501 5.1).
std::string folder_identity(const std::string& name) {
    return to_upper(name) == "INBOX" ? "INBOX" : name;
}

std::string current_dir(const std::string& where) {
    std::vector<char> buf(4096);
    while (!::getcwd(buf.data(), buf.size())) {
        if (errno != ERANGE) fail(where, std::string("cannot determine the current directory: ") + std::strerror(errno));
        buf.resize(buf.size() * 2);
    }
    return buf.data();
}

// '~' expansion that refuses to leave a literal "~/..." behind (it would
// later be taken as a relative directory named "~").
std::string expand_or_fail(const std::string& path, const ConfigEnv& env, const std::string& where) {
    if ((path == "~" || path.starts_with("~/")) && env.get("HOME").empty())
        fail(where, "cannot expand '~': HOME is not set");
    return expand_home(path, env);
}

// Delivery paths are made absolute at load time so that the meaning of a
// relative path does not depend on where a later step happens to run.
std::string absolute_path(const std::string& path, const ConfigEnv& env, const std::string& where) {
    std::string p = expand_or_fail(path, env, where);
    if (!p.starts_with("/")) p = current_dir(where) + "/" + p;
    return p;
}

std::string percent_decode(std::string_view s, const std::string& where) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size()) fail(where, "incomplete %-escape in URL path");
        int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
        if (hi < 0 || lo < 0) fail(where, "invalid %-escape in URL path");
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

int default_port(Protocol p, TlsMode t) {
    if (p == Protocol::Pop3) return t == TlsMode::Implicit ? 995 : 110;
    if (p == Protocol::Smtp) return t == TlsMode::Implicit ? 465 : 25;
    if (p == Protocol::Lmtp) return 24;
    return t == TlsMode::Implicit ? 993 : 143;
}

// The URL part of parse_endpoint_url: everything but the tls setting. tls is
// left at the scheme's default.
Endpoint parse_url(const std::string& url, const std::string& where) {
    Endpoint ep;
    ep.url = url;
    auto sep = url.find("://");
    if (sep == std::string::npos)
        fail(where, "'" + url + "' is not a URL: expected pop3s://host, imaps://host, pop3://host or imap://host");
    std::string scheme = to_lower(url.substr(0, sep));
    if (scheme == "pop3" || scheme == "pop3s") {
        ep.protocol = Protocol::Pop3;
    } else if (scheme == "imap" || scheme == "imaps") {
        ep.protocol = Protocol::Imap;
    } else if (scheme == "smtp" || scheme == "smtps" || scheme == "lmtp") {
        ep.protocol = scheme == "lmtp" ? Protocol::Lmtp : Protocol::Smtp;  // delivery targets only
    } else {
        fail(where, "unknown URL scheme '" + url.substr(0, sep) + "': use pop3, pop3s, imap or imaps");
    }
    ep.tls = scheme.ends_with("s") ? TlsMode::Implicit : TlsMode::StartTls;
    if (scheme == "smtp") ep.tls = TlsMode::IfOffered;
    if (scheme == "lmtp") ep.tls = TlsMode::Off;

    std::string_view rest = std::string_view(url).substr(sep + 3);
    if (rest.find_first_of("?#") != std::string_view::npos)
        fail(where, "a URL query or fragment ('?', '#') is not supported; percent-encode them in folder names");
    auto slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (authority.find('@') != std::string_view::npos)
        fail(where, "credentials in the URL are not allowed: put the user in user = and the password in password_command");

    std::string_view port_text;
    bool has_port = false;
    if (authority.starts_with("[")) {
        auto close = authority.find(']');
        if (close == std::string_view::npos) fail(where, "unterminated IPv6 address '[' in URL");
        std::string_view v6 = authority.substr(1, close - 1);
        if (v6.find(':') == std::string_view::npos ||
            !std::all_of(v6.begin(), v6.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.'; }))
            fail(where, "invalid IPv6 address '[" + std::string(v6) + "]'");
        ep.host = v6;
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':') fail(where, "unexpected text after the IPv6 address");
            has_port = true;
            port_text = after.substr(1);
        }
    } else {
        auto colon = authority.find(':');
        ep.host = authority.substr(0, colon);
        if (colon != std::string_view::npos) {
            has_port = true;
            port_text = authority.substr(colon + 1);
        }
        if (ep.host.empty()) fail(where, "the URL has no host name");
        // Bytes >= 0x80 are let through for internationalised names.
        if (!std::all_of(ep.host.begin(), ep.host.end(), [](char ch) {
                auto c = static_cast<unsigned char>(ch);
                return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c >= 0x80;
            }))
            fail(where, "invalid host name '" + ep.host + "'");
    }

    if (has_port) {
        bool digits = !port_text.empty() && port_text.size() <= 5 &&
                      std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; });
        int port = 0;
        if (digits) std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (port < 1 || port > 65535)
            fail(where, "invalid port '" + std::string(port_text) + "': must be a number from 1 to 65535");
        ep.port = port;
    } else {
        ep.port = default_port(ep.protocol, ep.tls);
    }

    ep.path = percent_decode(path, where);
    return ep;
}

// Applies the tls setting to an endpoint fresh from parse_url. The scheme
// already says something about TLS; the setting may only narrow it, never
// contradict it, so that reading either one alone never misleads.
void apply_tls(Endpoint& ep, const std::string& tls_value, const std::string& where) {
    if (tls_value.empty()) return;
    std::string t = to_lower(tls_value);
    bool implicit_scheme = ep.tls == TlsMode::Implicit;
    if (ep.protocol == Protocol::Lmtp && t != "off")
        fail(where, "an LMTP target has no TLS (use a Unix socket or loopback); only tls = \"off\" is accepted");
    std::string plain = ep.protocol == Protocol::Pop3 ? "pop3" : ep.protocol == Protocol::Imap ? "imap" : "smtp";
    std::string secure = plain + "s";
    if (t == "implicit") {
        if (!implicit_scheme)
            fail(where, "tls = \"implicit\" contradicts " + plain + "://, which starts in plain text; use " + secure + "://");
    } else if (t == "starttls") {
        if (implicit_scheme)
            fail(where, "tls = \"starttls\" contradicts " + secure + "://, which is TLS from the first byte; use " + plain +
                            ":// for STARTTLS");
        ep.tls = TlsMode::StartTls;
    } else if (t == "off") {
        if (implicit_scheme)
            fail(where, "tls = \"off\" contradicts " + secure + "://; use " + plain + ":// for an unencrypted connection");
        ep.tls = TlsMode::Off;
    } else {
        fail(where, "unknown tls mode " + quoted(tls_value) + ": use \"implicit\", \"starttls\" or \"off\"");
    }
}

// A host that is this machine whatever the resolver says: "localhost", an
// IPv4 literal in 127.0.0.0/8, or "::1" (without brackets, as parse_url
// stores it). Nothing sent there leaves the machine.
bool is_loopback_host(std::string_view host) {
    if (to_lower(std::string(host)) == "localhost" || host == "::1") return true;
    if (!host.starts_with("127.")) return false;
    int parts = 0;
    std::size_t i = 0;
    while (i <= host.size()) {
        std::size_t end = host.find('.', i);
        if (end == std::string_view::npos) end = host.size();
        std::string_view part = host.substr(i, end - i);
        int v = -1;
        bool digits = !part.empty() && part.size() <= 3 &&
                      std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (!digits) return false;
        std::from_chars(part.data(), part.data() + part.size(), v);
        if (v > 255) return false;
        ++parts;
        i = end + 1;
    }
    return parts == 4;
}

// The login methods pullmail speaks itself (sasl.h), stored upper case;
// "auto" (the default) is stored empty.
std::string normalize_auth(const std::string& value, const std::string& where) {
    std::string m = to_upper(value);
    if (m == "AUTO") return {};
    static const char* const kNames[] = {"USER", "APOP", "PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "OAUTHBEARER"};
    if (std::none_of(std::begin(kNames), std::end(kNames), [&](const char* n) { return m == n; }))
        fail(where, quoted(value) + " is not a login method: use \"user\", \"apop\", \"plain\", \"login\", "
                    "\"cram-md5\", \"xoauth2\", \"oauthbearer\" or \"auto\"");
    return m;
}

// proxy = "socks5h://host:port", "socks5://", "socks4a://" or "http://"
// (CONNECT): handed to libcurl as it is.
std::string check_proxy(const std::string& value, const std::string& where) {
    static const char* const kSchemes[] = {"socks5h://", "socks5://", "socks4a://", "socks4://", "http://"};
    std::string lower = value;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (std::none_of(std::begin(kSchemes), std::end(kSchemes), [&](const char* s) { return lower.starts_with(s); }) ||
        lower.find("://") + 3 >= lower.size())
        fail(where, quoted(value) + " is not a proxy URL: use \"socks5h://HOST:PORT\" or \"http://HOST:PORT\"");
    if (value.find_first_of(" \t\r\n") != std::string::npos) fail(where, "must not contain white space");
    return value;
}

// The parts of an absolute URL that check_oauth2_url judges, as libcurl
// will read them when it connects; false when libcurl cannot parse it.
struct UrlParts {
    std::string scheme, host;
    bool has_userinfo = false;
};

bool split_url(const std::string& value, UrlParts& out) {
    CURLU* u = curl_url();
    if (!u) throw Error(ErrorKind::Internal, "out of memory");
    bool ok = curl_url_set(u, CURLUPART_URL, value.c_str(), 0) == CURLUE_OK;
    auto part = [&](CURLUPart which, std::string& into) {
        char* p = nullptr;
        CURLUcode rc = curl_url_get(u, which, &p, 0);
        if (rc == CURLUE_OK && p) into = p;
        curl_free(p);
        return rc == CURLUE_OK;
    };
    std::string user, password;
    if (ok) ok = part(CURLUPART_SCHEME, out.scheme) && part(CURLUPART_HOST, out.host);
    if (ok) out.has_userinfo = part(CURLUPART_USER, user) || part(CURLUPART_PASSWORD, password);
    curl_url_cleanup(u);
    out.scheme = to_lower(out.scheme);
    out.host = to_lower(out.host);
    return ok;
}

// An OAuth2 endpoint: https, or http only when the host is exactly a
// loopback address (a test or local proxy server: nothing leaves the
// machine unencrypted). The URL is parsed as libcurl parses it, so that
// "http://127.0.0.1@evil.example/" is seen as going to evil.example.
std::string check_oauth2_url(const std::string& value, const std::string& where) {
    if (value.find_first_of(" \t\r\n") != std::string::npos) fail(where, "must not contain white space");
    UrlParts url;
    if (!split_url(value, url) || (url.scheme != "https" && url.scheme != "http"))
        fail(where, quoted(value) + " is not an https:// URL (http:// only to 127.0.0.1, [::1] or localhost)");
    if (url.has_userinfo) fail(where, "a user name or password in the URL is not allowed");
    std::string host = url.host;
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (url.scheme == "http" && !is_loopback_host(host))
        fail(where, quoted(value) + " is not an https:// URL (http:// only to 127.0.0.1, [::1] or localhost)");
    return value;
}

// An IMAP endpoint used as a delivery target: its path is the target folder.
void resolve_target_folder(Endpoint& ep, const std::string& where) {
    std::string folder = ep.path;
    if (folder.ends_with("/")) folder.pop_back();
    if (folder.empty()) folder = "INBOX";
    if (folder.starts_with("/") || folder.find("//") != std::string::npos)
        fail(where, "empty folder name in the URL path '" + ep.path + "'");
    check_folder_name(folder, where);
    ep.path = folder;
}

DeliveryTarget imap_target(Endpoint ep, const std::string& where) {
    if (ep.protocol == Protocol::Smtp || ep.protocol == Protocol::Lmtp) {
        if (!ep.path.empty()) fail(where, "an SMTP or LMTP URL has no path");
        DeliveryTarget t;
        t.kind = DeliveryTarget::Kind::Relay;
        t.relay = std::move(ep);
        return t;
    }
    if (ep.protocol != Protocol::Imap)
        fail(where, "cannot deliver to a POP3 server: a delivery URL must be imap:// or imaps://");
    resolve_target_folder(ep, where);
    DeliveryTarget t;
    t.kind = DeliveryTarget::Kind::Imap;
    t.path = ep.path;
    t.imap = std::move(ep);
    return t;
}

// ---------------------------------------------------------------------------
// TOML side

std::string type_phrase(toml::node_type t) {
    switch (t) {
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a floating-point number";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::date: return "a date";
        case toml::node_type::time: return "a time";
        case toml::node_type::date_time: return "a date-time";
        case toml::node_type::array: return "an array";
        case toml::node_type::table: return "a table";
        case toml::node_type::none: break;
    }
    return "nothing";
}

enum class Type { String, Bool, Int, StringArray, StringOrTable, Table, StringOrArray };

struct KeySpec {
    std::string_view name;
    Type type;
    std::int64_t min = 0, max = 0;  // Int only
};

constexpr std::int64_t kMaxSeconds = 86400;

// "12h", "30d", "2w" -> seconds; 0 for anything else (or beyond 100 years).
std::int64_t parse_duration(const std::string& s) {
    if (s.size() < 2 || s.size() > 8) return 0;
    std::int64_t unit = 0;
    switch (s.back()) {
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        case 'w': unit = 7 * 86400; break;
        default: return 0;
    }
    std::int64_t n = 0;
    for (std::size_t i = 0; i + 1 < s.size(); ++i) {
        if (s[i] < '0' || s[i] > '9') return 0;
        n = n * 10 + (s[i] - '0');
    }
    std::int64_t secs = n * unit;
    return secs > 100LL * 366 * 86400 ? 0 : secs;
}

// "20000", "500K", "10M", "1G" (1024-based) -> octets; 0 for anything else.
std::uint64_t parse_size(const std::string& s) {
    if (s.empty() || s.size() > 12) return 0;
    std::uint64_t unit = 1;
    std::size_t digits = s.size();
    switch (s.back()) {
        case 'K': case 'k': unit = 1ULL << 10; --digits; break;
        case 'M': case 'm': unit = 1ULL << 20; --digits; break;
        case 'G': case 'g': unit = 1ULL << 30; --digits; break;
        default: break;
    }
    if (digits == 0) return 0;
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < digits; ++i) {
        if (s[i] < '0' || s[i] > '9') return 0;
        n = n * 10 + static_cast<std::uint64_t>(s[i] - '0');
    }
    // At most 1 TiB whatever the unit, checked before multiplying (twelve
    // digits times 2^30 overflows 64 bits).
    constexpr std::uint64_t kMax = 1ULL << 40;
    return n > kMax / unit ? 0 : n * unit;
}

constexpr KeySpec kAccountKeys[] = {
    {"url", Type::String},
    {"user", Type::String},
    {"password", Type::String},
    {"password_command", Type::String},
    {"password_file", Type::String},
    {"deliver", Type::StringOrTable},
    {"keep", Type::Bool},
    {"enabled", Type::Bool},
    {"folders", Type::StringArray},
    {"ca_file", Type::String},
    {"tls", Type::String},
    {"auth", Type::String},
    {"oauth2_token_command", Type::String},
    {"oauth2", Type::Table},
    {"proxy", Type::String},
    {"received_header", Type::Bool},
    {"pipelining", Type::Bool},
    {"connections", Type::Int, 1, 16},
    {"connect_timeout", Type::Int, 1, kMaxSeconds},
    {"timeout", Type::Int, 1, kMaxSeconds},
    {"mda_timeout", Type::Int, 1, kMaxSeconds},
    {"min_rate", Type::Int, 0, 1 << 30},
    {"min_rate_window", Type::Int, 1, kMaxSeconds},
    {"run_timeout", Type::Int, 0, 7 * kMaxSeconds},
    {"delete_after", Type::String},
    {"max_size", Type::String},
    {"oversize", Type::String},
    {"max_messages", Type::Int, 0, 1 << 30},
    {"delete", Type::String},
    {"skip_special_use", Type::StringArray},
    {"recipient", Type::StringOrArray},
    {"poll_interval", Type::Int, 1, kMaxSeconds},
    {"idle", Type::Bool},
};

// The connection keys of an account, for deliver = { ... }.
constexpr KeySpec kTargetKeys[] = {
    {"url", Type::String},      {"user", Type::String},    {"password", Type::String},
    {"password_command", Type::String}, {"password_file", Type::String}, {"ca_file", Type::String},
    {"tls", Type::String},      {"auth", Type::String},    {"oauth2_token_command", Type::String},
    {"proxy", Type::String},
    {"connections", Type::Int, 1, 16},  // SMTP/LMTP targets only (deliver_smtp.h)
};

// An account's oauth2 = { ... } table (oauth2.h).
constexpr KeySpec kOAuth2Keys[] = {
    {"provider", Type::String},  {"client_id", Type::String}, {"client_secret", Type::String},
    {"client_secret_command", Type::String}, {"token_url", Type::String}, {"device_url", Type::String},
    {"auth_url", Type::String},  {"scope", Type::String},
};

constexpr KeySpec kTopKeys[] = {
    {"state_dir", Type::String},
    {"defaults", Type::Table},
    {"accounts", Type::Table},
};

constexpr std::string_view kPasswordKeys[] = {"password", "password_command", "password_file",
                                              "oauth2_token_command", "oauth2"};

bool is_password_key(std::string_view k) {
    return std::find(std::begin(kPasswordKeys), std::end(kPasswordKeys), k) != std::end(kPasswordKeys);
}

bool before(const toml::source_region& a, const toml::source_region& b) {
    return a.begin.line != b.begin.line ? a.begin.line < b.begin.line : a.begin.column < b.begin.column;
}

// One key of a table, checked for type and range.
struct Field {
    const toml::node* node = nullptr;
    toml::source_region key_source;
    std::string label;      // "accounts.home.keep", "defaults.keep (inherited by accounts.home)"
    bool inherited = false;
};

using Fields = std::map<std::string, Field, std::less<>>;

class Loader {
public:
    Loader(std::string file, const ConfigEnv& env) : file_(std::move(file)), env_(env) {}

    std::string at(const toml::source_region& r) const {
        return file_ + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
    }
    std::string where(const Field& f) const { return at(f.node->source()) + ": " + f.label; }
    std::string where(const toml::node& n, const std::string& label) const { return at(n.source()) + ": " + label; }

    // Checks every key of a table against specs; unknown keys, wrong types,
    // empty strings and out-of-range integers fail here.
    Fields collect(const toml::table& table, const std::string& label, std::span<const KeySpec> specs) const {
        std::vector<std::string_view> names;
        for (const auto& s : specs) names.push_back(s.name);
        Fields out;
        for (auto&& [key, node] : table) {
            std::string k(key.str());
            auto spec = std::find_if(specs.begin(), specs.end(), [&](const KeySpec& s) { return s.name == k; });
            if (spec == specs.end())
                fail(label.empty() ? at(key.source()) : at(key.source()) + ": " + label,
                     "unknown key '" + k + "'" + suggestion(k, names));
            Field f{&node, key.source(), label.empty() ? k : label + "." + k};
            check_type(*spec, f);
            out.emplace(k, std::move(f));
        }
        check_one_password_source(out, label);
        return out;
    }

    const std::string& str(const Field& f) const { return f.node->as_string()->get(); }

    Config load(const toml::table& root) {
        Config config;
        config.path = file_;
        Fields top = collect(root, "", kTopKeys);

        if (auto it = top.find("state_dir"); it != top.end())
            config.state_dir = expand_or_fail(str(it->second), env_, where(it->second));
        else
            config.state_dir = default_state_dir(env_);
        state_dir_ = config.state_dir;

        Fields defaults;
        if (auto it = top.find("defaults"); it != top.end())
            defaults = collect(*it->second.node->as_table(), "defaults", kAccountKeys);

        if (auto it = top.find("accounts"); it != top.end()) {
            const toml::table& accounts = *it->second.node->as_table();
            std::vector<std::pair<const toml::key*, const toml::node*>> order;
            for (auto&& [key, node] : accounts) order.emplace_back(&key, &node);
            // toml::table iterates in key order; users expect file order.
            std::sort(order.begin(), order.end(),
                      [](const auto& a, const auto& b) { return before(a.second->source(), b.second->source()); });
            for (auto [key, node] : order) config.accounts.push_back(account(*key, *node, defaults));
        }
        return config;
    }

private:
    void check_type(const KeySpec& spec, const Field& f) const {
        const toml::node& n = *f.node;
        auto wrong = [&](const char* expected) {
            fail(where(f), std::string("expected ") + expected + ", not " + type_phrase(n.type()));
        };
        switch (spec.type) {
            case Type::String:
                if (!n.is_string()) wrong("a string");
                check_string(n, f.label);
                break;
            case Type::Bool:
                if (!n.is_boolean()) wrong("true or false");
                break;
            case Type::Int: {
                if (!n.is_integer()) wrong("an integer");
                std::int64_t v = n.as_integer()->get();
                if (v < spec.min || v > spec.max)
                    fail(where(f), "must be from " + std::to_string(spec.min) + " to " + std::to_string(spec.max) + ", not " +
                                       std::to_string(v));
                break;
            }
            case Type::StringArray:
                if (!n.is_array()) wrong("an array of strings");
                for (const toml::node& e : *n.as_array()) {
                    if (!e.is_string())
                        fail(where(e, f.label), "expected an array of strings, found " + type_phrase(e.type()) + " in it");
                    check_string(e, f.label);
                }
                break;
            case Type::StringOrTable:
                if (!n.is_string() && !n.is_table()) wrong("a string or a table");
                if (n.is_string()) check_string(n, f.label);
                // Only deliver has this type; its table's keys are checked with
                // the rest of the file, before any missing key is reported.
                if (n.is_table()) collect(*n.as_table(), f.label, kTargetKeys);
                break;
            case Type::Table:
                if (!n.is_table()) wrong("a table");
                break;
            case Type::StringOrArray:
                if (n.is_string()) {
                    check_string(n, f.label);
                    break;
                }
                check_type(KeySpec{spec.name, Type::StringArray}, f);
                if (n.as_array()->empty()) fail(where(f), "must name at least one recipient");
                break;
        }
    }

    // A NUL would be cut off by every C interface the value is later handed to.
    void check_string(const toml::node& n, const std::string& label) const {
        const std::string& s = n.as_string()->get();
        if (s.empty()) fail(where(n, label), "must not be empty");
        if (s.find('\0') != std::string::npos) fail(where(n, label), "must not contain a NUL character");
    }

    void check_one_password_source(const Fields& fields, const std::string& label) const {
        std::vector<const Field*> found;
        std::vector<std::string> names;
        for (std::string_view k : kPasswordKeys) {
            if (auto it = fields.find(k); it != fields.end()) {
                found.push_back(&it->second);
                names.push_back(std::string(k));
            }
        }
        if (found.size() < 2) return;
        const Field* last = *std::max_element(found.begin(), found.end(),
                                              [](const Field* a, const Field* b) { return before(a->key_source, b->key_source); });
        std::string list = names[0];
        for (std::size_t i = 1; i < names.size(); ++i) list += (i + 1 == names.size() ? " and " : ", ") + names[i];
        fail(at(last->key_source) + ": " + label,
             list + (found.size() == 2 ? " are both set" : " are all set") + "; use exactly one password source");
    }

    // Account values win over [defaults]. The three password keys count as one
    // setting: an account naming any of them replaces the default source
    // rather than adding a second one.
    Fields merge(const Fields& own, const Fields& defaults, const std::string& label) const {
        Fields merged = own;
        bool own_password = std::any_of(own.begin(), own.end(), [](const auto& kv) { return is_password_key(kv.first); });
        for (const auto& [k, f] : defaults) {
            if (merged.count(k) || (own_password && is_password_key(k))) continue;
            Field inherited = f;
            inherited.inherited = true;
            inherited.label += " (inherited by " + label + ")";
            merged.emplace(k, std::move(inherited));
        }
        return merged;
    }

    const Field& require(const Fields& fields, std::string_view key, const toml::node& table, const std::string& label) const {
        auto it = fields.find(key);
        if (it == fields.end()) fail(where(table, label), "missing required key '" + std::string(key) + "'");
        return it->second;
    }

    // Fills user, password and auth of an endpoint; shared by
    // accounts and deliver = { ... }.
    void credentials(Endpoint& ep, const Fields& fields, const toml::node& table, const std::string& label) const {
        ep.user = str(require(fields, "user", table, label));
        if (has_control(ep.user)) fail(where(fields.at("user")), "must not contain control characters");
        auto get = [&](std::string_view k) -> const Field* {
            auto it = fields.find(k);
            return it == fields.end() ? nullptr : &it->second;
        };
        if (const Field* f = get("password")) {
            if (str(*f).find_first_of("\r\n") != std::string::npos) fail(where(*f), "must not contain a line break");
            ep.password = {PasswordSource::Kind::Literal, str(*f)};
        } else if (const Field* c = get("password_command")) {
            ep.password = {PasswordSource::Kind::Command, str(*c)};
        } else if (const Field* p = get("password_file")) {
            ep.password = {PasswordSource::Kind::File, expand_or_fail(str(*p), env_, where(*p))};
        } else if (const Field* t = get("oauth2_token_command")) {
            ep.password = {PasswordSource::Kind::Command, str(*t)};
            ep.oauth2 = true;
        } else if (const Field* o = get("oauth2")) {
            ep.password = {PasswordSource::Kind::OAuth2, label.substr(label.find('.') + 1), nullptr};
            OAuth2Client client = oauth2_client(*o, ep.password.value);
            client.proxy = ep.proxy;  // endpoint() has set it
            ep.password.client = std::make_shared<const OAuth2Client>(std::move(client));
            ep.oauth2 = true;
        } else {
            fail(where(table, label), "no password source: set one of password, password_command, password_file "
                                      "or oauth2_token_command");
        }
        if (auto it = fields.find("auth"); it != fields.end()) ep.auth = normalize_auth(str(it->second), where(it->second));
    }

    // The oauth2 table of account `name`: provider endpoints and scope filled in.
    OAuth2Client oauth2_client(const Field& f, const std::string& name) const {
        Fields o = collect(*f.node->as_table(), f.label, kOAuth2Keys);
        auto at_key = [&](std::string_view k) -> const Field& { return o.find(k)->second; };
        auto get = [&](std::string_view k) -> std::string {
            auto it = o.find(k);
            return it == o.end() ? std::string() : str(it->second);
        };
        OAuth2Client c;
        c.provider = get("provider");
        c.client_id = get("client_id");
        if (c.provider != "google" && c.provider != "microsoft" && c.provider != "custom")
            fail(where(f), "oauth2 needs provider = \"google\", \"microsoft\" or \"custom\"");
        if (c.client_id.empty()) fail(where(f), "oauth2 needs client_id (the client you registered)");
        if (o.count("client_secret") && o.count("client_secret_command"))
            fail(where(at_key("client_secret")), "client_secret and client_secret_command are both set; use one");
        if (o.count("client_secret")) c.client_secret = {PasswordSource::Kind::Literal, get("client_secret"), nullptr};
        if (o.count("client_secret_command"))
            c.client_secret = {PasswordSource::Kind::Command, get("client_secret_command"), nullptr};
        for (std::string_view k : {"token_url", "device_url", "auth_url"})
            if (o.count(k) && c.provider != "custom")
                fail(where(at_key(k)), "the endpoints of provider = \"" + c.provider + "\" are built in; " +
                                         std::string(k) + " is for provider = \"custom\"");
        if (c.provider == "google") {
            c.auth_url = "https://accounts.google.com/o/oauth2/v2/auth";
            c.token_url = "https://oauth2.googleapis.com/token";
            c.scope = "https://mail.google.com/";
        } else if (c.provider == "microsoft") {
            const std::string base = "https://login.microsoftonline.com/common/oauth2/v2.0/";
            c.auth_url = base + "authorize";
            c.token_url = base + "token";
            c.device_url = base + "devicecode";
            c.scope = "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/POP.AccessAsUser.All "
                      "offline_access";
        } else {
            for (std::string_view k : {"token_url", "device_url", "auth_url"})
                if (o.count(k)) (k == "token_url" ? c.token_url : k == "device_url" ? c.device_url : c.auth_url) =
                                    check_oauth2_url(get(k), where(at_key(k)));
            if (c.token_url.empty()) fail(where(f), "provider = \"custom\" needs token_url");
            if (c.device_url.empty() && c.auth_url.empty())
                fail(where(f), "provider = \"custom\" needs device_url or auth_url (how to sign in)");
        }
        if (o.count("scope")) c.scope = get("scope");
        c.store_path = state_dir_ + "/" + name + ".oauth2";
        return c;
    }

    Endpoint endpoint(const Fields& fields, const toml::node& table, const std::string& label) const {
        const Field& url = require(fields, "url", table, label);
        Endpoint ep = parse_url(str(url), where(url));
        if (auto it = fields.find("tls"); it != fields.end()) apply_tls(ep, str(it->second), where(it->second));
        // The keys that are no credentials: for every endpoint, so that a
        // relay without a user still goes through its proxy.
        if (auto it = fields.find("proxy"); it != fields.end()) ep.proxy = check_proxy(str(it->second), where(it->second));
        if (auto it = fields.find("ca_file"); it != fields.end())
            ep.ca_file = expand_or_fail(str(it->second), env_, where(it->second));
        return ep;
    }

    // libcurl logs in to an SMTP relay with whatever the EHLO reply allows:
    // with a user, STARTTLS must be required (an attacker could strip it from
    // the reply and read the password), and tls = "off" is for loopback only.
    void relay_login_tls(Endpoint& ep, const Fields& fields) const {
        if (ep.tls == TlsMode::IfOffered) ep.tls = TlsMode::StartTls;
        if (ep.tls == TlsMode::Off && !is_loopback_host(ep.host))
            fail(where(fields.at("tls")), "tls = \"off\" with user = would send the password in clear to " +
                                              ep.display() + "; use STARTTLS (no tls setting), smtps:// or a "
                                              "loopback address");
    }

    // connections = n of a deliver table: 0 (the default) when not given.
    int relay_connections(const Fields& fields, bool relay) const {
        auto it = fields.find("connections");
        if (it == fields.end()) return 0;
        if (!relay) fail(where(it->second), "connections here is only for smtp://, smtps:// and lmtp: targets");
        return static_cast<int>(it->second.node->as_integer()->get());
    }

    DeliveryTarget delivery(const Field& f) const {
        if (f.node->is_string()) {
            DeliveryTarget t = parse_delivery(str(f), where(f), env_);
            if (t.kind == DeliveryTarget::Kind::Imap)
                fail(where(f), "IMAP delivery needs user and a password source: use the table form "
                               "deliver = { url = ..., user = ..., password_command = ... }");
            return t;
        }
        std::string label = f.label;
        if (f.inherited) label = label.substr(0, label.find(' '));
        const toml::node& table = *f.node;
        Fields fields = collect(*table.as_table(), label, kTargetKeys);
        const Field& url = require(fields, "url", table, label);
        std::string lower_url = ascii_lower(str(url));
        if (lower_url.starts_with("lmtp:") && !lower_url.starts_with("lmtp://")) {
            // A Unix socket: no credentials, TLS or proxy, only connections.
            for (const auto& [k, v] : fields)
                if (k != "url" && k != "connections") fail(where(v), k + " is not for an lmtp: socket target");
            DeliveryTarget t = parse_delivery(str(url), where(url), env_);
            t.relay_connections = relay_connections(fields, true);
            return t;
        }
        Endpoint ep = endpoint(fields, table, label);
        bool relay = ep.protocol == Protocol::Smtp || ep.protocol == Protocol::Lmtp;
        // A relay authenticates only when given a user (and then needs a
        // password source, as an account does).
        if (relay) {
            // libcurl logs in to a relay and picks the mechanism itself:
            // refuse what it would silently ignore.
            for (std::string_view k : {"auth", "oauth2_token_command"})
                if (fields.count(k))
                    fail(where(fields.at(std::string(k))),
                         std::string(k) + " is not supported for an SMTP relay (libcurl chooses among the mechanisms "
                                          "the server offers, after STARTTLS); use password, password_command or "
                                          "password_file");
        }
        if (relay && !fields.count("user")) {
            for (std::string_view k : kPasswordKeys)
                if (fields.count(k)) fail(where(fields.at(std::string(k))), "a password needs user = as well");
        } else {
            credentials(ep, fields, table, label);
        }
        if (ep.protocol == Protocol::Lmtp && !ep.user.empty()) fail(where(table, label), "LMTP has no authentication");
        if (relay && !ep.user.empty()) relay_login_tls(ep, fields);
        int connections = relay_connections(fields, relay);
        DeliveryTarget t = imap_target(std::move(ep), where(url));
        t.relay_connections = connections;
        return t;
    }

    Account account(const toml::key& key, const toml::node& node, const Fields& defaults) const {
        std::string name(key.str());
        bool good_name = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
        });
        // Names become state file names: no '/', no spaces, nothing to quote.
        if (!good_name || name == "." || name == "..")
            fail(at(key.source()) + ": accounts." + quoted(name),
                 "invalid account name: use only letters A-Z a-z, digits, '.', '_' and '-'");
        std::string label = "accounts." + name;
        if (!node.is_table()) fail(where(node, label), "expected a table, not " + type_phrase(node.type()));

        Fields fields = merge(collect(*node.as_table(), label, kAccountKeys), defaults, label);

        Account a;
        a.name = name;
        a.source = file_ + ":" + std::to_string(node.source().begin.line);
        a.server = endpoint(fields, node, label);
        if (a.server.protocol != Protocol::Pop3 && a.server.protocol != Protocol::Imap)
            fail(where(fields.at("url")), "an account fetches from pop3(s):// or imap(s)://; smtp and lmtp are for deliver");
        if (!a.server.path.empty()) {
            const Field& url = fields.at("url");
            if (a.server.protocol == Protocol::Pop3) fail(where(url), "a POP3 URL has no path");
            fail(where(url), "an IMAP account URL has no path: use folders = [...] to choose folders");
        }
        credentials(a.server, fields, node, label);

        if (auto it = fields.find("folders"); it != fields.end()) {
            const Field& f = it->second;
            if (a.server.protocol == Protocol::Imap) {
                a.folders = folders(f);
            } else if (!f.inherited) {
                // Inherited folders are meant for the IMAP accounts among several.
                fail(where(f), "folders is for IMAP accounts; a POP3 server has only one mailbox");
            }
        }

        a.deliver = delivery(require(fields, "deliver", node, label));
        recipients(a.deliver, fields, node, label);

        auto flag = [&](std::string_view k, bool& out) {
            if (auto it = fields.find(k); it != fields.end()) out = it->second.node->as_boolean()->get();
        };
        auto number = [&](std::string_view k, int& out) {
            if (auto it = fields.find(k); it != fields.end()) out = static_cast<int>(it->second.node->as_integer()->get());
        };
        flag("keep", a.keep);
        flag("enabled", a.enabled);
        flag("received_header", a.received_header);
        flag("pipelining", a.pipelining);
        number("connections", a.connections);
        number("connect_timeout", a.connect_timeout);
        number("timeout", a.timeout);
        number("mda_timeout", a.mda_timeout);
        number("min_rate", a.min_rate);
        number("min_rate_window", a.min_rate_window);
        number("run_timeout", a.run_timeout);
        number("max_messages", a.max_messages);
        retention(fields, a);
        provider_quirks(fields, a);
        number("poll_interval", a.poll_interval);
        flag("idle", a.idle);
        return a;
    }

    // delete_after, max_size and oversize (sync_plan.h has their rules).
    void retention(const Fields& fields, Account& a) const {
        if (auto it = fields.find("delete_after"); it != fields.end()) {
            a.delete_after = parse_duration(str(it->second));
            if (a.delete_after <= 0)
                fail(where(it->second), "must be a duration such as \"30d\", \"12h\" or \"2w\" (a whole number of "
                                        "hours, days or weeks, at least 1h and at most 100 years)");
        }
        if (auto it = fields.find("max_size"); it != fields.end()) {
            a.max_size = parse_size(str(it->second));
            if (a.max_size == 0)
                fail(where(it->second), "must be a size such as \"10M\", \"500K\", \"1G\" or \"20000\" (bytes; "
                                        "K, M, G are 1024, 1024^2, 1024^3; at least 1, at most 1024G)");
        }
        if (auto it = fields.find("oversize"); it != fields.end()) {
            const std::string& v = str(it->second);
            if (v == "skip") a.oversize = Oversize::Skip;
            else if (v == "headers") a.oversize = Oversize::Headers;
            else if (v == "delete") a.oversize = Oversize::Delete;
            else fail(where(it->second), "must be \"skip\", \"headers\" or \"delete\", not " + quoted(v));
        }
    }

    // delete = "expunge" | "trash"; skip_special_use = ["all", ...].
    void provider_quirks(const Fields& fields, Account& a) const {
        if (auto it = fields.find("delete"); it != fields.end()) {
            const std::string& v = str(it->second);
            if (v == "trash") a.delete_mode = Account::DeleteMode::Trash;
            else if (v != "expunge") fail(where(it->second), "must be \"expunge\" or \"trash\", not " + quoted(v));
        }
        if (auto it = fields.find("skip_special_use"); it != fields.end()) {
            a.skip_special_use.clear();
            for (const toml::node& e : *it->second.node->as_array()) {
                std::string v = ascii_lower(e.as_string()->get());
                if (v.rfind('\\', 0) == 0) v.erase(0, 1);
                static const char* kKnown[] = {"all", "archive", "drafts", "flagged", "junk", "sent", "trash", "important"};
                if (std::find(std::begin(kKnown), std::end(kKnown), v) == std::end(kKnown))
                    fail(where(e, it->second.label), "unknown SPECIAL-USE attribute " + quoted(e.as_string()->get()) +
                                                         " (known: all, archive, drafts, flagged, important, junk, sent, trash)");
                a.skip_special_use.push_back(v);
            }
        }
    }

    // recipient = "a@x" or ["a@x", "b@y"]: the envelope of a relay target,
    // required there and meaningless elsewhere.
    void recipients(DeliveryTarget& t, const Fields& fields, const toml::node& table, const std::string& label) const {
        auto it = fields.find("recipient");
        if (t.kind != DeliveryTarget::Kind::Relay) {
            if (it != fields.end() && !it->second.inherited)
                fail(where(it->second), "recipient is only for smtp:// and lmtp: delivery targets");
            return;
        }
        if (it == fields.end())
            fail(where(table, label), "missing required key 'recipient' (the envelope recipient of an SMTP or LMTP target)");
        std::vector<const toml::node*> nodes;
        if (it->second.node->is_string())
            nodes.push_back(it->second.node);
        else
            for (const toml::node& e : *it->second.node->as_array()) nodes.push_back(&e);
        for (const toml::node* n : nodes) {
            const std::string& r = n->as_string()->get();
            bool bad = std::any_of(r.begin(), r.end(), [](char c) {
                auto u = static_cast<unsigned char>(c);
                return u <= 0x20 || u == 0x7f || c == '<' || c == '>';
            });
            if (bad) fail(where(*n, it->second.label), quoted(r) + " is not a mail address (no spaces, control characters or <>)");
            t.recipients.push_back(r);
        }
    }

    std::vector<std::string> folders(const Field& f) const {
        const toml::array& arr = *f.node->as_array();
        if (arr.empty()) fail(where(f), "must list at least one folder (the default is [\"INBOX\"])");
        std::vector<std::string> out;
        std::vector<std::string> seen;
        for (const toml::node& e : arr) {
            const std::string& name = e.as_string()->get();
            check_folder_name(name, where(e, f.label));
            std::string id = folder_identity(name);
            if (std::find(seen.begin(), seen.end(), id) != seen.end())
                fail(where(e, f.label), "folder " + quoted(name) + " is listed twice");
            seen.push_back(id);
            out.push_back(name);
        }
        return out;
    }

    std::string file_;
    const ConfigEnv& env_;
    std::string state_dir_;  // where the oauth2 grants are kept
};

// Env password sources are checked for presence now, so that a forgotten
// export is a config error at start rather than an auth failure later; the
// value itself is read only when connecting.
PasswordSource oneoff_password(const std::string& command, const char* variable, const char* option, const ConfigEnv& env) {
    if (!command.empty()) return {PasswordSource::Kind::Command, command};
    if (env.get(variable).empty())
        throw Error(ErrorKind::Config, std::string(option) + " or the environment variable " + variable + " is required");
    return {PasswordSource::Kind::Env, variable};
}

}  // namespace

// ---------------------------------------------------------------------------

std::string Endpoint::display() const {
    std::string scheme = protocol == Protocol::Pop3   ? "pop3"
                         : protocol == Protocol::Imap ? "imap"
                         : protocol == Protocol::Smtp ? "smtp"
                                                      : "lmtp";
    if (tls == TlsMode::Implicit) scheme += "s";
    if (!socket_path.empty()) return "lmtp:" + socket_path;
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return scheme + "://" + h + ":" + std::to_string(port);
}

const Account* Config::find(const std::string& name) const {
    for (const Account& a : accounts)
        if (a.name == name) return &a;
    return nullptr;
}

ConfigEnv ConfigEnv::from_process() {
    ConfigEnv env;
    for (const char* k : {"HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "PULLMAIL_PASSWORD", "PULLMAIL_DELIVER_PASSWORD"}) {
        if (const char* v = std::getenv(k)) env.vars[k] = v;
    }
    // cron and some service managers start jobs without HOME.
    if (env.get("HOME").empty()) {
        std::vector<char> buf(16384);
        passwd pw{};
        passwd* result = nullptr;
        if (::getpwuid_r(::getuid(), &pw, buf.data(), buf.size(), &result) == 0 && result && result->pw_dir)
            env.vars["HOME"] = result->pw_dir;
    }
    return env;
}

std::string ConfigEnv::get(const std::string& key) const {
    auto it = vars.find(key);
    return it == vars.end() ? std::string() : it->second;
}

std::string expand_home(const std::string& path, const ConfigEnv& env) {
    std::string home = env.get("HOME");
    if (home.empty()) return path;
    if (path == "~") return home;
    if (path.starts_with("~/")) return (home.ends_with("/") ? home.substr(0, home.size() - 1) : home) + path.substr(1);
    return path;
}

// The XDG base directory spec says relative values are invalid and must be
// ignored, as must empty ones.
std::string default_config_path(const ConfigEnv& env) {
    std::string xdg = env.get("XDG_CONFIG_HOME");
    if (xdg.starts_with("/")) return xdg + "/pullmail/config.toml";
    return expand_home("~/.config/pullmail/config.toml", env);
}

std::string default_state_dir(const ConfigEnv& env) {
    std::string xdg = env.get("XDG_STATE_HOME");
    if (xdg.starts_with("/")) return xdg + "/pullmail";
    return expand_home("~/.local/state/pullmail", env);
}

Config parse_config(const std::string& text, const std::string& source_name, const ConfigEnv& env) {
    toml::table root;
#if TOML_EXCEPTIONS
    try {
        root = toml::parse(std::string_view(text), std::string_view(source_name));
    } catch (const toml::parse_error& e) {
        const auto& b = e.source().begin;
        throw Error(ErrorKind::Config, source_name + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) + ": " +
                                           std::string(e.description()));
    }
#else
    auto result = toml::parse(std::string_view(text), std::string_view(source_name));
    if (!result) {
        const auto& b = result.error().source().begin;
        throw Error(ErrorKind::Config, source_name + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) + ": " +
                                           std::string(result.error().description()));
    }
    root = std::move(result).table();
#endif
    return Loader(source_name, env).load(root);
}

namespace {

// "scheme://user:password@host:port": credentials in a proxy URL.
bool proxy_has_userinfo(const std::string& proxy) {
    auto sep = proxy.find("://");
    if (sep == std::string::npos) return false;
    std::string_view authority = std::string_view(proxy).substr(sep + 3);
    authority = authority.substr(0, authority.find('/'));
    return authority.find('@') != std::string_view::npos;
}

// A secret written in the config file (from an account's table or from
// [defaults]): `password = "..."` of an account, of its IMAP target or of
// its SMTP relay, an OAuth2 client_secret, or a proxy URL with credentials.
bool holds_literal_password(const Config& c) {
    auto literal = [](const PasswordSource& p) { return p.kind == PasswordSource::Kind::Literal; };
    auto secret = [&](const Endpoint& ep) {
        return literal(ep.password) || (ep.password.client && literal(ep.password.client->client_secret)) ||
               proxy_has_userinfo(ep.proxy);
    };
    return std::any_of(c.accounts.begin(), c.accounts.end(), [&](const Account& a) {
        return secret(a.server) || (a.deliver.imap && secret(*a.deliver.imap)) ||
               (a.deliver.relay && secret(*a.deliver.relay));
    });
}

}  // namespace

Config load_config(const std::string& path, const ConfigEnv& env) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        int err = errno;
        throw Error(ErrorKind::Config, path + ": cannot read the config file: " + std::strerror(err));
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw Error(ErrorKind::Config, path + ": cannot read the config file");
    Config c = parse_config(text.str(), path, env);
    c.path = path;
    // After parsing, so that it is known whether the file holds a password;
    // before anything of it is used.
    check_secret_file(path, "config file", holds_literal_password(c));
    return c;
}

Endpoint parse_endpoint_url(const std::string& url, const std::string& tls_key, const std::string& where) {
    Endpoint ep = parse_url(url, where);
    if (ep.protocol != Protocol::Pop3 && ep.protocol != Protocol::Imap)
        fail(where, "an account fetches from pop3(s):// or imap(s)://; smtp and lmtp are for deliver");
    apply_tls(ep, tls_key, where);
    return ep;
}

DeliveryTarget parse_delivery(const std::string& text, const std::string& where, const ConfigEnv& env) {
    std::string lower = to_lower(text);
    DeliveryTarget t;
    auto body = [&](std::size_t prefix) { return text.substr(prefix); };
    if (lower.starts_with("maildir++:")) {
        std::string path = body(10);
        if (path.empty()) fail(where, "maildir++: needs a path, as in maildir++:~/Mail");
        t.kind = DeliveryTarget::Kind::Maildir;
        t.maildir_plus_plus = true;
        t.path = absolute_path(path, env, where);
        return t;
    }
    if (lower.starts_with("maildir:") || lower.starts_with("mbox:")) {
        bool maildir = lower.starts_with("maildir:");
        std::string path = body(maildir ? 8 : 5);
        if (path.empty()) fail(where, std::string(maildir ? "maildir:" : "mbox:") + " needs a path, as in " +
                                          (maildir ? "maildir:~/Mail/inbox" : "mbox:~/Mail/inbox.mbox"));
        t.kind = maildir ? DeliveryTarget::Kind::Maildir : DeliveryTarget::Kind::Mbox;
        t.path = absolute_path(path, env, where);
        return t;
    }
    if (lower.starts_with("mda:")) {
        std::string command = body(4);
        if (command.find_first_not_of(" \t") == std::string::npos) fail(where, "mda: needs a command, as in mda:procmail -d me");
        t.kind = DeliveryTarget::Kind::Mda;
        t.command = command;
        return t;
    }
    if (lower.starts_with("lmtp:") && !lower.starts_with("lmtp://")) {
        // lmtp:/run/dovecot/lmtp — a Unix socket.
        std::string path = body(5);
        if (path.empty()) fail(where, "lmtp: needs a socket path, as in lmtp:/run/dovecot/lmtp, or use lmtp://host:24");
        t.kind = DeliveryTarget::Kind::Relay;
        Endpoint ep;
        ep.url = text;
        ep.protocol = Protocol::Lmtp;
        ep.tls = TlsMode::Off;
        ep.host = "localhost";
        ep.socket_path = absolute_path(path, env, where);
        t.relay = std::move(ep);
        return t;
    }
    if (lower.starts_with("imap://") || lower.starts_with("imaps://") || lower.starts_with("pop3://") ||
        lower.starts_with("pop3s://") || lower.starts_with("smtp://") || lower.starts_with("smtps://") ||
        lower.starts_with("lmtp://"))
        return imap_target(parse_url(text, where), where);
    fail(where, "unknown delivery " + quoted(text) +
                    ": use maildir:PATH, maildir++:PATH, mbox:PATH, mda:COMMAND, lmtp:SOCKET, lmtp://host, smtp(s)://host or an "
                    "IMAP target deliver = { url = \"imaps://host/Folder\", ... }");
}

Account make_oneoff_account(const OneOffOptions& opts, const ConfigEnv& env) {
    if (opts.url.empty()) throw Error(ErrorKind::Config, "--url is required for a one-off account");
    if (opts.user.empty()) throw Error(ErrorKind::Config, "--user is required with --url");
    if (opts.deliver.empty()) throw Error(ErrorKind::Config, "--deliver is required with --url");

    Account a;
    a.name = "cli";
    a.source = "command line";
    a.keep = opts.keep;
    a.server = parse_url(opts.url, "--url");
    if (a.server.protocol != Protocol::Pop3 && a.server.protocol != Protocol::Imap)
        fail("--url", "an account fetches from pop3(s):// or imap(s)://; smtp and lmtp are for --deliver");
    apply_tls(a.server, opts.tls, "--tls");
    if (!a.server.path.empty()) {
        if (a.server.protocol == Protocol::Pop3) fail("--url", "a POP3 URL has no path");
        fail("--url", "an IMAP account URL has no path: use --folder to choose folders");
    }
    if (has_control(opts.user)) fail("--user", "must not contain control characters");
    a.server.user = opts.user;
    // Named after user and server, so one-off runs against different
    // mailboxes keep separate state files (and messages say which one).
    a.name = opts.user + "@" + a.server.host + ":" + std::to_string(a.server.port);
    for (auto& c : a.name)
        if (c == '/' || c == '\\' || c == ' ') c = '_';
    a.server.password = oneoff_password(opts.password_command, "PULLMAIL_PASSWORD", "--password-command", env);
    if (!opts.ca_file.empty()) a.server.ca_file = expand_or_fail(opts.ca_file, env, "--ca-file");
    if (!opts.auth.empty()) a.server.auth = normalize_auth(opts.auth, "--auth");

    if (!opts.folders.empty()) {
        if (a.server.protocol != Protocol::Imap) fail("--folder", "folders are for IMAP accounts");
        a.folders.clear();
        std::vector<std::string> seen;
        for (const std::string& f : opts.folders) {
            check_folder_name(f, "--folder");
            std::string id = folder_identity(f);
            if (std::find(seen.begin(), seen.end(), id) != seen.end()) fail("--folder", "folder " + quoted(f) + " is given twice");
            seen.push_back(id);
            a.folders.push_back(f);
        }
    }

    a.deliver = parse_delivery(opts.deliver, "--deliver", env);
    if (a.deliver.kind == DeliveryTarget::Kind::Relay)
        fail("--deliver", "an SMTP or LMTP target needs recipient = ...: configure it in the config file");
    if (a.deliver.kind == DeliveryTarget::Kind::Imap) {
        if (opts.deliver_user.empty()) throw Error(ErrorKind::Config, "--deliver-user is required with an IMAP --deliver");
        if (has_control(opts.deliver_user)) fail("--deliver-user", "must not contain control characters");
        Endpoint& ep = *a.deliver.imap;
        ep.user = opts.deliver_user;
        ep.password = oneoff_password(opts.deliver_password_command, "PULLMAIL_DELIVER_PASSWORD",
                                      "--deliver-password-command", env);
        if (!opts.deliver_ca_file.empty()) ep.ca_file = expand_or_fail(opts.deliver_ca_file, env, "--deliver-ca-file");
    } else {
        // Settings that would have no effect are refused rather than ignored.
        for (auto [value, option] : {std::pair{&opts.deliver_user, "--deliver-user"},
                                     std::pair{&opts.deliver_password_command, "--deliver-password-command"},
                                     std::pair{&opts.deliver_ca_file, "--deliver-ca-file"}}) {
            if (!value->empty()) fail(option, "is only for an IMAP --deliver target");
        }
    }
    return a;
}

}  // namespace pullmail
