// Unit tests for the progress line text and the Maildir++ folder names.
#include <doctest/doctest.h>

#include "deliver.h"
#include "error.h"
#include "progress.h"

using namespace pullmail;

TEST_CASE("progress line: messages, bytes, rate and time left, cut to the width") {
    CHECK(progress_line("home", 0, 0, 0, 0, 0, 200) == "pullmail: home: checking for new mail");
    CHECK(progress_line("home", 40, 8000000, 12, 2000000, 2000, 200) ==
          "pullmail: home: 12/40 messages, 2.0 MB of 8.0 MB, 1.0 MB/s, 0:06 left");
    CHECK(progress_line("home", 40, 8000000, 12, 2000000, 200, 200) ==
          "pullmail: home: 12/40 messages, 2.0 MB of 8.0 MB");  // too early for a rate
    CHECK(progress_line("home", 3, 900, 3, 900, 1000, 200) == "pullmail: home: 3/3 messages, 900 B of 900 B, 900 B/s");
    CHECK(progress_line("home", 1, 36001000, 0, 1000, 1000, 200).ends_with(", 10:00:00 left"));
    CHECK(progress_line("home", 40, 8000000, 12, 2000000, 2000, 20) == "pullmail: home: 12/4");
    CHECK(human_bytes(999) == "999 B");
    CHECK(human_bytes(1500) == "1.5 kB");
    CHECK(human_bytes(2500000000ull) == "2.5 GB");
}

TEST_CASE("progress: without a display nothing is counted") {
    progress_begin("nobody");
    CHECK(progress_for("nobody") == nullptr);
    progress_end("nobody");
}

TEST_CASE("maildir++ folder directories as Dovecot names them") {
    CHECK(maildirpp_dir_name("") == ".");
    CHECK(maildirpp_dir_name("INBOX") == ".");
    CHECK(maildirpp_dir_name("inbox") == ".");
    CHECK(maildirpp_dir_name("Lists/cpp") == ".Lists.cpp");
    CHECK(maildirpp_dir_name("INBOX/Sub") == ".INBOX.Sub");
    CHECK(maildirpp_dir_name("Entwürfe") == ".Entw&APw-rfe");
    CHECK(maildirpp_dir_name("R&D") == ".R&-D");
    CHECK(maildirpp_dir_name("v1.2/notes") == ".v1\\2e2.notes");
    CHECK(maildirpp_dir_name("back\\slash") == ".back\\5cslash");
    CHECK(maildirpp_dir_name("~home/~x") == ".\\7ehome.~x");
    CHECK(maildirpp_dir_name("Sent Items") == ".Sent Items");
    CHECK_THROWS_AS(maildirpp_dir_name("a//b"), Error);
    CHECK_THROWS_AS(maildirpp_dir_name(".."), Error);
}
