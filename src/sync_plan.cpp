#include "sync_plan.h"

#include <algorithm>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "fingerprint.h"
#include "text_util.h"

namespace pullmail {

namespace {

struct KeyParts {
    bool imap = false;
    std::string folder;  // encoded, IMAP only
    std::string uidvalidity;
};

KeyParts parse_key(std::string_view key) {
    KeyParts p;
    if (key.rfind("imap:", 0) != 0) return p;
    auto a = key.find(':', 5);
    if (a == std::string::npos) return p;
    auto b = key.find(':', a + 1);
    if (b == std::string::npos) return p;
    p.imap = true;
    p.folder = std::string(key.substr(5, a - 5));
    p.uidvalidity = std::string(key.substr(a + 1, b - a - 1));
    return p;
}

bool is_inbox(const std::string& folder) { return ascii_upper(folder) == "INBOX"; }

// How a state entry relates to the identity being synced; each key is
// parsed once (this runs for every entry on every poll).
enum class Relation {
    Current,  // this identity: pruned when no longer listed
    Old,      // an old identity it may be recognised against; retired by this sync
    Retired,  // no longer meaningful (POP3 sync: another IMAP folder); retired
    Other,    // another folder of the account: left alone
};

Relation relation(std::string_view key, const SourceIdentity& id, const std::string& enc_folder,
                  const std::string& validity) {
    bool pop3_key = key.rfind("pop3:", 0) == 0;
    if (id.protocol == SourceProtocol::Pop3) {
        if (pop3_key) return Relation::Current;
        KeyParts p = parse_key(key);
        if (!p.imap) return Relation::Other;
        return is_inbox(decode_folder(p.folder)) ? Relation::Old : Relation::Retired;
    }
    if (pop3_key) return is_inbox(id.folder) ? Relation::Old : Relation::Other;
    KeyParts p = parse_key(key);
    if (!p.imap || p.folder != enc_folder) return Relation::Other;
    return p.uidvalidity == validity ? Relation::Current : Relation::Old;
}

bool sizes_match(const RemoteMessage& m, const std::string& old_key, const SeenInfo& old, const SourceIdentity& id) {
    if (old.size == 0 || m.size == 0) return false;  // unknown size: never a strong match
    bool old_pop3 = old_key.rfind("pop3:", 0) == 0;
    bool now_pop3 = id.protocol == SourceProtocol::Pop3;
    if (old_pop3 == now_pop3) return old.size == m.size;
    std::uint64_t pop = now_pop3 ? m.size : old.size, imap = now_pop3 ? old.size : m.size;
    return pop == imap || pop == imap + 2;
}

bool removable(const SeenInfo& e) { return e.delivered == Delivered::Whole && !e.keep_on_server; }

bool too_big(const RemoteMessage& m, const PlanOptions& opts) { return opts.max_size > 0 && m.size > opts.max_size; }

// Sorts a message that is new (or asked for again with -a) into the plan:
// fetched, or one of the oversize lists.
void place_new(const RemoteMessage& m, const SeenInfo* e, const StateEntries& state, Plan& plan,
               const PlanOptions& opts) {
    bool partial = e && e->delivered == Delivered::Partial;
    // Adoption takes every message as already delivered, whatever its size:
    // only its header fields are fetched, and nothing is removed.
    if (!too_big(m, opts) || opts.adopt) {
        if (!e || opts.all || e->delivered == Delivered::Skipped || partial) plan.fetch.push_back(m);
        if (partial && !opts.all) plan.delivered_to[m.key] = state.at(m.key).recipients;
        return;
    }
    switch (opts.oversize) {
        case Oversize::Skip:
            if (!e || (opts.all && e->delivered == Delivered::Whole)) plan.report_oversize.push_back(m);
            break;
        case Oversize::Headers:
            if (!e || opts.all || e->delivered == Delivered::Skipped || partial) plan.headers_only.push_back(m);
            break;
        case Oversize::Delete:
            plan.remove_unread.push_back(m);
            break;
    }
}

// max_messages: keeps the oldest of fetch and headers_only together (both
// in listing order, which header_id() follows within one listing).
void apply_limit(Plan& plan, const PlanOptions& opts) {
    std::size_t total = plan.fetch.size() + plan.headers_only.size();
    if (!opts.max_messages || total <= *opts.max_messages) return;
    const std::size_t limit = *opts.max_messages;
    std::size_t f = 0, h = 0;
    while (f + h < limit) {
        bool take_fetch = h == plan.headers_only.size() ||
                          (f < plan.fetch.size() && header_id(plan.fetch[f]) < header_id(plan.headers_only[h]));
        take_fetch ? ++f : ++h;
    }
    plan.fetch.resize(f);
    plan.headers_only.resize(h);
    plan.deferred += total - limit;
}

// An arrival fingerprint (INTERNALDATE) vouches only within one IMAP
// folder: another server, or POP3, has no such date for the message.
bool same_folder_imap(std::string_view old_key, const SourceIdentity& id) {
    KeyParts p = parse_key(old_key);
    return id.protocol == SourceProtocol::Imap && p.imap && p.folder == encode_folder(id.folder);
}

}  // namespace

std::uint32_t header_id(const RemoteMessage& m) { return m.uid ? m.uid : m.number; }

Plan plan_folder(const std::vector<RemoteMessage>& listing, const SourceIdentity& id, const StateEntries& state,
                 bool synced_before, const PlanOptions& opts) {
    Plan plan;
    plan.records = !opts.check && !opts.dry_run;
    plan.target_may_hold = !synced_before;
    // A key listed twice (POP3 servers that hash headers into the UIDL)
    // cannot say which message was delivered: neither is touched. Sorted
    // keys instead of hash sets: a tenth of the memory for big listings.
    std::vector<std::string_view> keys;
    keys.reserve(listing.size());
    for (const auto& m : listing) keys.push_back(m.key);
    // Many servers list in key order already (Dovecot's UIDLs and IMAP keys
    // grow with the message): one pass instead of a sort on every poll.
    if (!std::is_sorted(keys.begin(), keys.end())) std::sort(keys.begin(), keys.end());
    std::vector<std::string_view> shared;  // keys listed more than once (usually none)
    for (std::size_t i = 1; i < keys.size(); ++i)
        if (keys[i] == keys[i - 1] && (shared.empty() || shared.back() != keys[i])) shared.push_back(keys[i]);
    auto is_shared = [&](std::string_view k) {
        return !shared.empty() && std::binary_search(shared.begin(), shared.end(), k);
    };
    // Distinct listed keys that have an entry: when every entry of this
    // identity is one of them, none is to be pruned, and the poll with
    // nothing new needs no search of the listing per entry.
    std::size_t known_listed = 0;
    for (auto k : shared)
        if (state.contains(k)) ++known_listed;
    plan.listed.reserve(listing.size());
    plan.fetch.reserve(listing.size());  // address space only: untouched pages cost no memory
    for (const auto& m : listing) {
        if (is_shared(m.key)) {
            plan.untouched.push_back(m);
            continue;
        }
        plan.listed.push_back(&m);
        const auto info = state.info(m.key);
        const SeenInfo* e = info ? &*info : nullptr;
        known_listed += e != nullptr;
        if (e && e->delivered == Delivered::Whole && !opts.all) continue;
        if (e && e->delivered == Delivered::HeadersOnly && !opts.all && !too_big(m, opts)) continue;
        place_new(m, e, state, plan, opts);
    }
    const std::string enc_folder = encode_folder(id.folder), validity = std::to_string(id.uidvalidity);
    std::size_t current = 0;
    state.for_each([&](std::string_view key, const SeenView& e) {
        switch (relation(key, id, enc_folder, validity)) {
            case Relation::Current:
                ++current;
                break;
            case Relation::Old:
                plan.prune.emplace_back(key);
                // Only a whole delivery vouches for a message.
                if (e.info.has_fingerprint && e.info.delivered == Delivered::Whole)
                    plan.recognise_against.emplace_back(key);
                break;
            case Relation::Retired:
                plan.prune.emplace_back(key);
                break;
            case Relation::Other:
                break;
        }
    });
    if (current != known_listed)
        state.for_each([&](std::string_view key, const SeenView&) {
            if (relation(key, id, enc_folder, validity) == Relation::Current &&
                !std::binary_search(keys.begin(), keys.end(), key))
                plan.prune.emplace_back(key);
        });
    plan.need_headers = !opts.all && !plan.fetch.empty() && (opts.adopt || !plan.recognise_against.empty());
    // With recognition pending the limit counts what is still to fetch after it.
    if (!plan.need_headers) apply_limit(plan, opts);
    return plan;
}

std::vector<RemoteMessage> MessageRefs::copy(std::size_t from, std::size_t count) const {
    std::vector<RemoteMessage> out;
    if (from >= refs_.size()) return out;
    std::size_t n = std::min(count, refs_.size() - from);
    out.reserve(n);
    for (std::size_t i = from; i < from + n; ++i) out.push_back(*refs_[i]);
    return out;
}

namespace {

// An arrival fingerprint with the exact size: what tells fingerprintless
// messages of one folder apart.
std::string arrival_group(const std::string& fp, std::uint64_t size) { return fp + "/" + std::to_string(size); }

// The arrival groups that may be recognised: those with no more new
// messages than old records of this folder. More new ones than records
// means one of them arrived since (or replaced a deleted twin), and which
// one cannot be told: the whole group is fetched again (a duplicate at
// worst, never a message left undelivered).
std::unordered_set<std::string> matchable_arrival_groups(const Plan& plan, const std::vector<std::string>& fps,
                                                         const std::unordered_map<std::string, std::vector<std::string>>& known,
                                                         const StateEntries& state, const SourceIdentity& id) {
    std::unordered_map<std::string, long> balance;  // old records minus new messages
    for (std::size_t i = 0; i < fps.size(); ++i)
        if (is_arrival_fingerprint(fps[i])) --balance[arrival_group(fps[i], plan.fetch[i].size)];
    for (const auto& [fp, keys] : known) {
        if (!is_arrival_fingerprint(fp)) continue;
        for (const auto& key : keys)
            if (same_folder_imap(key, id)) ++balance[arrival_group(fp, state.info(key)->size)];
    }
    std::unordered_set<std::string> out;
    for (const auto& [group, b] : balance)
        if (b >= 0) out.insert(group);
    return out;
}

}  // namespace

std::vector<Recognised> recognise_delivered(Plan& plan, const SourceIdentity& id, const StateEntries& state,
                                            const std::map<std::uint32_t, std::string>& headers,
                                            const PlanOptions& opts) {
    // Fingerprint -> the old entries that carry it; each stands for one
    // message, so two old copies may vouch for two new ones, never three.
    std::unordered_map<std::string, std::vector<std::string>> known;
    for (const auto& key : plan.recognise_against) {
        if (auto e = state.get(key)) known[e->fingerprint].push_back(key);
    }
    // Without the header block nothing is known: no arrival fingerprint
    // either (it stands for "the header has none of the fields").
    std::vector<std::string> fps;
    fps.reserve(plan.fetch.size());
    for (const auto& m : plan.fetch) {
        auto h = headers.find(header_id(m));
        fps.push_back(h == headers.end() ? "-" : message_fingerprint(h->second, m.internal_date()));
    }
    const auto arrival_ok = matchable_arrival_groups(plan, fps, known, state, id);
    std::vector<Recognised> out;
    MessageRefs rest;
    for (std::size_t i = 0; i < plan.fetch.size(); ++i) {
        const RemoteMessage& m = plan.fetch[i];
        const std::string& fp = fps[i];
        if (opts.adopt) {
            out.push_back({m, fp, {}});
            continue;
        }
        const bool arrival = is_arrival_fingerprint(fp);
        auto k = fp == "-" || (arrival && !arrival_ok.count(arrival_group(fp, m.size))) ? known.end() : known.find(fp);
        bool matched = false;
        if (k != known.end()) {
            for (auto it = k->second.begin(); it != k->second.end(); ++it) {
                const SeenInfo old = *state.info(*it);
                if (!sizes_match(m, *it, old, id)) continue;
                if (arrival && !same_folder_imap(*it, id)) continue;
                // A match by arrival time is strong enough not to deliver
                // again, not to delete: such a message stays on the server.
                out.push_back({m, fp, *it, old.recorded_at, old.keep_on_server || arrival});
                k->second.erase(it);
                matched = true;
                break;
            }
        }
        if (!matched) rest.push_back(m);
    }
    plan.fetch = std::move(rest);
    if (!opts.adopt) apply_limit(plan, opts);
    return out;
}

std::vector<RemoteMessage> plan_expired(const Plan& plan, const StateEntries& state, const PlanOptions& opts) {
    std::vector<RemoteMessage> out;
    if (!opts.keep || opts.delete_after <= 0 || opts.now <= 0) return out;
    for (const RemoteMessage* m : plan.listed) {
        auto e = state.info(m->key);
        if (!e || !removable(*e) || e->recorded_at <= 0) continue;
        if (opts.now - e->recorded_at >= opts.delete_after) out.push_back(*m);
    }
    return out;
}

std::vector<RemoteMessage> plan_removal(const Plan& plan, const StateEntries& state, const PlanOptions& opts) {
    std::vector<RemoteMessage> out;
    if (opts.check || opts.dry_run || opts.adopt) return out;
    if (opts.keep) {
        out = plan_expired(plan, state, opts);
    } else {
        for (const RemoteMessage* m : plan.listed) {
            auto e = state.info(m->key);
            if (e && removable(*e)) out.push_back(*m);
        }
    }
    // Removed unread only as configured (oversize = "delete"), once.
    for (const auto& m : plan.remove_unread)
        if (std::none_of(out.begin(), out.end(), [&](const RemoteMessage& r) { return r.key == m.key; }))
            out.push_back(m);
    return out;
}

std::string oversize_stub(std::string_view header, std::uint64_t size, std::uint64_t max_size) {
    std::string out(header);
    // The header block ends with an empty line; a block cut short gets one.
    bool ends_blank = out.size() >= 4 && out.compare(out.size() - 4, 4, "\r\n\r\n") == 0;
    bool ends_line = out.size() >= 2 && out.compare(out.size() - 2, 2, "\r\n") == 0;
    if (!ends_blank) out += ends_line ? "\r\n" : "\r\n\r\n";
    out += "[pullmail: this message is " + std::to_string(size) + " bytes, more than max_size (" +
           std::to_string(max_size) + " bytes); only its header was fetched, the message was left on the server]\r\n";
    return out;
}

bool may_remove(const PlanOptions& opts) {
    return !opts.keep || opts.delete_after > 0 || (opts.max_size > 0 && opts.oversize == Oversize::Delete);
}

bool folder_unchanged(const FolderMark& now, const FolderMark* mark, const PlanOptions& opts) {
    // delete_after: a recorded message may expire with nothing changed on the server.
    if (opts.all || opts.delete_after > 0 || !mark || now.uidvalidity == 0 || now.uidnext == 0) return false;
    // keep = false (or -K), oversize = "delete": the mark may have been left
    // by a run that kept its mail; only opening the folder finds what is now
    // to delete.
    if (may_remove(opts) && mark->exists > 0) return false;
    return now == *mark;
}

std::optional<FolderMark> mark_after_sync(const Plan& plan, const FolderMark& opened, const StateEntries& state,
                                          const PlanOptions& opts) {
    if (!plan.records || opened.uidvalidity == 0 || opened.uidnext == 0) return std::nullopt;
    if (!plan.untouched.empty() || plan.listed.size() != opened.exists) return std::nullopt;
    for (const RemoteMessage* m : plan.listed) {
        auto e = state.info(m->key);
        if (!e) return std::nullopt;  // not fetched, failed, or the run stopped
        // A skipped message is fetched once max_size lets it through; a
        // header-only stub never is again, so it does not stand in the way.
        if (e->delivered == Delivered::Skipped) return std::nullopt;
    }
    if (!plan_removal(plan, state, opts).empty()) return std::nullopt;  // the count will change
    if (!plan_expired(plan, state, opts).empty()) return std::nullopt;
    return opened;
}

}  // namespace pullmail
