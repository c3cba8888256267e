// deliver_smtp.cpp — the SMTP/LMTP relay target (deliver_smtp.h).
//
// Threading: the intake may run commit() and sync_committed() on its
// committer thread while begin(), write() and prepare() of the next messages
// go on (concurrent_commit): those only touch the sink's own spool file; the
// connections are used by commit(), sync_committed() and the destructor only.
//
// Several connections (DeliveryTarget::relay_connections): each is a
// RelayLane with its own pipelined transactions; consecutive messages go to
// the lanes in turn, so that a server running one process per connection
// (Dovecot's LMTP) works on several messages at once. A message's outcome is
// still its own lane's final reply; nothing else changes.
#include "deliver_smtp.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <optional>

#include "credentials.h"
#include "deliver_impl.h"
#include "error.h"
#include "fingerprint.h"
#include "fs_util.h"
#include "log.h"
#include "secrets.h"
#include "smtp_codec.h"
#include "text_util.h"
#include "transport.h"

namespace pullmail {
namespace {

class RelayTarget;

class RelaySink final : public DeliverySink {
public:
    RelaySink(RelayTarget& target, std::string key, detail::UniqueFd fd, std::vector<std::string> recipients)
        : target_(target), key_(std::move(key)), spool_(std::move(fd), "the relay target"),
          recipients_(std::move(recipients)) {}
    ~RelaySink() override;

    // The server's bytes in wire form (Deliverer::wants_crlf).
    void write(std::string_view chunk) override {
        if (!body_8bit_) body_8bit_ = has_8bit(chunk);
        spool_.write(chunk);
    }

    std::string prepare() override {
        sender_ = envelope_sender(spool_.header().header());
        header_8bit_ = has_8bit(spool_.header().header());
        return "relay " + key_;
    }
    void commit() override;
    void abort() noexcept override;
    const Error* commit_error() const override { return error_ ? &*error_ : nullptr; }
    std::vector<std::string> delivered_to() const override { return delivered_to_; }
    bool confirmed() const override { return confirmed_; }
    bool confirmed_ = false;  // the final reply was read, every recipient took it

    std::optional<Error> error_;
    std::vector<std::string> delivered_to_;  // set by the target when the reply came
    const std::vector<std::string>& recipients() const { return recipients_; }  // the ones still owed
    const std::string& key() const { return key_; }
    const std::string& sender() const { return sender_; }
    int fd() const { return spool_.fd(); }
    std::uint64_t size() const { return spool_.size(); }
    bool body_8bit() const { return body_8bit_; }
    bool header_8bit() const { return header_8bit_; }

private:
    RelayTarget& target_;
    std::string key_;
    detail::CrlfSpool spool_;  // the header block gives the envelope sender
    std::vector<std::string> recipients_;
    std::string sender_;
    bool body_8bit_ = false;
    bool header_8bit_ = false;
    bool sent_ = false;
};

std::string local_host_name() {
    char buf[256] = {0};
    if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
    std::string h(buf);
    bool ok = !h.empty() && std::all_of(h.begin(), h.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
    });
    return ok ? h : "localhost";
}

class RelayTarget;

// One connection to the server and the transactions pipelined on it.
class RelayLane {
public:
    RelayLane(RelayTarget& target, bool lmtp) : target_(target), lmtp_(lmtp), txns_(lmtp) {}
    ~RelayLane() { quit(); }
    RelayLane(const RelayLane&) = delete;
    RelayLane& operator=(const RelayLane&) = delete;

    bool connected() const { return ch_ != nullptr; }
    void connect();  // when not connected; throws Error
    const SmtpCapabilities& caps() const { return caps_; }
    // Sends one message's transaction (replies are read as they come).
    void send(RelaySink* sink, const MailParams& params);
    // Reads replies until every transaction sent has its outcome. Throws
    // (and drops the connection) on a connection error.
    void wait_idle() {
        if (ch_ && !txns_.idle()) pump_until([this] { return txns_.idle(); });
    }
    void quit() noexcept;
    bool disabled = false;  // an extra connection the server refused (RelayTarget::lane_for_next)

private:
    void greet_lmtp();
    void drop() noexcept {
        ch_.reset();
        conn_.reset();
        txns_ = SmtpTransactions(lmtp_);
        parser_ = SmtpReplyParser();
        used_ = false;
    }
    // Pumps the connection until done(); replies go to the transactions (or
    // to loose_ during the greeting and QUIT). A connection error drops the
    // connection and is rethrown.
    void pump_until(const std::function<bool()>& done);
    void on_bytes(std::string_view bytes);
    void stream(RelaySink* sink, bool stuff);
    void command(const std::string& line_crlf, bool wait = true);

