// intake.h — the MessageHandler that turns streamed server bytes
// into durable deliveries and state records, in the order deliver.h and
// state_journal.h require (write, prepare, intent+fsync, commit, seen).
//
// Overlap of network and disk: for deliverers that allow it
// (Deliverer::concurrent_commit, Maildir), a full batch is committed by a
// background thread while the session goes on receiving the next one into
// new sinks; at most one batch is in commit at a time. Nothing is recorded
// as seen before it is durable, exactly as with the commit in line.
//
// A failure of one message is contained here: its sink is aborted, the error
// is recorded, and the session goes on (MDA refusal, MDA exit 75). A local
// failure that would hit every following message too (disk full, unwritable
// Maildir) also asks the session to stop requesting more.
#pragma once

#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "deliver.h"
#include "error.h"
#include "fingerprint.h"
#include "retrieval.h"
#include "state_journal.h"

namespace pullmail {

class Logger;
struct AccountProgress;

class Intake final : public MessageHandler {
public:
    // `shared`, when given, is held whenever the handler touches the
    // deliverer or the state: several handlers (one per IMAP connection of
    // an account) then share both. Message bytes are written to their own
    // sink without it.
    Intake(const Account& account, Deliverer& deliverer, StateJournal& state, Logger& log,
                    const std::atomic<bool>* interrupted, std::mutex* shared = nullptr);
    ~Intake() override;
    Intake(const Intake&) = delete;
    Intake& operator=(const Intake&) = delete;

    void begin(const RemoteMessage& m) override;
    void data(std::string_view chunk) override;
    void end(const RemoteMessage& m) override;
    void failed(const RemoteMessage& m, std::string_view server_text) override;
    bool stop_requested() const override;

    // Publishes every message prepared but not yet committed (group commit,
    // deliver.h) and waits for the background commit, if any. The flows call
    // it after each retrieval and before any deletion; it is also safe after
    // a failure (messages in hand that are complete get delivered, the rest
    // stay on the server).
    void flush();

    // Counts and errors: read them after flush().
    std::size_t delivered() const { return delivered_; }
    std::uint64_t bytes() const { return bytes_; }
    std::size_t failed_count() const { return failed_; }
    std::size_t already_present() const { return already_present_; }
    // For the messages of the next retrieval (sync_plan.h, target_may_hold).
    void set_target_may_hold(bool v) { target_may_hold_ = v; }
    // The messages that follow are oversize stubs (oversize = "headers",
    // sync_plan.h): recorded as Delivered::HeadersOnly, so that they are
    // never deleted for being delivered, and their intents carry
    // kHeadersOnlyIntent so that recovery after a crash records them so too.
    void set_headers_only(bool v) { headers_only_ = v; }
    // For the messages of the next retrieval: key -> recipients a relay
    // target already delivered it to (Plan::delivered_to, sync_plan.h); it
    // must outlive the retrieval. nullptr: none.
    void set_delivered_to(const std::unordered_map<std::string, std::vector<std::string>>* m) { delivered_to_ = m; }
    // Errors of single messages (first few kept) and the fatal one, if any.
    const std::vector<Error>& errors() const { return errors_; }

private:
    struct Prepared {
        std::unique_ptr<DeliverySink> sink;
        RemoteMessage msg;
        std::string intent;
        std::string fingerprint;
        std::uint64_t bytes = 0;
        bool short_reply = false;  // fewer bytes than the server announced
        bool headers_only = false;  // an oversize stub (set_headers_only)
        std::vector<std::string> delivered_before;  // recipients it reached in earlier runs
        bool recorded = false;  // seen recorded already (DeliverySink::confirmed)
    };

    std::unique_lock<std::mutex> lock_state();
    // Commits one batch. With `fine_locking` (background commit) the state
    // lock is taken around each use of the state only, so that the session
    // can go on preparing messages while the disk syncs; otherwise the
    // caller holds it throughout.
    void commit_batch(std::vector<Prepared>& batch, bool fine_locking);
    void record_published(std::vector<Prepared>& batch, std::size_t committed, bool fine_locking);
    void record_partial(const Prepared& p);
    void record_delivered(Prepared& p);
    void record_confirmed(std::vector<Prepared>& batch, std::size_t upto, bool fine_locking);
    void hand_off();          // the full batch_ to the committer thread
    void wait_committer();    // until no batch is in commit
    void committer_loop();
    void fail_current(const Error& e);
    void record_failure(const Error& e);

    std::vector<Prepared> batch_;

    const Account& account_;
    Deliverer& deliverer_;
    StateJournal& state_;
    Logger& log_;
    const std::atomic<bool>* interrupted_;
    std::mutex own_;       // the same for a handler of its own
    std::mutex* state_mu_;
    const bool background_;
    AccountProgress* const progress_;  // the live progress line's counters, or nullptr (progress.h)

    // The committer thread and its one batch in commit.
    std::thread committer_;
    std::mutex queue_mu_;
    std::condition_variable queue_cv_;
    std::vector<Prepared> in_commit_;
    bool busy_ = false;
    bool quit_ = false;
    std::exception_ptr committer_error_;

    mutable std::mutex counters_mu_;  // the counters below and errors_

    std::unique_ptr<DeliverySink> sink_;
    bool skipping_ = false;  // current message failed or is ignored; drop its data
    CrlfToLf crlf_;        // LF form: for the header, the byte count and LF sinks
    bool raw_crlf_ = false;  // the deliverer wants the server's CRLF bytes (Deliverer::wants_crlf)
    HeaderCapture header_;
    std::string buf_;
    std::uint64_t msg_bytes_ = 0;
    std::uint64_t wire_bytes_ = 0;  // as received (CRLF), compared with the announced size
    bool target_may_hold_ = false;
    bool headers_only_ = false;
    const std::unordered_map<std::string, std::vector<std::string>>* delivered_to_ = nullptr;
    std::vector<std::string> delivered_before_;  // of the current message
    std::atomic<bool> stop_{false};

    std::size_t delivered_ = 0;
    std::size_t failed_ = 0;
    std::size_t already_present_ = 0;
    std::uint64_t bytes_ = 0;
    std::vector<Error> errors_;
};

// The prefix of the intent of an oversize stub (set_headers_only).
inline constexpr std::string_view kHeadersOnlyIntent = "headers-only ";

// "Received: by pullmail (account NAME); <RFC 5322 date>\n"
std::string received_line(const std::string& account, const std::string& host);

}  // namespace pullmail
