// deliver_maildir.cpp — delivery into a Maildir (https://cr.yp.to/proto/maildir.html).
//
// A message is written to tmp/<unique> (prepare), made durable by
// sync_prepared(), moved to new/<unique> without ever replacing an existing
// file (commit), and new/ is fsynced by sync_committed(). The runner batches
// up to max_batch() messages between the syncs (group commit): one syncfs()
// for the batch costs about what one fsync() of one file does, and three
// syncs per message made the disk the bottleneck (4 ms each on the CI disk).
// The intent "maildir <unique>" lets recover() find a message again: a mail
// reader may since have moved it to cur/<unique>:2,<flags>.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstring>
#include <mutex>
#include <vector>

#include "deliver.h"
#include "deliver_impl.h"
#include "error.h"
#include "fs_util.h"

namespace pullmail::detail {
namespace {

// Deliveries made by this process, for the Q part of unique names: two
// messages in the same microsecond (several accounts in parallel threads)
// still get different names.
std::atomic<std::uint64_t> g_delivery_counter{0};

const std::string& host_name() {
    static const std::string name = [] {
        char buf[HOST_NAME_MAX + 1] = {};
        if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return std::string("localhost");
        return std::string(buf);
    }();
    return name;
}

// 0 when `path` exists, ENOENT when it does not, another errno when we
// cannot tell.
int exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 ? 0 : errno;
}

// Moves tmp/<name> to new/<name>; fails with EEXIST rather than replacing a
// file of the same name (which would silently lose that message).
int publish(const std::string& from, const std::string& to) {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) return errno;
    // File systems without RENAME_NOREPLACE: link() never replaces either.
    if (::link(from.c_str(), to.c_str()) != 0) return errno;
    ::unlink(from.c_str());  // a leftover in tmp/ is harmless; recover() removes it
    return 0;
}

// What a deliverer still has to make durable (see sync_prepared/sync_committed).
struct PendingSyncs {
    std::mutex mu;
    std::vector<std::string> prepared;  // tmp/ paths written but not yet synced
    bool committed = false;             // renames into new/ not yet synced
};

class MaildirSink final : public DeliverySink {
public:
    MaildirSink(std::string root, std::string name, UniqueFd fd, PendingSyncs& pending)
        : root_(std::move(root)), name_(std::move(name)), fd_(std::move(fd)), pending_(pending) {
        buf_.reserve(kIoBufferSize);
    }
    ~MaildirSink() override {
        if (state_ != State::Committed) abort();
    }

    void write(std::string_view chunk) override {
        check_state(State::Writing, "write");
        if (buf_.size() + chunk.size() <= kIoBufferSize) {
            buf_.append(chunk);
            return;
        }
        flush();
        if (chunk.size() >= kIoBufferSize)
            write_or_throw(chunk.data(), chunk.size());
        else
            buf_.append(chunk);
    }

    std::string prepare() override {
        check_state(State::Writing, "prepare");
        flush();
        std::string().swap(buf_);  // a batch holds up to 128 prepared sinks
        if (int err = fd_.close()) fail(err);
        // Durable only after the deliverer's sync_prepared(), which the
        // runner calls before it records the intent.
        {
            std::lock_guard<std::mutex> lock(pending_.mu);
            pending_.prepared.push_back(tmp_path());
        }
        state_ = State::Prepared;
        return "maildir " + name_;
    }

    void commit() override {
        check_state(State::Prepared, "commit");
        if (int err = publish(tmp_path(), new_path())) {
            state_ = State::Failed;
            throw_local_io("cannot move a message into Maildir " + root_ + "/new", err);
        }
        // rename() changes only the directory; until new/ itself is fsynced a
        // power loss can undo it even though the file's data is on disk. The
        // runner calls sync_committed() before it records the message as
        // delivered (after which it may delete it on the server).
        // fetchmail, getmail and mpop skip this step.
        {
            std::lock_guard<std::mutex> lock(pending_.mu);
            pending_.committed = true;
        }
        state_ = State::Committed;
    }

    void abort() noexcept override {
        if (state_ == State::Committed || state_ == State::Aborted) return;
        fd_.reset();
        ::unlink(tmp_path().c_str());
        state_ = State::Aborted;
    }

private:
    enum class State { Writing, Prepared, Committed, Failed, Aborted };

