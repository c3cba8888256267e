#include "state_journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>

#include "error.h"
#include "fs_util.h"
#include "state_snapshot.h"
#include "test_hooks.h"
#include "text_util.h"

namespace pullmail {

namespace {

constexpr const char* kHeaderPrefix = "pullmail-state ";

std::string mark_record(const std::string& enc_folder, const FolderMark& m) {
    return "M " + enc_folder + " " + std::to_string(m.uidvalidity) + " " + std::to_string(m.uidnext) + " " +
           std::to_string(m.exists);
}

// Up to N space-separated words, the last taking the rest of the line. A
// fixed array, not a vector: the load runs this for every record.
template <std::size_t N>
struct Words {
    std::array<std::string_view, N> w{};
    std::size_t n = 0;
    std::size_t size() const { return n; }
    std::string_view operator[](std::size_t i) const { return w[i]; }
};

template <std::size_t N>
Words<N> split_words(std::string_view s) {
    Words<N> out;
    while (!s.empty() && out.n + 1 < N) {
        auto sp = s.find(' ');
        if (sp == std::string_view::npos) break;
        out.w[out.n++] = s.substr(0, sp);
        s.remove_prefix(sp + 1);
    }
    out.w[out.n++] = s;
    return out;
}

template <class T>
T to_number(std::string_view t) {
    T v = 0;
    std::from_chars(t.data(), t.data() + t.size(), v);
    return v;
}

const char* mark_of(const SeenInfo& e) {
    if (e.keep_on_server) return "keep";
    if (e.delivered == Delivered::HeadersOnly) return "headers";
    if (e.delivered == Delivered::Skipped) return "skipped";
    if (e.delivered == Delivered::Partial) return "partial";
    return "-";
}

std::string seen_record(std::string_view key, const SeenView& v) {
    std::string out = "S ";
    out.append(key).append(" ").append(std::to_string(v.info.size)).append(" ").append(v.fingerprint).append(" ");
    out.append(v.where_field.empty() ? std::string_view("-") : v.where_field).append(" ").append(mark_of(v.info));
    return out.append(" ").append(std::to_string(v.info.recorded_at));
}

// The fields after the key of an S record (state_journal.h), of any
// version, as views into the record: what the store takes.
struct SeenFields {
    SeenInfo info;
    std::string_view fingerprint = "-";
    std::string_view where_field;
};

SeenFields parse_seen(std::string_view fields) {
    SeenFields f;
    SeenInfo& e = f.info;
    auto sw = split_words<5>(fields);
    e.size = to_number<std::uint64_t>(sw[0]);
    if (sw.size() > 1) f.fingerprint = sw[1];
    if (sw.size() > 2 && sw[2] != "-") f.where_field = sw[2];
    if (sw.size() > 3) {
        e.keep_on_server = sw[3] == "keep";
        // An unknown mark (a newer pullmail) is read as "never delete".
        if (sw[3] == "headers") e.delivered = Delivered::HeadersOnly;
        else if (sw[3] == "skipped") e.delivered = Delivered::Skipped;
        else if (sw[3] == "partial") e.delivered = Delivered::Partial;
        else if (sw[3] != "-" && sw[3] != "keep") e.keep_on_server = true;
    }
    // A Partial entry's <where> is its recipients; any other's is not.
    if (e.delivered == Delivered::Partial && f.where_field.rfind("rcpt:", 0) != 0) f.where_field = "rcpt:";
    if (sw.size() > 4) e.recorded_at = to_number<std::int64_t>(sw[4]);
    return f;
}

}  // namespace


namespace {
// The state directory holds files pullmail rewrites and truncates: nobody
// else may be able to put a symlink there (see fs_util.h). Returns false
// when it does not exist and create is false.
bool check_state_dir(const std::string& state_path, bool create) {
    std::string dir = std::filesystem::path(state_path).parent_path().string();
    if (create)
        make_dirs(dir, 0700);
    else if (struct stat st {}; ::stat(dir.empty() ? "." : dir.c_str(), &st) != 0 && errno == ENOENT)
        return false;
    check_dir_safe(dir, DirTrust::Private, "state directory");
    return true;
}
}  // namespace

StateJournal::StateJournal(std::string path, bool read_only)
    : path_(std::move(path)), marks_path_(path_ + ".marks"), read_only_(read_only) {
    check_state_dir(path_, !read_only_);
    loaded_ = !load_marks();
    if (loaded_) load();
    if (read_only_ || !created_) return;
    // Rewrite a torn tail away now, so the next append cannot turn it into a
    // complete (and then damaged-looking) line; an old version (or records
    // without a time) once, so that the times given at this load stay.
    // The file is opened for writing first either way, so that one pullmail
    // may not write is refused as it was before the upgrade.
    open_for_append();
    if (loaded_ && (!load_warning_.empty() || upgrade_)) compact([](const std::string&) { return true; }, true);
}

// Believes the marks file when its stamp is the state file's (state_marks.h):
// then only the marks and UIDVALIDITYs are known, and the records wait for
// ensure_loaded(). False (nothing set) for anything else.
bool StateJournal::load_marks() {
    try {
        if (!read_file_if_exists(marks_path_, marks_text_, false)) return false;
    } catch (const Error&) {
        return false;  // unreadable, or a symbolic link: only a full load is lost
    }
    auto m = parse_marks(marks_text_);
    if (!m) return false;
    UniqueFd f(open_no_follow(path_, O_RDONLY));
    struct stat st {};
    if (!f || ::fstat(f.get(), &st) != 0 || static_cast<std::uint64_t>(st.st_size) != m->stamp.bytes) return false;
    // The header line, exactly as a rewrite of this version writes it.
    std::string want = std::string(kHeaderPrefix) + std::to_string(kFormatVersion) + " " + m->stamp.generation + "\n";
    std::string head(want.size(), '\0');
    if (::pread(f.get(), head.data(), head.size(), 0) != static_cast<ssize_t>(head.size()) || head != want) return false;
    if (tail_crc(f.get(), m->stamp.bytes) != m->stamp.tail_crc) return false;
    generation_ = m->stamp.generation;
    file_bytes_ = m->stamp.bytes;
    uidvalidity_ = std::move(m->uidvalidity);
    marks_ = std::move(m->marks);
    return true;
}

// The records, read at their first use when the marks file stood for them.
// The V and M records are read again with them (the same ones, as the file
// is the one the marks file was stamped for, under the account's lock).
void StateJournal::ensure_loaded() {
    if (loaded_) return;
    seen_.clear();
    intents_.clear();
    uidvalidity_.clear();
    marks_.clear();
    file_bytes_ = 0;
    snapshot_bytes_ = 0;
    load();  // throws for damage: nothing was planned on these records yet
    loaded_ = true;
    if (!read_only_ && created_ && fd_ >= 0 && (!load_warning_.empty() || upgrade_))
        compact([](const std::string&) { return true; }, true);
}

void StateJournal::require_loaded() const {
    if (!loaded_) throw Error(ErrorKind::Internal, "state " + path_ + ": records used before they were loaded");
}

bool StateJournal::seen(const std::string& key) {
    ensure_loaded();
    return seen_.count(key) != 0;
}

bool StateJournal::seen(const std::string& key) const {
    require_loaded();
    return seen_.count(key) != 0;
}

const SeenStore& StateJournal::entries() {
    ensure_loaded();
    return seen_;
}

const SeenStore& StateJournal::entries() const {
    require_loaded();
    return seen_;
}

void StateJournal::save_marks() {
    if (read_only_ || !loaded_ || !created_ || fd_ < 0 || !intents_.empty() || generation_.empty()) return;
    if (marks_.empty()) {
        // Nothing to stand for; a marks file left from before is stale (its
        // stamp no longer matches) but need not linger.
        if (!marks_text_.empty() && ::unlink(marks_path_.c_str()) == 0) marks_text_.clear();
        return;
    }
    sync();  // the records first: the marks file must never run ahead of them
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return;
    StateMarks m{{generation_, static_cast<std::uint64_t>(st.st_size), 0}, uidvalidity_, marks_};
    auto crc = tail_crc(fd_, m.stamp.bytes);  // the tail as it is on disk
    if (!crc) return;
    m.stamp.tail_crc = *crc;
    std::string text = format_marks(m);
    if (text == marks_text_) return;
    write_file_atomic(marks_path_, text, 0600);
    marks_text_ = std::move(text);
}

void StateJournal::ensure_created() {
    if (created_ || read_only_) return;
    // A new state file is written whole, through the same atomic path as
    // compact(), when there is first something to keep.
    compact([](const std::string&) { return true; }, true);
}

StateJournal::~StateJournal() {
    try {
        if (!buffer_.empty() || dirty_) sync();
    } catch (...) {
    }
    if (fd_ >= 0) ::close(fd_);
}

std::optional<SeenEntry> StateJournal::find(const std::string& key) {
    ensure_loaded();
    return seen_.get(key);
}

std::optional<SeenEntry> StateJournal::find(const std::string& key) const {
    require_loaded();
    return seen_.get(key);
}

std::vector<PendingIntent> StateJournal::pending_intents() const {
    // Unloaded: the marks file vouches that this file has no pending intent.
    std::vector<PendingIntent> out;
    for (const auto& [k, v] : intents_) out.push_back({k, v});
    return out;
}

std::optional<std::uint32_t> StateJournal::uidvalidity(const std::string& folder) const {
    auto it = uidvalidity_.find(encode_folder(folder));
    if (it == uidvalidity_.end()) return std::nullopt;
    return it->second;
}

namespace {
// Hands each line of the file (without its '\n') to on_line(line,
// complete), reading a block at a time: the state is never held whole as
// text beside its records. `complete` is false only for a last line without
// '\n'; on_line returns false to stop. False when the file does not exist.
// on_size(bytes) is told the file's size first.
template <class OnSize, class OnLine>
bool read_lines(const std::string& path, std::uint64_t& bytes, OnSize on_size, OnLine on_line) {
    UniqueFd f(open_no_follow(path, O_RDONLY));  // closed on every way out, throws from on_line too
    const int fd = f.get();
    if (fd < 0) {
        if (errno == ENOENT) return false;
        throw Error(ErrorKind::LocalIO, "cannot read " + path + ": " + open_error_text(errno));
    }
    // One buffer for the whole file (256 KiB, less for a smaller file), never
    // zero-filled: only what read() wrote is looked at. It grows only for a
    // line longer than itself.
    constexpr std::size_t kBlock = 256 * 1024;
    std::size_t cap = kBlock;
    struct stat st {};
    if (::fstat(fd, &st) == 0) {
        on_size(static_cast<std::uint64_t>(st.st_size));
        cap = std::clamp<std::size_t>(static_cast<std::size_t>(st.st_size) + 1, 4096, kBlock);
    }
    auto buf = std::make_unique_for_overwrite<char[]>(cap);
    std::size_t have = 0;   // bytes in buf
    std::size_t start = 0;  // of the first line not handed out yet
    bool go = true;
    for (;;) {
        if (start > 0) {
            std::memmove(buf.get(), buf.get() + start, have - start);
            have -= start;
            start = 0;
        }
        if (have == cap) {
            auto bigger = std::make_unique_for_overwrite<char[]>(2 * cap);
            std::memcpy(bigger.get(), buf.get(), have);
            buf = std::move(bigger);
            cap *= 2;
        }
        ssize_t n = ::read(fd, buf.get() + have, cap - have);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw Error(ErrorKind::LocalIO, "cannot read " + path + ": " + std::strerror(errno));
        bytes += static_cast<std::uint64_t>(n);
        if (n == 0) break;
        have += static_cast<std::size_t>(n);
        const std::string_view text(buf.get(), have);
        for (std::size_t nl; go && (nl = text.find('\n', start)) != std::string_view::npos; start = nl + 1)
            go = on_line(text.substr(start, nl - start), true);
        if (!go) break;
    }
    if (go && start < have) on_line(std::string_view(buf.get() + start, have - start), false);
    return true;
}
}  // namespace

void StateJournal::load() {
    std::size_t line_no = 0;
    std::size_t bad_line = 0;
    bool header_ok = false;
    std::int64_t now = 0;
    auto on_line = [&](std::string_view line, bool complete) {
        if (++line_no == 1) {
            header_ok = complete && check_header(line);
            now = clock_now();
            return header_ok;
        }
        auto record = verify_line(line);
        if (!record) {
            if (!complete) {
                load_warning_ = "state file " + path_ + " ends in a partial record (pullmail was interrupted while "
                                "writing it); the partial record was ignored";
                return false;
            }
            if (bad_line == 0) bad_line = line_no;
            return true;
        }
        if (bad_line != 0) return false;  // a good record after a bad one: corruption
        if (!apply_record(*record, now)) {
            bad_line = line_no;  // a checksum that holds over a record that does not: damage all the same
            return true;
        }
        if (record->rfind("Z ", 0) == 0) snapshot_bytes_ += line.size() + 1;
        return true;
    };
    // At most one entry per 16 bytes (a packed entry is about 20, an S record
    // 70 to 90): no rehash while loading; the reserved room is not touched
    // unless used, but for the index. Of each entry the store keeps the key,
    // 16 bytes of fingerprint and the <where>: about 40 bytes.
    auto reserve = [&](std::uint64_t size) { seen_.reserve(static_cast<std::size_t>(size / 16), 40); };
    if (!read_lines(path_, file_bytes_, reserve, on_line)) {
        created_ = false;  // written at the first sync (ensure_created)
        return;
    }
    test_mark("state: records loaded");  // PULLMAIL_TEST_TRACE_TIMES: the tests see whether a run read them
    if (!header_ok) {
        throw Error(ErrorKind::State, "state file " + path_ +
                                          " is damaged (no valid header); nothing was fetched or deleted. Run "
                                          "'pullmail --repair-state' for this account to rebuild it from the "
                                          "valid records (a backup is kept)");
    }
    // A bad complete line is never produced by an interrupted append (a torn
    // tail is rewritten away by the constructor), so it means damage.
    if (bad_line != 0) {
        throw Error(ErrorKind::State, "state file " + path_ + " is damaged at line " + std::to_string(bad_line) +
                                          "; nothing was fetched or deleted. Run 'pullmail --repair-state' for "
                                          "this account to keep the valid records (a backup is kept)");
    }
}

// The header line: false when it is not one; throws for a version this
// pullmail does not know.
bool StateJournal::check_header(std::string_view header) {
    if (header.rfind(kHeaderPrefix, 0) != 0) return false;
    std::string_view rest = header.substr(std::strlen(kHeaderPrefix));
    int version = std::atoi(std::string(rest).c_str());
    if (version < 1 || version > kFormatVersion) {
        throw Error(ErrorKind::State, "state file " + path_ + " has format version " + std::string(rest) +
                                          ", this pullmail understands versions 1 to " + std::to_string(kFormatVersion) +
                                          " only (written by a newer pullmail?); nothing was fetched or deleted");
    }
    // This version: "4 <generation>". Without one, the file is given one by the
    // upgrade's rewrite; until then no marks file can stand for it.
    generation_.clear();
    if (auto sp = rest.find(' '); version == kFormatVersion && sp != std::string_view::npos)
        generation_ = std::string(rest.substr(sp + 1));
    upgrade_ = version < kFormatVersion || generation_.empty() || generation_.find(' ') != std::string::npos;
    return true;
}

bool StateJournal::apply_record(std::string_view record, std::int64_t now) {
    auto w = split_words<3>(record);
    if (w.size() < 2) return true;
    if (w[0] == "Z") return w.size() == 3 && apply_snapshot(record.substr(2), now);
    std::string key(w[1]);
    if (w[0] == "S") {
        SeenFields f = w.size() == 3 ? parse_seen(w[2]) : SeenFields{};
        if (f.info.recorded_at <= 0) {
            f.info.recorded_at = now;  // expires counted from this first load (state_journal.h)
            upgrade_ = true;
        }
        if (!intents_.empty()) intents_.erase(key);
        seen_.insert_or_assign(key, f.info, f.fingerprint, f.where_field);
    } else if (w[0] == "I" && w.size() == 3) {
        intents_[key] = std::string(w[2]);
    } else if (w[0] == "R") {
        intents_.erase(key);
    } else if (w[0] == "F") {
        seen_.erase(key);
        drop_mark_of(key);
    } else if (w[0] == "V" && w.size() == 3) {
        auto v = to_number<std::uint32_t>(w[2]);
        if (uidvalidity_[key] != v) marks_.erase(key);
        uidvalidity_[key] = v;
    } else if (w[0] == "M" && w.size() == 3) {
        auto n = split_words<3>(w[2]);
        if (n.size() != 3) return true;
        marks_[key] = FolderMark{to_number<std::uint32_t>(n[0]), to_number<std::uint32_t>(n[1]),
                                 to_number<std::uint32_t>(n[2])};
    }
    return true;
}

// The entries of a Z record, each as its S record would be applied.
bool StateJournal::apply_snapshot(std::string_view fields, std::int64_t now) {
    std::string key;
    return read_snapshot(fields, [&](std::string_view k, const SeenInfo& info, std::string_view fp,
                                     std::string_view where, bool fp_raw) {
        SeenInfo i = info;
        if (i.recorded_at <= 0) {
            i.recorded_at = now;  // as for an S record without a time
            upgrade_ = true;
        }
        if (!intents_.empty()) intents_.erase(key.assign(k));
        seen_.insert_or_assign(k, i, fp, where, fp_raw);
    });
}

void StateJournal::open_for_append() {
    // Read as well as appended to: the last byte here, the tail the marks
    // file is stamped with (save_marks). O_APPEND only concerns writes.
    fd_ = open_no_follow(path_, O_RDWR | O_APPEND);
    if (fd_ < 0) throw Error(ErrorKind::LocalIO, "cannot open state file " + path_ + ": " + open_error_text(errno));
    // A torn tail must not glue itself to the next record: start on a new line.
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && st.st_size > 0) {
        char last = '\n';
        if (::pread(fd_, &last, 1, st.st_size - 1) == 1 && last != '\n') buffer_ += '\n';
    }
}

