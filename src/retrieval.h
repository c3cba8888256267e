// retrieval.h — what a protocol session hands to the rest of pullmail while
// it streams messages: the session knows POP3/IMAP, the handler knows
// delivery and state, and neither knows the other's details.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pullmail {

// What IMAP tells of a message besides its number, UID and size.
struct ImapDetails {
    std::string folder;              // IMAP folder, '/' separated
    std::vector<std::string> flags;  // IMAP flags
    std::string internal_date;       // IMAP INTERNALDATE
};

// One message of a listing. 96 bytes: a listing of a million messages must
// stay well within 200 MB (memory_limits.h), so the IMAP details live apart,
// shared and copied on write: every message of a listing shares one folder
// name, and flags and date are set only on the messages being fetched.
struct RemoteMessage {
    std::string key;                 // identity in the state file (message_key.h), set by the sync layer
    std::uint32_t number = 0;        // POP3 message number / IMAP sequence number (0 = unknown)
    std::uint32_t uid = 0;           // IMAP UID (0 for POP3)
    std::string uidl;                // POP3 UIDL
    std::uint64_t size = 0;          // size on the server, octets with CRLF

    const std::string& folder() const { return details().folder; }
    const std::vector<std::string>& flags() const { return details().flags; }
    const std::string& internal_date() const { return details().internal_date; }
    void set_folder(std::string f) { edit().folder = std::move(f); }
    void set_flags(std::vector<std::string> f) { edit().flags = std::move(f); }
    void set_internal_date(std::string d) { edit().internal_date = std::move(d); }
    // Shares the details of `other` (the messages of one listing: one folder).
    void share_details(const RemoteMessage& other) { imap_ = other.imap_; }

private:
    const ImapDetails& details() const {
        static const ImapDetails none;
        return imap_ ? *imap_ : none;
    }
    // Another copy may share them: a sharer never changes them in place.
    ImapDetails& edit() {
        if (!imap_)
            imap_ = std::make_shared<ImapDetails>();
        else if (imap_.use_count() > 1)
            imap_ = std::make_shared<ImapDetails>(*imap_);
        return *imap_;
    }
    std::shared_ptr<ImapDetails> imap_;
};

class MessageHandler {
public:
    virtual ~MessageHandler() = default;
    // A message starts. For IMAP some fields (flags, date) may only be known at end().
    virtual void begin(const RemoteMessage& m) = 0;
    // Message bytes exactly as the server sent them (CRLF line endings),
    // dot-unstuffed / literal-decoded, in chunks of any size.
    virtual void data(std::string_view chunk) = 0;
    // The message is complete; `m` has every field the server gave.
    virtual void end(const RemoteMessage& m) = 0;
    // The server refused this one message (-ERR / NO / it vanished); the
    // session goes on with the next.
    virtual void failed(const RemoteMessage& m, std::string_view server_text) = 0;
    // True when no further messages should be requested (fatal local error,
    // SIGTERM). Messages already in flight are still read and passed on; the
    // handler discards them.
    virtual bool stop_requested() const = 0;
};

}  // namespace pullmail
