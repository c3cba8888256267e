// fs_util.h — the file-system helpers, with the durability rules pullmail
// relies on, in one place. The try_/errno forms return 0 or an errno (the
// delivery targets turn it into their own message); the others throw
// Error(LocalIO) with the path and strerror.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace pullmail {

// Owns one file descriptor; closes it on destruction (errors ignored there —
// call close() where the result matters).
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept;
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    int release() noexcept;
    void reset(int fd = -1) noexcept;
    // Closes and returns 0 or the errno of close() (NFS reports write errors
    // there).
    int close() noexcept;

private:
    int fd_ = -1;
};

// The directory part of a path: "a/b" -> "a", "b" -> ".", "/b" -> "/".
std::string dir_name(const std::string& path);
// mkdir -p with `mode` for every directory it creates. The parent of each
// created directory is fsynced, so the new directory survives a crash once
// this returns. Returns 0 or an errno (ENOTDIR when a component is a file).
int try_make_dirs(const std::string& path, unsigned mode);
// fsync of a directory: makes entries created, renamed or removed in it
// durable. Returns 0 or an errno.
int try_fsync_dir(const std::string& path);
// write()/pwrite() until everything is written, retrying on EINTR and short
// writes. Returns 0 or an errno (EFBIG past RLIMIT_FSIZE, given that SIGXFSZ
// is ignored; ENOSPC; EDQUOT; EAGAIN on a non-blocking fd).
int write_all(int fd, const char* data, std::size_t len);
int pwrite_all(int fd, const char* data, std::size_t len, off_t offset);

// try_make_dirs, throwing.
void make_dirs(const std::string& path, unsigned mode);
// Reads a whole (small) file. Returns false when it does not exist. With
// follow_symlinks = false a symbolic link is an error (see open_no_follow).
bool read_file_if_exists(const std::string& path, std::string& out, bool follow_symlinks = true);
// write(2) until everything is written; EINTR-safe.
void write_all_fd(int fd, std::string_view data, const std::string& path_for_errors);
// fsync a directory so that a rename or create inside it is durable.
void fsync_dir(const std::string& dir);
// Replace `path` atomically and durably: write a sibling temp file, fsync it,
// rename over `path`, fsync the directory. The temp file has a random name
// and is created exclusively (mkstemp), so nothing planted under a
// predictable name is ever opened, let alone truncated.
void write_file_atomic(const std::string& path, std::string_view data, unsigned mode);
// The same with the contents made piece by piece: produce(write) calls
// write(bytes) for each piece in order, so a large file is never held whole.
void write_file_atomic(const std::string& path, unsigned mode,
                       const std::function<void(const std::function<void(std::string_view)>&)>& produce);

// ---- directories other users could tamper with ----------------------------
//
// A directory that someone else may write lets them swap pullmail's files
// for symbolic links between two runs (or two system calls) and so make
// pullmail, perhaps running as root, truncate or write a file of their
// choice. So pullmail refuses such directories, and opens the files it keeps
// in them with O_NOFOLLOW.
enum class DirTrust {
    // The state directory: owned by the user running pullmail, writable by
    // no one else (a sticky bit does not help: the state files must not be
    // created by anyone else either).
    Private,
    // The directories of a Maildir: owned by the user (or by root, for a
    // user other than root), writable by group or others only with the
    // sticky bit set (like /tmp).
    Delivery,
    // The directory of an mbox: as Delivery, and also a mail spool owned by
    // root that only its group may write (Debian's /var/mail is root:mail
    // 2775). The mbox itself is opened with O_NOFOLLOW and must be a regular
    // file, which is what keeps such a group from redirecting the append.
    MailSpool,
};

// Throws Error(LocalIO) with a one-line message naming `what`, the
// directory and the chmod or chown that fixes it, when `dir` (followed if it
// is a symlink itself: that choice is the user's) is not safe for `trust`.
void check_dir_safe(const std::string& dir, DirTrust trust, const std::string& what);

// open(2) that never follows a symbolic link in the last component and opens
// only regular files: O_NOFOLLOW and O_CLOEXEC are added to `flags`. Returns
// the descriptor, or -1 with errno (ELOOP for a symlink, EINVAL for a
// directory, FIFO or device, which are opened without blocking and closed).
int open_no_follow(const std::string& path, int flags, unsigned mode = 0600);
// Text for an errno from open_no_follow: names a symlink and a non-regular
// file as such ("is a symbolic link, which pullmail does not follow").
std::string open_error_text(int err);

}  // namespace pullmail
