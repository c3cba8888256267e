// The retention and limit rules of the planner (sync_plan.h, issue 13) as a
// table: delete_after, max_size with each oversize action, max_messages,
// and how they combine with keep, --dry-run and a UIDVALIDITY change.
#include <doctest/doctest.h>

#include <set>

#include "config.h"
#include "config_support.h"
#include "error.h"
#include "fingerprint.h"
#include "state_journal.h"
#include "sync_plan.h"
#include "plan_support.h"

using namespace pullmail;

namespace {

constexpr std::int64_t kDay = 86400;
constexpr std::int64_t kNow = 1'800'000'000;

RemoteMessage pop3(std::uint32_t n, const std::string& uidl, std::uint64_t size) {
    return test::pop3_listed(n, uidl, size);
}

RemoteMessage imap(std::uint32_t validity, std::uint32_t uid, std::uint64_t size) {
    RemoteMessage m;
    m.uid = uid;
    m.number = uid;
    m.set_folder("INBOX");
    m.key = imap_key("INBOX", validity, uid);
    m.size = size;
    return m;
}

SeenEntry delivered(std::int64_t at, std::uint64_t size = 100, const std::string& fp = "-") {
    return SeenEntry{size, fp, {}, false, Delivered::Whole, at};
}
SeenEntry marked(Delivered d, std::uint64_t size = 100) { return SeenEntry{size, "-", {}, false, d, kNow - 400 * kDay}; }

std::set<std::string> keys(const std::vector<RemoteMessage>& v) {
    std::set<std::string> out;
    for (const auto& m : v) out.insert(m.key);
    return out;
}

const SourceIdentity kPop3{SourceProtocol::Pop3, "", 0};
SourceIdentity inbox(std::uint32_t v) { return {SourceProtocol::Imap, "INBOX", v}; }

PlanOptions opts(bool keep = true) {
    PlanOptions o;
    o.keep = keep;
    o.now = kNow;
    return o;
}

std::string header(const std::string& id) {
    return "Message-ID: <" + id + "@example.test>\r\nFrom: a@example.test\r\nSubject: S\r\n\r\n";
}

}  // namespace

TEST_CASE("plan: delete_after removes, with keep, only whole deliveries older than the limit") {
    std::vector<RemoteMessage> listing{pop3(1, "old", 100), pop3(2, "young", 100), pop3(3, "edge", 100),
                                       pop3(4, "short", 100), pop3(5, "hdr", 100), pop3(6, "skip", 100),
                                       pop3(7, "new", 100)};
    StateEntries state{{pop3_key("old"), delivered(kNow - 31 * kDay)},
                       {pop3_key("young"), delivered(kNow - 29 * kDay)},
                       {pop3_key("edge"), delivered(kNow - 30 * kDay)},
                       {pop3_key("short"), delivered(kNow - 90 * kDay)},
                       {pop3_key("hdr"), marked(Delivered::HeadersOnly)},
                       {pop3_key("skip"), marked(Delivered::Skipped)}};
    {
        auto e = state.at(pop3_key("short"));
        e.keep_on_server = true;
        state.insert_or_assign(pop3_key("short"), e);  // a cut reply: never deleted
    }
    PlanOptions o = opts();
    o.delete_after = 30 * kDay;
    auto plan = plan_folder(listing, kPop3, state, true, o);
    CHECK(keys(plan.fetch) == std::set<std::string>{pop3_key("new"), pop3_key("skip")});  // skip fits now: fetched
    std::set<std::string> want{pop3_key("old"), pop3_key("edge")};
    CHECK(keys(plan_removal(plan, state, o)) == want);
    CHECK(keys(plan_expired(plan, state, o)) == want);
    // Not before its time: the same state a day earlier removes only "old".
    o.now = kNow - kDay;
    CHECK(keys(plan_removal(plan, state, o)) == std::set<std::string>{pop3_key("old")});
    // Without delete_after, keep removes nothing; no clock, nothing expires.
    o.now = kNow;
    o.delete_after = 0;
    CHECK(plan_removal(plan, state, o).empty());
    o.delete_after = 30 * kDay;
    o.now = 0;
    CHECK(plan_removal(plan, state, o).empty());
    // Check, dry run and adopt remove nothing, but the dry run can list what would expire.
    o.now = kNow;
    for (auto mode : {&PlanOptions::check, &PlanOptions::dry_run, &PlanOptions::adopt}) {
        PlanOptions m = o;
        m.*mode = true;
        CHECK(plan_removal(plan, state, m).empty());
    }
    PlanOptions dry = o;
    dry.dry_run = true;
    CHECK(keys(plan_expired(plan, state, dry)) == want);
}

