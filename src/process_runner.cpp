#include "process_runner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include "error.h"
#include "secrets.h"

extern char** environ;

namespace pullmail {
namespace {

using Clock = std::chrono::steady_clock;

class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = o.fd_;
            o.fd_ = -1;
        }
        return *this;
    }
    ~Fd() { reset(); }
    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    void reset() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_ = -1;
};

// A close-on-exec copy numbered >= 3, so that setting up the child's 0, 1 and
// 2 cannot overwrite it when pullmail was started with some of its standard
// descriptors closed. Returns an invalid Fd (errno set) on failure.
Fd above_stdio(int fd) { return Fd(::fcntl(fd, F_DUPFD_CLOEXEC, 3)); }

// A pipe whose ends are >= 3, the read end non-blocking. 0 or an errno.
int make_pipe(Fd& r, Fd& w) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return errno;
    Fd a(fds[0]), b(fds[1]);
    r = above_stdio(a.get());
    w = above_stdio(b.get());
    if (!r || !w) return errno;
    int flags = ::fcntl(r.get(), F_GETFL);
    if (flags < 0 || ::fcntl(r.get(), F_SETFL, flags | O_NONBLOCK) != 0) return errno;
    return 0;
}

// Our environment without the variables that hold secrets. The pointers are
// environ's own strings.
std::vector<char*> child_environment() {
    std::vector<char*> env;
    for (char** e = environ; e && *e; ++e)
        if (!is_secret_variable(*e)) env.push_back(*e);
    env.push_back(nullptr);
    return env;
}

struct Spawned {
    pid_t pid = -1;
    Fd out, err;  // read ends; out is empty without capture_stdout
};

// The controlling terminal while pullmail is its foreground job, for
// ProcessSpec::may_use_terminal; invalid otherwise. Holds the lock that lets
// one such command at a time have the terminal, and takes the terminal back
// when it goes.
class TerminalLoan {
public:
    explicit TerminalLoan(bool wanted) {
        if (!wanted) return;
        lock_ = std::unique_lock<std::mutex>(mutex());
        tty_ = Fd(::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC));
        if (tty_ && ::tcgetpgrp(tty_.get()) != ::getpgrp()) tty_.reset();  // not ours to lend
        if (tty_) {
            Fd high = above_stdio(tty_.get());
            tty_ = std::move(high);
        }
    }
    ~TerminalLoan() {
        if (!tty_ || ::tcgetpgrp(tty_.get()) == ::getpgrp()) return;
        // We are a background job now: tcsetpgrp() would raise SIGTTOU.
        sigset_t ttou, old;
        sigemptyset(&ttou);
        sigaddset(&ttou, SIGTTOU);
        pthread_sigmask(SIG_BLOCK, &ttou, &old);
        ::tcsetpgrp(tty_.get(), ::getpgrp());
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
    }
    TerminalLoan(const TerminalLoan&) = delete;
    TerminalLoan& operator=(const TerminalLoan&) = delete;
    int fd() const { return tty_.get(); }

private:
    static std::mutex& mutex() {
        static std::mutex m;
        return m;
    }
    std::unique_lock<std::mutex> lock_;
    Fd tty_;
};

int spawn(const ProcessSpec& spec, int tty, Spawned& s) {
    Fd in, out_w, err_w;
    if (spec.stdin_fd >= 0 && !(in = above_stdio(spec.stdin_fd))) return errno;
    if (spec.capture_stdout)
        if (int e = make_pipe(s.out, out_w)) return e;
    if (int e = make_pipe(s.err, err_w)) return e;

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    if (in)
        posix_spawn_file_actions_adddup2(&fa, in.get(), 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (out_w)
        posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
    else
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, err_w.get(), 2);
    // In the child, after it has its own group, with signals still blocked.
    if (tty >= 0) posix_spawn_file_actions_addtcsetpgrp_np(&fa, tty);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);  // no descriptor of ours leaks into the child
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"), const_cast<char*>(spec.command.c_str()),
                    nullptr};
    std::vector<char*> env = child_environment();
    int rc = ::posix_spawn(&s.pid, "/bin/sh", &fa, &attr, argv, env.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}

// Reads what a pipe has now into `kept` (up to `limit`), discarding the rest.
// Closes the pipe at end of file.
void drain(Fd& fd, std::string& kept, std::size_t limit) {
    char buf[4096];
    while (fd) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n > 0) {
            if (kept.size() < limit) kept.append(buf, std::min<std::size_t>(n, limit - kept.size()));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n == 0 || errno != EAGAIN) fd.reset();
        break;
    }
    wipe_bytes(buf, sizeof buf);  // may have held a password
}

