#include "intake.h"

#include <algorithm>
#include <ctime>

#include "log.h"
#include "message_key.h"
#include "progress.h"
#include "test_hooks.h"

namespace pullmail {

std::string received_line(const std::string& account, const std::string& host) {
    char date[64];
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::localtime_r(&now, &tm);
    std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
    return "Received: from " + host + " by pullmail (account " + account + "); " + date + "\n";
}

namespace {

// A POP3 listing keeps the UIDL in the key only (fetch_pop3.cpp).
std::string uidl_of(const RemoteMessage& m) { return m.uidl.empty() ? pop3_uidl(m.key) : m.uidl; }

// An exception other than Error escaping per-message code is a bug in
// pullmail, but one about this message (a header it could not digest): it
// fails that message only and never the messages after it.
Error message_error(std::string_view key, const std::exception& e) {
    return Error(ErrorKind::Internal,
                 "message " + (key.empty() ? std::string("in transfer") : std::string(key)) + ": internal error: " +
                     e.what());
}

}  // namespace

Intake::Intake(const Account& account, Deliverer& deliverer, StateJournal& state, Logger& log,
                                 const std::atomic<bool>* interrupted, std::mutex* shared)
    : account_(account),
      deliverer_(deliverer),
      state_(state),
      log_(log),
      interrupted_(interrupted),
      state_mu_(shared ? shared : &own_),
      background_(deliverer.concurrent_commit() && deliverer.max_batch() > 1),
      progress_(progress_for(account.name)) {}

Intake::~Intake() {
    if (!committer_.joinable()) return;
    {
        std::lock_guard<std::mutex> q(queue_mu_);
        quit_ = true;  // after the batch in commit, if any
    }
    queue_cv_.notify_all();
    committer_.join();
}

std::unique_lock<std::mutex> Intake::lock_state() { return std::unique_lock<std::mutex>(*state_mu_); }

bool Intake::stop_requested() const {
    return stop_.load() || (interrupted_ && interrupted_->load(std::memory_order_relaxed));
}

void Intake::record_failure(const Error& e) {
    Error err = e;
    err.set_account(account_.name);
    // A target's refusal of one message (MDA exit status, APPEND NO) is about
    // that message; anything else (disk full, target unreachable) would hit
    // every following message the same way.
    if (e.kind() != ErrorKind::Delivery && e.kind() != ErrorKind::Internal) stop_ = true;
    {
        std::lock_guard<std::mutex> lock(counters_mu_);
        ++failed_;
        if (errors_.size() < 20) errors_.push_back(err);
    }
    log_.error(account_.name, e.detail());
}

void Intake::fail_current(const Error& e) {
    if (sink_) {
        sink_->abort();
        sink_.reset();
    }
    skipping_ = true;
    record_failure(e);
}

void Intake::begin(const RemoteMessage& m) {
    skipping_ = false;
    msg_bytes_ = 0;
    wire_bytes_ = 0;
    crlf_ = CrlfToLf();
    header_.reset();
    raw_crlf_ = deliverer_.wants_crlf();
    if (stop_requested()) {
        skipping_ = true;  // in flight when we stopped: left on the server
        return;
    }
    test_step("message begin");
    try {
        MessageMeta meta;
        meta.account = account_.name;
        meta.key = m.key;
        meta.size_hint = m.size;
        meta.folder = m.folder();
        meta.flags = m.flags();
        meta.internal_date = m.internal_date();
        meta.target_may_hold = target_may_hold_;
        delivered_before_.clear();
        if (delivered_to_) {
            auto it = delivered_to_->find(m.key);
            if (it != delivered_to_->end()) delivered_before_ = it->second;
        }
        meta.delivered_to = delivered_before_;
        auto lock = lock_state();
        sink_ = deliverer_.begin(meta);
        if (account_.received_header) {
            std::string line = received_line(account_.name, account_.server.host);
            if (raw_crlf_) line.insert(line.size() - 1, "\r");
            sink_->write(line);
        }
    } catch (const Error& e) {
        fail_current(e);
    } catch (const std::exception& e) {
        fail_current(message_error(m.key, e));
    }
}

void Intake::data(std::string_view chunk) {
    if (progress_) progress_->received(chunk.size());
    if (skipping_ || !sink_) return;
    if (stop_requested()) {
        // SIGTERM/SIGINT: roll back the message in hand rather than finish a
        // possibly huge transfer; it stays on the server for the next run.
        sink_->abort();
        sink_.reset();
        skipping_ = true;
        return;
    }
    wire_bytes_ += chunk.size();
    try {
        buf_.clear();
        crlf_.convert(chunk, buf_);
        header_.feed(buf_);
        msg_bytes_ += buf_.size();
        sink_->write(raw_crlf_ ? chunk : std::string_view(buf_));
    } catch (const Error& e) {
        fail_current(e);
    } catch (const std::exception& e) {
        fail_current(message_error({}, e));
    }
}

void Intake::end(const RemoteMessage& m) {
    if (progress_) progress_->message_done();
    if (skipping_ || !sink_) {
        skipping_ = false;
        return;
    }
    try {
        buf_.clear();
        crlf_.finish(buf_);
        if (!buf_.empty()) {  // a final CR held back by the conversion
            header_.feed(buf_);
            msg_bytes_ += buf_.size();
            if (!raw_crlf_) sink_->write(buf_);  // raw sinks got it with its chunk
        }
        test_step("message received");
        std::string intent;
        {
            auto lock = lock_state();
            intent = sink_->prepare();
        }
        test_step("message prepared");
        // A reply shorter than the size the server announced may be a cut
        // message: delivered as received, but never deleted on the server
        // (sync_plan.h). Longer is normal (POP3 adds a final line break).
        bool short_reply = !headers_only_ && m.size > 0 && wire_bytes_ < m.size;
        if (short_reply)
            log_.warn(account_.name, "the server announced " + std::to_string(m.size) + " bytes for " +
                                         (m.uid ? "UID " + std::to_string(m.uid) : "message " + uidl_of(m)) +
                                         " but sent " + std::to_string(wire_bytes_) +
                                         "; delivered as received and kept on the server");
        if (headers_only_) intent.insert(0, kHeadersOnlyIntent);
        batch_.push_back(Prepared{std::move(sink_), m, std::move(intent), message_fingerprint(header_.header(), m.internal_date()),
                                  msg_bytes_, short_reply, headers_only_, delivered_before_});
    } catch (const Error& e) {
        fail_current(e);
        return;
    } catch (const std::exception& e) {
        fail_current(message_error(m.key, e));
        return;
    }
    if (batch_.size() < deliverer_.max_batch()) return;
    if (background_) {
        hand_off();
    } else {
        auto lock = lock_state();
        commit_batch(batch_, false);
        batch_.clear();
    }
}

void Intake::flush() {
    if (background_) {
        if (!batch_.empty()) hand_off();
        wait_committer();
        return;
    }
    if (batch_.empty()) return;
    auto lock = lock_state();
    commit_batch(batch_, false);
    batch_.clear();
}

void Intake::hand_off() {
    std::unique_lock<std::mutex> q(queue_mu_);
    if (!committer_.joinable()) committer_ = std::thread([this] { committer_loop(); });
    queue_cv_.wait(q, [this] { return !busy_; });  // one batch in commit at a time
    in_commit_ = std::move(batch_);
    batch_.clear();
    busy_ = true;
    q.unlock();
    queue_cv_.notify_all();
}

void Intake::wait_committer() {
    std::unique_lock<std::mutex> q(queue_mu_);
    queue_cv_.wait(q, [this] { return !busy_; });
    if (committer_error_) {
        auto e = committer_error_;
        committer_error_ = nullptr;
        std::rethrow_exception(e);
    }
}

void Intake::committer_loop() {
    std::unique_lock<std::mutex> q(queue_mu_);
    for (;;) {
        queue_cv_.wait(q, [this] { return busy_ || quit_; });
        if (!busy_) return;  // quit, nothing in commit
        std::vector<Prepared> batch = std::move(in_commit_);
        in_commit_.clear();
        q.unlock();
        try {
            commit_batch(batch, true);
        } catch (...) {
            // Not an Error (those are recorded per message): out of memory
            // and the like. The session learns of it at its next flush().
            for (auto& p : batch)
                if (p.sink) p.sink->abort();
            q.lock();
            committer_error_ = std::current_exception();
            q.unlock();
        }
        batch.clear();
        q.lock();
        busy_ = false;
        queue_cv_.notify_all();
    }
}

void Intake::commit_batch(std::vector<Prepared>& batch, bool fine_locking) {
    auto hold = [&] {
        return fine_locking ? std::unique_lock<std::mutex>(*state_mu_) : std::unique_lock<std::mutex>();
    };
    auto abort_all = [&](const Error& e, std::size_t from) {
        {
            auto lock = hold();
            for (std::size_t i = from; i < batch.size(); ++i) {
                if (batch[i].sink) batch[i].sink->abort();
                state_.drop_intent(batch[i].msg.key);
            }
        }
        record_failure(e);
    };
    // Order per deliver.h: data durable, then intents durable, then publish,
    // then publication durable, then seen records. With fine locking, the
    // disk syncs run without the state lock (concurrent_commit deliverers
    // allow that), the state's own writes and fsync with it.
    try {
        deliverer_.sync_prepared();
        {
            auto lock = hold();
            for (auto& p : batch) state_.record_intent(p.msg.key, p.intent, false);
            state_.sync();
        }
        test_step("intents recorded");
    } catch (const Error& e) {
        abort_all(e, 0);
        return;
    }
    std::size_t committed = 0;
    for (; committed < batch.size(); ++committed) {
        try {
            batch[committed].sink->commit();
            test_step("message committed");
            record_confirmed(batch, committed + 1, fine_locking);
        } catch (const Error& e) {
            // This one is rolled back by abort(); the rest were not published.
            abort_all(e, committed);
            break;
        } catch (const std::exception& e) {
            // Rolled back alone: the others of the batch go on (see message_error).
            auto& p = batch[committed];
            Error err = message_error(p.msg.key, e);
            {
                auto lock = hold();
                p.sink->abort();
                p.sink.reset();
                state_.drop_intent(p.msg.key);
            }
            record_failure(err);
        }
    }
    try {
        deliverer_.sync_committed();
    } catch (const Error& e) {
        // Published but maybe not durable: keep the intents (recover() will
        // tell after a crash) and record nothing as seen, so nothing is deleted.
        record_failure(e);
        return;
    }
    record_published(batch, committed, fine_locking);
}

// Seen records for the published messages of a batch (after
// sync_committed): only now may the server forget them.
void Intake::record_published(std::vector<Prepared>& batch, std::size_t committed, bool fine_locking) {
    auto hold = [&] {
        return fine_locking ? std::unique_lock<std::mutex>(*state_mu_) : std::unique_lock<std::mutex>();
    };
    std::vector<Error> refused;
    {
        auto lock = hold();
        for (std::size_t i = 0; i < committed; ++i) {
            auto& p = batch[i];
            if (!p.sink || p.recorded) continue;  // failed in commit() and rolled back, or recorded early
            if (const Error* e = p.sink->commit_error()) {
                refused.push_back(*e);
                record_partial(p);
                p.sink->abort();
                state_.drop_intent(p.msg.key);
                continue;
            }
            record_delivered(p);
        }
        // Handed to the kernel now, not with the next batch's fsync: a kill
        // while that batch is received would otherwise send these again.
        if (deliverer_.at_least_once()) state_.write_out();
    }
    for (const auto& e : refused) record_failure(e);
}

// The seen record of one published message, and its counts. The caller
// holds the state lock.
void Intake::record_delivered(Prepared& p) {
    std::string where = p.sink->published_as();
    bool present = p.sink->already_present();
    p.sink.reset();
    p.recorded = true;
    state_.record_seen(p.msg.key, SeenEntry{p.msg.size, p.fingerprint, where, p.short_reply,
                                            p.headers_only ? Delivered::HeadersOnly : Delivered::Whole, 0});
    test_step("seen recorded");
    {
        std::lock_guard<std::mutex> counters(counters_mu_);
        if (present) {
            ++already_present_;
            return;
        }
        ++delivered_;
        bytes_ += p.bytes;
    }
    log_.detail(account_.name, "delivered " + (p.msg.folder().empty() ? "" : p.msg.folder() + " ") + "message " +
                                   (p.msg.uid ? "UID " + std::to_string(p.msg.uid) : uidl_of(p.msg)) + " (" +
                                   std::to_string(p.bytes) + " bytes) to " + deliverer_.describe());
}

// Messages of the batch [0, upto) the target confirmed while later ones were
// being sent (DeliverySink::confirmed: a relay target's final reply): each
// is recorded as soon as its reply was read, and handed to the kernel, so a
// kill of pullmail re-sends only what was unconfirmed. Durable (fsync) with
// the next sync, before anything is deleted on the source.
void Intake::record_confirmed(std::vector<Prepared>& batch, std::size_t upto, bool fine_locking) {
    std::unique_lock<std::mutex> lock;
    bool any = false;
    for (std::size_t i = 0; i < upto; ++i) {
        auto& p = batch[i];
        if (!p.sink || p.recorded || !p.sink->confirmed() || p.sink->commit_error()) continue;
        if (fine_locking && !lock.owns_lock()) lock = std::unique_lock<std::mutex>(*state_mu_);
        record_delivered(p);
        any = true;
    }
    if (any) state_.write_out();
}

// A refused message that reached some recipients (Deliverer::delivered_to):
// recorded Partial with every recipient it reached so far, so that the plan
// of the next run has it sent to the others only (sync_plan.h). The caller
// holds the state lock.
void Intake::record_partial(const Prepared& p) {
    std::vector<std::string> done = p.delivered_before;
    for (auto& r : p.sink->delivered_to())
        if (std::find(done.begin(), done.end(), r) == done.end()) done.push_back(r);
    if (done.size() == p.delivered_before.size()) return;  // nothing new: the entry stays as it was
    std::size_t n = done.size();
    SeenEntry e{p.msg.size, p.fingerprint, {}, p.short_reply, Delivered::Partial, 0};
    e.recipients = std::move(done);
    state_.record_seen(p.msg.key, std::move(e));
    log_.detail(account_.name, "message " + p.msg.key + " delivered to " + std::to_string(n) +
                                   " recipient(s) so far; the others get it next run");
}

void Intake::failed(const RemoteMessage& m, std::string_view server_text) {
    if (progress_) progress_->message_done();
    if (sink_) {  // failed after begin(): roll back what was written
        sink_->abort();
        sink_.reset();
    }
    skipping_ = false;
    {
        std::lock_guard<std::mutex> lock(counters_mu_);
        ++failed_;
    }
    log_.warn(account_.name, "the server could not hand out message " +
                                 (m.uid ? "UID " + std::to_string(m.uid) : std::to_string(m.number)) +
                                 " (deleted by another client?); skipped (server said: " +
                                 sanitize(server_text) + ")");
    // Not an account error: the message vanished; the next run sees the truth.
}

}  // namespace pullmail
