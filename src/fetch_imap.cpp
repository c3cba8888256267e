// fetch_imap.cpp — the IMAP flow of one account run.
#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "account_context.h"
#include "intake.h"
#include "fingerprint.h"
#include "folder_sync.h"
#include "message_key.h"
#include "imap_session.h"
#include "log.h"
#include "test_hooks.h"
#include "text_util.h"
#include "transport.h"

namespace pullmail {

namespace {

// The folders of folders = ["*"]: every selectable folder, '/'-separated,
// less those with a SPECIAL-USE attribute in `skip` (Gmail's \All holds
// every message again; \Junk and \Trash are not mail one wants).
// With `statuses`, the LIST asks for the folders' STATUS too where the
// server offers LIST-STATUS (ImapSession::list_folders).
std::vector<std::string> expand_folders(const std::vector<std::string>& configured, ImapSession& imap,
                                        const std::vector<std::string>& skip,
                                        std::map<std::string, ImapSession::FolderInfo>* statuses = nullptr) {
    std::vector<std::string> out;
    for (const auto& f : configured) {
        if (f != "*") {
            out.push_back(f);
            continue;
        }
        for (const auto& name : imap.list_all_folders(skip, statuses)) out.push_back(name);
    }
    // Each folder once, whether listed twice or matched by "*" as well.
    std::vector<std::string> unique;
    for (const auto& f : out)
        if (std::find(unique.begin(), unique.end(), f) == unique.end()) unique.push_back(f);
    return unique;
}

// One IMAP connection as a MailSource: a folder is opened with SELECT (or
// EXAMINE when nothing may change) and listed in the same round trip.
class ImapSource final : public MailSource {
public:
    ImapSource(ImapSession& imap, const Account& account) : imap_(imap), account_(account) {}

    // With delete = "trash", the \Trash folder is never synced: what pullmail
    // moved there would be delivered again. "*" leaves it out; naming it is
    // a configuration error.
    std::vector<std::string> folders(const std::vector<std::string>& configured) override {
        return folders(configured, nullptr);
    }
    // The same; with statuses, "*" also gathers LIST-STATUS answers into it.
    std::vector<std::string> folders(const std::vector<std::string>& configured,
                                     std::map<std::string, ImapSession::FolderInfo>* statuses) {
        if (account_.delete_mode != Account::DeleteMode::Trash)
            return expand_folders(configured, imap_, account_.skip_special_use, statuses);
        auto skip = account_.skip_special_use;
        if (std::find(skip.begin(), skip.end(), "trash") == skip.end()) skip.push_back("trash");
        auto out = expand_folders(configured, imap_, skip, statuses);
        if (auto trash = trash_folder(); trash && std::find(out.begin(), out.end(), *trash) != out.end())
            throw Error(ErrorKind::Config, "folder '" + sanitize(*trash, 100) +
                                               "' is where delete = \"trash\" moves delivered mail; fetching it "
                                               "would deliver that mail again: leave it out of folders or use "
                                               "delete = \"expunge\"");
        return out;
    }

    Opened open(const std::string& folder, bool read_only) override {
        auto got = open_many({folder}, read_only);
        if (got[0].error) throw *got[0].error;
        return std::move(got[0].opened);
    }

    // Every folder's SELECT (or EXAMINE) and listing in one flight.
    std::vector<OpenResult> open_many(const std::vector<std::string>& folders, bool read_only) override {
        read_only_ = read_only;
        auto selected = imap_.select_many(folders, read_only);
        std::vector<OpenResult> out(selected.size());
        for (std::size_t i = 0; i < selected.size(); ++i) {
            auto& sel = selected[i];
            if (sel.error) {
                out[i].error = std::move(sel.error);
                continue;
            }
            Opened& o = out[i].opened;
            o.listing = std::move(sel.listing);
            for (auto& m : o.listing) m.key = imap_key(sel.folder, sel.info.uidvalidity, m.uid);
            test_step("selected");
            o.identity = {SourceProtocol::Imap, sel.folder, sel.info.uidvalidity};
            o.uidnext = sel.info.uidnext;
            o.exists = sel.info.exists;
        }
        return out;
    }

