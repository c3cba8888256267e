// state_journal.h — the per-account state file: which messages were delivered,
// and which delivery was in flight when pullmail last stopped.
//
// Format (text, one record per line, each line "<crc32 hex> <record>"):
//   pullmail-state 4 <generation>         header, no checksum; <generation>
//                                         is random, new at every rewrite
//                                         of the whole file (state_marks.h)
//   S <key> <size> <fingerprint> [<where> [<mark> [<time>]]]
//                                         message <key> was delivered; <where>
//                                         is set for IMAP targets: the copy's
//                                         "appenduid:<uidvalidity>:<uid>" ("-"
//                                         when unset and more follows); <mark>
//                                         ("-" for none) is "keep": the server's
//                                         copy must never be deleted (the reply
//                                         was shorter than announced);
//                                         "headers": only the header block was
//                                         delivered (oversize = "headers");
//                                         "skipped": nothing was delivered, the
//                                         message was reported as too large
//                                         (oversize = "skip"); "partial": a relay
//                                         target (SMTP/LMTP) took it for some of
//                                         the recipients only, <where> is then
//                                         "rcpt:" and those recipients, comma
//                                         separated, %XX for ',', '%', space and
//                                         controls. <time>: when the
//                                         record was made, Unix seconds (for
//                                         delete_after).
//   Z <count> <bytes> <packed entries>    <count> seen entries at once, as S
//                                         records would give them, packed
//                                         (state_snapshot.h); what a rewrite
//                                         writes instead of S records
//   F <key>                               forget <key> (pruned)
//   R <key>                               the intent of <key> was rolled back
//   I <key> <intent...>                   delivery of <key> is about to be published
//   V <folder> <uidvalidity>              IMAP folder's UIDVALIDITY the keys refer to
//   M <folder> <uidvalidity> <uidnext> <exists>
//                                         the folder as a complete sync left it
//                                         (FolderMark); a later F of one of its
//                                         keys or a new V drops it
// Keys and folder names never contain spaces (see key helpers below).
//
// Version 1 files (no <mark> other than "keep", no <time>) are read as they
// are. A record without a <time> is given the time of the first load that
// sees it, and the file is then rewritten as version 4 (except read-only), so
// that its messages expire counted from that first run: pullmail cannot know
// when an older version delivered them, and guessing "long ago" would delete
// kept mail at once after an upgrade. Version 2 files (the same records, no
// <generation>) are read as they are and rewritten once as version 4, and
// so are version 3 files (the same as version 4 without Z records). A
// version 4 file is refused by older pullmails (exit 65, nothing touched).
//
// The marks file (<path>.marks, state_marks.h) holds the V and M records
// again, stamped with the state file's generation, size and tail. When its
// stamp matches, the records (S, I, R, F) are not read at construction but
// at the first use that needs them (records_loaded()): a poll whose IMAP
// folders are all unchanged reads a few hundred bytes whatever the number
// of kept messages. Every accessor of seen entries or intents, and every
// record_*(), loads them first, so nothing is planned, recorded or deleted
// on a partial view. It is written by save_marks(), after the records it
// vouches for are durable.
//
// Why a journal: records are appended, so recording one message costs one
// small write instead of rewriting the file (fdm's O(n^2)). Durability rule:
// an intent (I) is fsynced before the delivery it announces is published, and
// a seen record (S) rides along with the next fsync. That is enough: after a
// crash an I without its S is resolved by asking the deliverer whether the
// message is in place (deliver.h, recover()). sync() is called before anything
// is deleted on the server, so deletion never runs ahead of the state.
//
// A torn last line (crash during append) is ignored with a warning: it can
// only be an intent whose delivery never started or a seen record whose intent
// is still there. A bad line followed by good ones is corruption: the account
// stops with Error(State) naming the file, before anything is deleted.
// compact() prunes messages no longer on the server. It rewrites the file
// (tmp + fsync + rename + fsync dir) with only the live records, the seen
// ones packed in Z records, when the text records after the Z records have
// grown past half their size plus 16 KiB (a first fetch ends with a rewrite:
// every later poll reads about 20 bytes a message); otherwise it appends
// "forget" records and syncs: a run with no new mail writes nothing. A Z
// record is only ever written by a rewrite, so it is never a torn tail.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "message_key.h"
#include "state_marks.h"
#include "state_store.h"

namespace pullmail {

struct PendingIntent {
    std::string key;
    std::string intent;
};

class StateJournal {
public:
    static constexpr int kFormatVersion = 4;

    // Loads (or creates, with its directory) the state file at `path`.
    // Throws Error(State) for corruption or a newer format, Error(LocalIO)
    // when the file or directory cannot be read or written.
    // With read_only (--check, --dry-run) nothing is ever written, no
    // directory or file is created, and a missing file is an empty state.
    // Otherwise a missing file is created at the first sync(), so that a run
    // that fails before it has anything to record leaves no file behind.
    // Records get their time from clock_now() (test_hooks.h).
    explicit StateJournal(std::string path, bool read_only = false);
    ~StateJournal();
    StateJournal(const StateJournal&) = delete;
    StateJournal& operator=(const StateJournal&) = delete;

    const std::string& path() const { return path_; }
    // Set when the load ignored a torn final record.
    const std::string& load_warning() const { return load_warning_; }

