// The state file is read through one 256 KiB buffer (state_journal.cpp,
// read_lines), grown only for a longer line: records that straddle a block
// boundary, a record longer than the buffer, damage past the
// first block and a torn tail of a large file behave as in a small one.
#include <doctest/doctest.h>

#include <string>

#include "error.h"
#include "state_journal.h"
#include "test_support.h"

using namespace pullmail;
using namespace pullmail::test;

namespace {
constexpr int kRecords = 24000;  // about 1.3 MB: five blocks and more

std::string big_state(const std::string& p) {
    {
        StateJournal s(p);
        for (int i = 0; i < kRecords; ++i)
            s.record_seen(pop3_key("uidl-" + std::to_string(i)), 1000 + i, "fp" + std::to_string(i));
        s.sync();
    }
    return read_file(p);
}
}  // namespace

TEST_CASE("state: a file of many blocks loads every record, each whole") {
    TempDir d;
    std::string p = d.path + "/acct.state";
    std::string data = big_state(p);
    REQUIRE(data.size() > 4 * 256 * 1024);
    StateJournal s(p);
    CHECK(s.load_warning().empty());
    REQUIRE(s.entries().size() == kRecords);
    for (int i = 0; i < kRecords; i += 997) {
        auto e = s.find(pop3_key("uidl-" + std::to_string(i)));
        REQUIRE(e);
        CHECK(e->size == static_cast<std::uint64_t>(1000 + i));
        CHECK(e->fingerprint == "fp" + std::to_string(i));
    }
}

TEST_CASE("state: damage past the first block is an error; a torn tail of a big file is a warning") {
    TempDir d;
    std::string p = d.path + "/acct.state";
    const std::string data = big_state(p);
    SUBCASE("a bit flipped in a record that straddles the second block boundary") {
        std::string bad = data;
        std::size_t at = 2 * 256 * 1024;
        REQUIRE(bad[at] != '\n');
        bad[at] ^= 0x01;
        write_file(p, bad);
        CHECK_THROWS_WITH_AS(StateJournal{p}, doctest::Contains("is damaged at line"), Error);
    }
    SUBCASE("the last record cut in half") {
        std::size_t last = data.rfind('\n', data.size() - 2) + 1;
        write_file(p, data.substr(0, last + (data.size() - last) / 2));
        StateJournal s(p);
        CHECK(s.load_warning().find("partial record") != std::string::npos);
        CHECK(s.entries().size() == kRecords - 1);
    }
}

TEST_CASE("state: a record longer than the read buffer loads whole, and so do the records around it") {
    // The loader's buffer grows (here twice) only for a line longer than
    // itself; the records before and after it are read as usual.
    TempDir d;
    std::string p = d.path + "/acct.state";
    const std::string where(700 * 1024, 'w');
    {
        StateJournal s(p);
        s.sync();  // the file exists: the records are appended as text lines
        s.record_seen(pop3_key("before"), 10, "fp-before");
        s.record_seen(pop3_key("long"), 20, "fp-long", where);
        for (int i = 0; i < 5000; ++i) s.record_seen(pop3_key("after-" + std::to_string(i)), 30 + i, "fp");
        s.sync();
    }
    REQUIRE(read_file(p).size() > 3 * 256 * 1024);
    StateJournal s(p);
    CHECK(s.load_warning().empty());
    CHECK(s.entries().size() == 5002);
    auto e = s.find(pop3_key("long"));
    REQUIRE(e);
    CHECK(e->where == where);
    CHECK(e->size == 20);
    REQUIRE(s.find(pop3_key("before")));
    auto last = s.find(pop3_key("after-4999"));
    REQUIRE(last);
    CHECK(last->size == 30 + 4999);
}
