#include "credentials.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "error.h"
#include "fs_util.h"

namespace pullmail {

std::string resolve_password(const PasswordSource& src, const std::string& account) {
    auto first_line = [](std::string s) {
        auto nl = s.find_first_of("\r\n");
        if (nl != std::string::npos) s.resize(nl);
        return s;
    };
    switch (src.kind) {
        case PasswordSource::Kind::Literal:
            return src.value;
        case PasswordSource::Kind::File: {
            std::string data;
            try {
                if (!read_file_if_exists(src.value, data))
                    throw Error(ErrorKind::Config, "password_file " + src.value + " does not exist");
            } catch (const Error& e) {
                throw Error(ErrorKind::Config, e.what());
            }
            return first_line(data);
        }
        case PasswordSource::Kind::Env: {
            const char* v = std::getenv(src.value.c_str());
            if (!v || !*v)
                throw Error(ErrorKind::Config, "no password: give --password-command or set the environment variable " +
                                                   src.value);
            return v;
        }
        case PasswordSource::Kind::Command: {
            int pipefd[2];
            if (::pipe2(pipefd, O_CLOEXEC) != 0)
                throw Error(ErrorKind::LocalIO, std::string("cannot create a pipe: ") + std::strerror(errno));
            // posix_spawn, not fork: with -j the process has threads and
            // a large address space that fork would copy page by page.
            posix_spawn_file_actions_t fa;
            posix_spawnattr_t attr;
            posix_spawn_file_actions_init(&fa);
            posix_spawnattr_init(&attr);
            posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
            posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
            sigset_t none, all;
            sigemptyset(&none);
            sigfillset(&all);
            posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
            posix_spawnattr_setsigmask(&attr, &none);
            posix_spawnattr_setsigdefault(&attr, &all);
            char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"), const_cast<char*>(src.value.c_str()),
                            nullptr};
            pid_t pid = -1;
            int rc = ::posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
            posix_spawn_file_actions_destroy(&fa);
            posix_spawnattr_destroy(&attr);
            if (rc != 0) {
                ::close(pipefd[0]);
                ::close(pipefd[1]);
                throw Error(ErrorKind::Config, "cannot run password_command '" + src.value + "': " + std::strerror(rc));
            }
            ::close(pipefd[1]);
            std::string out;
            char buf[4096];
            for (;;) {
                ssize_t n = ::read(pipefd[0], buf, sizeof buf);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) break;
                if (out.size() < 65536) out.append(buf, static_cast<std::size_t>(n));
            }
            ::close(pipefd[0]);
            int status = 0;
            while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                throw Error(ErrorKind::Config, "password_command '" + src.value + "' failed (exit status " +
                                                   std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
            std::string pw = first_line(out);
            if (pw.empty()) throw Error(ErrorKind::Config, "password_command '" + src.value + "' printed no password");
            return pw;
        }
        case PasswordSource::Kind::None:
            break;
    }
    throw Error(ErrorKind::Config, "no password source for account '" + account + "'");
}

}  // namespace pullmail