TEST_CASE("plan: keep = false still removes every whole delivery at once, never a stub or a skipped one") {
    std::vector<RemoteMessage> listing{pop3(1, "young", 100), pop3(2, "hdr", 100), pop3(3, "skip", 9000)};
    StateEntries state{{pop3_key("young"), delivered(kNow - 60)},
                       {pop3_key("hdr"), marked(Delivered::HeadersOnly)},
                       {pop3_key("skip"), marked(Delivered::Skipped, 9000)}};
    PlanOptions o = opts(false);
    o.delete_after = 30 * kDay;
    o.max_size = 1000;
    auto plan = plan_folder(listing, kPop3, state, true, o);
    CHECK(plan.fetch.empty());
    CHECK(plan.report_oversize.empty());  // reported once already
    CHECK(keys(plan_removal(plan, state, o)) == std::set<std::string>{pop3_key("young")});
    CHECK(plan_expired(plan, state, o).empty());  // expiry is a rule of keep
}

TEST_CASE("plan: oversize skip reports a message once and fetches it when it fits") {
    std::vector<RemoteMessage> listing{pop3(1, "small", 500), pop3(2, "big", 5000), pop3(3, "edge", 1000)};
    PlanOptions o = opts(false);
    o.max_size = 1000;
    StateEntries state;
    auto plan = plan_folder(listing, kPop3, state, false, o);
    CHECK(keys(plan.fetch) == std::set<std::string>{pop3_key("small"), pop3_key("edge")});  // max_size is inclusive
    CHECK(keys(plan.report_oversize) == std::set<std::string>{pop3_key("big")});
    CHECK(plan.headers_only.empty());
    CHECK(plan.remove_unread.empty());
    // The run records it as Skipped (and delivers the rest): quiet next time, never removed.
    state.insert_or_assign(pop3_key("small"), delivered(kNow));
    state.insert_or_assign(pop3_key("edge"), delivered(kNow));
    state.insert_or_assign(pop3_key("big"), marked(Delivered::Skipped, 5000));
    CHECK(keys(plan_removal(plan, state, o)) == std::set<std::string>{pop3_key("small"), pop3_key("edge")});
    auto again = plan_folder(listing, kPop3, state, true, o);
    CHECK(again.fetch.empty());
    CHECK(again.report_oversize.empty());
    CHECK(keys(plan_removal(again, state, o)) == std::set<std::string>{pop3_key("small"), pop3_key("edge")});
    // max_size raised: fetched after all.
    o.max_size = 10000;
    auto raised = plan_folder(listing, kPop3, state, true, o);
    CHECK(keys(raised.fetch) == std::set<std::string>{pop3_key("big")});
    // Switched to headers: its header is delivered now.
    o.max_size = 1000;
    o.oversize = Oversize::Headers;
    auto hdr = plan_folder(listing, kPop3, state, true, o);
    CHECK(keys(hdr.headers_only) == std::set<std::string>{pop3_key("big")});
}

