// The small text helpers: shell words for suggested commands, split_words,
// append_crlf.
#include <doctest/doctest.h>

#include "text_util.h"

using namespace pullmail;

TEST_CASE("shell_word: plain paths stay as they are, anything else is single-quoted") {
    CHECK(shell_word("/home/u/.config/pullmail/config.toml") == "/home/u/.config/pullmail/config.toml");
    CHECK(shell_word("user@example.org:993,a+b%c") == "user@example.org:993,a+b%c");
    CHECK(shell_word("") == "''");
    CHECK(shell_word("/tmp/my mail") == "'/tmp/my mail'");
    CHECK(shell_word("~/x") == "'~/x'");  // a leading ~ would be expanded by the shell
    CHECK(shell_word("a'b") == "'a'\\''b'");
    CHECK(shell_word("$(rm -rf /)") == "'$(rm -rf /)'");
    CHECK(shell_word("a\nb") == "'a\nb'");
}

TEST_CASE("split_words: runs of spaces are one separator") {
    auto w = split_words("  +OK  1 2 ");
    REQUIRE(w.size() == 3);
    CHECK(w[0] == "+OK");
    CHECK(w[1] == "1");
    CHECK(w[2] == "2");
    CHECK(split_words("").empty());
}

TEST_CASE("append_crlf: bare LF becomes CRLF, also when a chunk ends in CR") {
    std::string out;
    bool last_cr = false;
    append_crlf("a\nb\r", last_cr, out);
    append_crlf("\nc\n", last_cr, out);
    append_crlf("\r\n", last_cr, out);
    CHECK(out == "a\r\nb\r\nc\r\n\r\n");
}

TEST_CASE("percent_encode: controls, spaces, 8-bit bytes, % and the field's separators; decode undoes it") {
    CHECK(percent_encode("Lists/cpp", ":") == "Lists/cpp");
    CHECK(percent_encode("a b:c%d\x7f\xc3\xa9", ":") == "a%20b%3Ac%25d%7F%C3%A9");
    CHECK(percent_encode("x,y", ",") == "x%2Cy");
    for (std::string s : {std::string("a b:c%d\x7f\xc3\xa9"), std::string("\r\n,%,"), std::string()})
        CHECK(percent_decode(percent_encode(s, ":,")) == s);
    CHECK(percent_decode("%4a%4A") == "JJ");
    CHECK(percent_decode("100%") == "100%");  // not an escape: kept
    CHECK(percent_decode("%zz%4") == "%zz%4");
}
