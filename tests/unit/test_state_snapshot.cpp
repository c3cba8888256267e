// Unit tests for the packed seen entries of a rewritten state file (Z records).
#include <doctest/doctest.h>

#include <cstdio>
#include <map>
#include <random>
#include <tuple>

#include "error.h"
#include "message_key.h"
#include "state_journal.h"
#include "state_snapshot.h"
#include "test_support.h"
#include "text_util.h"

using namespace pullmail;
using namespace pullmail::test;

namespace {

using Fields = std::tuple<std::uint64_t, std::int64_t, int, bool, std::string, std::string>;

Fields fields_of(const SeenInfo& i, std::string_view fp, std::string_view where) {
    return {i.size, i.recorded_at, static_cast<int>(i.delivered), i.keep_on_server, std::string(fp),
            std::string(where)};
}

std::map<std::string, Fields> decode_all(const std::vector<std::string>& records) {
    std::map<std::string, Fields> out;
    for (const auto& r : records) {
        REQUIRE(r.rfind("Z ", 0) == 0);
        CHECK(r.find('\n') == std::string::npos);  // one line, whatever deflate wrote
        bool ok = read_snapshot(std::string_view(r).substr(2), [&](std::string_view k, const SeenInfo& i,
                                                                   std::string_view fp, std::string_view w,
                                                                   bool raw) {
            std::string text(fp);
            if (raw) {  // the 16 bytes of a 32-hex-digit fingerprint
                REQUIRE(fp.size() == 16);
                text.clear();
                for (unsigned char c : fp) text += "0123456789abcdef"[c >> 4], text += "0123456789abcdef"[c & 15];
            }
            out[std::string(k)] = fields_of(i, text, w);
        });
        CHECK(ok);
    }
    return out;
}

std::string hex32(std::mt19937_64& rng) {
    char buf[33];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                  static_cast<unsigned long long>(rng()));
    return buf;
}

std::string checked(const std::string& record) {
    char crc[9];
    std::snprintf(crc, sizeof crc, "%08x", crc32(record));
    return std::string(crc) + " " + record + "\n";
}

}  // namespace

TEST_CASE("snapshot: entries come back exactly, in blocks, whatever their fields") {
    std::mt19937_64 rng(7);
    std::map<std::string, Fields> want;
    std::vector<std::string> records;
    SnapshotWriter w;
    const char* fps[] = {"-", "", "ABCDEF", "0123456789abcdef0123456789abcdeF"};  // text, not 16 bytes
    std::int64_t extreme[] = {INT64_MIN, INT64_MAX, -5, 0, 1};
    for (int i = 0; i < 20000; ++i) {
        std::string key = i % 7 == 0 ? imap_key("Lists/a b", 42, i) : pop3_key("UID" + std::to_string(i) + "-x\x01\r");
        std::string fp = i % 5 == 0 ? fps[i % 4] : hex32(rng);
        std::string where = i % 3 == 0 ? "appenduid:9:" + std::to_string(i) : "";
        auto d = static_cast<Delivered>(i % 11 == 0 ? i % 4 : 0);
        if (d == Delivered::Partial) where = "rcpt:a@b,c%2Cd";
        SeenInfo info{static_cast<std::uint64_t>(rng() >> (i % 64)), i % 13 == 0 ? extreme[i % 5] : 1764690000 - i % 17,
                      d, i % 9 == 0, fp != "-"};
        w.add(key, SeenView{info, fp, where});
        want[key] = fields_of(info, fp, where);
        if (w.full()) records.push_back(w.take());
    }
    records.push_back(w.take());
    CHECK(records.size() > 3);  // several blocks, each starting afresh
    CHECK(decode_all(records) == want);
}

TEST_CASE("snapshot: a record that does not decode exactly is refused, not half read") {
    SnapshotWriter w;
    for (int i = 0; i < 50; ++i)
        w.add(pop3_key("k" + std::to_string(i)), SeenView{SeenInfo{100, 1000, Delivered::Whole, false, false}, "-", ""});
    const std::string good = w.take().substr(2);
    auto none = [](std::string_view, const SeenInfo&, std::string_view, std::string_view, bool) {};
    REQUIRE(read_snapshot(good, none));
    auto sp = good.find(' ', good.find(' ') + 1);
    CHECK_FALSE(read_snapshot("51" + good.substr(2), none));                  // more entries than packed
    CHECK_FALSE(read_snapshot("49" + good.substr(2), none));                  // fewer: bytes left over
    CHECK_FALSE(read_snapshot("50 99999999 " + good.substr(sp + 1), none));   // larger than any block
    CHECK_FALSE(read_snapshot(good.substr(0, good.size() - 1), none));        // cut short
    CHECK_FALSE(read_snapshot(good + "\x01", none));                          // a dangling escape
    CHECK_FALSE(read_snapshot("50", none));
    CHECK_FALSE(read_snapshot("x y z", none));
    for (std::size_t i = sp + 1; i < good.size(); i += 7) {  // any byte changed: refused or read in full
        std::string bad = good;
        bad[i] = static_cast<char>(bad[i] ^ 0x5a);
        int n = 0;
        bool ok = read_snapshot(bad, [&](std::string_view, const SeenInfo&, std::string_view, std::string_view, bool) { ++n; });
        if (ok) CHECK(n == 50);
    }
}

