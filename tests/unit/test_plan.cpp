// The sync rules (sync_plan.h) as a table: (listing, identity, state,
// options) -> what is fetched, recognised, removed and pruned.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "fingerprint.h"
#include "state_journal.h"
#include "sync_plan.h"
#include "plan_support.h"

using namespace pullmail;

namespace {

std::string header(const std::string& id, const std::string& subject = "S") {
    return "Message-ID: <" + id + "@example.test>\r\nFrom: a@example.test\r\nDate: Tue, 1 Jul 2003 10:00:00 +0000\r\n"
           "Subject: " + subject + "\r\n\r\n";
}

RemoteMessage pop3(std::uint32_t n, const std::string& uidl, std::uint64_t size) {
    return test::pop3_listed(n, uidl, size);
}

RemoteMessage imap(const std::string& folder, std::uint32_t validity, std::uint32_t uid, std::uint64_t size) {
    RemoteMessage m;
    m.uid = uid;
    m.number = uid;
    m.set_folder(folder);
    m.key = imap_key(folder, validity, uid);
    m.size = size;
    return m;
}

SeenEntry entry(std::uint64_t size, const std::string& fp = "-") { return SeenEntry{size, fp, {}, false}; }

std::set<std::string> keys(const std::vector<RemoteMessage>& v) {
    std::set<std::string> out;
    for (const auto& m : v) out.insert(m.key);
    return out;
}

std::set<std::string> set_of(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

const SourceIdentity kPop3{SourceProtocol::Pop3, "", 0};
SourceIdentity inbox(std::uint32_t v) { return {SourceProtocol::Imap, "INBOX", v}; }

PlanOptions keep_opts() { return PlanOptions{}; }
PlanOptions delete_opts() {
    PlanOptions o;
    o.keep = false;
    return o;
}

}  // namespace

TEST_CASE("plan: nothing new, new mail, --all") {
    std::vector<RemoteMessage> listing{pop3(1, "a", 100), pop3(2, "b", 200)};
    StateEntries state{{pop3_key("a"), entry(100)}};
    auto plan = plan_folder(listing, kPop3, state, true, keep_opts());
    CHECK(keys(plan.fetch) == std::set<std::string>{pop3_key("b")});
    CHECK_FALSE(plan.need_headers);
    CHECK(plan.prune.empty());
    CHECK(plan_removal(plan, state, keep_opts()).empty());

    PlanOptions all = keep_opts();
    all.all = true;
    CHECK(keys(plan_folder(listing, kPop3, state, true, all).fetch) == keys(listing));

    StateEntries both{{pop3_key("a"), entry(100)}, {pop3_key("b"), entry(200)}};
    CHECK(plan_folder(listing, kPop3, both, true, keep_opts()).fetch.empty());
}

TEST_CASE("plan: keep false removes only what is recorded delivered") {
    std::vector<RemoteMessage> listing{pop3(1, "a", 100), pop3(2, "b", 200), pop3(3, "c", 300)};
    StateEntries state{{pop3_key("a"), entry(100)}};
    auto plan = plan_folder(listing, kPop3, state, true, delete_opts());
    CHECK(keys(plan.fetch) == std::set<std::string>{pop3_key("b"), pop3_key("c")});
    // Before retrieval only "a" may go; after "b" was delivered (and "c"
    // vanished between LIST and RETR), "a" and "b".
    CHECK(keys(plan_removal(plan, state, delete_opts())) == std::set<std::string>{pop3_key("a")});
    state.insert_or_assign(pop3_key("b"), entry(200));
    CHECK(keys(plan_removal(plan, state, delete_opts())) == std::set<std::string>{pop3_key("a"), pop3_key("b")});
    // A reply shorter than announced is delivered but never removed.
    {
        auto e = state.at(pop3_key("b"));
        e.keep_on_server = true;
        state.insert_or_assign(pop3_key("b"), e);
    }
    CHECK(keys(plan_removal(plan, state, delete_opts())) == std::set<std::string>{pop3_key("a")});
    for (auto mode : {&PlanOptions::check, &PlanOptions::dry_run, &PlanOptions::adopt}) {
        PlanOptions o = delete_opts();
        o.*mode = true;
        CHECK(plan_removal(plan, state, o).empty());
    }
}

TEST_CASE("plan: duplicate UIDLs are never fetched nor removed") {
    std::vector<RemoteMessage> listing{pop3(1, "same", 100), pop3(2, "x", 200), pop3(3, "same", 300)};
    StateEntries state{{pop3_key("same"), entry(100)}};
    auto plan = plan_folder(listing, kPop3, state, true, delete_opts());
    CHECK(plan.untouched.size() == 2);
    CHECK(keys(plan.fetch) == std::set<std::string>{pop3_key("x")});
    state.insert_or_assign(pop3_key("x"), entry(200));
    CHECK(keys(plan_removal(plan, state, delete_opts())) == std::set<std::string>{pop3_key("x")});
}

TEST_CASE("plan: stale entries of the same identity never vouch, they are pruned") {
    // The reproduction of the loss: A delivered, deleted by another client;
    // B arrives with A's header fields and another body.
    std::string fp = header_fingerprint(header("x2"));
    for (const SourceIdentity& id : {kPop3, inbox(7)}) {
        bool is_pop3 = id.protocol == SourceProtocol::Pop3;
        RemoteMessage a = is_pop3 ? pop3(1, "A", 500) : imap("INBOX", 7, 1, 500);
        RemoteMessage b = is_pop3 ? pop3(1, "B", 500) : imap("INBOX", 7, 2, 500);  // even the same size
        StateEntries state{{a.key, entry(500, fp)}};
        for (bool keep : {true, false}) {
            PlanOptions o = keep ? keep_opts() : delete_opts();
            std::vector<RemoteMessage> listing{b};  // outlives the plan, which points into it
            auto plan = plan_folder(listing, id, state, true, o);
            CHECK(keys(plan.fetch) == std::set<std::string>{b.key});
            CHECK_FALSE(plan.need_headers);
            CHECK(plan.recognise_against.empty());
            CHECK(set_of(plan.prune) == std::set<std::string>{a.key});
            CHECK(plan_removal(plan, state, o).empty());
            CHECK_FALSE(plan.target_may_hold);
        }
    }
}

TEST_CASE("plan: a UIDVALIDITY change recognises by fingerprint and size, once") {
    std::string fa = header_fingerprint(header("a")), fb = header_fingerprint(header("b"));
    StateEntries state{{imap_key("INBOX", 7, 1), entry(500, fa)},
                       {imap_key("INBOX", 7, 2), entry(600, fb)},
                       {imap_key("INBOX", 7, 3), entry(700, fb)},  // same fields, another size
                       {imap_key("Lists", 9, 1), entry(500, fa)}};  // another folder: not an old identity
    std::vector<RemoteMessage> listing{imap("INBOX", 8, 10, 500), imap("INBOX", 8, 11, 650), imap("INBOX", 8, 12, 800)};
    auto plan = plan_folder(listing, inbox(8), state, false, delete_opts());
    CHECK(plan.need_headers);
    CHECK(plan.target_may_hold);
    CHECK(set_of(plan.recognise_against) ==
          std::set<std::string>{imap_key("INBOX", 7, 1), imap_key("INBOX", 7, 2), imap_key("INBOX", 7, 3)});
    // Every old entry is retired by this sync, matched or not; other folders stay.
    CHECK(set_of(plan.prune) == set_of(plan.recognise_against));
    std::map<std::uint32_t, std::string> headers{{10, header("a")}, {11, header("b")}, {12, header("c")}};
    auto found = recognise_delivered(plan, inbox(8), state, headers, delete_opts());
    REQUIRE(found.size() == 1);
    CHECK(found[0].message.uid == 10);
    CHECK(found[0].old_key == imap_key("INBOX", 7, 1));
    // 11 has b's fields but neither size of b's entries: fetched, not trusted.
    CHECK(keys(plan.fetch) == std::set<std::string>{imap_key("INBOX", 8, 11), imap_key("INBOX", 8, 12)});
}

TEST_CASE("plan: identical old copies vouch for as many new ones, not more") {
    std::string fp = header_fingerprint(header("dup"));
    StateEntries state{{imap_key("INBOX", 1, 1), entry(300, fp)}, {imap_key("INBOX", 1, 2), entry(300, fp)}};
    std::vector<RemoteMessage> listing{imap("INBOX", 2, 1, 300), imap("INBOX", 2, 2, 300), imap("INBOX", 2, 3, 300)};
    auto plan = plan_folder(listing, inbox(2), state, false, keep_opts());
    std::map<std::uint32_t, std::string> headers{{1, header("dup")}, {2, header("dup")}, {3, header("dup")}};
    CHECK(recognise_delivered(plan, inbox(2), state, headers, keep_opts()).size() == 2);
    CHECK(plan.fetch.size() == 1);
}

TEST_CASE("plan: POP3 to IMAP and back; sizes may differ by the final line break") {
    std::string fa = header_fingerprint(header("a")), fb = header_fingerprint(header("b"));
    // POP3 -> IMAP INBOX: POP3 sizes are the IMAP size, or 2 more.
    StateEntries pop{{pop3_key("u1"), entry(502, fa)}, {pop3_key("u2"), entry(600, fb)}};
    std::vector<RemoteMessage> listing{imap("INBOX", 5, 1, 500), imap("INBOX", 5, 2, 598), imap("INBOX", 5, 3, 70)};
    auto plan = plan_folder(listing, inbox(5), pop, false, keep_opts());
    CHECK(plan.need_headers);
    std::map<std::uint32_t, std::string> headers{{1, header("a")}, {2, header("b")}, {3, header("c")}};
    auto found = recognise_delivered(plan, inbox(5), pop, headers, keep_opts());
    CHECK(found.size() == 2);
    CHECK(keys(plan.fetch) == std::set<std::string>{imap_key("INBOX", 5, 3)});
    CHECK(set_of(plan.prune) == std::set<std::string>{pop3_key("u1"), pop3_key("u2")});
    // Another folder does not match POP3 entries (POP3 only ever saw INBOX).
    std::vector<RemoteMessage> lists_listing{imap("Lists", 5, 1, 500)};
    auto lists = plan_folder(lists_listing, {SourceProtocol::Imap, "Lists", 5}, pop, false, keep_opts());
    CHECK_FALSE(lists.need_headers);
    CHECK(lists.prune.empty());

    // IMAP -> POP3: IMAP INBOX entries are matched, POP3 size 2 larger is fine,
    // 2 smaller is not; every IMAP entry is retired.
    StateEntries im{{imap_key("INBOX", 5, 1), entry(500, fa)}, {imap_key("INBOX", 5, 2), entry(600, fb)},
                    {imap_key("Lists", 5, 1), entry(10, fa)}};
    std::vector<RemoteMessage> pl{pop3(1, "p1", 502), pop3(2, "p2", 598)};
    auto p = plan_folder(pl, kPop3, im, false, delete_opts());
    std::map<std::uint32_t, std::string> ph{{1, header("a")}, {2, header("b")}};
    auto got = recognise_delivered(p, kPop3, im, ph, delete_opts());
    REQUIRE(got.size() == 1);
    CHECK(got[0].message.key == pop3_key("p1"));
    CHECK(set_of(p.prune) == std::set<std::string>{imap_key("INBOX", 5, 1), imap_key("INBOX", 5, 2),
                                                   imap_key("Lists", 5, 1)});
}

TEST_CASE("plan: entries without a fingerprint or a size never match") {
    StateEntries state{{pop3_key("u1"), entry(500, "-")}, {pop3_key("u2"), entry(0, header_fingerprint(header("b")))}};
    std::vector<RemoteMessage> listing{imap("INBOX", 5, 1, 500), imap("INBOX", 5, 2, 0)};
    auto plan = plan_folder(listing, inbox(5), state, false, keep_opts());
    std::map<std::uint32_t, std::string> headers{{1, "From: x\r\n\r\n"}, {2, header("b")}};
    CHECK(recognise_delivered(plan, inbox(5), state, headers, keep_opts()).empty());
    CHECK(plan.fetch.size() == 2);
}

TEST_CASE("plan: adopt records every new message, removes nothing; check and dry run write nothing") {
    std::vector<RemoteMessage> listing{pop3(1, "a", 100), pop3(2, "b", 200)};
    StateEntries state{{pop3_key("gone"), entry(1)}};
    PlanOptions adopt = delete_opts();
    adopt.adopt = true;
    auto plan = plan_folder(listing, kPop3, state, true, adopt);
    CHECK(plan.need_headers);
    CHECK(plan.records);
    auto found = recognise_delivered(plan, kPop3, state, {{1, header("a")}}, adopt);
    CHECK(found.size() == 2);
    CHECK(plan.fetch.empty());
    CHECK(set_of(plan.prune) == std::set<std::string>{pop3_key("gone")});
    for (auto mode : {&PlanOptions::check, &PlanOptions::dry_run}) {
        PlanOptions o = delete_opts();
        o.*mode = true;
        auto p = plan_folder(listing, kPop3, state, true, o);
        CHECK_FALSE(p.records);
        CHECK(p.fetch.size() == 2);
    }
}

TEST_CASE("plan: the IMAP target is asked only on the first sync of an identity") {
    std::vector<RemoteMessage> listing{pop3(1, "a", 100)};
    CHECK(plan_folder(listing, kPop3, {}, false, keep_opts()).target_may_hold);
    // Synced before (even with every entry pruned after keep = false):
    // a new key is a new message, even if byte for byte an old one.
    CHECK_FALSE(plan_folder(listing, kPop3, {}, true, keep_opts()).target_may_hold);
}

// ---- The constant-cost IMAP poll (folder_unchanged, mark_after_sync) ----

TEST_CASE("plan: an IMAP folder whose UIDVALIDITY, UIDNEXT and count are as marked is not listed") {
    const FolderMark mark{7, 101, 100};
    CHECK(folder_unchanged({7, 101, 100}, &mark, keep_opts()));
    CHECK_FALSE(folder_unchanged({7, 102, 100}, &mark, keep_opts()));  // new mail
    CHECK_FALSE(folder_unchanged({7, 101, 99}, &mark, keep_opts()));   // deleted by another client: prune
    CHECK_FALSE(folder_unchanged({7, 102, 99}, &mark, keep_opts()));   // one added, one deleted
    CHECK_FALSE(folder_unchanged({8, 101, 100}, &mark, keep_opts()));  // new UIDVALIDITY
    CHECK_FALSE(folder_unchanged({7, 101, 100}, nullptr, keep_opts()));  // never completely synced
    const FolderMark no_uidnext{7, 0, 100};
    CHECK_FALSE(folder_unchanged({7, 0, 100}, &no_uidnext, keep_opts()));  // server gives no UIDNEXT
    PlanOptions all = keep_opts();
    all.all = true;
    CHECK_FALSE(folder_unchanged({7, 101, 100}, &mark, all));  // -a fetches everything again
}

TEST_CASE("plan: a mark left by a run that kept its mail never hides mail that keep = false or -K is to delete") {
    const FolderMark mark{7, 101, 100};
    CHECK_FALSE(folder_unchanged({7, 101, 100}, &mark, delete_opts()));
    PlanOptions oversize_delete = keep_opts();
    oversize_delete.max_size = 1000;
    oversize_delete.oversize = Oversize::Delete;
    CHECK_FALSE(folder_unchanged({7, 101, 100}, &mark, oversize_delete));
    // An empty folder has nothing to delete: its mark still holds.
    const FolderMark empty{7, 101, 0};
    CHECK(folder_unchanged({7, 101, 0}, &empty, delete_opts()));
}

TEST_CASE("plan: a run may remove mail only with keep = false, delete_after or oversize = delete") {
    CHECK_FALSE(may_remove(keep_opts()));
    CHECK(may_remove(delete_opts()));
    PlanOptions expiring = keep_opts();
    expiring.delete_after = 86400;
    CHECK(may_remove(expiring));
    PlanOptions oversize = keep_opts();
    oversize.oversize = Oversize::Delete;
    CHECK_FALSE(may_remove(oversize));  // no max_size: nothing is oversize
    oversize.max_size = 1000;
    CHECK(may_remove(oversize));
    oversize.oversize = Oversize::Headers;
    CHECK_FALSE(may_remove(oversize));
}

TEST_CASE("plan: a folder is marked only when the state says exactly what it holds") {
    std::vector<RemoteMessage> listing{imap("INBOX", 7, 1, 10), imap("INBOX", 7, 2, 20)};
    StateEntries state{{listing[0].key, entry(10)}, {listing[1].key, entry(20)}};
    const FolderMark opened{7, 3, 2};

    Plan plan = plan_folder(listing, inbox(7), state, true, keep_opts());
    auto m = mark_after_sync(plan, opened, state, keep_opts());
    REQUIRE(m.has_value());
    CHECK(*m == opened);

    SUBCASE("a listed message not recorded (failed, or the run stopped): no mark") {
        StateEntries partial{{listing[0].key, entry(10)}};
        Plan p = plan_folder(listing, inbox(7), partial, true, keep_opts());
        CHECK_FALSE(mark_after_sync(p, opened, partial, keep_opts()).has_value());
    }
    SUBCASE("keep = false and delivered messages still on the server: no mark (the count will change)") {
        Plan p = plan_folder(listing, inbox(7), state, true, delete_opts());
        CHECK_FALSE(mark_after_sync(p, opened, state, delete_opts()).has_value());
    }
    SUBCASE("the listing is shorter than the server's count: no mark") {
        CHECK_FALSE(mark_after_sync(plan, FolderMark{7, 3, 3}, state, keep_opts()).has_value());
    }
    SUBCASE("no UIDNEXT: no mark") {
        CHECK_FALSE(mark_after_sync(plan, FolderMark{7, 0, 2}, state, keep_opts()).has_value());
    }
    SUBCASE("check and dry run write nothing, so no mark") {
        PlanOptions check = keep_opts();
        check.check = true;
        Plan p = plan_folder(listing, inbox(7), state, true, check);
        CHECK_FALSE(mark_after_sync(p, opened, state, check).has_value());
    }
    SUBCASE("an empty folder is marked too") {
        std::vector<RemoteMessage> none;
        StateEntries empty;
        Plan p = plan_folder(none, inbox(7), empty, true, keep_opts());
        CHECK(mark_after_sync(p, FolderMark{7, 3, 0}, empty, keep_opts()).has_value());
    }
}

TEST_CASE("plan: retention never skips a folder on its mark; header stubs are marked, skipped messages not") {
    const FolderMark mark{7, 3, 2};
    PlanOptions expiring = keep_opts();
    expiring.delete_after = 86400;
    CHECK_FALSE(folder_unchanged({7, 3, 2}, &mark, expiring));

    std::vector<RemoteMessage> listing{imap("INBOX", 7, 1, 10), imap("INBOX", 7, 2, 20)};
    StateEntries state{{listing[0].key, entry(10)}, {listing[1].key, entry(20)}};
    {
        auto e = state.at(listing[1].key);
        e.delivered = Delivered::HeadersOnly;
        state.insert_or_assign(listing[1].key, e);
    }
    PlanOptions limited = keep_opts();
    limited.max_size = 15;
    limited.oversize = Oversize::Headers;
    // A stub is never fetched again: it does not keep the folder listed on every poll.
    Plan plan = plan_folder(listing, inbox(7), state, true, limited);
    CHECK(mark_after_sync(plan, mark, state, limited).has_value());
    // A skipped message is fetched once max_size lets it through.
    {
        auto e = state.at(listing[1].key);
        e.delivered = Delivered::Skipped;
        state.insert_or_assign(listing[1].key, e);
    }
    limited.oversize = Oversize::Skip;
    Plan skipped = plan_folder(listing, inbox(7), state, true, limited);
    CHECK_FALSE(mark_after_sync(skipped, mark, state, limited).has_value());
}