TEST_CASE("plan: oversize headers delivers a stub once and never removes the message") {
    std::vector<RemoteMessage> listing{imap(5, 1, 500), imap(5, 2, 5000)};
    PlanOptions o = opts(false);
    o.max_size = 1000;
    o.oversize = Oversize::Headers;
    o.delete_after = kDay;
    StateEntries state;
    auto plan = plan_folder(listing, inbox(5), state, false, o);
    CHECK(keys(plan.fetch) == std::set<std::string>{imap_key("INBOX", 5, 1)});
    CHECK(keys(plan.headers_only) == std::set<std::string>{imap_key("INBOX", 5, 2)});
    state.insert_or_assign(imap_key("INBOX", 5, 1), delivered(kNow - 2 * kDay));
    state.insert_or_assign(imap_key("INBOX", 5, 2), marked(Delivered::HeadersOnly, 5000));
    for (bool keep : {false, true}) {
        PlanOptions k = o;
        k.keep = keep;
        auto again = plan_folder(listing, inbox(5), state, true, k);
        CHECK(again.fetch.empty());
        CHECK(again.headers_only.empty());
        CHECK(keys(plan_removal(again, state, k)) == std::set<std::string>{imap_key("INBOX", 5, 1)});
    }
    // Not fetched whole later either (it was recorded), nor with max_size gone.
    o.max_size = 0;
    auto unlimited = plan_folder(listing, inbox(5), state, true, o);
    CHECK(unlimited.fetch.empty());
    CHECK(keys(plan_removal(unlimited, state, o)) == std::set<std::string>{imap_key("INBOX", 5, 1)});
}

TEST_CASE("plan: oversize delete removes oversize messages unread, whatever keep says, and only them") {
    std::vector<RemoteMessage> listing{pop3(1, "small", 500), pop3(2, "big", 5000), pop3(3, "stub", 6000),
                                       pop3(4, "unknown-size", 0)};
    StateEntries state{{pop3_key("stub"), marked(Delivered::HeadersOnly, 6000)}};
    for (bool keep : {true, false}) {
        PlanOptions o = opts(keep);
        o.max_size = 1000;
        o.oversize = Oversize::Delete;
        auto plan = plan_folder(listing, kPop3, state, true, o);
        CHECK(keys(plan.fetch) == std::set<std::string>{pop3_key("small"), pop3_key("unknown-size")});
        CHECK(keys(plan.remove_unread) == std::set<std::string>{pop3_key("big"), pop3_key("stub")});
        CHECK(keys(plan_removal(plan, state, o)) == std::set<std::string>{pop3_key("big"), pop3_key("stub")});
        PlanOptions dry = o;
        dry.dry_run = true;
        CHECK(plan_removal(plan, state, dry).empty());
    }
}

TEST_CASE("plan: max_messages fetches the oldest first; successive runs take every message exactly once") {
    std::vector<RemoteMessage> listing;
    for (std::uint32_t i = 1; i <= 7; ++i) listing.push_back(pop3(i, "m" + std::to_string(i), i == 3 ? 9000 : 100));
    PlanOptions o = opts();
    o.max_messages = 3;
    o.max_size = 1000;
    o.oversize = Oversize::Headers;  // a stub counts as a message fetched
    StateEntries state;
    std::multiset<std::string> taken;
    std::vector<std::size_t> per_run;
    for (int run = 0; run < 5; ++run) {
        auto plan = plan_folder(listing, kPop3, state, run > 0, o);
        std::vector<RemoteMessage> all = plan.fetch;
        all.insert(all.end(), plan.headers_only.begin(), plan.headers_only.end());
        per_run.push_back(all.size());
        CHECK(plan.deferred == 7 - taken.size() - all.size());
        for (const auto& m : all) {
            taken.insert(m.key);
            state.insert_or_assign(m.key, m.size > 1000 ? marked(Delivered::HeadersOnly, m.size) : delivered(kNow));
        }
        if (run == 0)  // the oldest: 1, 2 and the stub of 3
            CHECK(keys(all) == std::set<std::string>{pop3_key("m1"), pop3_key("m2"), pop3_key("m3")});
    }
    CHECK(per_run == std::vector<std::size_t>{3, 3, 1, 0, 0});
    CHECK(taken.size() == 7);
    CHECK(std::set<std::string>(taken.begin(), taken.end()).size() == 7);
}

