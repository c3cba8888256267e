#include "fs_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "error.h"

namespace pullmail {

namespace {
[[noreturn]] void fail(const std::string& what, const std::string& path) {
    throw Error(ErrorKind::LocalIO, what + " " + path + ": " + std::strerror(errno));
}
}  // namespace

void make_dirs(const std::string& path, unsigned mode) {
    if (path.empty()) return;
    std::string cur;
    std::size_t pos = 0;
    while (pos != std::string::npos) {
        pos = path.find('/', pos + 1);
        cur = path.substr(0, pos);
        if (cur.empty()) continue;
        if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) fail("cannot create directory", cur);
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) fail("cannot create directory", path);
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        fail("cannot use", path);
    }
}

bool read_file_if_exists(const std::string& path, std::string& out) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return false;
        fail("cannot read", path);
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
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("cannot write", path_for_errors);
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

void fsync_dir(const std::string& dir) {
    int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail("cannot open directory", dir);
    if (::fsync(fd) != 0) {
        int e = errno;
        ::close(fd);
        errno = e;
        fail("cannot sync directory", dir);
    }
    ::close(fd);
}

void write_file_atomic(const std::string& path, std::string_view data, unsigned mode) {
    std::string tmp = path + ".tmp." + std::to_string(::getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) fail("cannot create", tmp);
    try {
        write_all_fd(fd, data, tmp);
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

}  // namespace pullmail
