// imap_session.h — an IMAP4rev1 client (RFC 3501/9051) over an already
// authenticated Channel: folder selection, listing, streaming UID FETCH of
// BODY.PEEK[] (the server's \Seen flag never changes as a side effect), and
// deletion with UID STORE + UID EXPUNGE (UIDPLUS), which never expunges
// messages that other clients flagged \Deleted.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "imap_codec.h"
#include "retrieval.h"
#include "transport.h"

namespace pullmail {

class ImapSession {
public:
    explicit ImapSession(Channel& channel);
    ~ImapSession();

    // CAPABILITY and the hierarchy delimiter (LIST "" ""), pipelined.
    void start();
    bool has_capability(const std::string& cap) const { return caps_.count(cap) != 0; }
    char delimiter() const { return delimiter_; }
    // "Lists/cpp" -> "Lists.cpp" (server delimiter), non-ASCII as modified UTF-7.
    std::string server_name(const std::string& folder) const;

    struct FolderInfo {
        std::uint32_t uidvalidity = 0;
        std::uint32_t exists = 0;
        std::uint32_t uidnext = 0;
    };
    // SELECT, or EXAMINE when read_only (nothing in the folder can change).
    // Throws Error(Protocol) naming the folder when the server refuses.
    FolderInfo select(const std::string& folder, bool read_only);

    // UID and size of every message of the selected folder; keys are
    // imap_key(folder, uidvalidity, uid).
    std::vector<RemoteMessage> list_messages(const std::string& folder, std::uint32_t uidvalidity);

    // Streams BODY.PEEK[] of the messages (several UID FETCH commands in
    // flight). Messages that vanished are reported through handler.failed.
    void fetch(const std::vector<RemoteMessage>& msgs, MessageHandler& handler);

    // Header fields (HEADER.FIELDS) of the given UIDs, for fingerprints.
    std::map<std::uint32_t, std::string> fetch_header_fields(const std::vector<std::uint32_t>& uids,
                                                             const std::string& fields);

    struct DeleteResult {
        std::size_t expunged = 0;
        bool expunge_skipped = false;  // no UIDPLUS and other messages were \Deleted
    };
    DeleteResult delete_messages(const std::vector<std::uint32_t>& uids);

    void logout() noexcept;

private:
    class Reader;
    using Untagged = std::function<void(const std::string& text)>;
    // Sends a tagged command and pumps until its completion; untagged
    // responses go to `untagged`. Returns the completion status line.
    ImapStatusLine run(const std::string& command, const Untagged& untagged);
    std::string next_tag();

    Channel& ch_;
    std::unique_ptr<Reader> reader_;
    std::set<std::string> caps_;
    char delimiter_ = '.';
    bool has_delimiter_ = false;
    unsigned tag_counter_ = 0;
};

}  // namespace pullmail
