#include "state_store.h"

#include <functional>
#include <limits>
#include <stdexcept>

#include "text_util.h"

namespace pullmail {

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// 32 lower-case hex digits: what header_fingerprint() writes. Anything
// else (an arrival fingerprint, "-", a record of another version) is kept
// byte for byte.
bool packable(std::string_view fp) {
    if (fp.size() != 32) return false;
    for (char c : fp)
        if (hex_value(c) < 0) return false;
    return true;
}

std::size_t hash_of(std::string_view key) { return std::hash<std::string_view>{}(key); }

}  // namespace

std::string recipients_field(const std::vector<std::string>& rcpts) {
    std::string out = "rcpt:";
    for (std::size_t i = 0; i < rcpts.size(); ++i) out += (i ? "," : "") + percent_encode(rcpts[i], ",");
    return out;
}

std::vector<std::string> parse_recipients(std::string_view field) {
    std::vector<std::string> out;
    if (field.rfind("rcpt:", 0) != 0) return out;
    field.remove_prefix(5);
    while (!field.empty()) {
        auto comma = field.find(',');
        std::string_view part = field.substr(0, comma);
        if (!part.empty()) out.push_back(percent_decode(part));
        field.remove_prefix(comma == std::string_view::npos ? field.size() : comma + 1);
    }
    return out;
}

SeenStore::SeenStore(std::initializer_list<value_type> init) {
    for (const auto& [k, e] : init) insert_or_assign(k, e);
}

void SeenStore::clear() {
    recs_.clear();
    arena_.clear();
    index_.clear();
    live_ = 0;
    garbage_ = 0;
}

void SeenStore::reserve(std::size_t n, std::size_t key_bytes) {
    if (n <= live_) return;
    recs_.reserve(recs_.size() + (n - live_));
    arena_.reserve(arena_.size() + (n - live_) * key_bytes);
    rebuild_index(n);
}

// An index of at least 2n slots (a power of two), at most half full.
void SeenStore::rebuild_index(std::size_t n) {
    std::size_t want = 16;
    while (want < 2 * n) want *= 2;
    if (want <= index_.size()) return;
    index_.assign(want, 0);
    const std::size_t mask = want - 1;
    for (std::uint32_t i = 0; i < recs_.size(); ++i) {
        if (recs_[i].dead) continue;
        std::size_t s = hash_of(key_of(recs_[i])) & mask;
        while (index_[s] != 0) s = (s + 1) & mask;
        index_[s] = i + 1;
    }
}

std::uint32_t SeenStore::find_rec(std::string_view key) const {
    if (index_.empty()) return kNone;
    const std::size_t mask = index_.size() - 1;
    for (std::size_t s = hash_of(key) & mask;; s = (s + 1) & mask) {
        std::uint32_t v = index_[s];
        if (v == 0) return kNone;
        if (key_of(recs_[v - 1]) == key) return v - 1;
    }
}

SeenView SeenStore::view_of(const Rec& r, char (&hex)[32]) const {
    SeenView v;
    v.info = SeenInfo{r.size, r.recorded_at, r.delivered, r.keep_on_server, false};
    const char* p = arena_.data() + r.off + r.key_len;
    if (r.fp_hex) {
        static constexpr char kDigits[] = "0123456789abcdef";
        for (int i = 0; i < 16; ++i) {
            auto b = static_cast<unsigned char>(p[i]);
            hex[2 * i] = kDigits[b >> 4];
            hex[2 * i + 1] = kDigits[b & 15];
        }
        v.fingerprint = std::string_view(hex, 32);
    } else {
        v.fingerprint = std::string_view(p, r.fp_len);
    }
    v.info.has_fingerprint = v.fingerprint != "-";
    v.where_field = std::string_view(p + r.fp_len, r.where_len);
    return v;
}

SeenEntry SeenStore::entry_of(const Rec& r) const {
    char hex[32];
    SeenView v = view_of(r, hex);
    SeenEntry e{v.info.size, std::string(v.fingerprint), {}, v.info.keep_on_server, v.info.delivered,
                v.info.recorded_at};
    if (e.delivered == Delivered::Partial)
        e.recipients = parse_recipients(v.where_field);
    else
        e.where = std::string(v.where_field);
    return e;
}

std::optional<SeenInfo> SeenStore::info(std::string_view key) const {
    auto i = find_rec(key);
    if (i == kNone) return std::nullopt;
    const Rec& r = recs_[i];
    bool has_fp = r.fp_hex || std::string_view(arena_).substr(r.off + r.key_len, r.fp_len) != "-";
    return SeenInfo{r.size, r.recorded_at, r.delivered, r.keep_on_server, has_fp};
}

