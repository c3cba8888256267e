// deliver_mbox.cpp — appending to an mbox file in mboxrd format, and the
// mboxrd quoting itself.
//
// Each message is stored as
//   [separator newlines] "From <sender> <date>\n" <quoted message> ["\n"] "\n"
// where the separator newlines (at most two) are only written when the file
// does not already end in a blank line, and the "\n" before the final blank
// line only when the message does not end in one (so a message without a
// final newline gets one, as in every mbox).
//
// Crash safety: the crash-recovery intent "mbox <offset> <length> <sha256>"
// must describe exactly the bytes that commit() will write, before any of
// them is written. So write() spools the quoted message into an anonymous
// temporary file; prepare() locks the mbox, notes its size as the offset and
// hashes what will be appended; commit() appends it, fsyncs and unlocks.
// Unlike a Maildir, prepare() makes nothing durable: the mbox is untouched
// until commit(), so a crash before commit() ends leaves at most a partial
// tail, which recover() removes.
// recover() can then tell a complete append (digest matches) from a partial
// tail (removed) and from a tail it does not understand (left alone, error).
//
// Locking: fcntl() write lock on the whole file, held from prepare() to the
// end of commit()/abort(), so mail readers and MDAs that use fcntl locks
// (mutt, procmail, Dovecot) never see a half-written message. Open file
// description locks (F_OFD_SETLK) are used where available: they conflict
// with classic fcntl locks of other processes, but, unlike those, also
// exclude other threads of this process and are not dropped when some other
// descriptor of the same file is closed. No dot-lock files are made.
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>

#include "deliver.h"
#include "deliver_impl.h"
#include "error.h"
#include "fs_util.h"

