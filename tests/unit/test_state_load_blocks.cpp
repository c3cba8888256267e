// The state file is read a block (256 KiB) at a time (state_journal.cpp,
// read_lines): records that straddle a block boundary, damage past the
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
