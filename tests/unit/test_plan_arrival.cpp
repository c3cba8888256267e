// Recognition of messages without header fingerprint fields (sync_plan.h,
// fingerprint.h): across a UIDVALIDITY change of one IMAP folder, by
// INTERNALDATE and size; nowhere else. Courier and GNU Mailutils change the
// UIDVALIDITY of a fresh Maildir between read-only sessions: without this
// rule such a message was delivered again on every run.
#include <doctest/doctest.h>

#include <set>

#include "fingerprint.h"
#include "message_key.h"
#include "state_journal.h"
#include "sync_plan.h"

using namespace pullmail;

namespace {

const std::string kNoFields = "Received: from x by y; Tue, 1 Jul 2003 10:00:00 +0000\r\nX-Junk: 1\r\n\r\n";
// RFC 5322 obsolete syntax: white space before the colon.
const std::string kObsolete = "Message-ID : <o@example.test>\r\nFrom  : a@example.test\r\nSubject\t: old\r\n\r\n";
const std::string kDate1 = "01-Jul-2003 10:00:00 +0000", kDate2 = "01-Jul-2003 10:00:01 +0000";

RemoteMessage imap(const std::string& folder, std::uint32_t validity, std::uint32_t uid, std::uint64_t size,
                   const std::string& date = {}) {
    RemoteMessage m;
    m.uid = m.number = uid;
    m.set_folder(folder);
    m.key = imap_key(folder, validity, uid);
    m.size = size;
    m.set_internal_date(date);
    return m;
}

SeenEntry entry(std::uint64_t size, const std::string& fp) { return SeenEntry{size, fp, {}, false}; }
SourceIdentity folder(const std::string& f, std::uint32_t v) { return {SourceProtocol::Imap, f, v}; }

}  // namespace

TEST_CASE("fingerprint: no fields, or only obsolete-syntax ones: an arrival fingerprint from INTERNALDATE") {
    CHECK(header_fingerprint(kNoFields) == "-");
    // Servers differ on whether HEADER.FIELDS returns "From  :" lines: such
    // fields never count, so delivery and recognition agree on any server.
    CHECK(header_fingerprint(kObsolete) == "-");
    CHECK(header_fingerprint(kObsolete) == header_fingerprint("\r\n"));
    std::string t = message_fingerprint(kNoFields, kDate1);
    CHECK(is_arrival_fingerprint(t));
    CHECK(t.size() == 32);
    CHECK(t == message_fingerprint("", kDate1));  // the header block does not enter it
    CHECK(t == message_fingerprint(kObsolete, " 01-Jul-2003  10:00:00 +0000"));  // white space normalised
    CHECK(t != message_fingerprint(kNoFields, kDate2));
    CHECK(message_fingerprint(kNoFields, "") == "-");  // POP3: nothing to go by
    // A header fingerprint wins when there is one; it is never an arrival one.
    std::string h = "From: a@example.test\r\n\r\n";
    CHECK(message_fingerprint(h, kDate1) == header_fingerprint(h));
    CHECK_FALSE(is_arrival_fingerprint(header_fingerprint(h)));
}

TEST_CASE("plan: after a UIDVALIDITY change, fingerprintless messages are recognised by INTERNALDATE and size") {
    std::string t1 = message_fingerprint(kNoFields, kDate1), t2 = message_fingerprint(kNoFields, kDate2);
    StateEntries state{{imap_key("INBOX", 7, 1), entry(500, t1)},
                       {imap_key("INBOX", 7, 2), entry(600, t2)},
                       {imap_key("INBOX", 7, 3), entry(700, t1)}};
    std::vector<RemoteMessage> listing{imap("INBOX", 8, 1, 500, kDate1),   // same date and size: recognised
                                       imap("INBOX", 8, 2, 601, kDate2),   // size differs: fetched
                                       imap("INBOX", 8, 3, 700, kDate2),   // date differs: fetched
                                       imap("INBOX", 8, 4, 700, kDate1)};  // same as entry 3: recognised
    PlanOptions opts;
    opts.keep = false;
    auto plan = plan_folder(listing, folder("INBOX", 8), state, false, opts);
    REQUIRE(plan.need_headers);
    std::map<std::uint32_t, std::string> headers{{1, kNoFields}, {2, kNoFields}, {3, kObsolete}, {4, kObsolete}};
    auto found = recognise_delivered(plan, folder("INBOX", 8), state, headers, opts);
    std::set<std::uint32_t> uids;
    for (const auto& r : found) {
        uids.insert(r.message.uid);
        CHECK(is_arrival_fingerprint(r.fingerprint));  // recorded so, for the next change
    }
    CHECK(uids == std::set<std::uint32_t>{1, 4});
    REQUIRE(plan.fetch.size() == 2);
    CHECK(plan.fetch[0].uid == 2);
    CHECK(plan.fetch[1].uid == 3);
}

