// deliver.h — where fetched messages go: the interface every delivery target
// implements (deliver_maildir, deliver_mbox, deliver_mda, deliver_imap).
//
// Contract, in the order the runner calls it for one message:
//   sink = deliverer.begin(meta)
//   sink->write(chunk) ...        message bytes, line endings already LF
//   intent = sink->prepare()      data durable but NOT yet visible as delivered
//   <runner writes intent to the state journal and fsyncs it>
//   sink->commit()                visible and durable (file + directory fsynced)
//   <runner records the message as seen>
// On any exception before commit() returns, the runner calls sink->abort(),
// which removes every trace of the message (tmp file, half mbox tail, ...).
//
// After a crash the runner finds intents without a matching "seen" record and
// asks recover(intent): Delivered means the message is fully in place (record
// it as seen, do not deliver again); NotDelivered means no trace of it remains
// (recover() cleans up partial data) and it must be delivered again. This is
// what makes Maildir and mbox delivery exactly-once across SIGKILL.
//
// Abstract so the runner can be tested with an in-memory fake.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "error.h"

namespace pullmail {

struct MessageMeta {
    std::string account;             // account name
    std::string key;                 // identity of the message in the state file (unique per account)
    std::uint64_t size_hint = 0;     // server's size (octets with CRLF), 0 when unknown
    std::string folder;              // IMAP folder ('/' separators), empty for POP3
    std::vector<std::string> flags;  // IMAP flags of the source, e.g. "\\Seen"
    std::string internal_date;       // IMAP INTERNALDATE as the server wrote it, may be empty
    // The target may already hold this message (first sync of the source
    // identity, sync_plan.h): an IMAP target then stores it only when it
    // holds no message with the same fingerprint and size. Otherwise a new
    // message is stored even when it equals one stored before.
    bool target_may_hold = false;
    // The recipients a relay target already delivered it to (a Partial state
    // entry, sync_plan.h): it goes to the others only. Other targets ignore it.
    std::vector<std::string> delivered_to;
};

class DeliverySink {
public:
    virtual ~DeliverySink() = default;
    // Append message bytes, with the line endings the deliverer asked for
    // (Deliverer::wants_crlf). Throws Error(LocalIO/Delivery).
    virtual void write(std::string_view chunk) = 0;
    // End of message. Makes the data durable where it is not yet seen as
    // delivered, and returns a one-line description (no '\n', no '\r') that
    // recover() of the same deliverer understands. Throws on failure; MDA
    // exit 75 throws Error(Temporary): stop delivering for this run.
    virtual std::string prepare() = 0;
    // Publish the message (rename into new/, ...). Durable when it returns.
    virtual void commit() = 0;
    // Remove every trace of an unfinished message. Never throws.
    virtual void abort() noexcept = 0;
    // For deliverers that complete commits later (Deliverer::sync_committed,
    // e.g. pipelined IMAP APPENDs): after sync_committed(), the error of this
    // message if the target refused it. The runner then aborts it and keeps
    // it on the server. Default: commit() reports its own errors.
    virtual const Error* commit_error() const { return nullptr; }
    // After a successful commit (and sync_committed): where the copy is, if
    // the target says (IMAP APPENDUID: "appenduid:<uidvalidity>:<uid>"),
    // recorded in the state file. One word, no spaces. Default: nothing.
    virtual std::string published_as() const { return {}; }
    // After prepare(): the target already held the message, so commit()
    // stores nothing (counted as "already present", recorded as seen).
    virtual bool already_present() const { return false; }
    // After a refused commit (commit_error): the recipients it did reach this
    // time (a relay target with several recipients, LMTP's per-recipient
    // replies); the runner records them so that the next run sends the
    // message to the others only. Default: none.
    virtual std::vector<std::string> delivered_to() const { return {}; }
    // After commit(), before sync_committed(): true once the target has
    // confirmed this message for good (a relay target read the final reply,
    // 2xx, for every recipient). The runner then records it at once, so that
    // a kill before the batch ends does not send it again (at-least-once
    // targets). Default: false (recorded after sync_committed()).
    virtual bool confirmed() const { return false; }
};

class Deliverer {
public:
    virtual ~Deliverer() = default;
    virtual std::unique_ptr<DeliverySink> begin(const MessageMeta& meta) = 0;

    // The line endings its sinks want. false (files, MDAs): LF, every CRLF
    // of the server's bytes turned into LF. true (an IMAP target, whose
    // message format is CRLF): the bytes exactly as the server sent them,
    // so nothing is converted there and back; the sink itself turns a bare
    // LF into CRLF.
    virtual bool wants_crlf() const { return false; }

    enum class Recovery { Delivered, NotDelivered };
    // See the contract above. Throws Error(LocalIO) when it cannot tell (the
    // runner then stops the account without deleting anything).
    virtual Recovery recover(std::string_view intent) = 0;

