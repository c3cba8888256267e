#include "fs_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "error.h"
#include "text_util.h"

namespace pullmail {

namespace {
[[noreturn]] void fail(const std::string& what, const std::string& path) {
    throw Error(ErrorKind::LocalIO, what + " " + path + ": " + std::strerror(errno));
}
}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
}

int UniqueFd::release() noexcept {
    int fd = fd_;
    fd_ = -1;
    return fd;
}

void UniqueFd::reset(int fd) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

int UniqueFd::close() noexcept {
    if (fd_ < 0) return 0;
    // Linux releases the descriptor even when close() fails: never retry.
    int rc = ::close(fd_);
    fd_ = -1;
    return rc == 0 || errno == EINTR ? 0 : errno;
}

std::string dir_name(const std::string& path) {
    std::size_t end = path.size();
    while (end > 1 && path[end - 1] == '/') --end;  // "a/b/" names "a/b"
    std::size_t slash = path.rfind('/', end - 1);
    if (slash == std::string::npos) return ".";
    while (slash > 0 && path[slash - 1] == '/') --slash;
    return slash == 0 ? "/" : path.substr(0, slash);
}

int try_fsync_dir(const std::string& path) {
    int fd = ::open(path.empty() ? "." : path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    int err = ::fsync(fd) != 0 ? errno : 0;
    ::close(fd);
    return err;
}

int try_make_dirs(const std::string& path, unsigned mode) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (errno != ENOENT) return errno;
    std::string parent = dir_name(path);
    if (parent != path) {
        if (int err = try_make_dirs(parent, mode)) return err;
    }
    if (::mkdir(path.c_str(), mode) != 0) {
        if (errno != EEXIST) return errno;
        // Lost a race with another creator: fine if it made a directory.
        if (::stat(path.c_str(), &st) != 0) return errno;
        return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    }
    // The new entry lives in the parent directory: without this fsync a crash
    // could forget the directory, and with it a message committed inside it.
    return try_fsync_dir(parent);
}

int write_all(int fd, const char* data, std::size_t len) {
    while (len > 0) {
        ssize_t n = ::write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        data += n;
        len -= static_cast<std::size_t>(n);
    }
    return 0;
}

int pwrite_all(int fd, const char* data, std::size_t len, off_t offset) {
    while (len > 0) {
        ssize_t n = ::pwrite(fd, data, len, offset);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        data += n;
        len -= static_cast<std::size_t>(n);
        offset += n;
    }
    return 0;
}

void make_dirs(const std::string& path, unsigned mode) {
    if (path.empty()) return;
    if (int err = try_make_dirs(path, mode)) {
        errno = err;
        fail(err == ENOTDIR ? "cannot use" : "cannot create directory", path);
    }
}

bool read_file_if_exists(const std::string& path, std::string& out, bool follow_symlinks) {
    int fd = follow_symlinks ? ::open(path.c_str(), O_RDONLY | O_CLOEXEC) : open_no_follow(path, O_RDONLY);
    if (fd < 0) {
        if (errno == ENOENT) return false;
        throw Error(ErrorKind::LocalIO, "cannot read " + path + ": " + open_error_text(errno));
    }
    out.clear();
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ::close(fd);
            errno = e;
            fail("cannot read", path);
        }
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return true;
}

void write_all_fd(int fd, std::string_view data, const std::string& path_for_errors) {
    if (int err = write_all(fd, data.data(), data.size())) {
        errno = err;
        fail("cannot write", path_for_errors);
    }
}

void fsync_dir(const std::string& dir) {
    if (int err = try_fsync_dir(dir)) {
        errno = err;
        fail("cannot sync directory", dir);
    }
}

void write_file_atomic(const std::string& path, std::string_view data, unsigned mode) {
    write_file_atomic(path, mode, [&](const std::function<void(std::string_view)>& write) { write(data); });
}

void write_file_atomic(const std::string& path, unsigned mode,
                       const std::function<void(const std::function<void(std::string_view)>&)>& produce) {
    std::string tmp = path + ".tmp.XXXXXX";
    int fd = ::mkostemp(tmp.data(), O_CLOEXEC);  // mode 0600, O_CREAT | O_EXCL
    if (fd < 0) fail("cannot create", tmp);
    try {
        if ((mode & 07777) != 0600 && ::fchmod(fd, mode & 07777) != 0) fail("cannot set the mode of", tmp);
        produce([&](std::string_view data) { write_all_fd(fd, data, tmp); });
        if (::fsync(fd) != 0) fail("cannot sync", tmp);
    } catch (...) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        errno = e;
        fail("cannot replace", path);
    }
    fsync_dir(std::filesystem::path(path).parent_path().string());
}

void check_dir_safe(const std::string& dir, DirTrust trust, const std::string& what) {
    const std::string shown = dir.empty() ? "." : dir;
    struct stat st {};
    if (::stat(shown.c_str(), &st) != 0) fail("cannot check " + what, shown);
    const uid_t me = ::geteuid();
    // Root trusts only root: a directory of some user lets that user point
    // root's writes anywhere. Others may also use root's directories.
    if (st.st_uid != me && (trust == DirTrust::Private || st.st_uid != 0)) {
        throw Error(ErrorKind::LocalIO,
                    what + " " + shown + " belongs to uid " + std::to_string(st.st_uid) + ", not to uid " +
                        std::to_string(me) + " running pullmail, so its owner could make pullmail write other "
                        "files through it; run 'chown " + std::to_string(me) + " " + shell_word(shown) +
                        "' or use a directory of your own");
    }
    const mode_t writable = st.st_mode & (S_IWGRP | S_IWOTH);
    if (writable == 0) return;
    if (trust != DirTrust::Private && (st.st_mode & S_ISVTX)) return;  // like /tmp: entries stay their owners'
    if (trust == DirTrust::MailSpool && st.st_uid == 0 && writable == S_IWGRP) return;  // like /var/mail
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw Error(ErrorKind::LocalIO,
                what + " " + shown + " is writable by " + ((writable & S_IWOTH) ? "all users" : "its group") +
                    (trust == DirTrust::Private ? "" : " without the sticky bit") + " (mode " + mode +
                    "), who could plant symbolic links there for pullmail to follow; run 'chmod go-w " +
                    shell_word(shown) + "'");
}

int open_no_follow(const std::string& path, int flags, unsigned mode) {
    // O_NONBLOCK: opening a FIFO someone left there must not hang the run.
    int fd = ::open(path.c_str(), flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode);
    if (fd < 0) {
        if (errno == ENXIO) errno = EINVAL;  // a FIFO without a reader, a device without a driver
        return -1;
    }
    struct stat st {};
    int err = 0;
    if (::fstat(fd, &st) != 0)
        err = errno;
    else if (!S_ISREG(st.st_mode))
        err = EINVAL;
    else if (::fcntl(fd, F_SETFL, flags & O_APPEND) != 0)  // drops O_NONBLOCK
        err = errno;
    if (err == 0) return fd;
    ::close(fd);
    errno = err;
    return -1;
}

std::string open_error_text(int err) {
    if (err == ELOOP) return "it is a symbolic link, which pullmail does not follow here (remove it)";
    if (err == EINVAL || err == EISDIR) return "it is not a regular file";
    return std::error_code(err, std::generic_category()).message();  // thread-safe, unlike strerror
}

}  // namespace pullmail
