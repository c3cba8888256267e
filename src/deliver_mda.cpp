// deliver_mda.cpp — delivery by piping each message into a command (procmail,
// maildrop, dovecot-lda, ...).
//
// The command is the user's own configuration string, run as
// `/bin/sh -c <command>` by the process runner (process_runner.h: own process
// group, default signals, no descriptors of ours, no secret variables);
// nothing taken from a message is ever substituted into it.
//
// The MDA never sees part of a message. write() spools the message into an
// unlinked file (in the state directory, so memory stays flat on a 200 MB
// message); prepare() starts the MDA only once the message is whole, with
// the spool, rewound, as its stdin. Had we piped the message while it
// arrived, a pullmail killed mid-message would leave the MDA reading a pipe
// that ends early, and a real MDA delivers such a prefix as if it were the
// whole message. Now a kill at any instant leaves either no MDA or one that
// reads a complete file (it holds the descriptor, so the spool outlives us).
//
// Exit 0 is delivered. Exit 75 (EX_TEMPFAIL) means "try later": a Temporary
// error, which makes the delivery handler stop delivering for the account in
// this run (the rest stays on the server). Anything else is a permanent
// delivery error of this message. An MDA that does not read its stdin for
// mda_timeout seconds, or has not exited that long after reading all of it,
// is ended with its whole process group. There is no way to ask an MDA
// whether it delivered a message before a crash, so recover() answers
// Delivered and the target is at-least-once.
#include <errno.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <chrono>

#include "deliver.h"
#include "deliver_impl.h"
#include "error.h"
#include "process_runner.h"

namespace pullmail::detail {
namespace {

// Bytes of the MDA's stderr kept for the error message.
constexpr std::size_t kStderrKept = 300;

class MdaSink final : public DeliverySink {
public:
    MdaSink(const std::string& command, int timeout_s, UniqueFd spool)
        : command_(command), timeout_(timeout_s), spool_(std::move(spool)) {}

    ~MdaSink() override { abort(); }

    void write(std::string_view chunk) override {
        check_state(State::Writing, "write");
        if (int err = write_all(spool_.get(), chunk.data(), chunk.size())) {
            state_ = State::Failed;
            spool_.reset();
            throw_local_io("cannot spool a message for MDA '" + shown_command() + "'", err);
        }
    }

    std::string prepare() override {
        check_state(State::Writing, "prepare");
        state_ = State::Failed;  // unless the MDA says otherwise below
        if (::lseek(spool_.get(), 0, SEEK_SET) != 0)
            throw_local_io("cannot read the spooled message for MDA '" + shown_command() + "'", errno);
        ProcessSpec spec;
        spec.command = command_;
        spec.stdin_fd = spool_.get();
        spec.stderr_limit = kStderrKept;
        spec.timeout = timeout_;
        ProcessResult r = run_process(spec);
        spool_.reset();
        if (r.exited_ok()) {
            state_ = State::Prepared;
            return "mda";
        }
        std::string said = first_line_of(r.err, kStderrKept);
        if (!said.empty()) said = ": " + said;
        std::string mda = "MDA '" + shown_command() + "'";
        if (r.spawn_error) throw Error(ErrorKind::Delivery, "cannot start " + mda + ": " + errno_text(r.spawn_error));
        if (r.timed_out) throw Error(ErrorKind::Delivery, mda + " " + r.describe(timeout_));
        if (WIFEXITED(r.status) && WEXITSTATUS(r.status) == EX_TEMPFAIL)
            throw Error(ErrorKind::Temporary, mda + " asked to try again later (exit 75)" + said, true);
        if (WIFSIGNALED(r.status)) throw Error(ErrorKind::Delivery, mda + " was " + r.describe(timeout_) + said);
        throw Error(ErrorKind::Delivery, mda + " failed with " + r.describe(timeout_) + said);
    }

    void commit() override {
        check_state(State::Prepared, "commit");
        state_ = State::Committed;
    }

    // Before prepare() no MDA runs: dropping the spool leaves no trace.
    void abort() noexcept override {
        spool_.reset();
        if (state_ != State::Committed) state_ = State::Aborted;
    }

private:
    enum class State { Writing, Prepared, Committed, Failed, Aborted };

    void check_state(State want, const char* op) const {
        if (state_ == State::Failed) throw Error(ErrorKind::Delivery, "MDA delivery already failed");
        if (state_ != want) throw Error(ErrorKind::Internal, std::string("MDA sink: ") + op + " out of order");
    }

    std::string shown_command() const { return sanitize(command_, 100); }

    std::string command_;
    std::chrono::seconds timeout_;
    UniqueFd spool_;
    State state_ = State::Writing;
};

class MdaDeliverer final : public Deliverer {
public:
    MdaDeliverer(std::string command, int timeout_s, std::string spool_dir)
        : command_(std::move(command)), timeout_s_(timeout_s), spool_dir_(std::move(spool_dir)) {}

    std::unique_ptr<DeliverySink> begin(const MessageMeta&) override {
        UniqueFd spool =
            open_anonymous_file({spool_dir_, temp_dir_from_env(), "/tmp"}, "MDA '" + sanitize(command_, 100) + "'");
        return std::make_unique<MdaSink>(command_, timeout_s_, std::move(spool));
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
    std::string spool_dir_;
};

}  // namespace

std::unique_ptr<Deliverer> make_mda_deliverer(const std::string& command, const DeliveryOptions& opts) {
    return std::make_unique<MdaDeliverer>(command, opts.mda_timeout_seconds > 0 ? opts.mda_timeout_seconds : 300,
                                          opts.spool_dir);
}

}  // namespace pullmail::detail