    RelayTarget& target_;
    bool lmtp_;
    std::unique_ptr<Connection> conn_;
    std::unique_ptr<Channel> ch_;
    SmtpReplyParser parser_;
    SmtpTransactions txns_;
    SmtpCapabilities caps_;
    bool loose_mode_ = false;
    std::vector<SmtpReply> loose_;
    std::vector<SmtpReply> replies_;
    bool used_ = false;  // a transaction ran on this connection
    std::uint64_t replies_seen_ = 0;
};

class RelayTarget final : public Deliverer {
public:
    RelayTarget(const DeliveryTarget& t, const RelayTargetOptions& opts)
        : ep_(*t.relay), recipients_(t.recipients), opts_(opts), lmtp_(ep_.protocol == Protocol::Lmtp) {
        int n = t.relay_connections > 0 ? t.relay_connections : default_relay_connections(ep_.protocol);
        for (int i = 0; i < n; ++i) lanes_.push_back(std::make_unique<RelayLane>(*this, lmtp_));
    }
    // Lanes first: their QUIT may still settle sinks.
    ~RelayTarget() override { lanes_.clear(); }

    std::unique_ptr<DeliverySink> begin(const MessageMeta& meta) override {
        auto fd = detail::open_anonymous_file({opts_.spool_dir, detail::temp_dir_from_env(), "/tmp"},
                                              "the relay target " + describe());
        std::vector<std::string> owed;
        for (const auto& r : recipients_)
            if (std::find(meta.delivered_to.begin(), meta.delivered_to.end(), r) == meta.delivered_to.end())
                owed.push_back(r);
        if (owed.empty()) owed = recipients_;  // the recipients changed since: everyone configured now
        return std::make_unique<RelaySink>(*this, meta.key, std::move(fd), std::move(owed));
    }

    // Nothing tells whether the server took a message before a kill: it is
    // sent again (at-least-once, deliver_smtp.h).
    Recovery recover(std::string_view) override { return Recovery::NotDelivered; }
    bool at_least_once() const override { return true; }
    bool wants_crlf() const override { return true; }
    std::size_t max_batch() const override { return 64; }
    bool concurrent_commit() const override { return true; }
    std::string describe() const override { return ep_.display(); }

    void send(RelaySink* sink);
    void sync_committed() override;
    void forget(RelaySink* sink) noexcept {
        for (auto it = sent_.begin(); it != sent_.end(); ++it)
            if (it->second == sink) {
                sent_.erase(it);
                return;
            }
    }
    void settle(std::vector<SmtpOutcome> outcomes);

    const Endpoint& endpoint() const { return ep_; }
    const RelayTargetOptions& options() const { return opts_; }

private:
    RelayLane& lane_for_next();

