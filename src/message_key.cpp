#include "message_key.h"

namespace pullmail {

std::string encode_folder(const std::string& folder) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : folder) {
        if (c <= 0x20 || c >= 0x7f || c == '%' || c == ':') {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string decode_folder(const std::string& enc) {
    auto hex = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
    std::string out;
    for (std::size_t i = 0; i < enc.size(); ++i) {
        if (enc[i] == '%' && i + 2 < enc.size()) {
            out += static_cast<char>(hex(enc[i + 1]) * 16 + hex(enc[i + 2]));
            i += 2;
        } else {
            out += enc[i];
        }
    }
    return out;
}

std::string pop3_key(const std::string& uidl) { return "pop3:" + uidl; }

std::string pop3_key(std::string&& uidl) {
    uidl.insert(0, "pop3:");
    return std::move(uidl);
}

std::string pop3_uidl(const std::string& key) { return key.rfind("pop3:", 0) == 0 ? key.substr(5) : std::string(); }

std::string imap_key(const std::string& folder, std::uint32_t uidvalidity, std::uint32_t uid) {
    return "imap:" + encode_folder(folder) + ":" + std::to_string(uidvalidity) + ":" + std::to_string(uid);
}

}  // namespace pullmail