    std::string tmp_path() const { return root_ + "/tmp/" + name_; }
    std::string new_path() const { return root_ + "/new/" + name_; }

    void check_state(State want, const char* op) const {
        if (state_ == State::Failed) throw Error(ErrorKind::LocalIO, "Maildir " + root_ + ": delivery already failed");
        if (state_ != want) throw Error(ErrorKind::Internal, std::string("Maildir sink: ") + op + " out of order");
    }

    [[noreturn]] void fail(int err) {
        state_ = State::Failed;
        throw_local_io("cannot write to Maildir " + root_, err);
    }

    void write_or_throw(const char* data, std::size_t len) {
        if (int err = write_all(fd_.get(), data, len)) fail(err);
    }

    void flush() {
        if (buf_.empty()) return;
        write_or_throw(buf_.data(), buf_.size());
        buf_.clear();
    }

    std::string root_, name_;
    UniqueFd fd_;
    PendingSyncs& pending_;
    std::string buf_;
    State state_ = State::Writing;
};

class MaildirDeliverer final : public Deliverer {
public:
    explicit MaildirDeliverer(std::string root) : root_(std::move(root)) {}

    std::unique_ptr<DeliverySink> begin(const MessageMeta&) override {
        if (!ready_) ensure_maildir();
        for (int attempt = 0;; ++attempt) {
            std::string name = next_maildir_name();
            std::string path = root_ + "/tmp/" + name;
            int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (fd >= 0) return std::make_unique<MaildirSink>(root_, std::move(name), UniqueFd(fd), pending_);
            int err = errno;
            if (err == ENOENT && attempt == 0) {
                ensure_maildir();  // removed since the last message: create it again
                continue;
            }
            // EEXIST needs a reused pid within the same microsecond; a fresh
            // counter value gives a fresh name.
            if (err == EEXIST && attempt < 10) continue;
            throw_local_io("cannot create a file in Maildir " + root_ + "/tmp", err);
        }
    }

    Recovery recover(std::string_view intent) override {
        std::string name(intent_args(intent, "maildir", describe()));
        if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
            throw Error(ErrorKind::LocalIO, "cannot recover a delivery to " + describe() + ": malformed record '" +
                                                sanitize(intent, 120) + "'");
        check_dirs(true);
        if (published(name)) {
            // A crash between link() and unlink() in publish() leaves both.
            ::unlink((root_ + "/tmp/" + name).c_str());
            return Recovery::Delivered;
        }
        // Known gap, in the safe direction: a message that a mail reader
        // moved out of new/ and cur/ (deleted, refiled) before the crash is
        // delivered again.
        if (::unlink((root_ + "/tmp/" + name).c_str()) != 0 && errno != ENOENT)
            throw_local_io("cannot remove an unfinished message from Maildir " + root_ + "/tmp", errno);
        return Recovery::NotDelivered;
    }

    std::string describe() const override { return "maildir:" + root_; }

    std::size_t max_batch() const override { return 64; }
    // Sinks share only pending_ (under its mutex) with the syncs; commit()
    // is a rename of the sink's own file.
    bool concurrent_commit() const override { return true; }

