// Config of the provider quirks (issue 12): delete = "expunge" | "trash",
// skip_special_use = [...].
#include <doctest/doctest.h>

#include "config.h"
#include "config_support.h"
#include "error.h"

using namespace pullmail;

namespace {

const std::string kBase = "[accounts.g]\nurl = \"imaps://imap.gmail.com\"\nuser = \"u\"\npassword = \"p\"\n"
                    "deliver = \"maildir:/tmp/m\"\n";

Account parse_one(const std::string& extra) { return test::parse_one_account(kBase + extra); }

std::string error_of(const std::string& extra) { return test::config_error(kBase + extra); }

}  // namespace

TEST_CASE("config: delete and skip_special_use") {
    Account d = parse_one("");
    CHECK(d.delete_mode == Account::DeleteMode::Expunge);
    CHECK(d.skip_special_use == std::vector<std::string>{"all", "junk", "trash"});
    CHECK(parse_one("delete = \"trash\"\n").delete_mode == Account::DeleteMode::Trash);
    CHECK(parse_one("delete = \"expunge\"\n").delete_mode == Account::DeleteMode::Expunge);
    CHECK(parse_one("skip_special_use = []\n").skip_special_use.empty());
    CHECK(parse_one("skip_special_use = [\"\\\\All\", \"Sent\"]\n").skip_special_use ==
          std::vector<std::string>{"all", "sent"});
    CHECK(error_of("delete = \"remove\"\n").find("must be \"expunge\" or \"trash\"") != std::string::npos);
    CHECK(error_of("skip_special_use = [\"Papierkorb\"]\n").find("unknown SPECIAL-USE attribute") !=
          std::string::npos);
}
