// message_key.h — the keys under which the state file records messages.
// Built by the sync layer (the MailSource implementations), never by the
// protocol sessions, which deal in UIDLs and UIDs only.
//
// A POP3 key is "pop3:<uidl>" (UIDLs are printable ASCII without spaces).
// An IMAP key is "imap:<folder>:<uidvalidity>:<uid>" with the folder
// percent-encoded so it has no spaces or colons.
#pragma once

#include <cstdint>
#include <string>

namespace pullmail {

std::string pop3_key(const std::string& uidl);
// The same, made in the UIDL's own buffer when its capacity allows (a
// listing's UIDLs are made with room for it: one allocation a message).
std::string pop3_key(std::string&& uidl);
// The UIDL of a POP3 key; empty for any other key.
std::string pop3_uidl(const std::string& key);
std::string imap_key(const std::string& folder, std::uint32_t uidvalidity, std::uint32_t uid);
std::string encode_folder(const std::string& folder);
std::string decode_folder(const std::string& encoded);  // inverse of encode_folder

}  // namespace pullmail