namespace pullmail {

namespace {
constexpr std::string_view kFrom = "From ";
}

void MboxrdQuoter::release_held(std::string& out) {
    out.append(held_gt_, '>');
    out.append(kFrom.substr(0, held_from_));
    held_gt_ = 0;
    held_from_ = 0;
}

void MboxrdQuoter::quote(std::string_view in, std::string& out) {
    std::size_t i = 0;
    const std::size_t n = in.size();
    while (i < n) {
        if (!at_line_start_) {
            const void* nl = std::memchr(in.data() + i, '\n', n - i);
            std::size_t end = nl ? static_cast<const char*>(nl) - in.data() + 1 : n;
            out.append(in.data() + i, end - i);
            i = end;
            at_line_start_ = nl != nullptr;
            continue;
        }
        char c = in[i];
        if (held_from_ == 0 && c == '>') {
            ++held_gt_;
            ++i;
        } else if (c == kFrom[held_from_]) {
            ++i;
            if (++held_from_ == kFrom.size()) {
                ++held_gt_;  // the one added '>'
                release_held(out);
                at_line_start_ = false;
            }
        } else {
            // Not ^>*From : what was held goes out unchanged, and `c` (maybe
            // the '\n' of a short line) is copied by the branch above.
            release_held(out);
            at_line_start_ = false;
        }
    }
}

void MboxrdQuoter::finish(std::string& out) {
    release_held(out);
    at_line_start_ = true;
}

std::string mboxrd_unquote(std::string_view body) {
    std::string out;
    out.reserve(body.size());
    std::size_t i = 0;
    while (i < body.size()) {
        std::size_t nl = body.find('\n', i);
        std::size_t end = nl == std::string_view::npos ? body.size() : nl + 1;
        std::string_view line = body.substr(i, end - i);
        std::size_t gt = line.find_first_not_of('>');
        if (gt != 0 && gt != std::string_view::npos && line.substr(gt, kFrom.size()) == kFrom)
            line.remove_prefix(1);
        out.append(line);
        i = end;
    }
    return out;
}

namespace detail {
namespace {

// The envelope sender for the From_ line: the address of the first
// Return-Path header, "MAILER-DAEMON" for "<>" or when there is none.
// `head` is the start of the message (possibly cut off).
std::string envelope_sender(std::string_view head) {
    std::string value;
    bool in_field = false;
    std::size_t i = 0;
    while (i < head.size()) {
        std::size_t nl = head.find('\n', i);
        std::string_view line = head.substr(i, nl == std::string_view::npos ? std::string_view::npos : nl - i);
        i = nl == std::string_view::npos ? head.size() : nl + 1;
        if (line.empty()) break;  // end of the header block
        if (in_field) {
            if (line[0] == ' ' || line[0] == '\t') {
                value.append(line);
                continue;
            }
            break;
        }
        constexpr std::string_view kName = "return-path:";
        if (line.size() >= kName.size() && strncasecmp(line.data(), kName.data(), kName.size()) == 0) {
            value.assign(line.substr(kName.size()));
            in_field = true;
        }
    }
    std::string_view v = value;
    if (auto lt = v.find('<'); lt != std::string_view::npos) {
        v.remove_prefix(lt + 1);
        v = v.substr(0, v.find('>'));
    }
    // No spaces or control characters: a reader splits the From_ line on
    // spaces to find the date.
    std::string sender;
    for (unsigned char c : v) {
        if (c > 0x20 && c != 0x7f) sender += static_cast<char>(c);
    }
    if (sender.size() > 256) sender.resize(256);
    return sender.empty() ? "MAILER-DAEMON" : sender;
}

// "Thu Nov 23 17:59:02 2023" (asctime() layout, UTC, independent of locale).
std::string asctime_utc(time_t t) {
    static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm {};
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s %s %2d %02d:%02d:%02d %d", kDays[tm.tm_wday % 7], kMonths[tm.tm_mon % 12],
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
    return buf;
}

// Whole-file write lock, waiting up to `timeout_s` for other holders.
// Returns 0, ETIMEDOUT, or another errno.
int lock_file(int fd, int timeout_s) {
    using Clock = std::chrono::steady_clock;
    auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    int cmd = F_OFD_SETLK;
    auto pause = std::chrono::milliseconds(1);
    for (;;) {
        if (::fcntl(fd, cmd, &fl) == 0) return 0;
        int err = errno;
        if (err == EINVAL && cmd == F_OFD_SETLK) {
            cmd = F_SETLK;  // kernel without OFD locks (before 3.15)
            continue;
        }
        if (err == EINTR) continue;
        if (err != EAGAIN && err != EACCES) return err;
        if (Clock::now() >= deadline) return ETIMEDOUT;
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds(100));
    }
}

void unlock_file(int fd) noexcept {
    struct flock fl {};
    fl.l_type = F_UNLCK;
    fl.l_whence = SEEK_SET;
    if (::fcntl(fd, F_OFD_SETLK, &fl) != 0) ::fcntl(fd, F_SETLK, &fl);
}

// An open, locked mbox whose descriptor still names the file at its path
// (a mail reader may have replaced the file while we waited for the lock).
struct LockedMbox {
    UniqueFd fd;
    off_t size = 0;
};

// The mbox's directory must not let others swap the mbox (fs_util.h).
void check_mbox_dir(const std::string& path) { check_dir_safe(dir_name(path), DirTrust::MailSpool, "mbox directory"); }

// Opens and locks `path`. With create = false a missing file gives an empty
// fd instead of an error.
LockedMbox open_locked(const std::string& path, bool create, int timeout_s) {
    for (int attempt = 0; attempt < 10; ++attempt) {
        LockedMbox m;
        // A symlink or a FIFO in place of the mbox is refused, never
        // followed: recover() may truncate what it opens.
        m.fd.reset(open_no_follow(path, O_RDWR));
        if (!m.fd) {
            if (errno != ENOENT)
                throw Error(ErrorKind::LocalIO, "cannot open mbox " + path + ": " + open_error_text(errno));
            if (!create) return m;
            if (int err = try_make_dirs(dir_name(path), 0700))
                throw_local_io("cannot create the directory of mbox " + path, err);
            check_mbox_dir(path);
            m.fd.reset(open_no_follow(path, O_RDWR | O_CREAT | O_EXCL, 0600));
            if (!m.fd) {
                if (errno == EEXIST) continue;  // created by someone else meanwhile
                throw_local_io("cannot create mbox " + path, errno);
            }
            // The new directory entry must survive a crash together with the
            // first message appended to it.
            if (int err = try_fsync_dir(dir_name(path))) throw_local_io("cannot sync the directory of mbox " + path, err);
        } else {
            check_mbox_dir(path);
        }
        if (int err = lock_file(m.fd.get(), timeout_s)) {
            if (err == ETIMEDOUT)
                throw Error(ErrorKind::LocalIO,
                            "mbox " + path + " is locked by another program (waited " + std::to_string(timeout_s) +
                                " s)",
                            true);
            throw_local_io("cannot lock mbox " + path, err);
        }
        struct stat by_fd {}, by_path {};
        if (::fstat(m.fd.get(), &by_fd) != 0) throw_local_io("cannot read mbox " + path, errno);
        if (::lstat(path.c_str(), &by_path) == 0 && by_path.st_dev == by_fd.st_dev && by_path.st_ino == by_fd.st_ino) {
            m.size = by_fd.st_size;
            return m;
        }
    }
    throw Error(ErrorKind::LocalIO, "cannot lock mbox " + path + ": it keeps being replaced", true);
}

// Newlines to write before a From_ line so that it follows a blank line (or
// starts the file).
std::string separator_before(int fd, off_t size, const std::string& path) {
    if (size == 0) return {};
    char tail[2] = {'\n', '\n'};
    std::size_t want = size >= 2 ? 2 : 1;
    ssize_t got = pread_full(fd, tail + 2 - want, want, size - static_cast<off_t>(want));
    if (got != static_cast<ssize_t>(want)) throw_local_io("cannot read mbox " + path, got < 0 ? errno : EIO);
    if (tail[1] != '\n') return "\n\n";
    if (tail[0] != '\n') return "\n";
    return {};
}

// Digest of `len` bytes of fd from `offset`, read in modest pieces.
std::string digest_of_range(int fd, off_t offset, std::uint64_t len, std::string& buf, const std::string& path) {
    Sha256 sha;
    buf.resize(kIoBufferSize);
    while (len > 0) {
        std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(len, buf.size()));
        ssize_t got = pread_full(fd, buf.data(), want, offset);
        if (got != static_cast<ssize_t>(want)) throw_local_io("cannot read " + path, got < 0 ? errno : EIO);
        sha.update(std::string_view(buf.data(), want));
        offset += static_cast<off_t>(want);
        len -= want;
    }
    return sha.hex_digest();
}

// An anonymous file for the quoted message: O_TMPFILE where the file system
// supports it, else mkstemp()+unlink(). Next to the mbox (same file system,
// usually roomier than /tmp), else in $TMPDIR or /tmp (for spool
// directories like /var/mail where users may not create files).
UniqueFd open_spool(const std::string& mbox_path) {
    return open_anonymous_file({dir_name(mbox_path), temp_dir_from_env(), "/tmp"}, "mbox " + mbox_path);
}

class MboxSink final : public DeliverySink {
public:
    MboxSink(std::string path, UniqueFd spool, int lock_timeout_s)
        : path_(std::move(path)), spool_(std::move(spool)), lock_timeout_s_(lock_timeout_s), started_(::time(nullptr)) {
        buf_.reserve(kIoBufferSize * 2);
    }
    ~MboxSink() override {
        if (state_ != State::Committed) abort();
    }

