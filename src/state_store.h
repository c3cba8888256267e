// state_store.h — the seen entries of a state, held compactly.
//
// A state of a big kept mailbox has one entry per message, and every poll
// loads all of them: the store keeps them as fixed-size records in one
// array (40 bytes each), their keys, fingerprints and <where> fields in one
// arena of bytes (a 32-hex-digit fingerprint as its 16 bytes), and an
// open-addressing index of record numbers (4 bytes a slot, at most half
// full). No allocation per entry: about 100 bytes an entry instead of
// about 230 in a node-based map of strings.
//
// Reads come in three weights: contains()/info() (the fixed fields, no
// allocation: what a poll needs), for_each() (every entry as views, for
// the planner's pass over the state and for writing records), and get()/
// at()/iteration, which build a SeenEntry (rare paths and tests).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pullmail {

// How much of a message a seen record stands for. Only Whole vouches that
// the message was delivered: the others are never removed from the server
// by keep = false or delete_after, and never recognised across a change of
// identity (sync_plan.h).
enum class Delivered : std::uint8_t {
    Whole,        // the message was delivered
    HeadersOnly,  // oversize = "headers": its header block and a note were delivered
    Skipped,      // oversize = "skip": nothing was delivered; recorded so it is reported once
    Partial,      // a relay target took it for SeenEntry::recipients only; the rest are still owed
};

struct SeenEntry {
    std::uint64_t size = 0;
    std::string fingerprint;  // "-" when unknown
    std::string where;        // where the delivered copy is, when the target says (IMAP APPENDUID)
    bool keep_on_server = false;  // delivered from a reply shorter than announced: never delete the original
    Delivered delivered = Delivered::Whole;
    std::int64_t recorded_at = 0;  // Unix seconds of the record (delivery time); 0 only before load stamps it
    std::vector<std::string> recipients = {};  // Partial: the recipients that got it (sync_plan.h, recipients_owed)
};

// The fixed fields of an entry.
struct SeenInfo {
    std::uint64_t size = 0;
    std::int64_t recorded_at = 0;
    Delivered delivered = Delivered::Whole;
    bool keep_on_server = false;
    bool has_fingerprint = false;  // the fingerprint is not "-"
};

// An entry as views, valid only during the for_each() call that gives it.
// `where_field` is the record's <where> as the state file writes it: for
// a Partial entry "rcpt:" and its escaped recipients, else the location
// ("" when none).
struct SeenView {
    SeenInfo info;
    std::string_view fingerprint;
    std::string_view where_field;
};

// The <where> field of a Partial entry and back (state_journal.h).
std::string recipients_field(const std::vector<std::string>& rcpts);
std::vector<std::string> parse_recipients(std::string_view field);

class SeenStore {
public:
    using value_type = std::pair<std::string, SeenEntry>;

    SeenStore() = default;
    SeenStore(std::initializer_list<value_type> init);

    std::size_t size() const { return live_; }
    bool empty() const { return live_ == 0; }
    void clear();
    // Room for n entries in all, the new ones of about key_bytes bytes of arena each.
    void reserve(std::size_t n, std::size_t key_bytes = 40);

    bool contains(std::string_view key) const { return find_rec(key) != kNone; }
    std::size_t count(std::string_view key) const { return contains(key) ? 1 : 0; }
    std::optional<SeenInfo> info(std::string_view key) const;
    std::optional<SeenEntry> get(std::string_view key) const;
    SeenEntry at(std::string_view key) const;  // throws std::out_of_range when absent

    void insert_or_assign(std::string_view key, const SeenEntry& e);
    // The same from the fields of a record (where_field as SeenView says).
    // The views must not point into this store (its arena may move while
    // they are copied in): views of another store, or of a record's text.
    // With fp_raw, `fingerprint` is the 16 bytes that a fingerprint of 32
    // lower-case hex digits stands for (a packed state record gives them so).
    void insert_or_assign(std::string_view key, const SeenInfo& info, std::string_view fingerprint,
                          std::string_view where_field, bool fp_raw = false);
    bool erase(std::string_view key);

    // f(std::string_view key, const SeenView&) for each entry, in no set order.
    template <class F>
    void for_each(F&& f) const {
        char hex[32];
        for (const Rec& r : recs_)
            if (!r.dead) f(key_of(r), view_of(r, hex));
    }

    // Iteration building each entry: for tests and rare paths only.
    class const_iterator {
    public:
        using value_type = SeenStore::value_type;
        const_iterator(const SeenStore* s, std::size_t i) : s_(s), i_(i) { skip(); }
        value_type operator*() const { return {std::string(s_->key_of(s_->recs_[i_])), s_->entry_of(s_->recs_[i_])}; }
        const_iterator& operator++() {
            ++i_;
            skip();
            return *this;
        }
        bool operator==(const const_iterator& o) const { return i_ == o.i_; }
        bool operator!=(const const_iterator& o) const { return i_ != o.i_; }

    private:
        void skip() {
            while (i_ < s_->recs_.size() && s_->recs_[i_].dead) ++i_;
        }
        const SeenStore* s_;
        std::size_t i_;
    };
    const_iterator begin() const { return const_iterator(this, 0); }
    const_iterator end() const { return const_iterator(this, recs_.size()); }

private:
    struct Rec {
        std::uint64_t size = 0;
        std::int64_t recorded_at = 0;
        std::uint32_t off = 0;  // of the key in arena_; the fingerprint and where follow it
        std::uint32_t key_len = 0;
        std::uint32_t fp_len = 0;  // bytes in the arena (16 when fp_hex)
        std::uint32_t where_len = 0;
        Delivered delivered = Delivered::Whole;
        bool keep_on_server = false;
        bool fp_hex = false;  // the fingerprint is 32 lower-case hex digits, held as 16 bytes
        bool dead = false;    // erased (its slot in the index is free)
    };
    static constexpr std::uint32_t kNone = 0xffffffffu;

    std::string_view key_of(const Rec& r) const { return std::string_view(arena_).substr(r.off, r.key_len); }
    SeenView view_of(const Rec& r, char (&hex)[32]) const;
    SeenEntry entry_of(const Rec& r) const;
    std::uint32_t find_rec(std::string_view key) const;
    void fill(Rec& r, std::string_view key, const SeenInfo& info, std::string_view fp, std::string_view where,
              bool fp_raw);
    void rebuild_index(std::size_t n);
    void maybe_repack();

    std::vector<Rec> recs_;
    std::string arena_;
    std::vector<std::uint32_t> index_;  // record number + 1; 0 = free
    std::size_t live_ = 0;
    std::size_t garbage_ = 0;  // arena bytes of erased or replaced entries
};

}  // namespace pullmail
