#include "state_snapshot.h"

#include <zlib.h>

#include <charconv>
#include <memory>
#include <new>

namespace pullmail {

namespace {

// A block is 64 KiB and one entry, but an entry's <where> has no limit of
// its own: only what deflate cannot have produced (it packs 1032 to 1 at
// most) is refused before anything is allocated.
constexpr std::size_t kMaxRawBytes = std::size_t{1} << 30;
constexpr std::size_t kMaxRatio = 1032;

void put_varint(std::string& out, std::uint64_t v) {
    while (v >= 0x80) {
        out += static_cast<char>((v & 0x7f) | 0x80);
        v >>= 7;
    }
    out += static_cast<char>(v);
}

std::uint64_t zigzag(std::int64_t v) {
    return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
std::int64_t unzigzag(std::uint64_t v) { return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1); }

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

bool is_lower_hex32(std::string_view s) {
    if (s.size() != 32) return false;
    for (char c : s)
        if (hex_value(c) < 0) return false;
    return true;
}

enum Flags : unsigned {
    kDeliveredMask = 0x03,
    kKeep = 0x04,
    kFpRaw = 0x08,
    kFpText = 0x10,
    kWhere = 0x20,
};

// Reads the entries of one decompressed record.
class EntryReader {
public:
    explicit EntryReader(std::string_view raw) : in_(raw) {}

    bool varint(std::uint64_t& v) {
        v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (pos_ >= in_.size()) return false;
            auto b = static_cast<unsigned char>(in_[pos_++]);
            v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
            if (!(b & 0x80)) return true;
        }
        return false;
    }
    bool bytes(std::uint64_t n, std::string_view& out) {
        if (n > in_.size() - pos_) return false;
        out = in_.substr(pos_, n);
        pos_ += n;
        return true;
    }
    bool sized(std::string_view& out) {
        std::uint64_t n = 0;
        return varint(n) && bytes(n, out);
    }
    bool done() const { return pos_ == in_.size(); }

private:
    std::string_view in_;
    std::size_t pos_ = 0;
};

std::string escape(std::string_view z) {
    std::string out;
    out.reserve(z.size() + z.size() / 64 + 8);
    for (char c : z) {
        if (c == '\x01') out += "\x01\x01";
        else if (c == '\n') out += "\x01\x02";
        else out += c;
    }
    return out;
}

// A run between escapes at a time: they are about 1 byte in 128.
bool unescape(std::string_view in, std::string& out) {
    out.clear();
    out.reserve(in.size());
    for (std::size_t i = 0;;) {
        std::size_t e = in.find('\x01', i);
        out.append(in.substr(i, e == std::string_view::npos ? std::string_view::npos : e - i));
        if (e == std::string_view::npos) return true;
        if (e + 1 == in.size() || (in[e + 1] != '\x01' && in[e + 1] != '\x02')) return false;
        out += in[e + 1] == '\x01' ? '\x01' : '\n';
        i = e + 2;
    }
}

// A loop, not find_first_of: that calls memchr once per character.
bool plain(std::string_view s) {
    for (char c : s)
        if (c == ' ' || c == '\n') return false;
    return true;
}

bool to_size(std::string_view t, std::size_t& v) {
    auto r = std::from_chars(t.data(), t.data() + t.size(), v);
    return r.ec == std::errc() && r.ptr == t.data() + t.size() && !t.empty();
}

bool read_entry(EntryReader& r, std::string& key, std::int64_t& time, const SnapshotEntryFn& f) {
    std::uint64_t shared = 0, flags = 0, size = 0, dt = 0;
    std::string_view rest, fp = "-", where;
    if (!r.varint(shared) || shared > key.size() || !r.sized(rest) || !r.varint(flags) || flags > 0x3f) return false;
    key.resize(static_cast<std::size_t>(shared));
    key.append(rest);
    const bool fp_raw = flags & kFpRaw;
    if (fp_raw && (flags & kFpText)) return false;
    if (fp_raw) {
        if (!r.bytes(16, fp)) return false;
    } else if ((flags & kFpText) && (!r.sized(fp) || fp == "-")) {
        return false;
    }
    if (!r.varint(size) || !r.varint(dt)) return false;
    if ((flags & kWhere) && (!r.sized(where) || where.empty())) return false;
    // Nothing an S record could not hold (its fields are split at spaces).
    if (!plain(key) || (!fp_raw && !plain(fp)) || !plain(where)) return false;
    time = static_cast<std::int64_t>(static_cast<std::uint64_t>(time) + static_cast<std::uint64_t>(unzigzag(dt)));
    SeenInfo info{size, time, static_cast<Delivered>(flags & kDeliveredMask), (flags & kKeep) != 0,
                  fp_raw || fp != "-"};
    // The same rule as an S record's: a Partial entry's <where> is its recipients.
    if (info.delivered == Delivered::Partial && where.rfind("rcpt:", 0) != 0) return false;
    f(key, info, fp, where, fp_raw);
    return true;
}

}  // namespace

