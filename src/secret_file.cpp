#include "secret_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "error.h"
#include "text_util.h"

namespace pullmail {

void check_secret_file(const std::string& path, const std::string& what, bool holds_password) {
    struct stat st {};
    // A file that cannot be stat()ed is reported by the reader, with its errno.
    if (::stat(path.c_str(), &st) != 0) return;
    if (st.st_uid != ::getuid())
        throw Error(ErrorKind::Config,
                    what + " " + path + " belongs to uid " + std::to_string(st.st_uid) +
                        ", not to you (uid " + std::to_string(::getuid()) +
                        "): it could make pullmail run commands as you or read your password; "
                        "run pullmail as its owner, or take it over: chown " +
                        std::to_string(::getuid()) + " " + shell_word(path) + " && chmod 600 " + shell_word(path));
    const mode_t others = holds_password ? (S_IRWXG | S_IRWXO) : (S_IWGRP | S_IWOTH);
    if ((st.st_mode & others) == 0) return;
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    std::string who = holds_password ? "holds a password and is readable or writable by others (mode " + std::string(mode) + ")"
                                     : "is writable by others (mode " + std::string(mode) + ")";
    throw Error(ErrorKind::Config, what + " " + path + " " + who + "; run: chmod 600 " + shell_word(path));
}

}  // namespace pullmail
