// Daemon timing rules (daemon_schedule.h) with a hand-moved clock, and the
// IDLE/NOTIFY decoder (imap_idle.h): no test sleeps.
#include <doctest/doctest.h>

#include "config.h"
#include "daemon_schedule.h"
#include "error.h"
#include "imap_idle.h"

using namespace pullmail;
using namespace std::chrono_literals;

TEST_CASE("backoff doubles from 1 s up to the cap, with jitter in [d/2, d]") {
    double r = 0.0;
    Backoff b(60s, [&] { return r; });
    r = 0.999999;
    CHECK(b.next() <= 1000ms);
    CHECK(b.next() > 1900ms);
    CHECK(b.next() > 3900ms);
    r = 0.0;
    CHECK(b.next() == 4000ms);  // 8 s drawn at the bottom: half of it
    for (int i = 0; i < 40; ++i) CHECK(b.next() <= 60000ms);  // capped, no overflow after many attempts
    r = 0.999999;
    CHECK(b.next() > 59000ms);
    b.reset();
    CHECK(b.next() <= 1000ms);
}

TEST_CASE("an account schedule: interval after success, backoff after a drop, interval after a refused login") {
    ManualClock clock;
    AccountSchedule s(clock, 300s, [] { return 0.5; });
    CHECK(s.is_due());  // the first sync at once
    s.synced();
    CHECK_FALSE(s.is_due());
    clock.advance(299s);
    CHECK_FALSE(s.is_due());
    clock.advance(1s);
    CHECK(s.is_due());

    auto d1 = s.failed_temporarily();
    auto d2 = s.failed_temporarily();
    auto d3 = s.failed_temporarily();
    CHECK(d1 == 750ms);
    CHECK(d2 == 1500ms);
    CHECK(d3 == 3000ms);
    CHECK_FALSE(s.is_due());
    clock.advance(3000ms);
    CHECK(s.is_due());
    for (int i = 0; i < 20; ++i) CHECK(s.failed_temporarily() <= 300000ms);  // never beyond the interval

    s.auth_failed();  // a wrong password: not a tight loop
    clock.advance(299s);
    CHECK_FALSE(s.is_due());
    clock.advance(1s);
    CHECK(s.is_due());
    s.synced();  // recovered: the backoff starts over
    CHECK(s.failed_temporarily() == 750ms);

    s.synced();
    s.poll_now();  // SIGUSR1
    CHECK(s.is_due());
}

TEST_CASE("poll interval: the account's, else -d's, else 5 minutes") {
    CHECK(poll_interval_of(60, 120) == 60s);
    CHECK(poll_interval_of(0, 120) == 120s);
    CHECK(poll_interval_of(0, 0) == 300s);
}

TEST_CASE("a suspend (wall clock moves, monotonic does not) is a clock jump; normal time is not") {
    ManualClock clock;
    ClockJumpDetector j(clock, 30s);
    clock.advance(10min);
    CHECK_FALSE(j.jumped());
    clock.suspend(2h);
    CHECK(j.jumped());
    CHECK_FALSE(j.jumped());  // reported once
    clock.suspend(20s);       // NTP slews and small steps are tolerated
    CHECK_FALSE(j.jumped());
}

TEST_CASE("IDLE decoder: continuation, EXISTS, BYE, completion, any chunking") {
    std::string stream = "+ idling\r\n* 4 EXISTS\r\n* 1 RECENT\r\n* 2 EXPUNGE\r\n* 3 FETCH (FLAGS (\\Seen))\r\n"
                         "* OK Still here\r\nW1 OK Idle completed (0.001 + 1.5 secs).\r\n* BYE Server shutting down.\r\n";
    for (std::size_t step : {std::size_t{1}, std::size_t{3}, stream.size()}) {
        IdleDecoder d;
        std::vector<IdleEvent> ev;
        for (std::size_t i = 0; i < stream.size(); i += step)
            for (auto& e : d.feed(std::string_view(stream).substr(i, step))) ev.push_back(e);
        REQUIRE(ev.size() == 8);
        CHECK(ev[0].kind == IdleEvent::Kind::Continuation);
        CHECK(ev[1].kind == IdleEvent::Kind::Exists);
        CHECK(ev[1].number == 4);
        CHECK(ev[1].wakes());
        CHECK(ev[2].kind == IdleEvent::Kind::Other);
        CHECK_FALSE(ev[2].wakes());
        CHECK(ev[3].kind == IdleEvent::Kind::Expunge);
        CHECK(ev[4].kind == IdleEvent::Kind::Fetch);
        CHECK(ev[5].kind == IdleEvent::Kind::Other);
        CHECK(ev[6].kind == IdleEvent::Kind::Tagged);
        CHECK(ev[6].tag == "W1");
        CHECK(ev[6].status == "OK");
        CHECK(ev[7].kind == IdleEvent::Kind::Bye);
    }
}

