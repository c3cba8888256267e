// The login codec (sasl.h) against a hostile server. Input: byte 0 = options
// (bit 0 IMAP, bits 1-3 the configured method, bit 4 TLS, bit 5 an OAuth2
// token instead of a password, bits 6-7 which secret), byte 1 = how many of
// the lines that follow are the pre-login lines (greeting, capabilities);
// the rest are the server's lines during the login dialogue.
//
// Checks: the offer is parsed and the method chosen or refused with
// Error(Config) only, and a chosen method is offered (Auto without TLS and
// token never picks a plaintext password); the dialogue throws nothing but
// Error(Protocol), every line it sends ends in CRLF and has no other line
// break outside an IMAP literal, no trace shows the secret or a base64 form
// of it, and once finished it refuses further lines. base64 round-trips.
#include <string>
#include <vector>

#include "config.h"
#include "fuzz_support.h"
#include "sasl.h"

using namespace pullmail;

namespace {

// Secrets chosen so that each IMAP LOGIN form is used: a quotable one, one
// needing escapes, one only a literal can carry, and a token.
const char* const kSecrets[4] = {"s3cr3t-Pw", "p\"w\\d s3cr3t", "p\xc3\xa4ss\x01s3cr3t", "ya29.t0ken-s3cr3t"};

std::vector<std::string> split_lines(std::string_view text) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        std::string line(text.substr(pos, nl - pos));
        if (!line.empty() && line.back() == '\r') line.pop_back();
        out.push_back(std::move(line));
        pos = nl + 1;
    }
    return out;
}

// True when `hay` holds `secret` itself or the base64 of any payload that
// carries it at the three possible alignments (the encoded form of the
// secret's bytes, whatever precedes them).
bool shows_secret(const std::string& hay, const std::string& secret) {
    if (hay.find(secret) != std::string::npos) return true;
    for (int shift = 0; shift < 3; ++shift) {
        std::string enc = base64_encode(std::string(shift, '\0') + secret);
        // Skip the characters that depend on the unknown prefix bytes and
        // the last group, which depends on what follows.
        std::size_t skip = shift == 0 ? 0 : 4;
        if (enc.size() < skip + 8) continue;
        std::string core = enc.substr(skip, enc.size() - skip - 4);
        if (core.size() >= 8 && hay.find(core) != std::string::npos) return true;
    }
    return false;
}

void check_send(const LoginExchange::Step& s, const std::string& secret, bool imap_login) {
    FUZZ_ASSERT(s.bytes.size() >= 2 && s.bytes.ends_with("\r\n"));
    if (!imap_login) FUZZ_ASSERT(s.bytes.find_first_of("\r\n") == s.bytes.size() - 2);
    FUZZ_ASSERT(!shows_secret(s.trace, secret));
    FUZZ_ASSERT(s.trace.find_first_of("\r\n") == std::string::npos);
}

void check_base64(std::string_view bytes) {
    std::string enc = base64_encode(bytes);
    FUZZ_ASSERT(enc.size() == 4 * ((bytes.size() + 2) / 3));
    auto dec = base64_decode(enc);
    FUZZ_ASSERT(dec && *dec == bytes);
    // Whatever decodes must be what the encoding of its result reads back as.
    if (auto d = base64_decode(bytes)) {
        auto again = base64_decode(base64_encode(*d));
        FUZZ_ASSERT(again && *again == *d);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::uint8_t opts = data[0];
    const std::size_t offer_lines = data[1];
    std::string_view text(reinterpret_cast<const char*>(data + 2), size - 2);
    check_base64(text.substr(0, 256));

    std::vector<std::string> lines = split_lines(text);
    std::vector<std::string> login(lines.begin(), lines.begin() + std::min(offer_lines, lines.size()));
    const Protocol protocol = (opts & 1) ? Protocol::Imap : Protocol::Pop3;
    ServerOffer offer;
    if (!fuzz::only_error([&] { offer = parse_offer(protocol, login); })) FUZZ_ASSERT(!"parse_offer threw");
    FUZZ_ASSERT(offer.protocol == protocol);
    FUZZ_ASSERT(!offer.describe().empty());

    const auto requested = static_cast<AuthMethod>((opts >> 1) & 7);
    const bool tls = (opts & 0x10) != 0, token = (opts & 0x20) != 0;
    AuthMethod method = AuthMethod::Auto;
    try {
        method = choose_auth_method(requested, offer, token, tls, "fuzz://h");
    } catch (const Error& e) {
        FUZZ_ASSERT(e.kind() == ErrorKind::Config);
        return 0;
    }
    FUZZ_ASSERT(method != AuthMethod::Auto && offer.offers(method));
    if (requested != AuthMethod::Auto) FUZZ_ASSERT(method == requested);
    if (requested == AuthMethod::Auto && !tls && !token)
        FUZZ_ASSERT(method == AuthMethod::CramMd5 || method == AuthMethod::Apop);
    if (requested == AuthMethod::Auto && token) FUZZ_ASSERT(is_oauth(method));

    const std::string secret = kSecrets[opts >> 6];
    const bool imap_login = protocol == Protocol::Imap && method == AuthMethod::User;
    LoginExchange ex(method, offer, "fuzz@example.org", secret, "h.example", 993);
    LoginExchange::Step step = ex.start();
    FUZZ_ASSERT(step.kind == LoginExchange::Step::Kind::Send);
    check_send(step, secret, imap_login);
    bool finished = false;
    for (std::size_t i = login.size(); i < lines.size() && !finished; ++i) {
        try {
            step = ex.feed(lines[i]);
        } catch (const Error& e) {
            FUZZ_ASSERT(e.kind() == ErrorKind::Protocol);
            return 0;
        }
        using Kind = LoginExchange::Step::Kind;
        if (step.kind == Kind::Send) check_send(step, secret, imap_login);
        finished = step.kind == Kind::Done || step.kind == Kind::Refused;
    }
    if (finished) {
        bool refused = false;
        try {
            ex.feed("+OK");
        } catch (const Error& e) {
            refused = e.kind() == ErrorKind::Protocol;
        }
        FUZZ_ASSERT(refused);
    }
    return 0;
}