    void sync_prepared() override {
        std::vector<std::string> paths;
        {
            std::lock_guard<std::mutex> lock(pending_.mu);
            paths.swap(pending_.prepared);
        }
        if (paths.empty()) return;
        // One syncfs() writes back every file of the batch and commits the
        // journal once; per-file fsync() is the fallback.
        UniqueFd dir(::open((root_ + "/tmp").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (dir.get() >= 0 && ::syncfs(dir.get()) == 0) return;
        for (const auto& p : paths) {
            UniqueFd fd(::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
            if (!fd && errno == ENOENT) continue;  // its sink was aborted since
            if (!fd || ::fsync(fd.get()) != 0) throw_local_io("cannot sync " + p, errno);
        }
    }

    void sync_committed() override {
        {
            std::lock_guard<std::mutex> lock(pending_.mu);
            if (!pending_.committed) return;
            pending_.committed = false;
        }
        if (int err = try_fsync_dir(root_ + "/new")) throw_local_io("cannot sync Maildir " + root_ + "/new", err);
    }

private:
    void ensure_maildir() {
        for (const char* sub : {"", "/tmp", "/new", "/cur"}) {
            if (int err = try_make_dirs(root_ + sub, 0700)) throw_local_io("cannot create Maildir " + root_ + sub, err);
        }
        check_dirs(false);
        remove_orphans();
        ready_ = true;
    }

    // Someone who may write the Maildir or its tmp/ or new/ could swap them
    // for symlinks and have pullmail write or remove files elsewhere
    // (fs_util.h). With missing_ok, directories not there yet pass.
    void check_dirs(bool missing_ok) {
        for (const char* sub : {"", "/tmp", "/new", "/cur"}) {
            struct stat st {};
            if (missing_ok && ::stat((root_ + sub).c_str(), &st) != 0 && errno == ENOENT) continue;
            check_dir_safe(root_ + sub, DirTrust::Delivery, "Maildir");
        }
    }

    // A pullmail killed between writing tmp/<name> and recording its intent
    // leaves a file nothing refers to. Remove such files of ours: names made
    // by next_maildir_name() on this host whose process is gone. (Other
    // programs' files and those of live processes are left alone; the
    // Maildir convention's 36-hour rule covers the rest.)
    void remove_orphans() {
        std::string tmp = root_ + "/tmp";
        DIR* dir = ::opendir(tmp.c_str());
        if (dir == nullptr) return;
        std::string suffix = "." + maildir_host_part();
        while (struct dirent* ent = ::readdir(dir)) {
            std::string_view n(ent->d_name);
            if (n.size() <= suffix.size() || n.substr(n.size() - suffix.size()) != suffix) continue;
            auto p = n.find('P'), q = n.find('Q');
            if (p == std::string_view::npos || q == std::string_view::npos || q < p || n.find(".M") == std::string_view::npos)
                continue;
            long pid = std::strtol(std::string(n.substr(p + 1, q - p - 1)).c_str(), nullptr, 10);
            if (pid <= 0 || pid == ::getpid()) continue;
            if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
            ::unlinkat(::dirfd(dir), ent->d_name, 0);
        }
        ::closedir(dir);
    }

    // Whether new/<name>, cur/<name> or cur/<name><sep><info> exists. Mail
    // readers that take a message out of new/ move it to cur/ and append
    // ":2,<flags>" (';' or '!' on systems where ':' is not allowed in names).
    bool published(const std::string& name) {
        for (const char* sub : {"/new/", "/cur/"}) {
            int err = exists(root_ + sub + name);
            if (err == 0) return true;
            if (err != ENOENT) throw_local_io("cannot check Maildir " + root_ + sub, err);
        }
        std::string cur = root_ + "/cur";
        DIR* dir = ::opendir(cur.c_str());
        if (dir == nullptr) {
            if (errno == ENOENT) return false;
            throw_local_io("cannot read Maildir " + cur, errno);
        }
        bool found = false;
        errno = 0;
        while (struct dirent* ent = ::readdir(dir)) {
            std::string_view entry(ent->d_name);
            if (entry.size() > name.size() && entry.substr(0, name.size()) == name) {
                char sep = entry[name.size()];
                if (sep == ':' || sep == ';' || sep == '!') {
                    found = true;
                    break;
                }
            }
        }
        int err = errno;
        ::closedir(dir);
        if (!found && err != 0) throw_local_io("cannot read Maildir " + cur, err);
        return found;
    }

    std::string root_;
    std::atomic<bool> ready_{false};  // the directories exist (checked once)
    PendingSyncs pending_;
};

}  // namespace

// The host part of our names, escaped as maildir_unique_name() does it.
std::string maildir_host_part() {
    std::string name = maildir_unique_name(0, 0, 0, 0, host_name());
    return name.substr(name.find('.', 2) + 1);
}

std::string next_maildir_name() {
    struct timeval tv {};
    ::gettimeofday(&tv, nullptr);
    return maildir_unique_name(static_cast<std::uint64_t>(tv.tv_sec), static_cast<std::uint64_t>(tv.tv_usec),
                               static_cast<long>(::getpid()), ++g_delivery_counter, host_name());
}

std::unique_ptr<Deliverer> make_maildir_deliverer(const std::string& path) {
    return std::make_unique<MaildirDeliverer>(path);
}

}  // namespace pullmail::detail
