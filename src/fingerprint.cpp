#include "fingerprint.h"

#include <openssl/evp.h>

#include <array>
#include <cctype>

#include "text_util.h"

namespace pullmail {

namespace {

std::string normalise(std::string_view v) {
    std::string out;
    bool space = false;
    for (char c : v) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += c;
    }
    return out;
}

std::string sha256_hex(const std::string& text, unsigned digits) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; out.size() < digits; ++i) {
        out += hex[digest[i] >> 4];
        if (out.size() < digits) out += hex[digest[i] & 15];
    }
    return out;
}

}  // namespace

std::string message_fingerprint(std::string_view header_block, std::string_view internal_date) {
    std::string fp = header_fingerprint(header_block);
    if (fp != "-") return fp;
    std::string date = normalise(internal_date);
    if (date.empty()) return fp;
    return "t" + sha256_hex("internaldate:" + date + "\n", 31);
}

bool is_arrival_fingerprint(std::string_view fp) { return fp.size() == 32 && fp[0] == 't'; }

std::string header_fingerprint(std::string_view block) {
    static const char* kNames[] = {"message-id", "date", "from", "subject"};
    std::array<std::string, 4> values;
    std::array<bool, 4> found{};
    for_each_header_field(block, [&](const std::string& name, const std::string& value) {
        for (int i = 0; i < 4; ++i) {
            if (name == kNames[i] && !found[i]) {  // first occurrence wins
                found[i] = true;
                values[i] = value;
            }
        }
    }, /*obsolete_names=*/false);
    if (!found[0] && !found[1] && !found[2] && !found[3]) return "-";
    std::string canon;
    for (int i = 0; i < 4; ++i) {
        std::string v = normalise(values[i]);
        if (i == 0) v = ascii_lower(v);
        canon += std::string(kNames[i]) + ":" + v + "\n";
    }
    return sha256_hex(canon, 32);
}

void HeaderCapture::feed(std::string_view chunk) {
    if (complete_) return;
    std::size_t start = header_.size();
    std::size_t take = std::min(chunk.size(), kMaxHeader - header_.size());
    header_.append(chunk.substr(0, take));
    // Look for the end of the header block, including across chunk borders.
    std::size_t from = start >= 1 ? start - 1 : 0;
    if (header_.rfind("\n", 0) == 0) {
        complete_ = true;  // message starts with an empty line: no header
        header_.clear();
        return;
    }
    auto end = header_.find("\n\n", from);
    if (end != std::string::npos) {
        header_.resize(end + 1);
        complete_ = true;
    } else if (header_.size() >= kMaxHeader) {
        complete_ = true;
    }
}

}  // namespace pullmail