    std::map<std::uint32_t, std::string> headers(const std::vector<RemoteMessage>& msgs,
                                                 std::map<std::uint32_t, std::string>* internal_dates) override {
        if (msgs.empty()) return {};
        reselect(msgs.front());
        return imap_.fetch_header_fields(uids(msgs), kFingerprintFields, internal_dates);
    }

    std::map<std::uint32_t, std::string> header_blocks(const std::vector<RemoteMessage>& msgs) override {
        if (msgs.empty()) return {};
        reselect(msgs.front());
        return imap_.fetch_header_fields(uids(msgs), "");
    }

    void retrieve(const std::vector<RemoteMessage>& msgs, MessageHandler& handler) override {
        imap_.fetch(msgs, handler);
    }

    Removed remove(const std::vector<RemoteMessage>& msgs) override {
        Removed out;
        if (msgs.empty()) return out;
        reselect(msgs.front());
        ImapSession::DeleteResult r;
        if (account_.delete_mode == Account::DeleteMode::Trash) {
            auto trash = trash_folder();
            if (!trash) {
                out.error = Error(ErrorKind::Protocol, "folder '" + folder_ + "': delete = \"trash\" but the server "
                                                       "lists no folder with the \\Trash attribute; nothing deleted");
                return out;
            }
            r = *trash == folder_ ? imap_.delete_messages(uids(msgs)) : imap_.move_to_trash(uids(msgs), *trash);
        } else {
            r = imap_.delete_messages(uids(msgs));
        }
        test_step("after expunge");
        if (r.expunge_skipped) {
            out.warning = "folder '" + folder_ +
                          "': the server lacks UIDPLUS and other messages are flagged \\Deleted, so pullmail "
                          "flagged its delivered messages \\Deleted but did not expunge (that would remove the "
                          "others too)";
            return out;
        }
        // Only what the folder no longer lists counts as removed (not the
        // server's expunge reports, which some servers word differently).
        std::unordered_set<std::uint32_t> gone(r.removed.begin(), r.removed.end());
        for (const auto& m : msgs)
            if (gone.count(m.uid)) out.keys.push_back(m.key);
        if (out.keys.size() < msgs.size())
            out.warning = "folder '" + folder_ + "': " + std::to_string(msgs.size() - out.keys.size()) +
                          " delivered message(s) are still listed after the expunge; pullmail tries again next run";
        return out;
    }

    void close() noexcept override { imap_.logout(false); }

private:
    // The messages' folder selected again when another one was opened since
    // (open_many, or a retrieve() over several folders), with the UIDVALIDITY
    // it was opened with (ImapSession::reselect).
    void reselect(const RemoteMessage& m) {
        folder_ = m.folder();
        imap_.reselect(folder_, read_only_);
    }
    static std::vector<std::uint32_t> uids(const std::vector<RemoteMessage>& msgs) {
        std::vector<std::uint32_t> out;
        for (const auto& m : msgs) out.push_back(m.uid);
        return out;
    }
    // The folder with the \Trash SPECIAL-USE attribute (RFC 6154), looked
    // up once per connection; never guessed from a name.
    std::optional<std::string> trash_folder() {
        if (!trash_looked_up_) {
            trash_looked_up_ = true;
            for (const auto& f : imap_.list_folders())
                if (std::find(f.special.begin(), f.special.end(), "trash") != f.special.end()) {
                    trash_ = f.name;
                    break;
                }
        }
        return trash_;
    }