TEST_CASE("plan: an arrival fingerprint vouches once, never without headers, never across protocols") {
    std::string t1 = message_fingerprint(kNoFields, kDate1);
    PlanOptions keep;
    SUBCASE("more new twins than records: which one is new cannot be told, all are fetched again") {
        // One delivered message and a twin (same second, same size) that
        // arrived since; the new one may come first in the listing.
        StateEntries state{{imap_key("INBOX", 7, 1), entry(500, t1)}};
        std::vector<RemoteMessage> listing{imap("INBOX", 8, 1, 500, kDate1), imap("INBOX", 8, 2, 500, kDate1)};
        auto plan = plan_folder(listing, folder("INBOX", 8), state, false, keep);
        std::map<std::uint32_t, std::string> headers{{1, kNoFields}, {2, kNoFields}};
        CHECK(recognise_delivered(plan, folder("INBOX", 8), state, headers, keep).empty());
        CHECK(plan.fetch.size() == 2);
    }
    SUBCASE("fewer new twins than records (one was deleted): each left is one of the delivered ones") {
        StateEntries state{{imap_key("INBOX", 7, 1), entry(500, t1)}, {imap_key("INBOX", 7, 2), entry(500, t1)}};
        std::vector<RemoteMessage> listing{imap("INBOX", 8, 2, 500, kDate1)};
        auto plan = plan_folder(listing, folder("INBOX", 8), state, false, keep);
        std::map<std::uint32_t, std::string> headers{{2, kNoFields}};
        CHECK(recognise_delivered(plan, folder("INBOX", 8), state, headers, keep).size() == 1);
        CHECK(plan.fetch.empty());
    }
    SUBCASE("a match by arrival is kept on the server; a header match keeps the old record's keep flag") {
        std::string h = "Message-ID: <k@example.test>\r\n\r\n";
        SeenEntry short_reply = entry(700, message_fingerprint(h, kDate2));
        short_reply.keep_on_server = true;
        StateEntries state{{imap_key("INBOX", 7, 1), entry(500, t1)}, {imap_key("INBOX", 7, 2), short_reply},
                           {imap_key("INBOX", 7, 3), entry(800, message_fingerprint("From: f@x\r\n\r\n", ""))}};
        std::vector<RemoteMessage> listing{imap("INBOX", 8, 1, 500, kDate1), imap("INBOX", 8, 2, 700, kDate2),
                                           imap("INBOX", 8, 3, 800, kDate2)};
        PlanOptions del;
        del.keep = false;
        auto plan = plan_folder(listing, folder("INBOX", 8), state, false, del);
        std::map<std::uint32_t, std::string> headers{{1, kNoFields}, {2, h}, {3, "From: f@x\r\n\r\n"}};
        auto found = recognise_delivered(plan, folder("INBOX", 8), state, headers, del);
        REQUIRE(found.size() == 3);
        std::map<std::uint32_t, bool> kept;
        for (const auto& r : found) kept[r.message.uid] = r.keep_on_server;
        CHECK(kept[1]);         // arrival: never deleted on its strength
        CHECK(kept[2]);         // the old record was kept (short reply): so is the new one
        CHECK_FALSE(kept[3]);   // a header match of a whole delivery may be deleted
    }
    SUBCASE("the server did not hand out the header: no match") {
        StateEntries state{{imap_key("INBOX", 7, 1), entry(500, t1)}};
        std::vector<RemoteMessage> listing{imap("INBOX", 8, 1, 500, kDate1)};
        auto plan = plan_folder(listing, folder("INBOX", 8), state, false, keep);
        CHECK(recognise_delivered(plan, folder("INBOX", 8), state, {}, keep).empty());
        CHECK(plan.fetch.size() == 1);
    }
    SUBCASE("a message with header fields never matches an arrival entry") {
        StateEntries state{{imap_key("INBOX", 7, 1), entry(500, t1)}};
        std::vector<RemoteMessage> listing{imap("INBOX", 8, 1, 500, kDate1)};
        auto plan = plan_folder(listing, folder("INBOX", 8), state, false, keep);
        std::map<std::uint32_t, std::string> headers{{1, "Subject: s\r\n\r\n"}};
        CHECK(recognise_delivered(plan, folder("INBOX", 8), state, headers, keep).empty());
    }
    SUBCASE("POP3 never recognises by arrival: it has no INTERNALDATE") {
        StateEntries state{{imap_key("INBOX", 7, 1), entry(500, t1)}};
        RemoteMessage p;
        p.number = 1;
        p.uidl = "u1";
        p.key = pop3_key("u1");
        p.size = 500;
        std::vector<RemoteMessage> listing{p};
        SourceIdentity pop{SourceProtocol::Pop3, "", 0};
        auto plan = plan_folder(listing, pop, state, false, keep);
        std::map<std::uint32_t, std::string> headers{{1, kNoFields}};
        CHECK(recognise_delivered(plan, pop, state, headers, keep).empty());
    }
}
