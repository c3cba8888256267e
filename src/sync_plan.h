// sync_plan.h — every rule of a folder sync, as pure functions.
//
// A protocol gives a listing and an identity (mail_source.h); these
// functions turn (listing, identity, state entries, options) into what to
// fetch, what to recognise by header fingerprint, what to remove from the
// server and which state records to forget. No I/O, no clock: the executor
// (folder_sync.h) carries the plan out and the unit tests state each rule as
// a row of a table (tests/unit/test_plan.cpp).
//
// The invariant every function here keeps: nothing is in a removal list
// unless its state entry says it was delivered (recorded by the delivery
// handler after the delivery was durable) or it was strongly recognised
// (recognise_delivered below) and recorded under its current key before the
// removal is carried out. An entry marked `keep_on_server` (a reply shorter
// than the server announced) is never removed, nor one whose `delivered`
// is not Whole (oversize "headers" or "skip": the body never reached the
// target). The one exception is oversize = "delete", which the user asks
// for: a message over max_size is removed without being delivered.
//
// Retention and limits, all rules of this file:
//   - delete_after: with keep, a listed message whose entry is Whole, not
//     keep_on_server, and recorded at least delete_after seconds before
//     `now` is removed (plan_removal). Without keep everything delivered is
//     removed at once anyway.
//   - max_size / oversize: a message to fetch whose server size exceeds
//     max_size is not fetched. "skip": reported once (plan.report_oversize,
//     recorded Skipped; fetched after all if it later fits); "headers": its
//     header block is delivered with a note (plan.headers_only, recorded
//     HeadersOnly, never fetched again); "delete": removed unread
//     (plan.remove_unread).
//   - max_messages: at most that many messages are fetched by one plan (the
//     whole ones and the header-only ones together), oldest first (the
//     listing order: POP3 message numbers, IMAP UIDs); the rest wait for
//     the next run. The limit is the account's per run (fetchmail's
//     fetchlimit): the executor gives each folder's plan what the folders
//     before it (configured order) left of the budget.
//
// Per-recipient delivery (relay targets with several recipients):
// a message a relay target took for some recipients only is recorded
// Partial with those recipients (state_journal.h). It is fetched again like
// a new message, and plan.delivered_to names who has it, so the deliverer
// sends it to the other recipients only; being not Whole it is never
// removed, never recognised and keeps its folder unmarked, until a run
// delivers it to every recipient still owed and records it Whole.
//
// Recognition rule. A message of the listing is matched against state
// entries by fingerprint only across a real change of identity:
//   - an IMAP folder whose UIDVALIDITY changed: the entries of that folder
//     under another UIDVALIDITY;
//   - an account that switched protocol: for IMAP INBOX the POP3 entries,
//     for POP3 the IMAP INBOX entries;
//   - `pullmail adopt`: every unseen message is recorded without a match.
// Entries of the current identity never vouch for anything: when their
// message is no longer listed they are pruned. A match is strong: the same
// header fingerprint (fingerprint.h) and the same size as the server reports
// it (across protocols a POP3 size may exceed the IMAP size by exactly 2,
// the line break POP3 adds to a message without a final one). A message
// whose header has none of the fingerprint's fields matches by its arrival
// fingerprint (IMAP INTERNALDATE, fingerprint.h) and the same size, only
// against entries of the same IMAP folder, and only when the server handed
// out its header (so "none of the fields" is known). Each old entry
// matches at most one message, and the old identity's entries are used once:
// the run that recognised against them retires all of them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config.h"
#include "retrieval.h"
#include "state_journal.h"

