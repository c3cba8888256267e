#include "deliver_imap.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <unordered_map>

#include "error.h"
#include "fingerprint.h"
#include "imap_session.h"
#include "log.h"
#include "mail_date.h"
#include "seen_state.h"
#include "text_util.h"
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

class ImapSink final : public DeliverySink {
public:
    ImapSink(ImapTarget& target, const MessageMeta& meta, std::string folder, int fd)
        : target_(target), meta_(meta), folder_(std::move(folder)), fd_(fd) {}
    ~ImapSink() override {
        if (fd_ >= 0) ::close(fd_);
    }

    void write(std::string_view chunk) override {
        header_.feed(chunk);
        out_.clear();
        // Back to the wire form: the IMAP message format is CRLF.
        std::size_t i = 0;
        while (i < chunk.size()) {
            auto nl = chunk.find('\n', i);
            if (nl == std::string_view::npos) {
                out_.append(chunk.substr(i));
                break;
            }
            out_.append(chunk.substr(i, nl - i));
            out_ += "\r\n";
            i = nl + 1;
        }
        std::string_view rest = out_;
        while (!rest.empty()) {
            ssize_t n = ::write(fd_, rest.data(), rest.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0)
                throw Error(ErrorKind::LocalIO, std::string("cannot spool a message for the IMAP target: ") +
                                                    std::strerror(errno));
            rest.remove_prefix(static_cast<std::size_t>(n));
            size_ += static_cast<std::uint64_t>(n);
        }
    }

    std::string prepare() override;
    void commit() override;
    void abort() noexcept override {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    const Error* commit_error() const override { return error_ ? &*error_ : nullptr; }
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
    int fd_;
    std::uint64_t size_ = 0;
    std::string fingerprint_;
    HeaderCapture header_;
    std::string out_;
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
        int fd = ::open(opts_.spool_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0) {
            std::string tmpl = opts_.spool_dir + "/pullmail-spool-XXXXXX";
            fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
            if (fd >= 0) ::unlink(tmpl.c_str());
        }
        if (fd < 0)
            throw Error(ErrorKind::LocalIO, "cannot create a spool file in " + opts_.spool_dir + ": " +
                                                std::strerror(errno));
        return std::make_unique<ImapSink>(*this, meta, folder, fd);
    }

    Recovery recover(std::string_view intent) override {
        // "imap <folder> <fingerprint>" or "imap-dup ...": was it appended?
        std::string s(intent);
        if (s.rfind("imap-dup ", 0) == 0) return Recovery::Delivered;
        auto a = s.find(' '), b = s.rfind(' ');
        if (s.rfind("imap ", 0) != 0 || a == b) return Recovery::NotDelivered;
        std::string folder = decode_folder(s.substr(a + 1, b - a - 1));
        std::string fp = s.substr(b + 1);
        if (fp == "-") return Recovery::NotDelivered;  // cannot tell: appending again is the safe side
        auto& k = known(folder);
        auto it = k.find(fp);
        if (it != k.end() && it->second > 0) {
            --it->second;
            return Recovery::Delivered;
        }
        return Recovery::NotDelivered;
    }

    std::string describe() const override { return ep_.display() + "/" + (ep_.path.empty() ? "INBOX" : ep_.path); }
    std::size_t max_batch() const override { return literal_plus_ ? 64 : 1; }

    void sync_committed() override {
        if (!imap_ || queued_.empty()) return;
        auto queued = std::move(queued_);
        queued_.clear();
        auto results = imap_->finish_appends();
        for (auto& r : results) {
            auto it = queued.find(r.id);
            if (it == queued.end()) continue;
            if (!r.ok) {
                it->second->error_ = Error(ErrorKind::Delivery, "the target server refused to store message " +
                                                                    r.id + " in " + describe());
                it->second->error_->set_server_text(r.server_text);
            } else {
                it->second->uidvalidity_ = r.uidvalidity;
                it->second->uid_ = r.uid;
            }
        }
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
            for (const auto& [uid, hdr] : imap_->fetch_header_fields(uids, kFingerprintFields)) {
                std::string fp = header_fingerprint(hdr);
                if (fp != "-") ++k[fp];
            }
            if (opts_.log)
                opts_.log->detail(opts_.account, "target folder '" + folder + "' holds " +
                                                     std::to_string(listing.size()) +
                                                     " message(s); those are not appended again");
        }
        return known_[folder] = std::move(k);
    }

    void append(ImapSink* sink, const std::string& folder, const std::vector<std::string>& flags,
                const std::string& date, int fd, std::uint64_t size, const std::string& key) {
        queued_[key] = sink;
        imap_->append(folder, flags, date, fd, size, key);
        if (!literal_plus_) sync_committed();
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

    void connect() {
        warn_if_plaintext();
        if (imap_) return;
        std::string password = resolve_password(ep_.password, opts_.account);
        ConnectOptions copts{opts_.account, opts_.connect_timeout, opts_.verbosity, opts_.log};
        try {
            conn_ = connect_and_login(ep_, password, copts);
        } catch (Error& e) {
            throw Error(e.kind(), std::string("delivery target: ") + e.what(), e.temporary())
                .set_server_text(e.server_text());
        }
        channel_ = std::make_unique<Channel>(*conn_, opts_.timeout, opts_.account, opts_.log, opts_.verbosity);
        imap_ = std::make_unique<ImapSession>(*channel_);
        imap_->start();
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

    friend class ImapSink;
};

std::string ImapSink::prepare() {
    fingerprint_ = header_fingerprint(header_.header());
    auto& k = target_.known(folder_);
    auto it = fingerprint_ == "-" ? k.end() : k.find(fingerprint_);
    if (it != k.end() && it->second > 0) {
        // The target already holds this message (an earlier run that was
        // interrupted, another tool, or the same mailbox over another protocol).
        --it->second;
        duplicate_ = true;
        return "imap-dup " + encode_folder(folder_) + " " + fingerprint_;
    }
    return "imap " + encode_folder(folder_) + " " + fingerprint_;
}

void ImapSink::commit() {
    if (duplicate_) return;
    std::vector<std::string> flags;
    for (const auto& f : meta_.flags) {
        std::string u = ascii_upper(f);
        if (u == "\\RECENT" || u == "\\DELETED") continue;  // not storable / would be expunged
        flags.push_back(f);
    }
    std::string date = meta_.internal_date.empty() ? arrival_date_from_header(header_.header()) : meta_.internal_date;
    target_.append(this, folder_, flags, date, fd_, size_, meta_.key);
}

}  // namespace

std::unique_ptr<Deliverer> make_imap_deliverer(const Endpoint& target, const ImapTargetOptions& opts) {
    return std::make_unique<ImapTarget>(target, opts);
}

}  // namespace pullmail