    Endpoint ep_;
    std::vector<std::string> recipients_;
    RelayTargetOptions opts_;
    bool lmtp_;
    std::vector<std::unique_ptr<RelayLane>> lanes_;
    std::size_t next_lane_ = 0;
    bool warned_8bit_ = false;
    std::map<std::string, RelaySink*> sent_;
};

// Only a sink handed to send() is known to the target; that happens on the
// thread that commits, which is also the one that aborts or destroys it.
RelaySink::~RelaySink() {
    if (sent_) target_.forget(this);
}

void RelaySink::commit() {
    sent_ = true;
    target_.send(this);
}

void RelaySink::abort() noexcept {
    if (sent_) target_.forget(this);
    spool_.close();
}

void RelayLane::on_bytes(std::string_view bytes) {
    replies_.clear();
    parser_.feed(bytes, replies_);
    for (auto& r : replies_) {
        ++replies_seen_;
        if (ch_) ch_->trace_in(sanitize(r.text(), 300));
        if (loose_mode_)
            loose_.push_back(std::move(r));
        else
            txns_.on_reply(r);
    }
    if (!loose_mode_) target_.settle(txns_.take_finished());
}

void RelayLane::pump_until(const std::function<bool()>& done) {
    try {
        ch_->pump([this](std::string_view b) { on_bytes(b); }, done);
    } catch (...) {
        drop();
        throw;
    }
}

void RelayLane::command(const std::string& line_crlf, bool wait) {
    ch_->command(std::string_view(line_crlf).substr(0, line_crlf.size() - 2));
    // Without PIPELINING one command at a time: wait for its reply.
    if (caps_.pipelining || !wait) return;
    std::uint64_t want = replies_seen_ + 1;
    pump_until([this, want] { return replies_seen_ >= want; });
}

void RelayTarget::settle(std::vector<SmtpOutcome> outcomes) {
    for (auto& o : outcomes) {
        auto it = sent_.find(o.id);
        if (it == sent_.end()) continue;  // aborted meanwhile
        RelaySink* sink = it->second;
        sent_.erase(it);
        sink->delivered_to_ = std::move(o.delivered_to);
        if (o.result == SmtpOutcome::Result::Delivered) {
            sink->confirmed_ = true;
            continue;
        }
        bool temporary = o.result == SmtpOutcome::Result::Temporary;
        std::string msg = "message " + o.id + ": " + describe() + " refused it at " + o.step +
                          (temporary ? " for now; it stays on the source and is tried again next run"
                                     : "; it stays on the source");
        sink->error_ = Error(ErrorKind::Delivery, msg, temporary);
        sink->error_->set_server_text(o.server_text);
    }
}

void RelayLane::connect() {
    if (ch_) return;
    const Endpoint& ep = target_.endpoint();
    const RelayTargetOptions& opts = target_.options();
    std::string password;
    if (!ep.user.empty()) password = resolve_password(ep.password, opts.account, opts.connect_timeout);
    ConnectOptions copts{opts.account, opts.connect_timeout, opts.verbosity, opts.log};
    try {
        conn_ = connect_and_login(ep, password, copts);
        wipe(password);
    } catch (Error& e) {
        wipe(password);
        throw Error(e.kind(), std::string("delivery target: ") + e.what(), e.temporary())
            .set_server_text(e.server_text());
    }
    ch_ = std::make_unique<Channel>(*conn_, opts.timeout, opts.account, opts.log, opts.verbosity);
    if (lmtp_)
        greet_lmtp();
    else
        caps_ = capabilities_from_login(conn_->login_lines());
    bool clear = ep.tls == TlsMode::Off || (ep.tls == TlsMode::IfOffered && !conn_->encrypted());
    if (opts.log && clear && ep.socket_path.empty() && ep.host != "localhost" && ep.host != "127.0.0.1" &&
        ep.host != "::1")
        opts.log->warn(opts.account, "mail travels unencrypted to the delivery target " + target_.describe());
}

void RelayLane::greet_lmtp() {
    loose_mode_ = true;
    loose_.clear();
    pump_until([this] { return !loose_.empty(); });
    if (loose_[0].code != 220) {
        Error e(ErrorKind::Protocol, "delivery target " + target_.describe() + " did not greet with 220", true);
        e.set_server_text(loose_[0].text());
        drop();
        loose_mode_ = false;
        throw e;
    }
    loose_.clear();
    ch_->command("LHLO " + local_host_name());
    pump_until([this] { return !loose_.empty(); });
    loose_mode_ = false;
    if (loose_[0].code != 250) {
        Error e(ErrorKind::Protocol,
                "delivery target " + target_.describe() + " refused LHLO (is it an LMTP server?)");
        e.set_server_text(loose_[0].text());
        drop();
        throw e;
    }
    caps_ = parse_capabilities(loose_[0]);
}

void RelayLane::quit() noexcept {
    if (!ch_) return;
    try {
        if (!txns_.idle()) pump_until([this] { return txns_.idle(); });
        loose_mode_ = true;
        loose_.clear();
        ch_->command("QUIT");
        pump_until([this] { return !loose_.empty(); });
    } catch (...) {
    }
    drop();
}

// The lanes in turn, each connected when first used. The first lane's
// errors are the run's; a further connection the server refuses (a limit
// on connections per client) is left out for the rest of the run.
RelayLane& RelayTarget::lane_for_next() {
    for (;;) {
        std::size_t i = next_lane_++ % lanes_.size();
        RelayLane& lane = *lanes_[i];
        if (lane.disabled) continue;
        if (i == 0 || lane.connected()) {
            lane.connect();
            return lane;
        }
        try {
            lane.connect();
            return lane;
        } catch (const Error& e) {
            lane.disabled = true;
            if (opts_.log)
                opts_.log->warn(opts_.account, "delivery target " + describe() + " refused connection " +
                                                   std::to_string(i + 1) + " of " + std::to_string(lanes_.size()) +
                                                   " (" + e.what() + "); going on with fewer");
        }
    }
}

void RelayTarget::send(RelaySink* sink) {
    RelayLane& lane = lane_for_next();
    const SmtpCapabilities& caps = lane.caps();
    bool needs_utf8 = has_8bit(sink->sender());
    for (const auto& r : sink->recipients()) needs_utf8 = needs_utf8 || has_8bit(r);
    if (needs_utf8 && !caps.smtputf8) {
        sink->error_ = Error(ErrorKind::Delivery, "message " + sink->key() + ": its envelope address needs SMTPUTF8, "
                                                  "which " + describe() + " does not offer; it stays on the source");
        return;
    }
    MailParams params;
    params.smtputf8 = caps.smtputf8 && (needs_utf8 || sink->header_8bit());
    params.body_8bit = caps.eightbitmime && sink->body_8bit();
    if (caps.size) params.size = sink->size();
    if (sink->header_8bit() && !caps.smtputf8 && !warned_8bit_ && opts_.log) {
        warned_8bit_ = true;
        opts_.log->warn(opts_.account, "a message has 8-bit header fields and " + describe() +
                                           " does not offer SMTPUTF8; sent unchanged (said once per run)");
    }
    sent_[sink->key()] = sink;
    try {
        lane.send(sink, params);
    } catch (...) {
        forget(sink);
        throw;
    }
}

void RelayLane::send(RelaySink* sink, const MailParams& params) {
    const auto& recipients = sink->recipients();
    bool bdat = caps_.chunking;
    try {
        // RSET makes each pipelined transaction independent of how the one
        // before ended, without waiting for its replies.
        bool rset = used_;
        used_ = true;
        txns_.begin(sink->key(), recipients, rset, bdat);
        if (rset) command("RSET\r\n");
        command(smtp_mail_from(sink->sender(), params));
        for (const auto& r : recipients) command(smtp_rcpt_to(r));
        if (bdat) {
            command(smtp_bdat(sink->size(), true), false);  // answered after the data
            stream(sink, false);
        } else {
            command("DATA\r\n", false);
            pump_until([this] { return txns_.data_decided(); });
            if (txns_.data_accepted()) {
                txns_.data_sent();  // before the body: its reply may come while we still send
                stream(sink, true);
            }
        }
        if (!caps_.pipelining) pump_until([this] { return txns_.idle(); });
    } catch (...) {
        // Half a message on the wire would become part of whatever follows.
        drop();
        throw;
    }
}

// The spooled message, read in chunks and sent as read (dot-stuffed for
// DATA), reading replies meanwhile so that a server answering early never
// deadlocks us. Memory stays flat whatever the size.
void RelayLane::stream(RelaySink* sink, bool stuff) {
    std::vector<char> buf(256 * 1024);
    std::string stuffed;
    DotStuffer stuffer;
    std::uint64_t off = 0, size = sink->size();
    while (off < size) {
        ssize_t n = ::pread(sink->fd(), buf.data(), std::min<std::uint64_t>(buf.size(), size - off),
                            static_cast<off_t>(off));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            throw Error(ErrorKind::LocalIO, std::string("cannot read the spooled message: ") +
                                                (n < 0 ? std::strerror(errno) : "unexpected end of file"));
        std::string_view chunk(buf.data(), static_cast<std::size_t>(n));
        if (stuff) {
            stuffed.clear();
            stuffer.encode(chunk, stuffed);
            ch_->queue(stuffed);
        } else {
            ch_->queue(chunk);
        }
        off += static_cast<std::uint64_t>(n);
        pump_until([this] { return !ch_->has_output(); });
    }
    if (stuff) {
        stuffed.clear();
        stuffer.finish(stuffed);
        ch_->queue(stuffed);
        pump_until([this] { return !ch_->has_output(); });
    }
}

void RelayTarget::sync_committed() {
    for (auto& lane : lanes_) {
        try {
            lane->wait_idle();
        } catch (const Error&) {
            // Some may have been taken: nothing is marked delivered without
            // the server's word, and nothing is deleted on the source.
        }
    }
    if (sent_.empty()) return;
    std::size_t n = sent_.size();
    for (auto& [key, sink] : sent_)
        sink->error_ = Error(ErrorKind::Delivery,
                             "message " + key + ": the connection to " + describe() +
                                 " ended before the server confirmed it; it stays on the source (the next run sends "
                                 "it again, so it may arrive twice)",
                             true);
    sent_.clear();
    if (opts_.log) opts_.log->detail(opts_.account, std::to_string(n) + " message(s) unconfirmed by " + describe());
}

}  // namespace

int default_relay_connections(Protocol protocol) { return protocol == Protocol::Lmtp ? 2 : 1; }

std::unique_ptr<Deliverer> make_relay_deliverer(const DeliveryTarget& target, const RelayTargetOptions& opts) {
    if (target.kind != DeliveryTarget::Kind::Relay || !target.relay)
        throw Error(ErrorKind::Internal, "make_relay_deliverer called for another kind of target");
    return std::make_unique<RelayTarget>(target, opts);
}

}  // namespace pullmail