TEST_CASE("plan: a spent max_messages budget (0 left) fetches nothing new and defers everything") {
    std::vector<RemoteMessage> listing;
    for (std::uint32_t i = 1; i <= 4; ++i) listing.push_back(pop3(i, "m" + std::to_string(i), 100));
    PlanOptions o = opts();
    o.max_messages = 0;  // what the folders before this one left of the account's budget
    auto plan = plan_folder(listing, kPop3, {}, false, o);
    CHECK(plan.fetch.empty());
    CHECK(plan.deferred == 4);
    o.max_messages = 2;
    plan = plan_folder(listing, kPop3, {}, false, o);
    CHECK(keys(plan.fetch) == std::set<std::string>{pop3_key("m1"), pop3_key("m2")});
    CHECK(plan.deferred == 2);
    o.max_messages.reset();  // no limit
    CHECK(plan_folder(listing, kPop3, {}, false, o).fetch.size() == 4);
}

TEST_CASE("plan: max_messages counts what is left after recognition") {
    std::string fa = header_fingerprint(header("a"));
    StateEntries state{{imap_key("INBOX", 1, 1), delivered(kNow - 10 * kDay, 300, fa)}};
    std::vector<RemoteMessage> listing{imap(2, 1, 300), imap(2, 2, 300), imap(2, 3, 300)};
    PlanOptions o = opts();
    o.max_messages = 1;
    auto plan = plan_folder(listing, inbox(2), state, false, o);
    REQUIRE(plan.need_headers);
    CHECK(plan.fetch.size() == 3);  // limited once recognition has run
    std::map<std::uint32_t, std::string> headers{{1, header("a")}, {2, header("b")}, {3, header("c")}};
    auto found = recognise_delivered(plan, inbox(2), state, headers, o);
    REQUIRE(found.size() == 1);
    // The delivery time travels with the recognised message: delete_after counts from the first delivery.
    CHECK(found[0].recorded_at == kNow - 10 * kDay);
    CHECK(keys(plan.fetch) == std::set<std::string>{imap_key("INBOX", 2, 2)});
    CHECK(plan.deferred == 1);
}

TEST_CASE("plan: after a UIDVALIDITY change only whole deliveries vouch; stubs and skipped ones never") {
    std::string fa = header_fingerprint(header("a")), fb = header_fingerprint(header("b"));
    StateEntries state{{imap_key("INBOX", 1, 1), delivered(kNow - 40 * kDay, 300, fa)},
                       {imap_key("INBOX", 1, 2), SeenEntry{5000, fb, {}, false, Delivered::HeadersOnly, kNow - 40 * kDay}}};
    std::vector<RemoteMessage> listing{imap(2, 10, 300), imap(2, 11, 5000)};
    PlanOptions o = opts();
    o.delete_after = 30 * kDay;
    o.max_size = 1000;
    o.oversize = Oversize::Headers;
    auto plan = plan_folder(listing, inbox(2), state, false, o);
    CHECK(plan.recognise_against == std::vector<std::string>{imap_key("INBOX", 1, 1)});
    // Nothing of the new identity expires before it is recorded under it.
    CHECK(plan_removal(plan, state, o).empty());
    std::map<std::uint32_t, std::string> headers{{10, header("a")}, {11, header("b")}};
    auto found = recognise_delivered(plan, inbox(2), state, headers, o);
    REQUIRE(found.size() == 1);
    CHECK(found[0].message.uid == 10);
    CHECK(keys(plan.headers_only) == std::set<std::string>{imap_key("INBOX", 2, 11)});
    // Recorded under the new key with the old time: it expires now, the stub never.
    state.insert_or_assign(imap_key("INBOX", 2, 10), delivered(found[0].recorded_at, 300, fa));
    state.insert_or_assign(imap_key("INBOX", 2, 11), SeenEntry{5000, fb, {}, false, Delivered::HeadersOnly, kNow});
    CHECK(keys(plan_removal(plan, state, o)) == std::set<std::string>{imap_key("INBOX", 2, 10)});
}

