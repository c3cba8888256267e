// deliver_mda.cpp — delivery by piping each message into a command (procmail,
// maildrop, dovecot-lda, ...).
//
// The command is the user's own configuration string, run as
// `/bin/sh -c <command>`; nothing taken from a message is ever substituted
// into it. The MDA gets the message on stdin, our environment, stdout on
// /dev/null, and a pipe for stderr whose first bytes go into the error
// message. It runs in its own process group so that a timeout kills
// everything it started, and gets default signal dispositions and an empty
// signal mask whatever the runner uses for itself.
//
// Exit 0 is delivered, exit 75 (EX_TEMPFAIL) a temporary error, anything
// else a permanent delivery error. There is no way to ask an MDA whether it
// delivered a message before a crash, so recover() answers Delivered and the
// target is at-least-once.
//
// Writing to an MDA that has exited must fail with EPIPE instead of raising
// SIGPIPE: make_file_deliverer() sets SIGPIPE to ignored process-wide (see
// ignore_delivery_signals() in deliver.h).
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "deliver.h"
#include "deliver_impl.h"
#include "error.h"

extern char** environ;

namespace pullmail::detail {
namespace {

using Clock = std::chrono::steady_clock;

// Bytes of the MDA's stderr kept for the error message.
constexpr std::size_t kStderrKept = 300;

// Moves fd to a number >= 3 (keeping FD_CLOEXEC), so that setting up the
// child's 0, 1 and 2 cannot overwrite it when the runner was started with
// some of its standard descriptors closed.
UniqueFd above_stdio(int fd) {
    if (fd >= 3) return UniqueFd(fd);
    int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int err = errno;
    ::close(fd);
    if (moved < 0) throw_local_io("cannot start MDA", err);
    return UniqueFd(moved);
}

std::pair<UniqueFd, UniqueFd> make_pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw_local_io("cannot start MDA: pipe", errno);
    UniqueFd r = above_stdio(fds[0]);
    UniqueFd w = above_stdio(fds[1]);
    return {std::move(r), std::move(w)};
}

void set_nonblocking(int fd) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) throw_local_io("cannot start MDA", errno);
}

int poll_timeout_ms(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return 0;
    return left > 60'000 ? 60'000 : static_cast<int>(left) + 1;
}

class MdaSink final : public DeliverySink {
public:
    MdaSink(const std::string& command, int timeout_s) : command_(command), timeout_(timeout_s) {
        auto [in_r, in_w] = make_pipe();
        auto [err_r, err_w] = make_pipe();
        set_nonblocking(in_w.get());
        set_nonblocking(err_r.get());

        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        posix_spawn_file_actions_init(&fa);
        posix_spawnattr_init(&attr);
        posix_spawn_file_actions_adddup2(&fa, in_r.get(), 0);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, err_w.get(), 2);
        posix_spawn_file_actions_addclosefrom_np(&fa, 3);  // no descriptor of ours leaks into the MDA
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        posix_spawnattr_setpgroup(&attr, 0);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"), const_cast<char*>(command_.c_str()),
                        nullptr};
        int rc = ::posix_spawn(&pid_, "/bin/sh", &fa, &attr, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (rc != 0) throw Error(ErrorKind::Delivery, "cannot start MDA '" + shown_command() + "': " + errno_text(rc));
        running_ = true;
        stdin_ = std::move(in_w);
        stderr_ = std::move(err_r);
        // Wakes poll() when the MDA exits; without it (kernels before 5.3)
        // prepare() checks every few milliseconds.
        // (syscall(): glibc 2.36's <sys/pidfd.h> lacks C linkage for C++.)
        pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
    }

    ~MdaSink() override { abort(); }

    void write(std::string_view chunk) override {
        check_state(State::Writing, "write");
        std::size_t done = 0;
        auto deadline = Clock::now() + timeout_;
        while (done < chunk.size() && stdin_) {
            ssize_t n = ::write(stdin_.get(), chunk.data() + done, chunk.size() - done);
            if (n > 0) {
                done += static_cast<std::size_t>(n);
                deadline = Clock::now() + timeout_;
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EPIPE) {
                // The MDA closed its stdin (it may have read all it wanted and
                // exit 0): the rest of the message is dropped, and its exit
                // status decides in prepare().
                stdin_.reset();
                return;
            }
            if (n < 0 && errno != EAGAIN) {
                int err = errno;
                fail();
                throw Error(ErrorKind::Delivery, "cannot write to MDA '" + shown_command() + "': " + errno_text(err));
            }
            if (!wait_writable(deadline)) timed_out();
        }
    }

    std::string prepare() override {
        check_state(State::Writing, "prepare");
        stdin_.reset();  // end of message
        auto deadline = Clock::now() + timeout_;
        while (!reap(WNOHANG)) {
            if (Clock::now() >= deadline) timed_out();
            struct pollfd pfd[2] = {{pidfd_.get(), POLLIN, 0}, {stderr_.get(), POLLIN, 0}};
            int wait_ms = pidfd_ ? poll_timeout_ms(deadline) : 10;
            if (::poll(pfd, 2, wait_ms) > 0 && pfd[1].revents != 0) read_stderr();
        }
        read_stderr();  // what is already there; a grandchild may keep the pipe open
        stderr_.reset();
        if (WIFEXITED(status_) && WEXITSTATUS(status_) == 0) {
            state_ = State::Prepared;
            return "mda";
        }
        state_ = State::Failed;
        std::string said = stderr_line();
        if (!said.empty()) said = ": " + said;
        if (WIFEXITED(status_) && WEXITSTATUS(status_) == EX_TEMPFAIL)
            throw Error(ErrorKind::Delivery, "MDA '" + shown_command() + "' asked to try again later (exit 75)" + said,
                        true);
        if (WIFSIGNALED(status_))
            throw Error(ErrorKind::Delivery, "MDA '" + shown_command() + "' was killed by signal " +
                                                 std::to_string(WTERMSIG(status_)) + said);
        throw Error(ErrorKind::Delivery, "MDA '" + shown_command() + "' failed with exit status " +
                                             std::to_string(WEXITSTATUS(status_)) + said);
    }

    void commit() override {
        check_state(State::Prepared, "commit");
        state_ = State::Committed;
    }

    // Kills the MDA and everything it started if it still runs. Whatever it
    // already delivered stays delivered: at-least-once.
    void abort() noexcept override {
        if (running_) {
            kill_group();
            reap(0);
        }
        stdin_.reset();
        stderr_.reset();
        pidfd_.reset();
        if (state_ != State::Committed) state_ = State::Aborted;
    }

