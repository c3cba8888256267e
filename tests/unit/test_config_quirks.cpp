// Config of the provider quirks (issue 12): delete = "expunge" | "trash",
// skip_special_use = [...].
#include <doctest/doctest.h>

#include "config.h"
#include "error.h"

using namespace pullmail;

namespace {

const char* kBase = "[accounts.g]\nurl = \"imaps://imap.gmail.com\"\nuser = \"u\"\npassword = \"p\"\n"
                    "deliver = \"maildir:/tmp/m\"\n";

Account parse_one(const std::string& extra) {
    ConfigEnv env;
    env.vars["HOME"] = "/home/u";
    auto c = parse_config(std::string(kBase) + extra, "config.toml", env);
    REQUIRE(c.accounts.size() == 1);
    return c.accounts[0];
}

std::string error_of(const std::string& extra) {
    try {
        parse_one(extra);
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Config);
        return e.what();
    }
    FAIL("no error");
    return {};
}

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
