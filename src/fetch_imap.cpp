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

#include "account_run.h"
#include "delivery_handler.h"
#include "fingerprint.h"
#include "imap_session.h"
#include "log.h"
#include "test_hooks.h"
#include "transport.h"

namespace pullmail {

namespace {

std::uint32_t uid_of(const RemoteMessage& m) { return m.uid; }

// The folders of folders = ["*"]: every selectable folder, '/'-separated.
std::vector<std::string> expand_folders(const std::vector<std::string>& configured, ImapSession& imap) {
    std::vector<std::string> out;
    for (const auto& f : configured) {
        if (f != "*") {
            out.push_back(f);
            continue;
        }
        for (const auto& name : imap.list_all_folders()) out.push_back(name);
    }
    // Each folder once, whether listed twice or matched by "*" as well.
    std::vector<std::string> unique;
    for (const auto& f : out)
        if (std::find(unique.begin(), unique.end(), f) == unique.end()) unique.push_back(f);
    return unique;
}

// What the connections of one account run share. `mu` guards the state,
// the deliverer (through each connection's DeliveryHandler), run.result and
// the fields below; it is never held across network I/O.
struct FolderWork {
    AccountRun& run;
    const std::vector<std::string>& folders;
    bool read_only;
    std::mutex mu;
    std::unordered_set<std::string> keep_keys;       // state entries still on the server
    std::unordered_set<std::string> listed_folders;  // folders whose listing is complete
    std::size_t deleted = 0;
};

// One folder over one connection: list, recognise, fetch, delete.
void fetch_folder(FolderWork& w, ImapSession& imap, DeliveryHandler& handler, const std::string& folder) {
    AccountRun& run = w.run;
    const Account& acc = run.account;
    std::vector<RemoteMessage> listing;
    auto info = imap.select(folder, w.read_only, &listing);
    test_step("selected");
    std::unordered_set<std::string> current;
    for (const auto& m : listing) current.insert(m.key);

    // Records of this account's other folders are not "another identity":
    // a copy of a message in two folders is delivered from each.
    std::vector<std::string> other_prefixes;  // built once, not per state entry
    for (const auto& f : w.folders)
        if (f != folder) other_prefixes.push_back("imap:" + encode_folder(f) + ":");
    auto is_current = [&](const std::string& key) {
        if (current.count(key)) return true;
        for (const auto& prefix : other_prefixes)
            if (key.rfind(prefix, 0) == 0) return true;
        return false;
    };

    std::vector<RemoteMessage> wanted;
    std::optional<std::uint32_t> old_validity;
    bool look_for_foreign = false;
    {
        std::lock_guard<std::mutex> lock(w.mu);
        for (const auto& m : listing)
            if (run.opts.all || !run.state.seen(m.key)) wanted.push_back(m);
        // When the folder's UIDVALIDITY changed (or it was never fetched over
        // IMAP but the state knows messages of another identity, e.g. the
        // account used to be POP3), the UIDs of the state mean nothing.
        // Rather than fetching everything again, recognise messages already
        // delivered by their header fingerprint and record them under their
        // new identity.
        old_validity = run.state.uidvalidity(folder);
        look_for_foreign = !run.opts.all && !wanted.empty() &&
                           (run.opts.adopt || has_foreign_fingerprints(run, is_current));
    }
    bool validity_changed = old_validity && *old_validity != info.uidvalidity;
    std::size_t adopted = 0;
    if (look_for_foreign) {
        std::vector<std::uint32_t> uids;
        for (const auto& m : wanted) uids.push_back(m.uid);
        auto headers = imap.fetch_header_fields(uids, kFingerprintFields);
        {
            std::lock_guard<std::mutex> lock(w.mu);
            adopted = recognise_delivered(run, wanted, headers, uid_of, is_current);
        }
        if (adopted && !validity_changed)
            run.log.info(acc.name, "folder '" + folder + "': " + std::to_string(adopted) +
                                       (run.opts.adopt ? " message(s) adopted: marked as seen without fetching"
                                                       : " message(s) recognised as already delivered by "
                                                         "their headers"));
    }
    if (validity_changed)
        run.log.warn(acc.name, "folder '" + folder + "' has a new UIDVALIDITY (" + std::to_string(*old_validity) +
                                   " -> " + std::to_string(info.uidvalidity) + "): " + std::to_string(adopted) +
                                   " message(s) recognised as already delivered by their headers, " +
                                   std::to_string(wanted.size()) + " will be fetched");
    {
        std::lock_guard<std::mutex> lock(w.mu);
        if (!run.opts.check && !run.opts.dry_run) run.state.record_uidvalidity(folder, info.uidvalidity);
        for (const auto& m : listing) w.keep_keys.insert(m.key);
        w.listed_folders.insert(folder);
        run.result.new_messages += wanted.size();
    }

    if (run.opts.check || run.opts.adopt) return;
    if (run.opts.dry_run) {
        for (const auto& m : wanted)
            run.log.info(acc.name, "would fetch " + folder + " UID " + std::to_string(m.uid) + " (" +
                                       std::to_string(m.size) + " bytes) into " + run.deliverer.describe());
        return;
    }

    try {
        imap.fetch(wanted, handler);
        handler.flush();
    } catch (...) {
        // Complete messages in hand are delivered and recorded; nothing
        // was deleted in this folder yet.
        handler.flush();
        throw;
    }
    test_step("folder fetched");

    if (run.keep) return;
    std::vector<std::uint32_t> uids;
    {
        std::lock_guard<std::mutex> lock(w.mu);
        for (const auto& m : listing)
            if (run.state.seen(m.key)) uids.push_back(m.uid);
        if (!uids.empty()) run.state.sync();  // durable before the server forgets them
    }
    if (uids.empty()) return;
    test_step("before delete");
    auto r = imap.delete_messages(uids);
    test_step("after expunge");
    if (r.expunge_skipped)
        run.log.warn(acc.name, "folder '" + folder +
                                   "': the server lacks UIDPLUS and other messages are flagged "
                                   "\\Deleted, so pullmail flagged its delivered messages \\Deleted "
                                   "but did not expunge (that would remove the others too)");
    std::lock_guard<std::mutex> lock(w.mu);
    w.deleted += r.expunged;
    // Expunged messages are gone: their keys can be pruned.
    if (!r.expunge_skipped)
        for (auto uid : uids) w.keep_keys.erase(imap_key(folder, info.uidvalidity, uid));
}

// How many connections to use: `connections`, but never more than there
// are folders.
std::size_t connection_count(const Account& acc, std::size_t folders) {
    std::size_t n = static_cast<std::size_t>(std::max(1, acc.connections));
    return std::max<std::size_t>(1, std::min(n, folders));
}

}  // namespace

void fetch_imap(AccountRun& run) {
    const Account& acc = run.account;
    auto link = connect_account(run);
    ImapSession imap(*link.channel);
    imap.start();

    const auto folders = expand_folders(acc.folders, imap);
    bool read_only = run.keep || run.opts.check || run.opts.dry_run || run.opts.adopt;
    FolderWork w{run, folders, read_only, {}, {}, {}, 0};

    // Folders go to whichever connection is free next. The first connection
    // starts at once; the others (connections = N) log in meanwhile and join.
    const std::size_t n = connection_count(acc, folders.size());
    std::vector<std::unique_ptr<DeliveryHandler>> handlers;
    for (std::size_t k = 0; k < n; ++k)
        handlers.push_back(std::make_unique<DeliveryHandler>(acc, run.deliverer, run.state, run.log,
                                                             run.opts.interrupted, &w.mu));
    std::vector<std::exception_ptr> errors(n);
    std::atomic<std::size_t> next_folder{0};
    std::atomic<bool> failed{false};  // one connection failed or stopped: the others take no new folder
    // Connection k takes folders until none is left, then logs out.
    auto serve = [&](ImapSession& session, std::size_t k) {
        try {
            while (!failed.load()) {
                if (handlers[k]->stop_requested()) {
                    failed = true;
                    break;
                }
                std::size_t i = next_folder.fetch_add(1);
                if (i >= folders.size()) break;
                fetch_folder(w, session, *handlers[k], folders[i]);
            }
            session.logout(false);
        } catch (...) {
            errors[k] = std::current_exception();
            failed = true;
        }
    };
    std::vector<std::thread> extra;
    for (std::size_t k = 1; k < n; ++k) {
        extra.emplace_back([&, k] {
            ServerLink more;
            try {
                more = connect_account(run);
            } catch (const Error& e) {
                // The server may limit connections per user: the
                // connections that did log in share the folders.
                run.log.detail(acc.name, "connection " + std::to_string(k + 1) + " of " + std::to_string(n) +
                                             " not opened (" + e.detail() + "); going on with fewer");
                return;
            }
            try {
                ImapSession session(*more.channel);
                session.start();
                serve(session, k);
            } catch (...) {
                errors[k] = std::current_exception();
                failed = true;
            }
        });
    }
    serve(imap, 0);
    for (auto& t : extra) t.join();

    for (const auto& h : handlers) {
        run.result.fetched += h->delivered();
        run.result.bytes += h->bytes();
        run.result.skipped += h->failed_count();
        for (const auto& e : h->errors()) run.result.errors.push_back(e);
    }
    run.result.deleted = w.deleted;
    for (const auto& e : errors)
        if (e) std::rethrow_exception(e);
    if (run.opts.check || run.opts.dry_run) return;

    // Prune entries of the folders we listed that are gone from the server;
    // entries of other folders (not fetched this run) and of other
    // identities (POP3 keys after a switch) stay, their fingerprints may
    // still be needed.
    std::vector<std::string> listed_prefixes;
    for (const auto& f : w.listed_folders) listed_prefixes.push_back("imap:" + encode_folder(f) + ":");
    run.state.compact([&](const std::string& key) {
        if (w.keep_keys.count(key)) return true;
        for (const auto& prefix : listed_prefixes)
            if (key.rfind(prefix, 0) == 0) return false;
        return true;
    });
}

}  // namespace pullmail
