// deliver_maildirpp.cpp — a Maildir++ folder tree (deliver = "maildir++:PATH"),
// the layout Courier and Dovecot use by default: the source's INBOX (and a
// POP3 maildrop) is the Maildir at PATH itself; folder "Lists/cpp" is the
// Maildir PATH/.Lists.cpp, holding an empty file "maildirfolder". Folder
// names are stored as Dovecot stores them with its default settings:
// modified UTF-7 (RFC 3501), '.' as the hierarchy separator, and the
// characters that would clash escaped as Dovecot's listescape plugin does
// ("\2e" for '.', "\5c" for '\', "\7e" for a leading '~').
//
// Every folder is a plain Maildir delivered by deliver_maildir.cpp, with its
// crash recovery; the intent "maildir++ <unique> <dir>" names the folder's
// directory so that recover() looks in the right one.
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <mutex>

#include "deliver.h"
#include "deliver_impl.h"
#include "error.h"
#include "fs_util.h"
#include "imap_codec.h"

namespace pullmail {

std::string maildirpp_dir_name(std::string_view folder) {
    auto is_inbox = [](std::string_view f) {
        if (f.size() != 5) return false;
        for (std::size_t i = 0; i < 5; ++i)
            if ((f[i] | 0x20) != "inbox"[i]) return false;
        return true;
    };
    if (folder.empty() || is_inbox(folder)) return ".";
    std::string out;
    std::size_t start = 0;
    while (start <= folder.size()) {
        std::size_t slash = folder.find('/', start);
        if (slash == std::string_view::npos) slash = folder.size();
        std::string part = mutf7_encode(folder.substr(start, slash - start));
        if (part.empty() || part == "." || part == "..")
            throw Error(ErrorKind::Delivery, "folder '" + std::string(folder) + "' has an empty or dot-only level; "
                                             "it cannot be a Maildir++ folder");
        out += '.';
        for (std::size_t i = 0; i < part.size(); ++i) {
            char c = part[i];
            if (c == '.') out += "\\2e";
            else if (c == '\\') out += "\\5c";
            else if (c == '~' && i == 0 && start == 0) out += "\\7e";
            else out += c;
        }
        start = slash + 1;
    }
    return out;
}

namespace detail {
namespace {

// Wraps one folder's Maildir sink; only the intent differs.
class MaildirppSink final : public DeliverySink {
public:
    MaildirppSink(std::unique_ptr<DeliverySink> inner, std::string dir) : inner_(std::move(inner)), dir_(std::move(dir)) {}
    void write(std::string_view chunk) override { inner_->write(chunk); }
    std::string prepare() override {
        std::string name(intent_args(inner_->prepare(), "maildir", "maildir++"));
        return "maildir++ " + name + " " + dir_;
    }
    void commit() override { inner_->commit(); }
    void abort() noexcept override { inner_->abort(); }

private:
    std::unique_ptr<DeliverySink> inner_;
    std::string dir_;
};

class MaildirppDeliverer final : public Deliverer {
public:
    explicit MaildirppDeliverer(std::string root) : root_(std::move(root)) {}

    std::unique_ptr<DeliverySink> begin(const MessageMeta& meta) override {
        std::string dir = maildirpp_dir_name(meta.folder);
        return std::make_unique<MaildirppSink>(folder(dir).begin(meta), dir);
    }

    Recovery recover(std::string_view intent) override {
        std::string_view args = intent_args(intent, "maildir++", describe());
        std::size_t sp = args.find(' ');
        std::string_view dir = sp == std::string_view::npos ? std::string_view{} : args.substr(sp + 1);
        bool dir_ok = dir == "." || (dir.size() > 1 && dir[0] == '.' && dir != ".." && dir.find('/') == std::string_view::npos);
        if (!dir_ok)
            throw Error(ErrorKind::LocalIO, "cannot recover a delivery to " + describe() + ": malformed record '" +
                                                sanitize(intent, 120) + "'");
        return folder(std::string(dir)).recover("maildir " + std::string(args.substr(0, sp)));
    }

    std::string describe() const override { return "maildir++:" + root_; }
    std::size_t max_batch() const override { return 64; }
    bool concurrent_commit() const override { return true; }

    void sync_prepared() override {
        for (Deliverer* d : all()) d->sync_prepared();
    }
    void sync_committed() override {
        for (Deliverer* d : all()) d->sync_committed();
    }

private:
    // The Maildir of one folder directory ("." = the top), created on first
    // use: the top one first, so that a subfolder is never left without
    // its parent Maildir.
    Deliverer& folder(const std::string& dir) {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = folders_.find(dir);
        if (it != folders_.end()) return *it->second;
        std::string path = dir == "." ? root_ : root_ + "/" + dir;
        if (dir != ".") {
            for (const char* sub : {"", "/tmp", "/new", "/cur"})
                if (int err = try_make_dirs(root_ + sub, 0700)) throw_local_io("cannot create Maildir " + root_ + sub, err);
            if (int err = try_make_dirs(path, 0700)) throw_local_io("cannot create Maildir++ folder " + path, err);
            check_dir_safe(path, DirTrust::Delivery, "Maildir++ folder");
            // Courier's and Dovecot's mark of a Maildir++ subfolder (for
            // quota and delivery agents); empty.
            std::string mark = path + "/maildirfolder";
            int fd = ::open(mark.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (fd < 0) throw_local_io("cannot create " + mark, errno);
            ::close(fd);
        }
        auto& d = folders_[dir];
        d = make_maildir_deliverer(path);
        return *d;
    }

    std::vector<Deliverer*> all() {
        std::lock_guard<std::mutex> lock(mu_);
        std::vector<Deliverer*> out;
        for (auto& [dir, d] : folders_) out.push_back(d.get());
        return out;
    }

    std::string root_;
    std::mutex mu_;  // folders_: begin() and the background commit use it
    std::map<std::string, std::unique_ptr<Deliverer>> folders_;
};

}  // namespace

std::unique_ptr<Deliverer> make_maildirpp_deliverer(const std::string& path) {
    return std::make_unique<MaildirppDeliverer>(path);
}

}  // namespace detail
}  // namespace pullmail