private:
    enum class State { Writing, Prepared, Committed, Failed, Aborted };

    void check_state(State want, const char* op) const {
        if (state_ == State::Failed) throw Error(ErrorKind::Delivery, "MDA delivery already failed");
        if (state_ != want) throw Error(ErrorKind::Internal, std::string("MDA sink: ") + op + " out of order");
    }

    std::string shown_command() const { return sanitize(command_, 100); }

    // Waits until stdin takes more data or the MDA closed it, meanwhile
    // draining stderr (an MDA blocked on a full stderr pipe would never read
    // its stdin). False on timeout.
    bool wait_writable(Clock::time_point deadline) {
        for (;;) {
            int wait_ms = poll_timeout_ms(deadline);
            if (wait_ms == 0) return false;
            struct pollfd pfd[2] = {{stdin_.get(), POLLOUT, 0}, {stderr_.get(), POLLIN, 0}};
            int n = ::poll(pfd, 2, wait_ms);
            if (n < 0 && errno != EINTR) return false;
            if (n <= 0) continue;
            if (pfd[1].revents != 0) read_stderr();
            if (pfd[0].revents != 0) return true;  // POLLOUT, or POLLERR: write() reports EPIPE
        }
    }

    // Reads what stderr has now; keeps the first bytes, discards the rest.
    void read_stderr() {
        char buf[4096];
        while (stderr_) {
            ssize_t n = ::read(stderr_.get(), buf, sizeof buf);
            if (n > 0) {
                if (stderr_text_.size() < kStderrKept)
                    stderr_text_.append(buf, std::min<std::size_t>(n, kStderrKept - stderr_text_.size()));
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n == 0 || errno != EAGAIN) stderr_.reset();  // EOF (or broken): stop polling it
            return;
        }
    }

    // The first non-empty line of the MDA's stderr, safe to print.
    std::string stderr_line() const {
        std::string_view s = stderr_text_;
        while (!s.empty()) {
            std::size_t nl = s.find('\n');
            std::string_view line = s.substr(0, nl);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            if (line.find_first_not_of(" \t") != std::string_view::npos) return sanitize(line, kStderrKept);
            if (nl == std::string_view::npos) break;
            s.remove_prefix(nl + 1);
        }
        return {};
    }

    // True once the MDA has been waited for (status_ is then set).
    bool reap(int flags) noexcept {
        if (!running_) return true;
        for (;;) {
            pid_t r = ::waitpid(pid_, &status_, flags);
            if (r == pid_) break;
            if (r == 0) return false;
            if (errno == EINTR) continue;
            status_ = W_EXITCODE(EX_SOFTWARE, 0);  // ECHILD: someone else reaped it (SIGCHLD ignored)
            break;
        }
        running_ = false;
        pidfd_.reset();
        return true;
    }

    void kill_group() noexcept {
        // The group id is the MDA's pid (POSIX_SPAWN_SETPGROUP with 0). It
        // cannot have been reused: the MDA is not reaped yet. The direct kill
        // covers an MDA that left its group.
        ::kill(-pid_, SIGKILL);
        ::kill(pid_, SIGKILL);
    }

    void fail() noexcept {
        abort();
        state_ = State::Failed;
    }

    [[noreturn]] void timed_out() {
        fail();
        throw Error(ErrorKind::Delivery, "MDA '" + shown_command() + "' timed out after " +
                                             std::to_string(timeout_.count()) + " s");
    }

    std::string command_;
    std::chrono::seconds timeout_;
    pid_t pid_ = -1;
    bool running_ = false;
    int status_ = 0;
    UniqueFd stdin_, stderr_, pidfd_;
    std::string stderr_text_;
    State state_ = State::Writing;
};

class MdaDeliverer final : public Deliverer {
public:
    MdaDeliverer(std::string command, int timeout_s) : command_(std::move(command)), timeout_s_(timeout_s) {}

    std::unique_ptr<DeliverySink> begin(const MessageMeta&) override {
        return std::make_unique<MdaSink>(command_, timeout_s_);
    }

    Recovery recover(std::string_view intent) override {
        intent_args(intent, "mda", describe());
        return Recovery::Delivered;
    }

    std::string describe() const override { return "mda:" + command_; }
    bool at_least_once() const override { return true; }

private:
    std::string command_;
    int timeout_s_;
};

}  // namespace

std::unique_ptr<Deliverer> make_mda_deliverer(const std::string& command, const DeliveryOptions& opts) {
    return std::make_unique<MdaDeliverer>(command, opts.mda_timeout_seconds > 0 ? opts.mda_timeout_seconds : 300);
}

}  // namespace pullmail::detail