    void write(std::string_view chunk) override {
        check_state(State::Writing, "write");
        if (chunk.empty()) return;
        if (head_.size() < kIoBufferSize) head_.append(chunk.substr(0, kIoBufferSize - head_.size()));
        ends_in_newline_ = chunk.back() == '\n';
        empty_ = false;
        quoter_.quote(chunk, buf_);
        if (buf_.size() >= kIoBufferSize) flush_spool();
    }

    std::string prepare() override {
        check_state(State::Writing, "prepare");
        state_ = State::Failed;  // until it succeeds: prepare() cannot be repeated
        quoter_.finish(buf_);
        flush_spool();
        // An empty message gets no line of its own: From_ line, blank line.
        tail_ = empty_ || ends_in_newline_ ? "\n" : "\n\n";
        std::string from_line = "From " + envelope_sender(head_) + " " + asctime_utc(started_) + "\n";
        head_.clear();
        head_.shrink_to_fit();

        LockedMbox m = open_locked(path_, true, lock_timeout_s_);
        mbox_ = std::move(m.fd);
        offset_ = m.size;
        try {
            lead_ = separator_before(mbox_.get(), offset_, path_) + from_line;
            length_ = lead_.size() + spool_size_ + tail_.size();
            Sha256 sha;
            sha.update(lead_);
            buf_.resize(kIoBufferSize);
            for (std::uint64_t done = 0; done < spool_size_;) {
                std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(spool_size_ - done, buf_.size()));
                ssize_t got = pread_full(spool_.get(), buf_.data(), want, static_cast<off_t>(done));
                if (got != static_cast<ssize_t>(want)) fail_spool(got < 0 ? errno : EIO);
                sha.update(std::string_view(buf_.data(), want));
                done += want;
            }
            sha.update(tail_);
            std::string intent =
                "mbox " + std::to_string(offset_) + " " + std::to_string(length_) + " " + sha.hex_digest();
            state_ = State::Locked;
            return intent;
        } catch (...) {
            unlock_file(mbox_.get());
            mbox_.reset();
            throw;
        }
    }