namespace pullmail {

enum class SourceProtocol { Pop3, Imap };

// What a listing belongs to: the POP3 maildrop of the account, or one IMAP
// folder under one UIDVALIDITY.
struct SourceIdentity {
    SourceProtocol protocol = SourceProtocol::Pop3;
    std::string folder;             // IMAP folder, '/' separated; empty for POP3
    std::uint32_t uidvalidity = 0;  // IMAP
};

struct PlanOptions {
    bool all = false;      // -a: fetch what was delivered before, too
    bool keep = true;      // effective keep after -k / -K
    bool check = false;    // -c: count only
    bool dry_run = false;  // -n: report only
    bool adopt = false;    // pullmail adopt: record everything as seen, fetch nothing
    // Retention and limits (see the top of this file); 0 = no limit.
    std::int64_t now = 0;           // Unix seconds, for delete_after (the caller's clock)
    std::int64_t delete_after = 0;  // seconds after delivery; only with keep
    std::uint64_t max_size = 0;     // octets as the server counts them
    Oversize oversize = Oversize::Skip;
    // max_messages: what this plan may still fetch, the account's budget
    // left in this run (none = no limit; 0 = fetch nothing new).
    std::optional<std::size_t> max_messages;
};

using StateEntries = SeenStore;

// Messages of a listing, by pointer (8 bytes a message): a plan of a
// million new messages costs no copy of the listing. Reads like a
// std::vector<RemoteMessage>; the listing must outlive it.
class MessageRefs {
public:
    class const_iterator {
    public:
        using iterator_category = std::random_access_iterator_tag;
        using value_type = RemoteMessage;
        using difference_type = std::ptrdiff_t;
        using pointer = const RemoteMessage*;
        using reference = const RemoteMessage&;
        explicit const_iterator(const RemoteMessage* const* p) : p_(p) {}
        const RemoteMessage& operator*() const { return **p_; }
        const RemoteMessage* operator->() const { return *p_; }
        const_iterator& operator++() { ++p_; return *this; }
        bool operator==(const const_iterator& o) const { return p_ == o.p_; }
        difference_type operator-(const const_iterator& o) const { return p_ - o.p_; }