    ImapSession& imap_;
    const Account& account_;
    std::string folder_;
    bool read_only_ = true;
    bool trash_looked_up_ = false;
    std::optional<std::string> trash_;
};

// Folders one connection syncs together (sync_folders): their SELECTs and
// listings go out in one flight, their bodies in the next. Their listings
// are held at once, so a group is bounded by the messages its folders hold
// as far as LIST-STATUS or STATUS said (a folder of unknown size counts as
// kUnknownFolderWeight), and by a number of folders.
constexpr std::size_t kFoldersTogether = 64;
constexpr std::uint64_t kMessagesTogether = 50'000;
constexpr std::uint64_t kUnknownFolderWeight = 5'000;

// The groups, as [begin, end) of `folders` in their order, spread over
// `connections` (no group larger than an even share).
std::vector<std::pair<std::size_t, std::size_t>> folder_groups(
    const std::vector<std::string>& folders, const std::map<std::string, ImapSession::FolderInfo>& listed,
    const std::map<std::string, FolderMark>& statuses, std::size_t connections) {
    const std::size_t per =
        std::clamp<std::size_t>((folders.size() + connections - 1) / connections, 1, kFoldersTogether);
    std::vector<std::pair<std::size_t, std::size_t>> out;
    std::uint64_t weight = 0;
    for (std::size_t i = 0; i < folders.size(); ++i) {
        std::uint64_t w = kUnknownFolderWeight;
        if (auto it = listed.find(folders[i]); it != listed.end()) w = it->second.exists;
        else if (auto st = statuses.find(folders[i]); st != statuses.end()) w = st->second.exists;
        if (out.empty() || out.back().second - out.back().first >= per || weight + w > kMessagesTogether) {
            out.push_back({i, i});
            weight = 0;
        }
        ++out.back().second;
        weight += w;
    }
    return out;
}

// Gmail allows an account at most 15 simultaneous IMAP connections (and
// refuses logins beyond, counting other clients too).
constexpr std::size_t kGmailMaxConnections = 15;

bool is_gmail(const ImapSession& imap, const std::string& host) {
    std::string h = ascii_lower(host);
    auto ends = [&](const std::string& d) { return h == d || (h.size() > d.size() && h.ends_with("." + d)); };
    return imap.has_capability("X-GM-EXT-1") || ends("gmail.com") || ends("googlemail.com");
}

// STATUS of the folders that have a mark (a complete earlier sync), in one
// flight before any is opened; folder_unchanged() then decides which need
// no SELECT. Nothing with -a, or when no folder has a mark (first fetch).
// `listed`: what LIST-STATUS already said (folders = ["*"]); only the
// marked folders it did not cover are asked.
std::map<std::string, FolderMark> folder_statuses(ImapSession& imap, const std::vector<std::string>& folders,
                                                  const std::map<std::string, ImapSession::FolderInfo>& listed,
                                                  SyncShared& shared) {
    std::map<std::string, FolderMark> out;
    if (shared.options.all) return out;
    std::vector<std::string> ask;
    {
        std::lock_guard<std::mutex> lock(shared.mu);
        for (const auto& f : folders) {
            if (!shared.state.mark(f)) continue;
            if (auto it = listed.find(f); it != listed.end())
                out[f] = FolderMark{it->second.uidvalidity, it->second.uidnext, it->second.exists};
            else
                ask.push_back(f);
        }
    }
    if (ask.empty()) return out;
    for (const auto& [f, info] : imap.status(ask)) out[f] = FolderMark{info.uidvalidity, info.uidnext, info.exists};
    return out;
}

// How many connections to use: `connections`, but never more than there
// are folders, nor more than Gmail allows (with a warning).
std::size_t connection_count(const AccountContext& ctx, const ImapSession& imap, std::size_t folders) {
    const Account& acc = ctx.account;
    std::size_t n = std::max<std::size_t>(1, std::min(static_cast<std::size_t>(std::max(1, acc.connections)), folders));
    if (n > kGmailMaxConnections && is_gmail(imap, acc.server.host)) {
        ctx.log.warn(acc.name, "connections = " + std::to_string(acc.connections) + " is more than the " +
                                   std::to_string(kGmailMaxConnections) +
                                   " IMAP connections Gmail allows an account; using " +
                                   std::to_string(kGmailMaxConnections));
        n = kGmailMaxConnections;
    }
    return n;
}

// An extra connection (connections = N): logs in, then serves folders. A
// refused login is not an error: the server may limit connections per user,
// and the connections that did log in share the folders.
template <class Serve>
void serve_extra(const AccountContext& ctx, std::size_t k, std::size_t n, Serve& serve, std::exception_ptr& error,
                 std::atomic<bool>& failed) {
    ServerLink more;
    try {
        more = connect_account(ctx);
    } catch (const Error& e) {
        ctx.log.detail(ctx.account.name, "connection " + std::to_string(k + 1) + " of " + std::to_string(n) +
                                             " not opened (" + e.detail() + "); going on with fewer");
        return;
    }
    try {
        ImapSession session(*more.channel);
        session.start();
        serve(session, k);
    } catch (...) {
        error = std::current_exception();
        failed = true;
    }
}

}  // namespace

void fetch_imap(AccountContext& ctx, SyncShared& shared) {
    const Account& acc = ctx.account;
    auto link = open_imap_sync_link(ctx);
    ImapSession& imap = *link->session;
    // Daemon: connection 0 is given back to the keeper, not logged out.
    const bool keeping = ctx.opts.sync_links != nullptr;
    std::map<std::string, ImapSession::FolderInfo> listed;  // LIST-STATUS answers, for folders = ["*"]
    const auto folders = ImapSource(imap, acc).folders(acc.folders, shared.options.all ? nullptr : &listed);
    const auto statuses = folder_statuses(imap, folders, listed, shared);

    // Folders go to whichever connection is free next. The first connection
    // starts at once; the others (connections = N) log in meanwhile and join.
    const std::size_t n = connection_count(ctx, imap, folders.size());
    std::vector<std::unique_ptr<Intake>> handlers;
    for (std::size_t k = 0; k < n; ++k)
        handlers.push_back(std::make_unique<Intake>(acc, ctx.deliverer, ctx.state, ctx.log,
                                                             ctx.opts.interrupted, &shared.mu));
    std::vector<std::exception_ptr> errors(n);
    std::atomic<std::size_t> next_folder{0};  // the next group to take
    std::atomic<bool> failed{false};  // one connection failed or stopped: the others take no new folder
    // Folders are taken a group at a time and synced together (a few
    // flights for all of them: sync_folders).
    const auto groups = folder_groups(folders, listed, statuses, n);
    // Connection k takes folders until none is left, then logs out.
    auto serve = [&](ImapSession& session, std::size_t k) {
        ImapSource source(session, acc);
        try {
            while (!failed.load()) {
                if (handlers[k]->stop_requested()) {
                    failed = true;
                    break;
                }
                std::size_t g = next_folder.fetch_add(1);
                if (g >= groups.size()) break;
                std::vector<FolderTask> tasks;
                for (std::size_t j = groups[g].first; j < groups[g].second; ++j) {
                    auto st = statuses.find(folders[j]);
                    tasks.push_back({folders[j], st == statuses.end() ? nullptr : &st->second, j});
                }
                sync_folders(source, tasks, *handlers[k], shared);
            }
            if (k != 0 || !keeping) source.close();
        } catch (...) {
            errors[k] = std::current_exception();
            failed = true;
        }
    };
    std::vector<std::thread> extra;
    for (std::size_t k = 1; k < n; ++k) extra.emplace_back([&, k] { serve_extra(ctx, k, n, serve, errors[k], failed); });
    serve(imap, 0);
    for (auto& t : extra) t.join();

    for (const auto& h : handlers) account_for(*h, shared);
    if (keeping && !errors[0]) {
        // Kept only after a sync that ended as planned; after a stop or
        // another connection's failure it is logged out as before.
        if (!failed.load()) ctx.opts.sync_links->keep(std::move(link));
        else imap.logout(false);
    }
    for (const auto& e : errors)
        if (e) std::rethrow_exception(e);
}

}  // namespace pullmail