    void commit() override {
        check_state(State::Locked, "commit");
        // Another program may have appended without locking since prepare():
        // writing at offset_ would overwrite its data.
        struct stat st {};
        if (::fstat(mbox_.get(), &st) != 0) throw_local_io("cannot write to mbox " + path_, errno);
        if (st.st_size != offset_)
            throw Error(ErrorKind::LocalIO,
                        "mbox " + path_ + " changed while locked (another program writes to it without locking)",
                        true);
        state_ = State::Writing_mbox;
        off_t at = offset_;
        if (int err = pwrite_all(mbox_.get(), lead_.data(), lead_.size(), at)) fail_mbox(err);
        at += static_cast<off_t>(lead_.size());
        for (std::uint64_t done = 0; done < spool_size_;) {
            std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(spool_size_ - done, buf_.size()));
            ssize_t got = pread_full(spool_.get(), buf_.data(), want, static_cast<off_t>(done));
            if (got != static_cast<ssize_t>(want)) fail_mbox(got < 0 ? errno : EIO, "cannot read the spooled message for mbox ");
            if (int err = pwrite_all(mbox_.get(), buf_.data(), want, at)) fail_mbox(err);
            at += static_cast<off_t>(want);
            done += want;
        }
        if (int err = pwrite_all(mbox_.get(), tail_.data(), tail_.size(), at)) fail_mbox(err);
        if (::fsync(mbox_.get()) != 0) fail_mbox(errno);
        unlock_file(mbox_.get());
        mbox_.reset();
        spool_.reset();
        state_ = State::Committed;
    }

    void abort() noexcept override {
        if (state_ == State::Committed || state_ == State::Aborted) return;
        if (state_ == State::Writing_mbox) remove_tail();
        if (mbox_) unlock_file(mbox_.get());
        mbox_.reset();
        spool_.reset();
        state_ = State::Aborted;
    }

private:
    // Writing_mbox: commit() may have written part of the message.
    enum class State { Writing, Locked, Writing_mbox, Committed, Failed, Aborted };

    void check_state(State want, const char* op) const {
        if (state_ == State::Failed) throw Error(ErrorKind::LocalIO, "mbox " + path_ + ": delivery already failed");
        if (state_ != want) throw Error(ErrorKind::Internal, std::string("mbox sink: ") + op + " out of order");
    }

    void flush_spool() {
        if (buf_.empty()) return;
        if (int err = pwrite_all(spool_.get(), buf_.data(), buf_.size(), static_cast<off_t>(spool_size_)))
            fail_spool(err);
        spool_size_ += buf_.size();
        buf_.clear();
    }

    [[noreturn]] void fail_spool(int err) {
        state_ = State::Failed;
        throw_local_io("cannot write to mbox " + path_ + " (temporary copy)", err);
    }

    // Undoes a partial append and releases the lock, the mbox being whole
    // again. If even the truncation fails, abort() tries once more.
    [[noreturn]] void fail_mbox(int err, const char* what = "cannot write to mbox ") {
        std::string message = what + path_;
        if (remove_tail()) {
            unlock_file(mbox_.get());
            mbox_.reset();
            spool_.reset();
            state_ = State::Failed;
        }
        throw_local_io(message, err);
    }

    // Truncates the mbox back to offset_ (durably). True on success; on
    // failure the state stays Writing_mbox so abort() tries again.
    bool remove_tail() noexcept {
        if (::ftruncate(mbox_.get(), offset_) != 0) return false;
        ::fsync(mbox_.get());
        return true;
    }

    std::string path_;
    UniqueFd spool_;
    int lock_timeout_s_;
    time_t started_;
    MboxrdQuoter quoter_;
    std::string buf_;            // quoted bytes not yet in the spool; later a copy buffer
    std::uint64_t spool_size_ = 0;
    std::string head_;           // first bytes of the message, for Return-Path
    bool empty_ = true;          // of the message as given
    bool ends_in_newline_ = false;
    std::string lead_, tail_;    // bytes written before and after the quoted message
    UniqueFd mbox_;
    off_t offset_ = 0;
    std::uint64_t length_ = 0;
    State state_ = State::Writing;
};

