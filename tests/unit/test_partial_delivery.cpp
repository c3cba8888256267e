// Per-recipient delivery to relay targets (issue 16): the Partial state
// record, the plan's rule for it, and the recipients each LMTP/SMTP
// transaction reached.
#include <doctest/doctest.h>

#include <set>

#include "smtp_codec.h"
#include "state_journal.h"
#include "sync_plan.h"
#include "plan_support.h"
#include "test_support.h"

using namespace pullmail;
using namespace pullmail::test;

namespace {

RemoteMessage pop3_msg(std::uint32_t n, const std::string& uidl, std::uint64_t size) {
    return test::pop3_listed(n, uidl, size);
}

SmtpReply reply_of(int code) {
    SmtpReply r;
    r.code = code;
    r.lines.push_back(std::to_string(code) + " x");
    return r;
}

SeenEntry partial(std::vector<std::string> rcpts) {
    SeenEntry e{100, "ff", {}, false, Delivered::Partial, 0};
    e.recipients = std::move(rcpts);
    return e;
}

}  // namespace

TEST_CASE("state: a Partial record keeps its recipients across a reload and a rewrite") {
    TempDir d;
    std::string p = d.path + "/acct.state";
    const std::vector<std::string> odd{"a@example.org", "\"x, y%z\"@example.org", "b c@x"};
    {
        StateJournal s(p);
        s.record_intent(pop3_key("m"), "relay m");
        s.record_seen(pop3_key("m"), partial(odd));
        s.record_seen(pop3_key("w"), 5, "ee");
        s.sync();
    }
    for (bool rewritten : {false, true}) {
        StateJournal s(p);
        auto e = s.find(pop3_key("m"));
        REQUIRE(e.has_value());
        CHECK(e->delivered == Delivered::Partial);
        CHECK(e->recipients == odd);
        CHECK(e->where.empty());
        CHECK_FALSE(e->keep_on_server);
        CHECK(s.pending_intents().empty());
        CHECK(s.find(pop3_key("w"))->delivered == Delivered::Whole);
        if (!rewritten) s.compact([](const std::string&) { return true; }, true);
    }
}

TEST_CASE("plan: a Partial message is fetched again for the recipients still owed, never removed") {
    std::vector<RemoteMessage> listing{pop3_msg(1, "a", 100), pop3_msg(2, "b", 100)};
    StateEntries state{{pop3_key("a"), partial({"r1@x"})}, {pop3_key("b"), SeenEntry{100, "-", {}, false}}};
    PlanOptions del;
    del.keep = false;
    auto plan = plan_folder(listing, SourceIdentity{}, state, true, del);
    REQUIRE(plan.fetch.size() == 1);
    CHECK(plan.fetch[0].key == pop3_key("a"));
    REQUIRE(plan.delivered_to.count(pop3_key("a")) == 1);
    CHECK(plan.delivered_to.at(pop3_key("a")) == std::vector<std::string>{"r1@x"});
    auto removed = plan_removal(plan, state, del);
    REQUIRE(removed.size() == 1);
    CHECK(removed[0].key == pop3_key("b"));  // a waits until every recipient has it
    // Once recorded Whole it goes.
    state.insert_or_assign(pop3_key("a"), SeenEntry{100, "ff", {}, false});
    CHECK(plan_removal(plan, state, del).size() == 2);
    // -a sends to everyone: no delivered_to.
    PlanOptions all;
    all.all = true;
    auto again = plan_folder(listing, SourceIdentity{}, state, true, all);
    CHECK(again.fetch.size() == 2);
    CHECK(again.delivered_to.empty());
}

TEST_CASE("transactions: the recipients each one reached (LMTP per recipient, SMTP all accepted)") {
    SmtpTransactions lmtp(true);
    lmtp.begin("m1", {"a", "b", "c"}, false, true);
    for (int c : {250, 250, 450, 250}) lmtp.on_reply(reply_of(c));  // MAIL, a, b (4xx), c
    lmtp.on_reply(reply_of(250));                                   // final for a
    lmtp.on_reply(reply_of(451));                                   // final for c
    auto f = lmtp.take_finished();
    REQUIRE(f.size() == 1);
    CHECK(f[0].result == SmtpOutcome::Result::Temporary);
    CHECK(f[0].delivered_to == std::vector<std::string>{"a"});

    lmtp.begin("m2", {"a", "b"}, true, true);
    for (int c : {250, 250, 250, 250, 250, 250}) lmtp.on_reply(reply_of(c));  // RSET MAIL a b, finals a b
    f = lmtp.take_finished();
    REQUIRE(f.size() == 1);
    CHECK(f[0].result == SmtpOutcome::Result::Delivered);
    CHECK(f[0].delivered_to == std::vector<std::string>{"a", "b"});

    SmtpTransactions smtp(false);
    smtp.begin("m3", {"a", "b"}, false, true);
    for (int c : {250, 450, 250, 250}) smtp.on_reply(reply_of(c));  // MAIL, a (4xx), b, final
    f = smtp.take_finished();
    REQUIRE(f.size() == 1);
    CHECK(f[0].result == SmtpOutcome::Result::Temporary);
    CHECK(f[0].delivered_to == std::vector<std::string>{"b"});
}
