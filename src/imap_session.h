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
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "imap_append_args.h"
#include "error.h"
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
    // NAMESPACE (RFC 2342), where offered: from now on server_name() puts
    // every folder but INBOX under the first personal namespace's prefix
    // ("Lists/cpp" -> "INBOX.Lists.cpp" on Courier and Cyrus), unless the
    // name already starts with it. For an IMAP target, where pullmail
    // creates folders; a source lists its names with the prefix already.
    void use_personal_namespace();
    const std::string& personal_prefix() const { return prefix_; }
    // server_name() as a command argument (atom or quoted string).
    std::string mailbox_arg(const std::string& folder) const;

    // Every selectable folder (LIST "" "*"), names decoded from modified
    // UTF-7 and written with '/' as the separator.
    std::vector<std::string> list_all_folders();
    // The same, less the folders carrying one of the SPECIAL-USE attributes
    // (RFC 6154) in `skip` ("all", "junk", "trash": lower case, no
    // backslash). The attributes are asked for with RETURN (SPECIAL-USE)
    // where the server advertises SPECIAL-USE, and honoured wherever the
    // server sends them (Gmail does without advertising it); never names.
    struct FolderInfo {
        std::uint32_t uidvalidity = 0;
        std::uint32_t exists = 0;
        std::uint32_t uidnext = 0;
    };
    // With `statuses`, where the server offers LIST-STATUS (RFC 5819), the
    // LIST also asks for what status() asks, in the same command, and the
    // complete answers are added to *statuses by folder name.
    std::vector<std::string> list_all_folders(const std::vector<std::string>& skip,
                                              std::map<std::string, FolderInfo>* statuses = nullptr);
    struct ListedFolder {
        std::string name;                  // decoded, '/' separated
        std::vector<std::string> special;  // SPECIAL-USE attributes, lower case, no backslash
    };
    // Every selectable folder with its attributes (and statuses as above).
    std::vector<ListedFolder> list_folders(std::map<std::string, FolderInfo>* statuses = nullptr);

    // STATUS (MESSAGES UIDNEXT UIDVALIDITY) of every folder, all commands in
    // one flight (no folder is selected yet, as RFC 3501 6.3.10 wants).
    // Folders the server refuses, or gives no complete answer for, are left
    // out (opening them reports why).
    std::map<std::string, FolderInfo> status(const std::vector<std::string>& folders);
    // SELECT, or EXAMINE when read_only (nothing in the folder can change).
    // With `listing`, also the UID and size of every message (no state key:
    // message_key.h is the sync layer's), in the same round trip.
    // Throws Error(Protocol) naming the folder when the server refuses.
    FolderInfo select(const std::string& folder, bool read_only, std::vector<RemoteMessage>* listing = nullptr);

    struct Selected {
        std::string folder;
        FolderInfo info;
        std::vector<RemoteMessage> listing;  // with list: UID and size of every message
        std::optional<Error> error;          // why this folder could not be opened or listed
    };
    // select() of every folder, all commands in one flight (SELECT, UID
    // FETCH, SELECT, ...): the replies come in the order of the commands,
    // so an untagged reply belongs to the oldest command not yet answered.
    // A folder the server refuses gets its error (folder-scoped as in
    // select()); a broken connection throws. The session is left in the
    // last folder that opened.
    std::vector<Selected> select_many(const std::vector<std::string>& folders, bool read_only, bool list = true);
    // Makes `folder` the selected one again (unless it is, in a mode that
    // allows what read_only asks). Its UIDVALIDITY must be the one this
    // session saw when it last opened it: otherwise the UIDs pullmail holds
    // would name other messages, and that is Error(Protocol).
    void reselect(const std::string& folder, bool read_only);

    // Streams BODY.PEEK[] of the messages (several UID FETCH commands in
    // flight). Messages that vanished are reported through handler.failed.
    // The messages may be of several folders (each folder's run of messages
    // together): the SELECT of the next folder goes out in the same flight,
    // behind the current folder's UID FETCH, and its UIDVALIDITY is checked
    // as reselect() does before any of its bodies counts.
    void fetch(const std::vector<RemoteMessage>& msgs, MessageHandler& handler);

    // Header fields (HEADER.FIELDS) of the given UIDs, for fingerprints;
    // with no fields the whole header block (HEADER), for oversize stubs.
    // With `internal_dates`, their INTERNALDATE too, in the same commands.
    std::map<std::uint32_t, std::string> fetch_header_fields(const std::vector<std::uint32_t>& uids,
                                                             const std::string& fields,
                                                             std::map<std::uint32_t, std::string>* internal_dates = nullptr);

    struct DeleteResult {
        std::size_t expunged = 0;
        bool expunge_skipped = false;  // no UIDPLUS and other messages were \Deleted
        // The UIDs the folder no longer lists after the expunge (UID SEARCH);
        // every UID when the server refuses that search. Empty when skipped.
        std::vector<std::uint32_t> removed;
    };
    // `expunged` counts "* N EXPUNGE" and the "* N EXPUNGED" of GNU
    // Mailutils alike; `removed` does not depend on either.
    DeleteResult delete_messages(const std::vector<std::uint32_t>& uids);
    // keep = false with delete = "trash": moves the messages into `trash`
    // (a folder name as list_folders() gives it) with UID MOVE (RFC 6851)
    // where offered, else UID COPY, then delete_messages(). Nothing is
    // flagged \Deleted unless the copy was confirmed. `removed` as for
    // delete_messages().
    DeleteResult move_to_trash(const std::vector<std::uint32_t>& uids, const std::string& trash);

    // Makes sure a folder exists (CREATE when missing) and opens it
    // read-only. Returns its state.
    FolderInfo open_or_create(const std::string& folder, std::vector<RemoteMessage>* listing = nullptr);

    // APPEND of one message read from `fd` (size bytes, CRLF line endings),
    // streamed in chunks, with flags and date from build_append_args()
    // (imap_append_args.h), never raw text. With LITERAL+ the command is
    // pipelined: it returns once the bytes are sent and the completion is
    // collected by finish_appends(); without, it waits for the server's
    // continuation and for the completion.
    //
    // A server that answers BAD, or answers before it has the whole literal
    // (a tagged reply instead of "+", or while LITERAL+ data is still going
    // out), may not have read the message and would then take its lines for
    // commands. The session then abandons the connection: it sends nothing
    // more on it (no further APPEND, no LOGOUT), and every APPEND not yet
    // answered, or given after, fails with `abandoned` set.
    void append(const std::string& folder, const AppendArgs& args, int fd, std::uint64_t size, std::string id);
    struct AppendResult {
        std::string id;            // as given to append()
        bool ok = false;
        std::uint32_t uidvalidity = 0, uid = 0;  // APPENDUID, when the server has UIDPLUS
        std::string server_text;   // NO/BAD text
        bool abandoned = false;    // not stored, or not known to be: the connection was abandoned
    };
    // Waits for every outstanding APPEND; returns their results in order of
    // their answers (never waits once the connection was abandoned).
    std::vector<AppendResult> finish_appends();
    // Non-empty once the connection was abandoned: why, for an error message.
    const std::string& abandoned() const { return abandoned_; }

    // For a connection kept between syncs (sync_link.h). unselect():
    // UNSELECT (RFC 3691; part of IMAP4rev2) where offered, leaving the
    // selected folder without expunging anything (CLOSE would expunge);
    // true at once when nothing was selected, false when not offered or
    // refused. noop(): NOOP answered OK, i.e. the connection is alive
    // (untagged news is ignored: the next sync selects afresh). Both throw
    // Error when the connection fails.
    bool unselect();
    bool noop();

    // wait_for_reply = false: LOGOUT is sent and its answer not awaited
    // (one round trip less). Nothing depends on it: every change was
    // confirmed by its own command's completion before.
    void logout(bool wait_for_reply = true) noexcept;

