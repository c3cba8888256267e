// delivery_handler.h — the MessageHandler that turns streamed server bytes
// into durable deliveries and state records, in the order deliver.h and
// seen_state.h require (write, prepare, intent+fsync, commit, seen).
//
// A failure of one message is contained here: its sink is aborted, the error
// is recorded, and the session goes on (MDA refusal, MDA exit 75). A local
// failure that would hit every following message too (disk full, unwritable
// Maildir) also asks the session to stop requesting more.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "deliver.h"
#include "error.h"
#include "fingerprint.h"
#include "retrieval.h"
#include "seen_state.h"

namespace pullmail {

class Logger;

class DeliveryHandler final : public MessageHandler {
public:
    // `shared`, when given, is held whenever the handler touches the
    // deliverer or the state: several handlers (one per IMAP connection of
    // an account) then share both. Message bytes are written to their own
    // sink without it.
    DeliveryHandler(const Account& account, Deliverer& deliverer, SeenState& state, Logger& log,
                    const std::atomic<bool>* interrupted, std::mutex* shared = nullptr);

    void begin(const RemoteMessage& m) override;
    void data(std::string_view chunk) override;
    void end(const RemoteMessage& m) override;
    void failed(const RemoteMessage& m, std::string_view server_text) override;
    bool stop_requested() const override;

    // Publishes every message prepared but not yet committed (group commit,
    // deliver.h). The flows call it after each retrieval and before any
    // deletion; it is also safe after a failure (messages in hand that are
    // complete get delivered, the rest stay on the server).
    void flush();

    std::size_t delivered() const { return delivered_; }
    std::uint64_t bytes() const { return bytes_; }
    std::size_t failed_count() const { return failed_; }
    // Errors of single messages (first few kept) and the fatal one, if any.
    const std::vector<Error>& errors() const { return errors_; }
    // Keys delivered in this run.
    const std::vector<std::string>& delivered_keys() const { return delivered_keys_; }

private:
    std::unique_lock<std::mutex> lock_shared() const;
    void flush_locked();
    void fail_current(const Error& e);
    void record_failure(const Error& e);

    struct Prepared {
        std::unique_ptr<DeliverySink> sink;
        RemoteMessage msg;
        std::string intent;
        std::string fingerprint;
        std::uint64_t bytes = 0;
    };
    std::vector<Prepared> batch_;

    const Account& account_;
    Deliverer& deliverer_;
    SeenState& state_;
    Logger& log_;
    const std::atomic<bool>* interrupted_;
    std::mutex* shared_;

    std::unique_ptr<DeliverySink> sink_;
    bool skipping_ = false;  // current message failed or is ignored; drop its data
    CrlfToLf crlf_;
    HeaderCapture header_;
    std::string buf_;
    std::uint64_t msg_bytes_ = 0;
    bool stop_ = false;

    std::size_t delivered_ = 0;
    std::size_t failed_ = 0;
    std::uint64_t bytes_ = 0;
    std::vector<Error> errors_;
    std::vector<std::string> delivered_keys_;
};

// "Received: by pullmail (account NAME); <RFC 5322 date>\n"
std::string received_line(const std::string& account, const std::string& host);

}  // namespace pullmail