void StateJournal::append(const std::string& record) {
    if (!read_only_) buffer_ += checked_line(record);
}

void StateJournal::record_intent(const std::string& key, const std::string& intent, bool sync_now) {
    ensure_loaded();
    append("I " + key + " " + intent);
    intents_[key] = intent;
    if (sync_now) sync();
}

void StateJournal::record_seen(const std::string& key, std::uint64_t size, const std::string& fingerprint,
                            const std::string& where, bool keep_on_server) {
    record_seen(key, SeenEntry{size, fingerprint, where, keep_on_server, Delivered::Whole, 0});
}

void StateJournal::record_seen(const std::string& key, SeenEntry e) {
    ensure_loaded();
    if (e.fingerprint.empty()) e.fingerprint = "-";
    if (e.recorded_at <= 0) e.recorded_at = clock_now();
    const std::string where = e.delivered == Delivered::Partial ? recipients_field(e.recipients) : e.where;
    const SeenView v{SeenInfo{e.size, e.recorded_at, e.delivered, e.keep_on_server, e.fingerprint != "-"},
                     e.fingerprint, where};
    append(seen_record(key, v));
    seen_.insert_or_assign(key, v.info, v.fingerprint, v.where_field);
    intents_.erase(key);
    // Flush to the kernel in batches; durability comes with the next fsync.
    if (buffer_.size() > 64 * 1024) {
        ensure_created();
        if (buffer_.empty()) return;
        write_all_fd(fd_, buffer_, path_);
        file_bytes_ += buffer_.size();
        buffer_.clear();
        dirty_ = true;
    }
}