    // The seen entries, loaded first when they are not yet (which may throw
    // Error(State) for a damaged file, as the constructor would have). The
    // const forms throw Error(Internal) when they are not loaded.
    bool seen(const std::string& key);
    bool seen(const std::string& key) const;
    std::optional<SeenEntry> find(const std::string& key);
    std::optional<SeenEntry> find(const std::string& key) const;
    const SeenStore& entries();
    const SeenStore& entries() const;
    // Without the records loaded: none (the marks file is written only when
    // no intent is pending, and believed only for that very file).
    std::vector<PendingIntent> pending_intents() const;
    // Whether the records were read (false while the marks file stands for
    // them: only marks, UIDVALIDITYs and pop3_synced() are known).
    bool records_loaded() const { return loaded_; }
    // Writes the marks file for the state as it is now, after making every
    // record durable; nothing when the records were never loaded (the marks
    // file then still stands for this very file), with --check/--dry-run,
    // while an intent is pending or when no folder has a mark.
    void save_marks();
    const std::string& marks_path() const { return marks_path_; }
    std::optional<std::uint32_t> uidvalidity(const std::string& folder) const;

    // Appends the intent and, when sync is true, fsyncs it together with
    // earlier unsynced records. With sync = false the caller must sync()
    // before publishing the delivery (group commit of a batch).
    void record_intent(const std::string& key, const std::string& intent, bool sync = true);
    // Appends a seen record; durable at the next record_intent()/sync()/compact().
    void record_seen(const std::string& key, std::uint64_t size, const std::string& fingerprint,
                     const std::string& where = {}, bool keep_on_server = false);
    // The same with every field given; a zero recorded_at is taken as now.
    void record_seen(const std::string& key, SeenEntry entry);
    // Room for `more` new seen entries (a plan's new messages): the store
    // then grows once, not by doubling while the messages are recorded.
    void reserve_seen(std::size_t more);
    // Drops a pending intent that turned out not delivered (rollback).
    void drop_intent(const std::string& key);
    void record_uidvalidity(const std::string& folder, std::uint32_t uidvalidity);
    // The folder's mark, when its records are still all there: forgetting
    // one of its keys (F, compaction) or a new UIDVALIDITY drops it.
    const FolderMark* mark(const std::string& folder) const;
    // Appends an M record when the mark changed.
    void record_mark(const std::string& folder, const FolderMark& mark);
    // Whether the account's POP3 maildrop was synced before (recorded as a V
    // record for the reserved name ":pop3", which no encoded folder name can
    // be): the IMAP target then never takes a new message for one it holds.
    bool pop3_synced() const { return uidvalidity_.count(":pop3") != 0; }
    void record_pop3_synced();
    // Makes every record so far durable.
    void sync();
    // Prunes the entries for which keep(key) is false and makes everything
    // durable. Rewrites the file with only the live records when it has
    // grown past 1.5 times their size, or always with `rewrite`; pending intents
    // are kept either way.
    void compact(const std::function<bool(const std::string&)>& keep, bool rewrite = false);
    // Hands the buffered records to the kernel without fsync: they then
    // survive a kill of pullmail (not a power loss). For at-least-once
    // targets, to narrow the window in which a kill sends mail again.
    void write_out();
    // Forgets seen entries (without pruning others) — used for --all style resets.
    void forget(const std::string& key);

    // Recovers the valid records of a damaged file: keeps a copy as
    // <path>.damaged-<time>, rewrites the file with every record whose checksum
    // is valid. A healthy file (current header, every line a valid record)
    // and a missing one are left alone: nothing is written, no copy made.
    struct Repair {
        enum class Outcome { Missing, Healthy, Rebuilt } outcome = Outcome::Missing;
        std::size_t records = 0;  // valid records (kept, or found in the healthy file)
        std::string backup;       // the copy of the damaged file, when Rebuilt
    };
    static Repair repair(const std::string& path);

private:
    void load();
    bool load_marks();
    void ensure_loaded();
    void require_loaded() const;
    bool check_header(std::string_view header);
    // False for a record whose checksum holds but whose contents do not
    // (a Z record that does not decode).
    bool apply_record(std::string_view record, std::int64_t now);
    bool apply_snapshot(std::string_view fields, std::int64_t now);
    void append(const std::string& record);
    void open_for_append();
    void ensure_created();

    std::string path_;
    std::string marks_path_;
    std::string generation_;  // of the file's header (version 4); "" for older files
    std::string marks_text_;  // the marks file as read or last written
    bool loaded_ = true;      // the records were read (false: the marks file stands for them)
    std::string load_warning_;
    bool read_only_ = false;
    bool created_ = true;  // the file exists (false: new state, not written yet)
    int fd_ = -1;
    bool dirty_ = false;  // appended since the last fsync
    bool upgrade_ = false;  // loaded an old version or records without a time: rewrite once
    std::string buffer_;  // records not yet written to the file
    std::uint64_t file_bytes_ = 0;  // size of the file (without buffer_)
    std::uint64_t snapshot_bytes_ = 0;  // of its Z lines (state_snapshot.h)
    SeenStore seen_;
    std::map<std::string, std::string> intents_;  // key -> intent
    std::map<std::string, std::uint32_t> uidvalidity_;
    std::map<std::string, FolderMark> marks_;  // encoded folder -> mark
    void drop_mark_of(const std::string& key);
};


}  // namespace pullmail
