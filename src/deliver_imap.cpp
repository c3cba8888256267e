#include "deliver_imap.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <optional>
#include <unordered_map>

#include "deliver_impl.h"
#include "error.h"
#include "fingerprint.h"
#include "fs_util.h"
#include "imap_append_args.h"
#include "imap_session.h"
#include "log.h"
#include "mail_date.h"
#include "secrets.h"
#include "state_journal.h"
#include "text_util.h"
#include "credentials.h"
#include "transport.h"

namespace pullmail {

std::string imap_target_folder(const std::string& target_path, const std::string& source_folder) {
    std::string root = target_path.empty() ? "INBOX" : target_path;
    auto is_inbox = [](const std::string& f) { return ascii_upper(f) == "INBOX"; };
    if (source_folder.empty() || is_inbox(source_folder)) return root;
    if (is_inbox(root)) return source_folder;
    return root + "/" + source_folder;
}

namespace {

class ImapTarget;

std::vector<std::string> split_intent(const std::string& s) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i <= s.size()) {
        auto sp = s.find(' ', i);
        if (sp == std::string::npos) sp = s.size();
        out.push_back(s.substr(i, sp - i));
        i = sp + 1;
    }
    return out;
}

class ImapSink final : public DeliverySink {
public:
    ImapSink(ImapTarget& target, const MessageMeta& meta, std::string folder, detail::UniqueFd fd)
        : target_(target), meta_(meta), folder_(std::move(folder)), spool_(std::move(fd), "the IMAP target") {}

    // The server's bytes in IMAP's message format (Deliverer::wants_crlf).
    void write(std::string_view chunk) override { spool_.write(chunk); }

    std::string prepare() override;
    void commit() override;
    void abort() noexcept override { spool_.close(); }
    const Error* commit_error() const override { return error_ ? &*error_ : nullptr; }
    bool already_present() const override { return duplicate_; }
    std::string published_as() const override {
        if (!uid_) return {};
        return "appenduid:" + std::to_string(uidvalidity_) + ":" + std::to_string(uid_);
    }

    std::optional<Error> error_;
    std::uint32_t uidvalidity_ = 0, uid_ = 0;  // APPENDUID of the stored copy
    bool duplicate_ = false;

private:
    ImapTarget& target_;
    MessageMeta meta_;
    std::string folder_;
    detail::CrlfSpool spool_;
    std::string fingerprint_;
};

class ImapTarget final : public Deliverer {
public:
    ImapTarget(const Endpoint& ep, const ImapTargetOptions& opts) : ep_(ep), opts_(opts) {}
    ~ImapTarget() override {
        if (imap_) imap_->logout();
    }

    std::unique_ptr<DeliverySink> begin(const MessageMeta& meta) override {
        std::string folder = imap_target_folder(ep_.path, meta.folder);
        known(folder);  // connect, create the folder, learn its contents before the first message
        auto fd = detail::open_anonymous_file({opts_.spool_dir}, "the IMAP target " + describe());
        return std::make_unique<ImapSink>(*this, meta, folder, std::move(fd));
    }

    Recovery recover(std::string_view intent) override {
        // "imap <folder> <fingerprint> <size>" or "imap-dup ...": was it
        // appended? (An intent without the size, from an older pullmail, is
        // not recognised: appending again is the safe side.)
        std::string s(intent);
        if (s.rfind("imap-dup ", 0) == 0) return Recovery::Delivered;
        auto w = split_intent(s);
        if (w.size() != 4 || w[0] != "imap" || w[2] == "-") return Recovery::NotDelivered;
        auto& k = known(decode_folder(w[1]));
        auto it = k.find(w[2] + ":" + w[3]);
        if (it != k.end() && it->second > 0) {
            --it->second;
            return Recovery::Delivered;
        }
        return Recovery::NotDelivered;
    }

    std::string describe() const override { return ep_.display() + "/" + (ep_.path.empty() ? "INBOX" : ep_.path); }
    bool wants_crlf() const override { return true; }
    std::size_t max_batch() const override { return literal_plus_ ? 64 : 1; }