void StateJournal::write_out() {
    if (read_only_ || buffer_.empty()) return;
    if (!created_) {
        ensure_created();  // writes every record so far
        return;
    }
    write_all_fd(fd_, buffer_, path_);
    file_bytes_ += buffer_.size();
    buffer_.clear();
    dirty_ = true;
}

void StateJournal::reserve_seen(std::size_t more) {
    ensure_loaded();
    seen_.reserve(seen_.size() + more, 48);
}

void StateJournal::drop_intent(const std::string& key) {
    ensure_loaded();
    if (intents_.erase(key)) append("R " + key);
}

void StateJournal::forget(const std::string& key) {
    ensure_loaded();
    if (seen_.erase(key)) append("F " + key);
    drop_mark_of(key);
}

// A mark vouches that every message of its folder is recorded: forgetting
// one of the folder's keys ends that.
void StateJournal::drop_mark_of(const std::string& key) {
    if (marks_.empty() || key.rfind("imap:", 0) != 0) return;
    auto end = key.find(':', 5);
    if (end != std::string::npos) marks_.erase(key.substr(5, end - 5));
}

const FolderMark* StateJournal::mark(const std::string& folder) const {
    auto it = marks_.find(encode_folder(folder));
    return it == marks_.end() ? nullptr : &it->second;
}