    // Batching (group commit). The runner may prepare up to max_batch()
    // sinks, then call sync_prepared() once, record all their intents with
    // one fsync, commit() each, and call sync_committed() once. A deliverer
    // whose prepare()/commit() are durable on their own keeps the defaults.
    // Why: on real disks each fsync costs milliseconds; three per message
    // would make the disk, not the network, the bottleneck.
    virtual std::size_t max_batch() const { return 1; }
    // Makes the data of every prepared (not yet committed) sink durable.
    virtual void sync_prepared() {}
    // Makes every commit() so far durable (e.g. fsync of Maildir new/).
    virtual void sync_committed() {}
    // True when sync_prepared(), commit() of prepared sinks and
    // sync_committed() may run on another thread while begin(), write() and
    // prepare() of further sinks go on (the runner then commits a full batch
    // in the background while the next one is received). Default: no.
    virtual bool concurrent_commit() const { return false; }

    // "maildir:/home/me/Mail/inbox" — for messages and --dry-run.
    virtual std::string describe() const = 0;
    // True for targets where a crash can duplicate (MDA): at-least-once.
    virtual bool at_least_once() const { return false; }
};

struct DeliveryOptions {
    std::string account;
    // An MDA that makes no progress for this long (does not read its stdin
    // while we write, or does not exit after its stdin was closed) is killed
    // with its whole process group.
    int mda_timeout_seconds = 300;
    // How long prepare()/recover() wait for another program's lock on an
    // mbox before giving up with a temporary LocalIO error.
    int mbox_lock_timeout_seconds = 60;
    // Where the MDA target spools each message before it starts the MDA (the
    // state directory); $TMPDIR or /tmp when empty or unusable.
    std::string spool_dir;
};

// Creates the deliverer for a Maildir, mbox or MDA target. (IMAP targets are
// created by the runner, which owns network connections.) Calls
// ignore_delivery_signals().
std::unique_ptr<Deliverer> make_file_deliverer(const DeliveryTarget& target, const DeliveryOptions& opts);

// Sets SIGPIPE and SIGXFSZ to "ignore" for the whole process, so that writing
// to an MDA that has exited fails with EPIPE, and writing past RLIMIT_FSIZE
// fails with EFBIG, instead of killing pullmail in the middle of a delivery.
// Both then surface as clean errors. The command line installs the same
// dispositions before any thread exists (install_signals in cli.cpp);
// make_file_deliverer() calls this again as a safety net.
// Processes we start (MDAs) get the default dispositions back.
void ignore_delivery_signals();

// Streaming CRLF -> LF conversion. A CR at the end of one chunk is held back
// until the next chunk shows whether an LF follows. A lone CR (not followed by
// LF) is kept as it is. finish() flushes a held-back CR.
class CrlfToLf {
public:
    // Appends converted bytes of `in` to `out`.
    void convert(std::string_view in, std::string& out);
    void finish(std::string& out);

private:
    bool held_cr_ = false;
};

// mboxrd quoting of one message body for appending to an mbox: every line
// matching ^>*From  gets one more '>'. Streaming; line boundaries may fall
// anywhere in the chunks. unquote reverses it exactly.
class MboxrdQuoter {
public:
    void quote(std::string_view in, std::string& out);
    void finish(std::string& out);   // flushes a partial line prefix held back

private:
    void release_held(std::string& out);

    // At the start of a line, the bytes seen so far are held back until it is
    // known whether the line is ^>*From : they are always held_gt_ times '>'
    // followed by the first held_from_ bytes of "From ", so two counters
    // describe them and nothing is buffered.
    bool at_line_start_ = true;
    std::uint64_t held_gt_ = 0;
    std::size_t held_from_ = 0;
};
std::string mboxrd_unquote(std::string_view body);

// A Maildir file name following the Maildir convention
// (https://cr.yp.to/proto/maildir.html): "<sec>.M<usec>P<pid>Q<counter>.<host>"
// with '/' and ':' in the host name replaced as the convention says.
// The directory of IMAP folder `folder` ('/' separated, UTF-8) in a
// Maildir++ tree (deliver_maildirpp.cpp): "." for INBOX and for POP3 (""),
// ".Lists.cpp" for "Lists/cpp"; modified UTF-7, '.' '\\' and a leading '~'
// of a level escaped as Dovecot's listescape does ("\\2e"). Throws
// Error(Delivery) for an empty level ("a//b").
std::string maildirpp_dir_name(std::string_view folder);

std::string maildir_unique_name(std::uint64_t sec, std::uint64_t usec, long pid, std::uint64_t counter,
                                std::string_view host);

}  // namespace pullmail