    private:
        const RemoteMessage* const* p_;
    };
    void push_back(const RemoteMessage& m) { refs_.push_back(&m); }
    void reserve(std::size_t n) { refs_.reserve(n); }
    void resize(std::size_t n) { refs_.resize(std::min(n, refs_.size())); }  // keeps the first n
    std::size_t size() const { return refs_.size(); }
    bool empty() const { return refs_.empty(); }
    const RemoteMessage& operator[](std::size_t i) const { return *refs_[i]; }
    const_iterator begin() const { return const_iterator(refs_.data()); }
    const_iterator end() const { return const_iterator(refs_.data() + refs_.size()); }
    // Copies of the messages [from, from + count), for an interface that
    // takes messages by value (a slice at a time for big plans).
    std::vector<RemoteMessage> copy(std::size_t from = 0, std::size_t count = SIZE_MAX) const;
    operator std::vector<RemoteMessage>() const { return copy(); }

private:
    std::vector<const RemoteMessage*> refs_;
};

struct Plan {
    // The listing less `untouched`, pointing into the listing given to
    // plan_folder(), which must outlive the plan (8 bytes a message: a
    // listing of a million messages is held once, not copied).
    std::vector<const RemoteMessage*> listed;
    MessageRefs fetch;                     // new messages to retrieve, in listing order (into the listing)
    std::vector<RemoteMessage> untouched;  // shared UIDLs: never fetched, never removed
    // Over max_size (see the top of this file), in listing order.
    std::vector<RemoteMessage> report_oversize;  // skip: report once, record as Skipped
    std::vector<RemoteMessage> headers_only;     // headers: deliver the header block and a note
    std::vector<RemoteMessage> remove_unread;    // delete: remove without delivering
    std::size_t deferred = 0;  // new messages left for a later run by max_messages
    // Messages of fetch recorded Partial (see the top of this file): key ->
    // the recipients that already got it. Not with -a (sent to everyone).
    std::unordered_map<std::string, std::vector<std::string>> delivered_to;
    // Old-identity entries with a fingerprint that may vouch for messages of
    // `fetch`; when non-empty (or with adopt) the executor fetches the
    // header fields of `fetch` and calls recognise_delivered().
    std::vector<std::string> recognise_against;
    bool need_headers = false;
    // Entries to forget once the sync has listed the folder: the current
    // identity's entries whose message is gone, and every old-identity entry
    // (recognition ran, or nothing could be recognised).
    std::vector<std::string> prune;
    bool records = true;  // false for --check / --dry-run: nothing is written
    // True on the first sync of this identity (or after an IMAP UIDVALIDITY
    // change): only then may an IMAP target be asked whether it already
    // holds a message (another tool started the migration). Afterwards a
    // new key is a new message, even when it is byte for byte an old one.
    bool target_may_hold = false;
};

// The plan of one listing. `synced_before`: the state records an earlier
// sync of this very identity (POP3: of the maildrop; IMAP: of the folder
// under the same UIDVALIDITY).
Plan plan_folder(const std::vector<RemoteMessage>& listing, const SourceIdentity& id, const StateEntries& state,
                 bool synced_before, const PlanOptions& opts);
// The plan points into the listing: a temporary one would dangle.
Plan plan_folder(std::vector<RemoteMessage>&& listing, const SourceIdentity& id, const StateEntries& state,
                 bool synced_before, const PlanOptions& opts) = delete;

// The header id of a message: its IMAP UID, or its POP3 message number.
std::uint32_t header_id(const RemoteMessage& m);

struct Recognised {
    RemoteMessage message;
    std::string fingerprint;
    std::string old_key;  // empty for adopt
    std::int64_t recorded_at = 0;  // the old entry's delivery time (delete_after counts from it); 0 = now
    bool keep_on_server = false;   // recorded so: never deleted on the strength of this match
};

// Takes the messages of plan.fetch that old entries strongly match (or all
// of them, with adopt) out of plan.fetch. `headers` maps header_id() to the
// header block; plan.fetch's internal_date counts for arrival fingerprints. The caller records each as seen under its current key.
std::vector<Recognised> recognise_delivered(Plan& plan, const SourceIdentity& id, const StateEntries& state,
                                            const std::map<std::uint32_t, std::string>& headers,
                                            const PlanOptions& opts);

// What to remove from the server once retrieval is over: without keep,
// every listed message whose entry says it was delivered whole (this run or
// before) and may be removed; with keep, those of them that expired
// (plan_expired); and plan.remove_unread. Empty with check, dry run or adopt.
std::vector<RemoteMessage> plan_removal(const Plan& plan, const StateEntries& state, const PlanOptions& opts);

// Whether a run with these options may delete anything on the server:
// keep = false (or -K), delete_after, or oversize = "delete". When not, the
// caller opens folders read-only (EXAMINE).
bool may_remove(const PlanOptions& opts);

// ---- The constant-cost IMAP poll ----
//
// `now` is what STATUS (or LIST-STATUS) reports for a folder, `mark` what the
// state recorded after its last complete sync (mark_after_sync). With the
// same UIDVALIDITY and UIDNEXT no message was added since (a new message
// always gets a UID >= UIDNEXT, RFC 3501 2.3.1.1), and with the same count
// none was removed either: the folder holds exactly the recorded messages,
// so it is neither opened nor listed. A message deleted by another client
// changes the count, so the next poll lists the folder and prunes its
// record: counts detect every deletion, no periodic listing is needed.
// Never with -a (everything is fetched again) nor with delete_after (a
// recorded message may expire while nothing changes on the server).
bool folder_unchanged(const FolderMark& now, const FolderMark* mark, const PlanOptions& opts);

// The mark to record once the sync of a listed folder is over (after its
// prune): only when the state then says exactly what the folder holds:
// every listed message recorded as delivered whole (no oversize stub or
// skip, which a new max_size may change), nothing shared or left to remove
// or expired, the
// listing as long as the server's count, and UIDNEXT known. `opened` is the
// folder as SELECT reported it, before the listing.
std::optional<FolderMark> mark_after_sync(const Plan& plan, const FolderMark& opened, const StateEntries& state,
                                          const PlanOptions& opts);

// The listed messages that delete_after removes (with keep), whatever the
// mode: the dry run lists them.
std::vector<RemoteMessage> plan_expired(const Plan& plan, const StateEntries& state, const PlanOptions& opts);

// The header block of an oversize message with the note that stands for its
// body (what oversize = "headers" delivers), CRLF as the server's bytes.
// `header` is the block as the server sent it, with or without the blank
// line that ends it; it is kept byte for byte.
std::string oversize_stub(std::string_view header, std::uint64_t size, std::uint64_t max_size);


}  // namespace pullmail