void StateJournal::record_mark(const std::string& folder, const FolderMark& m) {
    ensure_loaded();
    auto enc = encode_folder(folder);
    auto it = marks_.find(enc);
    if (it != marks_.end() && it->second == m) return;
    marks_[enc] = m;
    append(mark_record(enc, m));
}

void StateJournal::record_uidvalidity(const std::string& folder, std::uint32_t uidvalidity) {
    ensure_loaded();
    auto enc = encode_folder(folder);
    auto it = uidvalidity_.find(enc);
    if (it != uidvalidity_.end() && it->second == uidvalidity) return;
    uidvalidity_[enc] = uidvalidity;
    marks_.erase(enc);
    append("V " + enc + " " + std::to_string(uidvalidity));
}

void StateJournal::record_pop3_synced() {
    ensure_loaded();
    if (uidvalidity_.emplace(":pop3", 1).second) append("V :pop3 1");
}

void StateJournal::sync() {
    if (read_only_) return;
    if (!created_) {
        ensure_created();  // writes every record so far
        return;
    }
    if (!buffer_.empty()) {
        write_all_fd(fd_, buffer_, path_);
        file_bytes_ += buffer_.size();
        buffer_.clear();
        dirty_ = true;
    }
    if (dirty_) {
        if (::fdatasync(fd_) != 0)
            throw Error(ErrorKind::LocalIO, "cannot sync state file " + path_ + ": " + std::strerror(errno));
        dirty_ = false;
    }
}

