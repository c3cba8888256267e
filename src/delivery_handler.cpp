#include "delivery_handler.h"

#include <ctime>

#include "log.h"
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

DeliveryHandler::DeliveryHandler(const Account& account, Deliverer& deliverer, SeenState& state, Logger& log,
                                 const std::atomic<bool>* interrupted, std::mutex* shared)
    : account_(account), deliverer_(deliverer), state_(state), log_(log), interrupted_(interrupted), shared_(shared) {}

std::unique_lock<std::mutex> DeliveryHandler::lock_shared() const {
    return shared_ ? std::unique_lock<std::mutex>(*shared_) : std::unique_lock<std::mutex>();
}

bool DeliveryHandler::stop_requested() const {
    return stop_ || (interrupted_ && interrupted_->load(std::memory_order_relaxed));
}

void DeliveryHandler::record_failure(const Error& e) {
    ++failed_;
    Error err = e;
    err.set_account(account_.name);
    // A target's refusal of one message (MDA exit status, APPEND NO) is about
    // that message; anything else (disk full, target unreachable) would hit
    // every following message the same way.
    if (e.kind() != ErrorKind::Delivery) stop_ = true;
    if (errors_.size() < 20) errors_.push_back(err);
    log_.error(account_.name, e.detail());
}

void DeliveryHandler::fail_current(const Error& e) {
    if (sink_) {
        sink_->abort();
        sink_.reset();
    }
    skipping_ = true;
    record_failure(e);
}

void DeliveryHandler::begin(const RemoteMessage& m) {
    skipping_ = false;
    msg_bytes_ = 0;
    crlf_ = CrlfToLf();
    header_.reset();
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
        meta.folder = m.folder;
        meta.flags = m.flags;
        meta.internal_date = m.internal_date;
        auto lock = lock_shared();
        sink_ = deliverer_.begin(meta);
        if (account_.received_header) {
            std::string line = received_line(account_.name, account_.server.host);
            sink_->write(line);
        }
    } catch (const Error& e) {
        fail_current(e);
    }
}

void DeliveryHandler::data(std::string_view chunk) {
    if (skipping_ || !sink_) return;
    if (stop_requested()) {
        // SIGTERM/SIGINT: roll back the message in hand rather than finish a
        // possibly huge transfer; it stays on the server for the next run.
        sink_->abort();
        sink_.reset();
        skipping_ = true;
        return;
    }
    try {
        buf_.clear();
        crlf_.convert(chunk, buf_);
        header_.feed(buf_);
        msg_bytes_ += buf_.size();
        sink_->write(buf_);
    } catch (const Error& e) {
        fail_current(e);
    }
}

void DeliveryHandler::end(const RemoteMessage& m) {
    if (skipping_ || !sink_) {
        skipping_ = false;
        return;
    }
    try {
        buf_.clear();
        crlf_.finish(buf_);
        if (!buf_.empty()) {
            header_.feed(buf_);
            msg_bytes_ += buf_.size();
            sink_->write(buf_);
        }
        test_step("message received");
        auto lock = lock_shared();
        std::string intent = sink_->prepare();
        test_step("message prepared");
        batch_.push_back(Prepared{std::move(sink_), m, std::move(intent), header_fingerprint(header_.header()),
                                  msg_bytes_});
        if (batch_.size() >= deliverer_.max_batch()) flush_locked();
    } catch (const Error& e) {
        fail_current(e);
    }
}

void DeliveryHandler::flush() {
    auto lock = lock_shared();
    flush_locked();
}

void DeliveryHandler::flush_locked() {
    if (batch_.empty()) return;
    std::vector<Prepared> batch;
    batch.swap(batch_);
    auto abort_all = [&](const Error& e, std::size_t from) {
        for (std::size_t i = from; i < batch.size(); ++i) {
            if (batch[i].sink) batch[i].sink->abort();
            state_.drop_intent(batch[i].msg.key);
        }
        record_failure(e);
    };
    // Order per deliver.h: data durable, then intents durable, then publish,
    // then publication durable, then seen records.
    try {
        deliverer_.sync_prepared();
        for (auto& p : batch) state_.record_intent(p.msg.key, p.intent, false);
        state_.sync();
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
        } catch (const Error& e) {
            // This one is rolled back by abort(); the rest were not published.
            abort_all(e, committed);
            break;
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
    for (std::size_t i = 0; i < committed; ++i) {
        auto& p = batch[i];
        if (const Error* e = p.sink->commit_error()) {
            Error err = *e;
            p.sink->abort();
            state_.drop_intent(p.msg.key);
            record_failure(err);
            continue;
        }
        std::string where = p.sink->published_as();
        p.sink.reset();
        state_.record_seen(p.msg.key, p.msg.size, p.fingerprint, where);
        test_step("seen recorded");
        ++delivered_;
        bytes_ += p.bytes;
        delivered_keys_.push_back(p.msg.key);
        log_.detail(account_.name, "delivered " + (p.msg.folder.empty() ? "" : p.msg.folder + " ") + "message " +
                                       (p.msg.uid ? "UID " + std::to_string(p.msg.uid) : p.msg.uidl) + " (" +
                                       std::to_string(p.bytes) + " bytes) to " + deliverer_.describe());
    }
}

void DeliveryHandler::failed(const RemoteMessage& m, std::string_view server_text) {
    if (sink_) {  // failed after begin(): roll back what was written
        sink_->abort();
        sink_.reset();
    }
    skipping_ = false;
    ++failed_;
    log_.warn(account_.name, "the server could not hand out message " +
                                 (m.uid ? "UID " + std::to_string(m.uid) : std::to_string(m.number)) +
                                 " (deleted by another client?); skipped (server said: " +
                                 sanitize(server_text) + ")");
    // Not an account error: the message vanished; the next run sees the truth.
}

}  // namespace pullmail
