// --shard K/N: a stable split of the accounts (runner.h).
#include <doctest/doctest.h>

#include <algorithm>
#include <map>

#include "error.h"
#include "runner.h"

using namespace pullmail;

TEST_CASE("shard: every account in exactly one shard, stable when the list changes") {
    std::vector<Account> accounts(200);
    for (std::size_t i = 0; i < accounts.size(); ++i) accounts[i].name = "acct-" + std::to_string(i * 7919);
    std::vector<const Account*> all;
    for (const auto& a : accounts) all.push_back(&a);
    for (unsigned n : {1u, 2u, 3u, 8u}) {
        std::map<const Account*, int> seen;
        std::size_t biggest = 0;
        for (unsigned k = 1; k <= n; ++k) {
            auto mine = shard_of(all, k, n);
            biggest = std::max(biggest, mine.size());
            for (const Account* a : mine) ++seen[a];
        }
        CHECK(seen.size() == all.size());
        CHECK(std::all_of(seen.begin(), seen.end(), [](auto& kv) { return kv.second == 1; }));
        if (n > 1) CHECK(biggest < all.size());  // a split, not everything in one shard
    }
    // Reversed and with accounts removed: each remaining one stays in its shard.
    std::vector<const Account*> other(all.rbegin(), all.rend() - 50);
    for (unsigned k = 1; k <= 4; ++k) {
        auto before = shard_of(all, k, 4);
        for (const Account* a : shard_of(other, k, 4))
            CHECK(std::find(before.begin(), before.end(), a) != before.end());
    }
}

TEST_CASE("shard: K/N is checked") {
    CHECK(parse_shard("2/8") == std::pair<unsigned, unsigned>{2, 8});
    for (const char* bad : {"0/3", "4/3", "1/0", "1", "a/b", "1/2x", ""}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(parse_shard(bad), Error);
    }
}