void StateJournal::compact(const std::function<bool(const std::string&)>& keep, bool rewrite) {
    if (read_only_) return;
    ensure_loaded();
    std::vector<std::string> gone;
    std::uint64_t forget_bytes = 0;
    std::string k;  // one buffer for keep()'s argument, not a string per entry
    seen_.for_each([&](std::string_view key, const SeenView&) {
        k.assign(key);
        if (keep(k)) return;
        gone.push_back(k);
        forget_bytes += key.size() + 16;  // "F key" with its checksum
    });
    // The records after the packed ones (text: intents, seen records,
    // forgets) are kept as they are while they are at most half the packed
    // ones (plus 16 KiB): rewriting on every run would cost two more flushes
    // per run and rewrite a large file for nothing, while a poll with
    // nothing new must neither format nor compress the whole state to find
    // that out. A first fetch (an intent and a seen record of 80 bytes or
    // more each per message) ends with a rewrite, so that every poll after
    // it reads about 20 bytes a message.
    std::uint64_t text = file_bytes_ + buffer_.size() + forget_bytes - std::min(snapshot_bytes_, file_bytes_);
    if (!rewrite && fd_ >= 0 && text <= snapshot_bytes_ / 2 + 16 * 1024) {
        for (const auto& key : gone) forget(key);
        sync();
        return;
    }
    for (const auto& key : gone) {
        seen_.erase(key);
        drop_mark_of(key);
    }
    // A new generation: no marks file written for the old contents can
    // stand for the new ones, even at the same size.
    std::string generation = new_generation();
    // Written a block at a time: the state is never held whole.
    std::uint64_t written = 0, snapshot_bytes = 0;
    write_file_atomic(path_, 0600, [&](const std::function<void(std::string_view)>& write) {
        std::string out = std::string(kHeaderPrefix) + std::to_string(kFormatVersion) + " " + generation + "\n";
        auto add = [&](const std::string& line) {
            out += line;
            if (out.size() < 64 * 1024) return;
            write(out);
            written += out.size();
            out.clear();
        };
        for (const auto& [folder, v] : uidvalidity_) add(checked_line("V " + folder + " " + std::to_string(v)));
        for (const auto& [folder, m] : marks_) add(checked_line(mark_record(folder, m)));
        SnapshotWriter packed;
        auto add_packed = [&] {
            std::string line = checked_line(packed.take());
            snapshot_bytes += line.size();
            add(line);
        };
        seen_.for_each([&](std::string_view key, const SeenView& v) {
            packed.add(key, v);
            if (packed.full()) add_packed();
        });
        if (!packed.empty()) add_packed();
        for (const auto& [k, v] : intents_) add(checked_line("I " + k + " " + v));
        write(out);
        written += out.size();
    });
    generation_ = std::move(generation);
    upgrade_ = false;
    file_bytes_ = written;
    snapshot_bytes_ = snapshot_bytes;
    buffer_.clear();
    dirty_ = false;
    created_ = true;
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
    open_for_append();
}

