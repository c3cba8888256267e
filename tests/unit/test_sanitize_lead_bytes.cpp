// What fuzz_fetchmailrc (tests/fuzz/) found once the importer's TOML check
// covered every input: sanitize() took a byte 0xF5..0xFF followed by two
// continuation bytes for a three-byte UTF-8 sequence and copied it raw, so
// its result was not UTF-8 (against its contract, text_util.h) and the
// "# fetchmail:" note carrying it made the imported TOML unloadable.
// No UTF-8 sequence starts with 0xF5..0xFF (RFC 3629).
#include <doctest/doctest.h>

#include <string>

#include "text_util.h"

using namespace pullmail;

TEST_CASE("sanitize escapes bytes 0xF5..0xFF even when continuation bytes follow") {
    CHECK(sanitize("a\xf5\x8f\x90z") == "a\\xf5\\x8f\\x90z");
    CHECK(sanitize("\xf8\x88\x80\x80\x80") == "\\xf8\\x88\\x80\\x80\\x80");
    CHECK(sanitize("\xff\xbf\xbf") == "\\xff\\xbf\\xbf");
    // Still kept: real three- and four-byte sequences.
    CHECK(sanitize("\xe2\x82\xac \xf4\x8f\xbf\xbf") == "\xe2\x82\xac \xf4\x8f\xbf\xbf");
}