// The position of the child's stdin when it is a regular file whose open
// file description we share (the MDA's spool): it moves as the child reads.
off_t stdin_position(const ProcessSpec& spec) {
    if (spec.stdin_fd < 0) return -1;
    return ::lseek(spec.stdin_fd, 0, SEEK_CUR);
}

// True once the child has exited; it stays a zombie (WNOWAIT) so that its
// pid, which is also its process group id, cannot be reused before the
// group is killed.
bool has_exited(pid_t pid) {
    siginfo_t info{};
    for (;;) {
        int rc = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
        if (rc == 0) return info.si_pid == pid;
        if (errno == EINTR) continue;
        return true;  // ECHILD: reaped by someone else (SIGCHLD ignored)
    }
}

int reap(pid_t pid) {
    int status = 0;
    for (;;) {
        if (::waitpid(pid, &status, 0) == pid) return status;
        if (errno != EINTR) return W_EXITCODE(EX_SOFTWARE, 0);
    }
}

}  // namespace

bool ProcessResult::exited_ok() const { return spawn_error == 0 && !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0; }

std::string ProcessResult::describe(std::chrono::milliseconds timeout) const {
    if (spawn_error != 0) return std::string("cannot start it: ") + std::strerror(spawn_error);
    if (timed_out) {
        auto ms = timeout.count();
        return "timed out after " + (ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms");
    }
    if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
    return "exit status " + std::to_string(WEXITSTATUS(status));
}

ProcessResult run_process(const ProcessSpec& spec) {
    ProcessResult r;
    Spawned s;
    TerminalLoan terminal(spec.may_use_terminal);
    r.spawn_error = spawn(spec, terminal.fd(), s);
    if (r.spawn_error != 0) return r;
    // Wakes poll() when the child exits; without it (kernels before 5.3) we
    // look every few milliseconds. (syscall(): glibc 2.36's <sys/pidfd.h>
    // lacks C linkage for C++.)
    Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, s.pid, 0)));
    auto deadline = Clock::now() + spec.timeout;
    off_t position = stdin_position(spec);
    bool terminated = false;
    while (!has_exited(s.pid)) {
        auto now = Clock::now();
        if (now >= deadline) {
            if (terminated) break;  // grace period over
            ::kill(-s.pid, SIGTERM);
            r.timed_out = terminated = true;
            deadline = now + spec.grace;
            continue;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
        // Short waits without a pidfd; with one, often enough to see stdin
        // progress within a tenth of the timeout.
        long long step = pidfd ? std::clamp<long long>(spec.timeout.count() / 10, 10, 1000) : 10;
        int wait_ms = static_cast<int>(std::min<long long>(left, step));
        struct pollfd pfd[3] = {{pidfd.get(), POLLIN, 0}, {s.out.get(), POLLIN, 0}, {s.err.get(), POLLIN, 0}};
        int n = ::poll(pfd, 3, wait_ms);
        if (n > 0) {
            if (pfd[1].revents) drain(s.out, r.out, spec.stdout_limit);
            if (pfd[2].revents) drain(s.err, r.err, spec.stderr_limit);
        }
        // Only reading its input is progress: output alone (an endless
        // `yes`, a stream of warnings) does not keep a command alive.
        // It moved at some time since the last look: count from then, so
        // that the timeout is never stretched by how often we look.
        off_t now_at = stdin_position(spec);
        if (now_at != position && !terminated) {
            position = now_at;
            deadline = now + spec.timeout;
        }
    }
    // What is in the pipes already; a grandchild may keep them open, so no
    // waiting for end of file.
    drain(s.out, r.out, spec.stdout_limit);
    drain(s.err, r.err, spec.stderr_limit);
    // Whatever the command left running in its group after a timeout goes
    // too; the zombie leader keeps the group id from being reused meanwhile.
    if (r.timed_out) ::kill(-s.pid, SIGKILL);
    if (r.timed_out) ::kill(s.pid, SIGKILL);  // a leader that left its group
    r.status = reap(s.pid);
    return r;
}

std::string first_line_of(std::string_view s, std::size_t max_len) {
    while (!s.empty()) {
        std::size_t nl = s.find('\n');
        std::string_view line = s.substr(0, nl);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.find_first_not_of(" \t") != std::string_view::npos) return sanitize(line, max_len);
        if (nl == std::string_view::npos) break;
        s.remove_prefix(nl + 1);
    }
    return {};
}

}  // namespace pullmail