namespace {
// Whether a record with a valid checksum can be applied: a Z record must
// decode as well (its entries are looked at, not kept).
bool decodes(std::string_view record) {
    if (record.rfind("Z ", 0) != 0) return true;
    return read_snapshot(record.substr(2),
                         [](std::string_view, const SeenInfo&, std::string_view, std::string_view, bool) {});
}
}  // namespace

StateJournal::Repair StateJournal::repair(const std::string& path) {
    Repair result;
    std::string data;
    if (!check_state_dir(path, false) || !read_file_if_exists(path, data, false)) return result;
    std::string body;  // every valid record, in order
    std::size_t pos = 0;
    while (pos < data.size()) {
        auto end = data.find('\n', pos);
        std::string_view line(data.data() + pos, (end == std::string::npos ? data.size() : end) - pos);
        pos = end == std::string::npos ? data.size() : end + 1;
        if (auto rec = verify_line(line); rec && decodes(*rec)) {
            body += std::string(line) + "\n";
            ++result.records;
        }
    }
    // Healthy exactly when the header is a current one (with its
    // generation) and every other line is a complete valid record.
    const std::string current = std::string(kHeaderPrefix) + std::to_string(kFormatVersion) + " ";
    std::string first = data.substr(0, data.find('\n'));
    bool current_header = first.size() > current.size() && first.rfind(current, 0) == 0 &&
                          first.find(' ', current.size()) == std::string::npos;
    if (current_header && first + "\n" + body == data) {
        result.outcome = Repair::Outcome::Healthy;
        return result;
    }
    result.backup = path + ".damaged-" + std::to_string(std::time(nullptr));
    write_file_atomic(result.backup, data, 0600);
    // A new generation: no marks file stands for the rebuilt file.
    write_file_atomic(path, current + new_generation() + "\n" + body, 0600);
    result.outcome = Repair::Outcome::Rebuilt;
    return result;
}

}  // namespace pullmail