void SnapshotWriter::add(std::string_view key, const SeenView& v) {
    std::size_t shared = 0;
    while (shared < key.size() && shared < prev_key_.size() && key[shared] == prev_key_[shared]) ++shared;
    put_varint(raw_, shared);
    put_varint(raw_, key.size() - shared);
    raw_.append(key.substr(shared));
    unsigned flags = static_cast<unsigned>(v.info.delivered) & kDeliveredMask;
    if (v.info.keep_on_server) flags |= kKeep;
    const bool fp_raw = is_lower_hex32(v.fingerprint);
    const bool fp_text = !fp_raw && v.fingerprint != "-";
    if (fp_raw) flags |= kFpRaw;
    if (fp_text) flags |= kFpText;
    if (!v.where_field.empty()) flags |= kWhere;
    raw_ += static_cast<char>(flags);
    if (fp_raw) {
        for (std::size_t i = 0; i < 32; i += 2)
            raw_ += static_cast<char>(hex_value(v.fingerprint[i]) << 4 | hex_value(v.fingerprint[i + 1]));
    } else if (fp_text) {
        put_varint(raw_, v.fingerprint.size());
        raw_.append(v.fingerprint);
    }
    put_varint(raw_, v.info.size);
    // Wrapping, as the times are whatever a record held.
    put_varint(raw_, zigzag(static_cast<std::int64_t>(static_cast<std::uint64_t>(v.info.recorded_at) -
                                                      static_cast<std::uint64_t>(prev_time_))));
    if (!v.where_field.empty()) {
        put_varint(raw_, v.where_field.size());
        raw_.append(v.where_field);
    }
    prev_key_.assign(key);
    prev_time_ = v.info.recorded_at;
    ++count_;
}

std::string SnapshotWriter::take() {
    uLongf zlen = compressBound(static_cast<uLong>(raw_.size()));
    auto z = std::make_unique_for_overwrite<Bytef[]>(zlen);
    if (compress2(z.get(), &zlen, reinterpret_cast<const Bytef*>(raw_.data()), static_cast<uLong>(raw_.size()),
                  Z_DEFAULT_COMPRESSION) != Z_OK)
        throw std::bad_alloc();  // the only way compress2 fails with a bound-sized buffer
    std::string out = "Z " + std::to_string(count_) + " " + std::to_string(raw_.size()) + " ";
    out += escape(std::string_view(reinterpret_cast<const char*>(z.get()), zlen));
    raw_.clear();
    prev_key_.clear();
    prev_time_ = 0;
    count_ = 0;
    return out;
}

bool read_snapshot(std::string_view fields, const SnapshotEntryFn& f) {
    auto sp1 = fields.find(' ');
    if (sp1 == std::string_view::npos) return false;
    auto sp2 = fields.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) return false;
    std::size_t count = 0, raw_bytes = 0;
    if (!to_size(fields.substr(0, sp1), count) || !to_size(fields.substr(sp1 + 1, sp2 - sp1 - 1), raw_bytes) ||
        raw_bytes > kMaxRawBytes || count > raw_bytes)
        return false;
    std::string z;
    if (!unescape(fields.substr(sp2 + 1), z) || raw_bytes > kMaxRatio * z.size() + 64) return false;
    std::string raw(raw_bytes, '\0');
    uLongf got = static_cast<uLongf>(raw_bytes);
    if (uncompress(reinterpret_cast<Bytef*>(raw.data()), &got, reinterpret_cast<const Bytef*>(z.data()),
                   static_cast<uLong>(z.size())) != Z_OK ||
        got != raw_bytes)
        return false;
    EntryReader r(raw);
    std::string key;
    std::int64_t time = 0;
    for (std::size_t i = 0; i < count; ++i)
        if (!read_entry(r, key, time, f)) return false;
    return r.done();
}

}  // namespace pullmail