std::optional<SeenEntry> SeenStore::get(std::string_view key) const {
    auto i = find_rec(key);
    if (i == kNone) return std::nullopt;
    return entry_of(recs_[i]);
}

SeenEntry SeenStore::at(std::string_view key) const {
    auto e = get(key);
    if (!e) throw std::out_of_range("no seen entry for " + std::string(key));
    return std::move(*e);
}

void SeenStore::fill(Rec& r, std::string_view key, const SeenInfo& info, std::string_view fp,
                     std::string_view where, bool fp_raw) {
    char packed[16];
    if (fp_raw && fp.size() != 16) throw std::invalid_argument("state: a raw fingerprint is 16 bytes");
    r.fp_hex = fp_raw || packable(fp);
    if (r.fp_hex && !fp_raw) {
        for (std::size_t i = 0; i < 16; ++i)
            packed[i] = static_cast<char>(hex_value(fp[2 * i]) << 4 | hex_value(fp[2 * i + 1]));
        fp = std::string_view(packed, 16);
    }
    std::size_t need = key.size() + fp.size() + where.size();
    if (arena_.size() + need > std::numeric_limits<std::uint32_t>::max())
        throw std::length_error("state: more seen entries than one store holds");
    r.off = static_cast<std::uint32_t>(arena_.size());
    r.key_len = static_cast<std::uint32_t>(key.size());
    arena_.append(key);
    arena_.append(fp);
    r.fp_len = static_cast<std::uint32_t>(fp.size());
    arena_.append(where);
    r.where_len = static_cast<std::uint32_t>(where.size());
    r.size = info.size;
    r.recorded_at = info.recorded_at;
    r.delivered = info.delivered;
    r.keep_on_server = info.keep_on_server;
    r.dead = false;
}

void SeenStore::insert_or_assign(std::string_view key, const SeenInfo& info, std::string_view fingerprint,
                                 std::string_view where_field, bool fp_raw) {
    if (auto i = find_rec(key); i != kNone) {
        Rec& r = recs_[i];
        garbage_ += r.key_len + r.fp_len + r.where_len;
        fill(r, key, info, fingerprint, where_field, fp_raw);
        maybe_repack();
        return;
    }
    if (recs_.size() >= kNone - 1) throw std::length_error("state: more seen entries than one store holds");
    if (2 * (live_ + 1) > index_.size()) rebuild_index(2 * (live_ + 1));
    recs_.emplace_back();
    fill(recs_.back(), key, info, fingerprint, where_field, fp_raw);
    const std::size_t mask = index_.size() - 1;
    std::size_t s = hash_of(key) & mask;
    while (index_[s] != 0) s = (s + 1) & mask;
    index_[s] = static_cast<std::uint32_t>(recs_.size());
    ++live_;
}

void SeenStore::insert_or_assign(std::string_view key, const SeenEntry& e) {
    SeenInfo info{e.size, e.recorded_at, e.delivered, e.keep_on_server, false};
    if (e.delivered == Delivered::Partial)
        insert_or_assign(key, info, e.fingerprint, recipients_field(e.recipients));
    else
        insert_or_assign(key, info, e.fingerprint, e.where);
}

bool SeenStore::erase(std::string_view key) {
    if (index_.empty()) return false;
    const std::size_t mask = index_.size() - 1;
    std::size_t s = hash_of(key) & mask;
    for (;; s = (s + 1) & mask) {
        if (index_[s] == 0) return false;
        if (key_of(recs_[index_[s] - 1]) == key) break;
    }
    Rec& r = recs_[index_[s] - 1];
    r.dead = true;
    garbage_ += r.key_len + r.fp_len + r.where_len;
    --live_;
    // Backward-shift deletion: every slot of the probe run after the hole
    // that may move into it does, so lookups never meet a false end.
    index_[s] = 0;
    for (std::size_t hole = s, j = (s + 1) & mask; index_[j] != 0; j = (j + 1) & mask) {
        std::size_t home = hash_of(key_of(recs_[index_[j] - 1])) & mask;
        bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable) {
            index_[hole] = index_[j];
            index_[j] = 0;
            hole = j;
        }
    }
    maybe_repack();
    return true;
}

// Erased and replaced entries leave bytes and records behind; once they
// are most of the store it is rebuilt without them.
void SeenStore::maybe_repack() {
    if (garbage_ < 4096 || garbage_ < arena_.size() / 2) return;
    SeenStore fresh;
    fresh.reserve(live_, live_ ? (arena_.size() - garbage_) / live_ + 1 : 0);
    for (const Rec& r : recs_) {
        if (r.dead) continue;
        char hex[32];
        SeenView v = view_of(r, hex);
        fresh.insert_or_assign(key_of(r), v.info, v.fingerprint, v.where_field);
    }
    *this = std::move(fresh);
}

}  // namespace pullmail
