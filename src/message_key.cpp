#include "message_key.h"

#include "text_util.h"

namespace pullmail {

std::string encode_folder(const std::string& folder) { return percent_encode(folder, ":"); }

std::string decode_folder(const std::string& enc) { return percent_decode(enc); }

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