    void sync_committed() override {
        if (!imap_ || queued_.empty()) return;
        auto queued = std::move(queued_);
        queued_.clear();
        auto results = imap_->finish_appends();
        std::string abandoned = imap_->abandoned();
        if (!abandoned.empty()) drop_connection();
        std::set<std::string> answered;
        for (auto& r : results) {
            auto it = queued.find(r.id);
            if (it == queued.end()) continue;
            answered.insert(r.id);
            if (r.abandoned && !r.server_text.empty()) {
                it->second->error_ = Error(ErrorKind::Delivery, describe() + ": " + abandoned);
                it->second->error_->set_server_text(r.server_text);
            } else if (r.abandoned) {
                it->second->error_ = Error(ErrorKind::Delivery,
                                           "message " + r.id + ": " + describe() +
                                               " did not confirm it before the connection was abandoned; it stays "
                                               "on the source (the next run recognises it if it was stored)");
            } else if (!r.ok) {
                it->second->error_ = Error(ErrorKind::Delivery, "the target server refused to store message " +
                                                                    r.id + " in " + describe());
                it->second->error_->set_server_text(r.server_text);
            } else {
                it->second->uidvalidity_ = r.uidvalidity;
                it->second->uid_ = r.uid;
            }
        }
        // Never taken for stored without the server's word for it.
        for (auto& [key, sink] : queued)
            if (!answered.count(key) && !sink->error_)
                sink->error_ = Error(ErrorKind::Delivery, "message " + key + ": " + describe() +
                                                              " gave no answer to its APPEND; it stays on the source");
    }

    // Fingerprints of what a target folder holds, loaded once (headers only).
    std::unordered_map<std::string, int>& known(const std::string& folder) {
        connect();
        auto it = known_.find(folder);
        if (it != known_.end()) return it->second;
        // Learnt whole or not at all: a half-learnt folder would skip the
        // duplicate check for what it missed.
        std::unordered_map<std::string, int> k;
        std::vector<RemoteMessage> listing;
        imap_->open_or_create(folder, &listing);
        if (!listing.empty()) {
            std::vector<std::uint32_t> uids;
            for (const auto& m : listing) uids.push_back(m.uid);
            std::map<std::uint32_t, std::uint64_t> sizes;
            for (const auto& m : listing) sizes[m.uid] = m.size;
            for (const auto& [uid, hdr] : imap_->fetch_header_fields(uids, kFingerprintFields)) {
                std::string fp = header_fingerprint(hdr);
                if (fp != "-") ++k[fp + ":" + std::to_string(sizes[uid])];
            }
            if (opts_.log)
                opts_.log->detail(opts_.account, "target folder '" + folder + "' holds " +
                                                     std::to_string(listing.size()) +
                                                     " message(s); those are not appended again");
        }
        return known_[folder] = std::move(k);
    }

    void append(ImapSink* sink, const std::string& folder, const AppendArgs& args, int fd, std::uint64_t size,
                const std::string& key) {
        if (imap_ && !imap_->abandoned().empty()) sync_committed();  // collects the batch so far, drops it
        connect();
        queued_[key] = sink;
        try {
            imap_->append(folder, args, fd, size, key);
        } catch (...) {
            queued_.erase(key);
            throw;
        }
        if (!literal_plus_) sync_committed();
    }

    // Flags and date of a message for APPEND; what is not valid IMAP is
    // dropped, and said once per run (sanitised: it is the sender's or the
    // source server's text).
    AppendArgs append_args(const std::vector<std::string>& flags, std::string_view source_date,
                           std::string_view header) {
        std::string date(source_date);
        if (!date.empty() && !parse_imap_date_time(date)) {
            note_dropped(date);
            date.clear();
        }
        if (date.empty()) date = arrival_date_from_header(header);  // valid or empty
        auto args = build_append_args(flags, date);
        for (const auto& d : args.dropped) note_dropped(d);
        return args;
    }

private:
    // The man page promises a warning for every connection without TLS;
    // the target's password travels in clear too. Once per run.
    void warn_if_plaintext() {
        if (ep_.tls != TlsMode::Off || plaintext_warned_ || !opts_.log) return;
        plaintext_warned_ = true;
        opts_.log->warn(opts_.account, "tls = \"off\" on the delivery target: the password and all mail travel "
                                       "unencrypted to " + ep_.display());
    }