class MboxDeliverer final : public Deliverer {
public:
    MboxDeliverer(std::string path, int lock_timeout_s) : path_(std::move(path)), lock_timeout_s_(lock_timeout_s) {}

    std::unique_ptr<DeliverySink> begin(const MessageMeta&) override {
        if (int err = try_make_dirs(dir_name(path_), 0700))
            throw_local_io("cannot create the directory of mbox " + path_, err);
        check_mbox_dir(path_);
        return std::make_unique<MboxSink>(path_, open_spool(path_), lock_timeout_s_);
    }

    Recovery recover(std::string_view intent) override {
        auto [offset, length, digest] = parse(intent);
        LockedMbox m = open_locked(path_, false, lock_timeout_s_);
        // A missing or shorter file: the message is not (or no longer) there.
        // Delivering it again may duplicate a message the user since deleted,
        // but never loses one.
        if (!m.fd || m.size <= offset) return Recovery::NotDelivered;
        std::string buf;
        std::uint64_t have = static_cast<std::uint64_t>(m.size - offset);
        if (have >= length && digest_of_range(m.fd.get(), offset, length, buf, "mbox " + path_) == digest)
            return Recovery::Delivered;
        if (have > length || !looks_like_our_tail(m.fd.get(), offset, have)) throw damaged(offset);
        // Our own partial append: remove it so the mbox is whole again.
        if (::ftruncate(m.fd.get(), offset) != 0 || ::fsync(m.fd.get()) != 0)
            throw_local_io("cannot remove a partial message from mbox " + path_, errno);
        return Recovery::NotDelivered;
    }

    std::string describe() const override { return "mbox:" + path_; }

private:
    struct Intent {
        off_t offset;
        std::uint64_t length;
        std::string digest;
    };

    Intent parse(std::string_view intent) const {
        std::string_view args = intent_args(intent, "mbox", describe());
        Intent out{};
        auto bad = [&] {
            return Error(ErrorKind::LocalIO, "cannot recover a delivery to " + describe() + ": malformed record '" +
                                                 sanitize(intent, 120) + "'");
        };
        const char* p = args.data();
        const char* end = args.data() + args.size();
        std::uint64_t off = 0;
        auto r = std::from_chars(p, end, off);
        if (r.ec != std::errc() || r.ptr == end || *r.ptr != ' ') throw bad();
        r = std::from_chars(r.ptr + 1, end, out.length);
        if (r.ec != std::errc() || r.ptr == end || *r.ptr != ' ') throw bad();
        out.digest.assign(r.ptr + 1, end);
        if (out.digest.size() != 64 || out.digest.find_first_not_of("0123456789abcdef") != std::string::npos ||
            off > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max() / 2) || out.length == 0)
            throw bad();
        out.offset = static_cast<off_t>(off);
        return out;
    }

    // Whether the `have` bytes at `offset` can be the start of what commit()
    // writes: up to two newlines and then (a prefix of) "From ", or only NUL
    // bytes (a file size that reached the disk before its data). Anything
    // else means the mbox was rewritten since (a mail reader expunged
    // messages), and truncating would destroy the user's mail.
    bool looks_like_our_tail(int fd, off_t offset, std::uint64_t have) {
        char start[8] = {};
        std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(have, sizeof start));
        if (pread_full(fd, start, want, offset) != static_cast<ssize_t>(want)) return false;
        std::string_view s(start, want);
        if (s.find_first_not_of('\0') == std::string_view::npos) return true;
        std::size_t nl = 0;
        while (nl < 2 && nl < s.size() && s[nl] == '\n') ++nl;
        std::string_view rest = s.substr(nl);
        std::size_t n = std::min(rest.size(), kFrom.size());
        return rest.substr(0, n) == kFrom.substr(0, n);
    }

    Error damaged(off_t offset) const {
        return Error(ErrorKind::LocalIO,
                     "mbox " + path_ + " has a damaged message at byte offset " + std::to_string(offset) +
                         " (a delivery was interrupted there and the file changed since); check the end of the "
                         "mbox by hand");
    }

    std::string path_;
    int lock_timeout_s_;
};

}  // namespace

std::unique_ptr<Deliverer> make_mbox_deliverer(const std::string& path, const DeliveryOptions& opts) {
    return std::make_unique<MboxDeliverer>(path, opts.mbox_lock_timeout_seconds);
}

}  // namespace detail
}  // namespace pullmail
