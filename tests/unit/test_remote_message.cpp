// RemoteMessage's IMAP details are shared by copies and copied on write:
// a change to one message never shows in another (retrieval.h).
#include <doctest/doctest.h>

#include "retrieval.h"
#include "sync_plan.h"

using namespace pullmail;

TEST_CASE("RemoteMessage: copies share the folder, a change to one stays in it") {
    RemoteMessage listed;
    listed.set_folder("INBOX");
    RemoteMessage a, b;
    a.share_details(listed);
    b.share_details(listed);
    RemoteMessage fetched = a;
    fetched.set_flags({"\\Seen"});
    fetched.set_internal_date("01-Jan-2024 10:00:00 +0000");
    CHECK(fetched.folder() == "INBOX");
    CHECK(fetched.flags() == std::vector<std::string>{"\\Seen"});
    CHECK(a.flags().empty());
    CHECK(a.internal_date().empty());
    CHECK(b.flags().empty());
    b.set_folder("Archive");
    CHECK(b.folder() == "Archive");
    CHECK(a.folder() == "INBOX");
    CHECK(listed.folder() == "INBOX");
    CHECK(RemoteMessage{}.folder().empty());
    CHECK(sizeof(RemoteMessage) <= 96);  // a listing of 1,000,000 messages within 200 MB
}

TEST_CASE("MessageRefs: points into the listing, copies slices in order") {
    std::vector<RemoteMessage> listing(10);
    for (std::uint32_t i = 0; i < 10; ++i) listing[i].number = i + 1;
    MessageRefs refs;
    for (const auto& m : listing)
        if (m.number % 2) refs.push_back(m);
    REQUIRE(refs.size() == 5);
    CHECK(&refs[0] == &listing[0]);
    CHECK(refs[4].number == 9);
    auto slice = refs.copy(3, 4096);
    REQUIRE(slice.size() == 2);
    CHECK(slice[0].number == 7);
    CHECK(slice[1].number == 9);
    CHECK(refs.copy(5, 1).empty());
    std::vector<std::uint32_t> seen;
    for (const auto& m : refs) seen.push_back(m.number);
    CHECK(seen == std::vector<std::uint32_t>{1, 3, 5, 7, 9});
    refs.resize(2);
    CHECK(std::vector<RemoteMessage>(refs).size() == 2);
}
