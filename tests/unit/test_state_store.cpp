// The compact store of seen entries (state_store.h) against a plain map:
// every insert, replace and erase, in an order that makes long probe runs
// and wraps around the index, leaves the same entries, field for field.
#include <doctest/doctest.h>

#include <map>
#include <random>
#include <stdexcept>
#include <string>

#include "state_store.h"

using namespace pullmail;

namespace {

bool same(const SeenEntry& a, const SeenEntry& b) {
    return a.size == b.size && a.fingerprint == b.fingerprint && a.where == b.where &&
           a.keep_on_server == b.keep_on_server && a.delivered == b.delivered && a.recorded_at == b.recorded_at &&
           a.recipients == b.recipients;
}

void check_equal(const SeenStore& s, const std::map<std::string, SeenEntry>& want) {
    REQUIRE(s.size() == want.size());
    for (const auto& [k, e] : want) {
        auto got = s.get(k);
        REQUIRE(got.has_value());
        CHECK(same(*got, e));
        auto info = s.info(k);
        REQUIRE(info.has_value());
        CHECK(info->size == e.size);
        CHECK(info->has_fingerprint == (e.fingerprint != "-"));
    }
    std::size_t n = 0;
    s.for_each([&](std::string_view k, const SeenView& v) {
        ++n;
        auto it = want.find(std::string(k));
        REQUIRE(it != want.end());
        CHECK(v.fingerprint == it->second.fingerprint);
    });
    CHECK(n == want.size());
    std::size_t iterated = 0;
    for (const auto& [k, e] : s) {
        ++iterated;
        CHECK(same(e, want.at(k)));
    }
    CHECK(iterated == want.size());
}

SeenEntry entry_for(std::mt19937& rng, int i) {
    static const char* kFps[] = {"-", "0123456789abcdef0123456789abcdef", "0123456789ABCDEF0123456789ABCDEF",
                                 "t0123456789abcdef0123456789abcde", "ff", "0123456789abcdef0123456789abcdeg"};
    SeenEntry e{static_cast<std::uint64_t>(rng() % 100000), kFps[rng() % 6], {}, rng() % 5 == 0,
                static_cast<Delivered>(rng() % 4), static_cast<std::int64_t>(1700000000 + i)};
    if (e.delivered == Delivered::Partial)
        e.recipients = {"a@x", "b,c@y%"};
    else if (rng() % 3 == 0)
        e.where = "appenduid:9:" + std::to_string(i);
    return e;
}

}  // namespace

TEST_CASE("state store: inserts, replacements and erasures match a map") {
    std::mt19937 rng(7);
    SeenStore s;
    std::map<std::string, SeenEntry> want;
    for (int round = 0; round < 6; ++round) {
        for (int i = 0; i < 3000; ++i) {
            std::string key = "pop3:" + std::to_string(rng() % 4000);
            switch (rng() % 3) {
                case 0:
                case 1: {
                    SeenEntry e = entry_for(rng, i);
                    s.insert_or_assign(key, e);
                    want[key] = e;
                    break;
                }
                case 2:
                    CHECK(s.erase(key) == (want.erase(key) == 1));
                    CHECK_FALSE(s.contains(key));
                    break;
            }
        }
        check_equal(s, want);
    }
    // Erase almost everything: the store repacks and stays right.
    for (auto it = want.begin(); it != want.end();) {
        if (rng() % 10 != 0) {
            CHECK(s.erase(it->first));
            it = want.erase(it);
        } else {
            ++it;
        }
    }
    check_equal(s, want);
    CHECK_FALSE(s.contains("pop3:none"));
    CHECK_FALSE(s.info("pop3:none").has_value());
    CHECK_THROWS_AS(s.at("pop3:none"), std::out_of_range);
    s.clear();
    CHECK(s.empty());
    CHECK_FALSE(s.erase("pop3:1"));
}

TEST_CASE("state store: a fingerprint comes back byte for byte, packed or not") {
    SeenStore s{{"pop3:a", SeenEntry{1, "00ff00ff00ff00ff00ff00ff00ff00ff", {}, false}},
                {"pop3:b", SeenEntry{2, "00FF00FF00FF00FF00FF00FF00FF00FF", {}, false}},
                {"pop3:c", SeenEntry{3, "t00ff00ff00ff00ff00ff00ff00ff00f", {}, false}},
                {"pop3:d", SeenEntry{4, "-", {}, false}}};
    CHECK(s.at("pop3:a").fingerprint == "00ff00ff00ff00ff00ff00ff00ff00ff");
    CHECK(s.at("pop3:b").fingerprint == "00FF00FF00FF00FF00FF00FF00FF00FF");
    CHECK(s.at("pop3:c").fingerprint == "t00ff00ff00ff00ff00ff00ff00ff00f");
    CHECK(s.at("pop3:d").fingerprint == "-");
    CHECK_FALSE(s.info("pop3:d")->has_fingerprint);
    CHECK(s.info("pop3:a")->has_fingerprint);
}