    void note_dropped(const std::string& what) {
        if (warned_dropped_ || !opts_.log) return;
        warned_dropped_ = true;
        opts_.log->warn(opts_.account, "dropped a flag or date that is not valid IMAP ('" + sanitize(what, 80) +
                                           "'); messages are stored without such flags and dates "
                                           "(said once per run)");
    }

    void drop_connection() {
        // Not one more byte on it, not even LOGOUT (ImapSession::abandoned).
        imap_.reset();
        channel_.reset();
        conn_.reset();
        ++abandoned_connections_;
    }

    void connect() {
        warn_if_plaintext();
        // Abandoned with nothing left to collect (a literal cut short by a
        // local error): a new connection. Results still owed to queued sinks
        // are collected by sync_committed() first.
        if (imap_ && !imap_->abandoned().empty() && queued_.empty()) drop_connection();
        if (imap_) return;
        if (abandoned_connections_ >= kMaxAbandoned)
            throw Error(ErrorKind::Protocol, "the target server " + describe() + " answered APPEND " +
                                                 std::to_string(abandoned_connections_) +
                                                 " times in a way that forced pullmail to abandon the connection; "
                                                 "giving up on it for this run");
        LoginCredentials creds = login_credentials(
            ep_, resolve_password(ep_.password, opts_.account, opts_.connect_timeout), opts_.account,
            opts_.connect_timeout);
        ConnectOptions copts{opts_.account, opts_.connect_timeout, opts_.verbosity, opts_.log};
        try {
            conn_ = connect_and_login(ep_, creds, copts);
            wipe(creds.secret);
        } catch (Error& e) {
            wipe(creds.secret);
            throw Error(e.kind(), std::string("delivery target: ") + e.what(), e.temporary())
                .set_server_text(e.server_text());
        }
        channel_ = std::make_unique<Channel>(*conn_, opts_.timeout, opts_.account, opts_.log, opts_.verbosity);
        imap_ = std::make_unique<ImapSession>(*channel_);
        imap_->start();
        imap_->use_personal_namespace();  // Courier, Cyrus: folders live under "INBOX."
        literal_plus_ = imap_->has_capability("LITERAL+");
    }

    Endpoint ep_;
    ImapTargetOptions opts_;
    std::unique_ptr<Connection> conn_;
    std::unique_ptr<Channel> channel_;
    std::unique_ptr<ImapSession> imap_;
    bool literal_plus_ = false;
    bool plaintext_warned_ = false;
    std::map<std::string, std::unordered_map<std::string, int>> known_;
    std::map<std::string, ImapSink*> queued_;
    // A new connection after an abandoned one, but not for ever.
    static constexpr int kMaxAbandoned = 3;
    int abandoned_connections_ = 0;
    bool warned_dropped_ = false;

    friend class ImapSink;
};

std::string ImapSink::prepare() {
    fingerprint_ = header_fingerprint(spool_.header().header());
    // Fingerprint and size: what the target's copy of the same bytes has.
    std::string id = fingerprint_ + ":" + std::to_string(spool_.size());
    auto& k = target_.known(folder_);
    auto it = fingerprint_ == "-" || !meta_.target_may_hold ? k.end() : k.find(id);
    if (it != k.end() && it->second > 0) {
        // First sync of this source: the target already holds the message
        // (another tool started the migration, or the same mailbox was
        // moved over another protocol).
        --it->second;
        duplicate_ = true;
        return "imap-dup " + encode_folder(folder_) + " " + id;
    }
    return "imap " + encode_folder(folder_) + " " + fingerprint_ + " " + std::to_string(spool_.size());
}

void ImapSink::commit() {
    if (duplicate_) return;
    std::vector<std::string> flags;
    for (const auto& f : meta_.flags) {
        std::string u = ascii_upper(f);
        if (u == "\\RECENT" || u == "\\DELETED") continue;  // not storable / would be expunged
        flags.push_back(f);
    }
    auto args = target_.append_args(flags, meta_.internal_date, spool_.header().header());
    target_.append(this, folder_, args, spool_.fd(), spool_.size(), meta_.key);
}

}  // namespace

std::unique_ptr<Deliverer> make_imap_deliverer(const Endpoint& target, const ImapTargetOptions& opts) {
    return std::make_unique<ImapTarget>(target, opts);
}

}  // namespace pullmail
