// fetch_imap.cpp — the IMAP flow of one account run.
#include <algorithm>
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

}  // namespace

void fetch_imap(AccountRun& run) {
    const Account& acc = run.account;
    auto link = connect_account(run);
    ImapSession imap(*link.channel);
    imap.start();

    std::unordered_set<std::string> keep_keys;       // state entries still on the server
    std::unordered_set<std::string> listed_folders;  // folders whose listing is complete
    DeliveryHandler handler(acc, run.deliverer, run.state, run.log, run.opts.interrupted);
    bool read_only = run.keep || run.opts.check || run.opts.dry_run || run.opts.adopt;
    std::size_t deleted = 0;
    auto account_for = [&] {
        run.result.fetched = handler.delivered();
        run.result.bytes = handler.bytes();
        run.result.deleted = deleted;
        run.result.skipped += handler.failed_count();
        for (const auto& e : handler.errors()) run.result.errors.push_back(e);
    };

    const auto folders = expand_folders(acc.folders, imap);
    for (const auto& folder : folders) {
        if (handler.stop_requested()) break;
        std::vector<RemoteMessage> listing;
        auto info = imap.select(folder, read_only, &listing);
        test_step("selected");
        std::unordered_set<std::string> current;
        for (const auto& m : listing) current.insert(m.key);

        std::vector<RemoteMessage> wanted;
        for (const auto& m : listing)
            if (run.opts.all || !run.state.seen(m.key)) wanted.push_back(m);

        // When the folder's UIDVALIDITY changed (or it was never fetched over
        // IMAP but the state knows messages of another identity, e.g. the
        // account used to be POP3), the UIDs of the state mean nothing.
        // Rather than fetching everything again, recognise messages already
        // delivered by their header fingerprint and record them under their
        // new identity.
        auto old_validity = run.state.uidvalidity(folder);
        // Records of this account's other folders are not "another identity":
        // a copy of a message in two folders is delivered from each.
        std::vector<std::string> other_prefixes;  // built once, not per state entry
        for (const auto& f : folders)
            if (f != folder) other_prefixes.push_back("imap:" + encode_folder(f) + ":");
        auto is_current = [&](const std::string& key) {
            if (current.count(key)) return true;
            for (const auto& prefix : other_prefixes)
                if (key.rfind(prefix, 0) == 0) return true;
            return false;
        };
        bool validity_changed = old_validity && *old_validity != info.uidvalidity;
        std::size_t adopted = 0;
        if (!run.opts.all && !wanted.empty() && (run.opts.adopt || has_foreign_fingerprints(run, is_current))) {
            std::vector<std::uint32_t> uids;
            for (const auto& m : wanted) uids.push_back(m.uid);
            auto headers = imap.fetch_header_fields(uids, kFingerprintFields);
            adopted = recognise_delivered(run, wanted, headers, uid_of, is_current);
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
        if (!run.opts.check && !run.opts.dry_run) run.state.record_uidvalidity(folder, info.uidvalidity);
        for (const auto& m : listing) keep_keys.insert(m.key);
        listed_folders.insert(folder);
        run.result.new_messages += wanted.size();

        if (run.opts.check || run.opts.adopt) continue;
        if (run.opts.dry_run) {
            for (const auto& m : wanted)
                run.log.info(acc.name, "would fetch " + folder + " UID " + std::to_string(m.uid) + " (" +
                                           std::to_string(m.size) + " bytes) into " + run.deliverer.describe());
            continue;
        }

        try {
            imap.fetch(wanted, handler);
            handler.flush();
        } catch (...) {
            // Complete messages in hand are delivered and recorded; nothing
            // was deleted in this folder yet.
            handler.flush();
            account_for();
            throw;
        }
        test_step("folder fetched");

        if (!run.keep) {
            std::vector<std::uint32_t> uids;
            for (const auto& m : listing)
                if (run.state.seen(m.key)) uids.push_back(m.uid);
            if (!uids.empty()) {
                run.state.sync();  // durable before the server forgets them
                test_step("before delete");
                auto r = imap.delete_messages(uids);
                test_step("after expunge");
                deleted += r.expunged;
                if (r.expunge_skipped)
                    run.log.warn(acc.name, "folder '" + folder +
                                               "': the server lacks UIDPLUS and other messages are flagged "
                                               "\\Deleted, so pullmail flagged its delivered messages \\Deleted "
                                               "but did not expunge (that would remove the others too)");
                // Expunged messages are gone: their keys can be pruned.
                if (!r.expunge_skipped)
                    for (auto uid : uids) keep_keys.erase(imap_key(folder, info.uidvalidity, uid));
            }
        }
    }
    imap.logout();
    account_for();
    if (run.opts.check || run.opts.dry_run) return;

    // Prune entries of the folders we listed that are gone from the server;
    // entries of other folders (not fetched this run) and of other
    // identities (POP3 keys after a switch) stay, their fingerprints may
    // still be needed.
    std::vector<std::string> listed_prefixes;
    for (const auto& f : listed_folders) listed_prefixes.push_back("imap:" + encode_folder(f) + ":");
    run.state.compact([&](const std::string& key) {
        if (keep_keys.count(key)) return true;
        for (const auto& prefix : listed_prefixes)
            if (key.rfind(prefix, 0) == 0) return false;
        return true;
    });
}

}  // namespace pullmail