TEST_CASE("NOTIFY: STATUS of another folder names it, quoted, atom or literal") {
    IdleDecoder d;
    auto ev = d.feed("* STATUS \"Lists.cpp\" (MESSAGES 3 UIDNEXT 9)\r\n* STATUS INBOX (MESSAGES 1)\r\n"
                     "* STATUS {5}\r\nA \"b\" (UIDNEXT 2)\r\n");
    REQUIRE(ev.size() == 3);
    CHECK(ev[0].kind == IdleEvent::Kind::Status);
    CHECK(ev[0].mailbox == "Lists.cpp");
    CHECK(ev[0].wakes());
    CHECK(ev[1].mailbox == "INBOX");
    CHECK(ev[2].kind == IdleEvent::Kind::Status);
    CHECK(ev[2].mailbox == "A \"b\"");
}

TEST_CASE("IDLE decoder refuses a huge literal instead of buffering it") {
    IdleDecoder d;
    CHECK_THROWS_AS(d.feed("* STATUS {99999999}\r\n"), Error);
}

TEST_CASE("IDLE decoder refuses many literals in one response before they add up") {
    IdleDecoder d;
    const std::string small = "{15000}\r\n" + std::string(15000, 'x');
    std::string held;  // four literals of one response within the limit together
    for (int i = 0; i < 4; ++i) held += " " + small;
    CHECK_NOTHROW(d.feed("* 1 FETCH (X" + held + ")\r\n"));
    const std::string lit = "{60000}\r\n" + std::string(60000, 'x');
    IdleDecoder hostile;
    std::string many = "* 1 FETCH (X";
    for (int i = 0; i < 10; ++i) many += " " + lit;
    CHECK_THROWS_AS(hostile.feed(many), Error);
}

TEST_CASE("NOTIFY SET names every mailbox and asks for new and expunged messages") {
    CHECK(notify_set_command({"INBOX", "\"Lists.cpp\""}) ==
          "NOTIFY SET (mailboxes (INBOX \"Lists.cpp\") (MessageNew MessageExpunge))");
}

TEST_CASE("config: poll_interval and idle per account and in [defaults]; out of range refused") {
    ConfigEnv env;
    env.vars["HOME"] = "/home/u";
    const std::string acc = "url = \"imaps://h\"\nuser = \"u\"\npassword = \"p\"\ndeliver = \"maildir:/m\"\n";
    Config c = parse_config("[defaults]\npoll_interval = 120\n[accounts.a]\n" + acc + "idle = false\n[accounts.b]\n" +
                                acc + "poll_interval = 30\n[accounts.c]\n" + acc,
                            "config.toml", env);
    REQUIRE(c.accounts.size() == 3);
    CHECK(c.accounts[0].poll_interval == 120);
    CHECK_FALSE(c.accounts[0].idle);
    CHECK(c.accounts[1].poll_interval == 30);
    CHECK(c.accounts[1].idle);
    Config d = parse_config("[accounts.c]\n" + acc, "config.toml", env);
    CHECK(d.accounts[0].poll_interval == 0);  // 0: from -d, else 300 (poll_interval_of)
    CHECK(d.accounts[0].idle);
    CHECK_THROWS_AS(parse_config("[accounts.a]\n" + acc + "poll_interval = 0\n", "config.toml", env), Error);
    CHECK_THROWS_AS(parse_config("[accounts.a]\n" + acc + "idle = 1\n", "config.toml", env), Error);
}