private:
    class Reader;
    class FetchPipeline;  // fetch()
    using Untagged = std::function<void(const std::string& text)>;
    // Sends a tagged command and pumps until its completion; untagged
    // responses go to `untagged`. Returns the completion status line.
    ImapStatusLine run(const std::string& command, const Untagged& untagged);
    // Sends all commands at once and waits for every completion (in order).
    std::vector<ImapStatusLine> run_all(const std::vector<std::string>& commands, const Untagged& untagged);
    // The same; `untagged` also gets the index of the oldest command not
    // yet answered (the one an untagged reply belongs to).
    using UntaggedAt = std::function<void(const std::string& text, std::size_t command)>;
    std::vector<ImapStatusLine> run_all_at(const std::vector<std::string>& commands, const UntaggedAt& untagged);
    // Notes the outcome of a SELECT/EXAMINE of `folder` (selected_).
    void note_selected(const std::string& folder, bool ok, bool read_only, std::uint32_t uidvalidity);
    std::string next_tag();
    // Pumps until all queued output is sent, feeding responses to the reader.
    void send_all();
    // ch_.pump() feeding the reader; a failure after an untagged BYE says
    // what the server gave as its reason.
    void pump(const std::function<bool()>& done);
    // The literal of the APPEND tagged `tag`, once the server may have it.
    void send_literal(const std::string& tag, int fd, std::uint64_t size, bool literal_plus);
    void wait_appends();
    // The UIDs (in `sets`) the selected folder no longer lists.
    std::vector<std::uint32_t> no_longer_listed(const std::vector<std::uint32_t>& uids, const std::vector<std::string>& sets);
    RemoteMessage starting_message(const std::string& text,
                                   const std::unordered_map<std::uint32_t, const RemoteMessage*>& wanted,
                                   const std::string& folder, std::uint64_t literal_size);
    void on_append_response(std::string& text);
    void abandon(const std::string& why);

    struct PendingAppend {
        std::string tag, id;
        bool queued_all = false;  // every byte of the literal is in the output queue
        bool sent = false;        // ... and was handed to the connection
    };
    std::vector<PendingAppend> appends_;
    std::vector<AppendResult> append_results_;
    bool continuation_ = false;
    std::string abandoned_;

    Channel& ch_;
    std::unique_ptr<Reader> reader_;
    std::set<std::string> caps_;
    char delimiter_ = '.';
    std::string prefix_;  // personal namespace prefix, server form ("INBOX."), or empty
    bool has_delimiter_ = false;
    unsigned tag_counter_ = 0;
    // The selected folder ("" for none) and how; the UIDVALIDITY each folder
    // had when this session last opened it (reselect() holds it to that).
    std::string selected_;
    bool selected_read_only_ = true;
    std::map<std::string, std::uint32_t> opened_validity_;
    bool may_be_selected_ = false;  // a SELECT/EXAMINE was sent and no UNSELECT since
};

}  // namespace pullmail
