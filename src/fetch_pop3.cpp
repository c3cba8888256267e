// fetch_pop3.cpp — the POP3 flow of one account run.
#include <map>
#include <set>
#include <unordered_set>

#include "account_run.h"
#include "delivery_handler.h"
#include "log.h"
#include "pop3_session.h"
#include "test_hooks.h"
#include "transport.h"

namespace pullmail {

void fetch_pop3(AccountRun& run) {
    const Account& acc = run.account;
    auto link = connect_account(run);
    Pop3Session pop(*link.channel, acc.pipelining);
    auto listing = pop.start_and_list(link.conn->login_lines());
    test_step("listed");

    // A UIDL shared by several messages cannot say which of them was
    // delivered: leave all of them alone (never fetch, never delete).
    std::map<std::string, int> uid_count;
    for (const auto& m : listing) ++uid_count[m.key];
    std::vector<RemoteMessage> wanted;
    std::unordered_set<std::string> on_server;
    for (const auto& m : listing) {
        on_server.insert(m.key);
        if (uid_count[m.key] > 1) continue;
        if (run.opts.all || !run.state.seen(m.key)) wanted.push_back(m);
    }
    for (const auto& [key, n] : uid_count) {
        if (n > 1) {
            run.result.skipped += n;
            run.log.warn(acc.name, "the server lists " + std::to_string(n) + " messages with the same UIDL '" +
                                       key.substr(5) + "'; they are left on the server untouched");
        }
    }
    // Delivered before under another identity (the account used to be IMAP)?
    // Recognise those from their headers (TOP n 0) instead of fetching them.
    auto is_pop3 = [](const std::string& k) { return k.rfind("pop3:", 0) == 0; };
    if (!run.opts.all && !wanted.empty() && (run.opts.adopt || has_foreign_fingerprints(run, is_pop3))) {
        std::vector<std::uint32_t> numbers;
        for (const auto& m : wanted) numbers.push_back(m.number);
        auto headers = pop.headers(numbers);
        std::size_t n = recognise_delivered(run, wanted, headers, [](const RemoteMessage& m) { return m.number; },
                                            is_pop3);
        if (n)
            run.log.info(acc.name, std::to_string(n) + (run.opts.adopt ? " message(s) adopted: marked as seen without "
                                                                        "fetching them"
                                                                      : " message(s) recognised as already "
                                                                        "delivered by their headers"));
    }
    run.result.new_messages = wanted.size();

    if (run.opts.adopt) {
        pop.quit(false);
        run.state.compact([&](const std::string& key) { return on_server.count(key) != 0; });
        return;
    }

    if (run.opts.check || run.opts.dry_run) {
        if (run.opts.dry_run) {
            for (const auto& m : wanted)
                run.log.info(acc.name, "would fetch message " + std::to_string(m.number) + " (UIDL " + m.uidl + ", " +
                                           std::to_string(m.size) + " bytes) into " + run.deliverer.describe());
            if (!run.keep) {
                std::size_t n = 0;
                for (const auto& m : listing)
                    if (uid_count[m.key] == 1 && run.state.seen(m.key)) ++n;
                run.log.info(acc.name, "would delete " + std::to_string(n) +
                                           " already delivered message(s) and every message fetched");
            }
        }
        pop.quit(false);
        return;
    }

    DeliveryHandler handler(acc, run.deliverer, run.state, run.log, run.opts.interrupted);
    auto account_for = [&] {
        run.result.fetched = handler.delivered();
        run.result.bytes = handler.bytes();
        run.result.skipped += handler.failed_count();
        for (const auto& e : handler.errors()) run.result.errors.push_back(e);
    };
    try {
        pop.retrieve(wanted, handler);
    } catch (...) {
        // Complete messages in hand are delivered and recorded; no DELE was
        // sent, so the server still has everything.
        handler.flush();
        account_for();
        throw;
    }
    handler.flush();
    account_for();

    std::unordered_set<std::string> deleted_keys;
    if (!run.keep) {
        // Everything delivered (this run or before) and still on the server.
        std::vector<std::uint32_t> numbers;
        for (const auto& m : listing) {
            if (uid_count[m.key] == 1 && run.state.seen(m.key)) {
                numbers.push_back(m.number);
                deleted_keys.insert(m.key);
            }
        }
        // The state must be durable before the server forgets the messages.
        run.state.sync();
        test_step("before delete");
        auto q = pop.delete_and_quit(numbers);
        test_step("after quit");
        if (q.committed) {
            run.result.deleted = q.marked;
        } else {
            deleted_keys.clear();
            run.result.errors.push_back(
                Error(ErrorKind::Protocol, "the server did not confirm QUIT, so it did not delete the " +
                                               std::to_string(numbers.size()) +
                                               " delivered message(s); they will be deleted on the next run",
                      true)
                    .set_server_text(q.server_text)
                    .set_account(acc.name));
            run.log.error(acc.name, run.result.errors.back().detail());
        }
    } else {
        pop.quit(false);  // nothing was deleted: its answer cannot matter
    }

    // Prune state for messages no longer on the server (or just deleted).
    run.state.compact([&](const std::string& key) { return on_server.count(key) && !deleted_keys.count(key); });
}

}  // namespace pullmail
