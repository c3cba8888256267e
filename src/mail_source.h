// mail_source.h — what a protocol offers a sync (isync's driver interface,
// cut down to a fetcher's needs). Two implementations: POP3 (pop3_source.cpp)
// and IMAP (imap_source.cpp), over the sessions; the executor
// (folder_sync.h) drives them and knows no protocol. Abstract so that the
// executor's tests can use an in-memory source.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "error.h"
#include "retrieval.h"
#include "sync_plan.h"

namespace pullmail {

class MailSource {
public:
    virtual ~MailSource() = default;

    // The folders to sync of the configured ones ("*": every selectable
    // folder), each once. POP3: the one maildrop, "".
    virtual std::vector<std::string> folders(const std::vector<std::string>& configured) = 0;

    struct Opened {
        SourceIdentity identity;
        std::vector<RemoteMessage> listing;  // every message, with key and size
        std::uint32_t uidnext = 0;           // IMAP UIDNEXT, 0 when unknown or POP3
        std::uint32_t exists = 0;            // messages in the folder as the server counts them
    };
    // Opens a folder ("" for POP3) and lists it. Throws Error; a folder that
    // does not exist is Error(ErrorKind::Protocol) with missing_folder set.
    virtual Opened open(const std::string& folder, bool read_only) = 0;

    struct OpenResult {
        Opened opened;
        std::optional<Error> error;  // folder-scoped: this folder could not be opened (the others may)
    };
    // open() of several folders, in the given order; IMAP sends them all in
    // one flight. A folder-scoped error is that folder's result; any other
    // error throws. retrieve() may then be given the messages of several of
    // these folders at once, each folder's together.
    virtual std::vector<OpenResult> open_many(const std::vector<std::string>& folders, bool read_only) {
        std::vector<OpenResult> out(folders.size());
        for (std::size_t i = 0; i < folders.size(); ++i) {
            try {
                out[i].opened = open(folders[i], read_only);
            } catch (Error& e) {
                if (!e.folder_scoped()) throw;
                out[i].error = e;
            }
        }
        return out;
    }

    // Header blocks of the messages, by header_id(); messages the server
    // refuses are left out. When internal_dates is given, IMAP also fills it
    // with each message's INTERNALDATE by UID (for arrival fingerprints:
    // fingerprint.h), in the same round trip; POP3 has none and leaves it empty.
    virtual std::map<std::uint32_t, std::string> headers(const std::vector<RemoteMessage>& msgs,
                                                         std::map<std::uint32_t, std::string>* internal_dates) = 0;

    // The whole header blocks (up to memory_limits.h's kMaxHeaderKept each),
    // as the server sends them with CRLF line ends, by header_id(): what
    // oversize = "headers" delivers. POP3's headers() are whole already.
    virtual std::map<std::uint32_t, std::string> header_blocks(const std::vector<RemoteMessage>& msgs) {
        return headers(msgs, nullptr);
    }

    // Streams the messages into the handler (handler.failed for one that
    // vanished); throws Error when the connection breaks.
    virtual void retrieve(const std::vector<RemoteMessage>& msgs, MessageHandler& handler) = 0;

    struct Removed {
        std::vector<std::string> keys;  // confirmed removed by the server
        std::string warning;            // why some were not, when that is harmless (logged)
        std::optional<Error> error;     // why they were not, when the run must say so
        bool ended_session = false;     // POP3: QUIT was sent
    };
    // Removes the messages; only what the server confirmed is in keys
    // (POP3: DELE and an answered QUIT; IMAP: UID STORE + UID EXPUNGE).
    virtual Removed remove(const std::vector<RemoteMessage>& msgs) = 0;

    // Ends the session (QUIT/LOGOUT without waiting); never throws.
    virtual void close() noexcept = 0;
};

}  // namespace pullmail