TEST_CASE("state: a rewrite packs the seen entries, about 20 bytes each, and they load back") {
    TempDir d;
    std::string p = d.path + "/acct.state";
    std::mt19937_64 rng(3);
    std::map<std::string, std::string> fp_of;
    {
        StateJournal s(p);
        for (int i = 1; i <= 30000; ++i) {
            char uidl[17];
            std::snprintf(uidl, sizeof uidl, "%08X%08X", i, 1764600000);
            std::string fp = hex32(rng);
            s.record_seen(pop3_key(uidl), 800 + rng() % 2000, fp);
            fp_of[pop3_key(uidl)] = fp;
        }
        s.record_intent(pop3_key("pending"), "maildir new/x");
        s.compact([](const std::string&) { return true; });  // a first fetch's journal: rewritten
    }
    std::string text = read_file(p);
    CHECK(text.rfind("pullmail-state 4 ", 0) == 0);
    CHECK(text.find(" S pop3:") == std::string::npos);
    CHECK(text.find(" Z ") != std::string::npos);
    CHECK(text.size() < 30000 * 22);  // mpop's file: 17 bytes a message
    MESSAGE("packed state of 30000 messages: " << text.size() << " bytes");
    StateJournal s(p);
    CHECK(s.entries().size() == 30000);
    for (const auto& [k, fp] : fp_of) {
        auto e = s.find(k);
        REQUIRE(e);
        CHECK(e->fingerprint == fp);
    }
    REQUIRE(s.pending_intents().size() == 1);
    CHECK(StateJournal::repair(p).outcome == StateJournal::Repair::Outcome::Healthy);
}

TEST_CASE("state: a packed record that does not decode is damage, and repair drops only it") {
    TempDir d;
    std::string p = d.path + "/acct.state";
    SnapshotWriter w;
    w.add(pop3_key("a"), SeenView{SeenInfo{5, 100, Delivered::Whole, false, false}, "-", ""});
    std::string good = w.take();
    std::string bad = "Z 2" + good.substr(3);  // a valid checksum over a wrong count
    write_file(p, "pullmail-state 4 0123456789abcdef0123456789abcdef\n" + checked(bad) + checked(good) +
                      checked("S pop3:b 7 - - - 100"));
    CHECK_THROWS_AS(StateJournal{p}, Error);
    try {
        StateJournal s(p);
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::State);
        CHECK(std::string(e.what()).find("line 2") != std::string::npos);
    }
    auto r = StateJournal::repair(p);
    CHECK(r.outcome == StateJournal::Repair::Outcome::Rebuilt);
    CHECK(r.records == 2);
    StateJournal s(p);
    CHECK(s.seen(pop3_key("a")));
    CHECK(s.seen(pop3_key("b")));
}

TEST_CASE("state: a version 3 file is read as it is and rewritten packed") {
    TempDir d;
    std::string p = d.path + "/acct.state";
    write_file(p, "pullmail-state 3 0123456789abcdef0123456789abcdef\n" + checked("S pop3:a 100 ff - - 1000") +
                      checked("S pop3:b 7 0123456789abcdef0123456789abcdef appenduid:9:4 keep 2000") +
                      checked("V INBOX 42"));
    {
        StateJournal s(p);
        CHECK(s.find(pop3_key("b"))->where == "appenduid:9:4");
    }
    std::string text = read_file(p);
    CHECK(text.rfind("pullmail-state 4 ", 0) == 0);
    CHECK(text.find(" Z 2 ") != std::string::npos);
    StateJournal s(p);
    auto a = s.find(pop3_key("a")), b = s.find(pop3_key("b"));
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->size == 100);
    CHECK(a->fingerprint == "ff");
    CHECK(a->recorded_at == 1000);
    CHECK(b->fingerprint == "0123456789abcdef0123456789abcdef");
    CHECK(b->keep_on_server);
    CHECK(b->recorded_at == 2000);
    CHECK(s.uidvalidity("INBOX") == 42u);
}