TEST_CASE("plan: the oversize stub keeps the header block byte for byte") {
    std::string h = "Subject: x\r\nFrom: a@b\r\n\r\n";
    std::string stub = oversize_stub(h, 123456, 1000);
    CHECK(stub.rfind(h, 0) == 0);
    CHECK(stub.find("123456 bytes") != std::string::npos);
    CHECK(stub.size() > h.size());
    CHECK(stub.substr(stub.size() - 2) == "\r\n");
    // A block without its blank line gets one, so the note is the body.
    CHECK(oversize_stub("Subject: x\r\n", 5, 1).rfind("Subject: x\r\n\r\n[pullmail", 0) == 0);
    CHECK(oversize_stub("Subject: x", 5, 1).rfind("Subject: x\r\n\r\n[pullmail", 0) == 0);
}

namespace {
std::string retention_config(const std::string& lines) {
    return "[accounts.home]\nurl = \"pop3s://pop.example.org\"\nuser = \"u\"\npassword = \"p\"\n"
           "deliver = \"maildir:/m\"\n" + lines;
}
std::string retention_error(const std::string& lines) { return test::config_error(retention_config(lines)); }
}  // namespace

TEST_CASE("config: delete_after, max_size, oversize and max_messages") {
    const ConfigEnv env = test::config_env();
    auto a = parse_config(retention_config("delete_after = \"30d\"\nmax_size = \"10M\"\noversize = \"headers\"\n"
                                           "max_messages = 50\n"),
                          "config.toml", env)
                 .accounts.at(0);
    CHECK(a.delete_after == 30 * kDay);
    CHECK(a.max_size == 10u << 20);
    CHECK(a.oversize == Oversize::Headers);
    CHECK(a.max_messages == 50);
    auto b = parse_config(retention_config("delete_after = \"12h\"\nmax_size = \"20000\"\n"), "config.toml", env)
                 .accounts.at(0);
    CHECK(b.delete_after == 12 * 3600);
    CHECK(b.max_size == 20000u);
    CHECK(b.oversize == Oversize::Skip);
    CHECK(parse_config(retention_config("delete_after = \"2w\"\nmax_size = \"1k\"\n"), "config.toml", env)
              .accounts.at(0).delete_after == 14 * kDay);
    auto d = parse_config(retention_config(""), "config.toml", env).accounts.at(0);
    CHECK(d.delete_after == 0);
    CHECK(d.max_size == 0);
    CHECK(d.max_messages == 0);
    for (const char* bad : {"\"30\"", "\"d\"", "\"0d\"", "\"-3d\"", "\"30 d\"", "\"1y\"", "\"99999999w\""})
        CHECK(retention_error(std::string("delete_after = ") + bad).find("accounts.home.delete_after: must be a duration") !=
              std::string::npos);
    for (const char* bad : {"\"\"", "\"M\"", "\"0\"", "\"10MB\"", "\"1.5M\"", "\"-1\""}) {
        std::string e = retention_error(std::string("max_size = ") + bad);
        CHECK_MESSAGE(e.find("accounts.home.max_size") != std::string::npos, e);
    }
    CHECK(retention_error("oversize = \"drop\"").find("accounts.home.oversize: must be \"skip\", \"headers\" or \"delete\"") !=
          std::string::npos);
    CHECK(retention_error("max_messages = -1").find("accounts.home.max_messages") != std::string::npos);
}

TEST_CASE("plan: adopt records oversize messages too, so no later run reports, stubs or fetches them") {
    // Adoption says the mail now on the server is already where it should
    // be: a message over max_size is no exception.
    std::vector<RemoteMessage> listing{pop3(1, "small", 500), pop3(2, "big", 5000)};
    for (auto action : {Oversize::Skip, Oversize::Headers}) {
        PlanOptions o = opts(true);
        o.max_size = 1000;
        o.oversize = action;
        o.adopt = true;
        StateEntries state;
        auto plan = plan_folder(listing, kPop3, state, false, o);
        CHECK(keys(plan.fetch) == std::set<std::string>{pop3_key("small"), pop3_key("big")});
        CHECK(plan.report_oversize.empty());
        CHECK(plan.headers_only.empty());
        auto found = recognise_delivered(plan, kPop3, state, {}, o);
        CHECK(found.size() == 2);
    }
}
