// Tests for imap_codec: response framing with literals under every chunking,
// value and status-line parsing against RFC 3501/9051 examples, modified
// UTF-7, astrings and UID sets.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "error.h"
#include "test_support.h"
#include "imap_codec.h"

using namespace pullmail;
using namespace pullmail::test;
using namespace std::string_literals;

namespace {

// Records events as strings. Consecutive text calls are merged, and so are
// consecutive literal data calls, and empty text is dropped: the contract
// leaves chunk boundaries open, so only the merged stream is meaningful.
struct ImapRecorder : ImapEvents {
    std::vector<std::string> events;
    std::size_t literal_calls = 0;
    std::size_t empty_literal_calls = 0;
    enum class Last { Other, Text, Data } last = Last::Other;

    void on_text(std::string_view text) override {
        if (text.empty()) return;
        if (last == Last::Text) {
            events.back().append(text);
        } else {
            events.push_back("T|" + std::string(text));
        }
        last = Last::Text;
    }
    void on_literal_begin(std::uint64_t size) override {
        events.push_back("LIT " + std::to_string(size));
        last = Last::Other;
    }
    void on_literal_data(std::string_view chunk) override {
        ++literal_calls;
        if (chunk.empty()) ++empty_literal_calls;
        if (last == Last::Data) {
            events.back().append(chunk);
        } else {
            events.push_back("D|" + std::string(chunk));
        }
        last = Last::Data;
    }
    void on_literal_end() override {
        events.push_back("LIT END");
        last = Last::Other;
    }
    void on_response_end() override {
        events.push_back("END");
        last = Last::Other;
    }
};

std::vector<std::string> run(std::string_view wire, const std::vector<std::size_t>& cuts,
                             bool* idle_at_end = nullptr) {
    ImapResponseParser parser;
    ImapRecorder rec;
    feed_in_pieces(parser, wire, cuts, rec);
    CHECK(rec.empty_literal_calls == 0);
    if (idle_at_end) *idle_at_end = parser.idle();
    return rec.events;
}

// Whole, byte by byte, every two-chunk split, and random multi-chunk splits
// must all give the same merged stream.
void check_all_chunkings(std::string_view wire, const std::vector<std::string>& expected) {
    CHECK(run(wire, {}) == expected);
    std::vector<std::size_t> every;
    for (std::size_t i = 1; i < wire.size(); ++i) every.push_back(i);
    CHECK(run(wire, every) == expected);
    for (std::size_t i = 0; i <= wire.size(); ++i) {
        CAPTURE(i);
        CHECK(run(wire, {i}) == expected);
    }
    std::mt19937 rng(3501);
    for (int round = 0; round < 50 && wire.size() > 1; ++round) {
        std::vector<std::size_t> cuts;
        std::uniform_int_distribution<std::size_t> pos(0, wire.size());
        for (int k = 0; k < 4; ++k) cuts.push_back(pos(rng));
        std::sort(cuts.begin(), cuts.end());
        CHECK(run(wire, cuts) == expected);
    }
}

std::vector<ImapValue> values(std::string_view text) {
    auto v = parse_imap_values(text);
    REQUIRE_MESSAGE(v.has_value(), "parse failed: " << text);
    return *v;
}

ImapValue atom(std::string s) { return ImapValue{ImapValue::Type::Atom, std::move(s), {}}; }
ImapValue num(std::string s) { return ImapValue{ImapValue::Type::Number, std::move(s), {}}; }
ImapValue str(std::string s) { return ImapValue{ImapValue::Type::String, std::move(s), {}}; }
ImapValue nil() { return ImapValue{ImapValue::Type::Nil, "", {}}; }
ImapValue list(std::vector<ImapValue> items) {
    return ImapValue{ImapValue::Type::List, "", std::move(items)};
}

// A readable rendering for comparisons: atoms bare, numbers #n, strings
// quoted, NIL, lists in parentheses.
std::string show(const ImapValue& v) {
    switch (v.type) {
        case ImapValue::Type::Atom: return v.text;
        case ImapValue::Type::Number: return "#" + v.text;
        case ImapValue::Type::String: return "\"" + v.text + "\"";
        case ImapValue::Type::Nil: return "NIL";
        case ImapValue::Type::List: {
            std::string out = "(";
            for (std::size_t i = 0; i < v.items.size(); ++i) {
                if (i) out += ' ';
                out += show(v.items[i]);
            }
            return out + ")";
        }
    }
    return "?";
}

std::string show(const std::vector<ImapValue>& vs) { return show(list(vs)); }

// Expands "1:3,7" into {1,2,3,7}.
std::vector<std::uint32_t> expand_uid_set(const std::string& set) {
    std::vector<std::uint32_t> out;
    std::size_t i = 0;
    while (i < set.size()) {
        std::size_t comma = std::min(set.find(',', i), set.size());
        std::string part = set.substr(i, comma - i);
        std::size_t colon = part.find(':');
        std::uint64_t a = std::stoull(part.substr(0, colon));
        std::uint64_t b = colon == std::string::npos ? a : std::stoull(part.substr(colon + 1));
        for (std::uint64_t u = a; u <= b; ++u) out.push_back(static_cast<std::uint32_t>(u));
        i = comma + 1;
    }
    return out;
}

}  // namespace

// ---------------------------------------------------------------------------
// Framing

TEST_CASE("imap: plain responses, several in one feed") {
    check_all_chunkings(
        "* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR] Dovecot ready.\r\n"
        "* 3 EXISTS\r\n"
        "+ Ready for additional command text\r\n"
        "A1 OK [READ-WRITE] SELECT completed\r\n",
        {"T|* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR] Dovecot ready.", "END", "T|* 3 EXISTS",
         "END", "T|+ Ready for additional command text", "END",
         "T|A1 OK [READ-WRITE] SELECT completed", "END"});
}

TEST_CASE("imap: a literal whose content looks like a tagged reply stays literal data") {
    std::string body = "Subject: trap\r\n\r\nA005 OK done\r\n* BYE\r\n{5}\r\nA005 OK\r\n";
    check_all_chunkings("* 12 FETCH (UID 345 RFC822.SIZE 52 BODY[] {" + std::to_string(body.size()) +
                            "}\r\n" + body + ")\r\nA005 OK Fetch completed.\r\n",
                        {"T|* 12 FETCH (UID 345 RFC822.SIZE 52 BODY[] ",
                         "LIT " + std::to_string(body.size()), "D|" + body, "LIT END", "T|)", "END",
                         "T|A005 OK Fetch completed.", "END"});
}

TEST_CASE("imap: literal forms") {
    SUBCASE("literal8") {
        check_all_chunkings("* 1 FETCH (BINARY[] ~{4}\r\n\0\1\r\n)\r\n"s,
                            {"T|* 1 FETCH (BINARY[] ", "LIT 4", "D|\0\1\r\n"s, "LIT END", "T|)",
                             "END"});
    }
    SUBCASE("LITERAL+ form from a server, and literal8 with +") {
        check_all_chunkings("* 1 FETCH (BODY[] {3+}\r\nabc BINARY[] ~{1+}\r\nz)\r\n",
                            {"T|* 1 FETCH (BODY[] ", "LIT 3", "D|abc", "LIT END", "T| BINARY[] ",
                             "LIT 1", "D|z", "LIT END", "T|)", "END"});
    }
    SUBCASE("size zero, leading zeros") {
        check_all_chunkings("* 1 FETCH (BODY[HEADER] {0}\r\n BODY[TEXT] {003}\r\nxyz)\r\n",
                            {"T|* 1 FETCH (BODY[HEADER] ", "LIT 0", "LIT END", "T| BODY[TEXT] ",
                             "LIT 3", "D|xyz", "LIT END", "T|)", "END"});
    }
    SUBCASE("literal at the end of the response and at its start") {
        check_all_chunkings("* LIST () \"/\" {3}\r\nfoo\r\n{2}\r\nhi\r\n",
                            {"T|* LIST () \"/\" ", "LIT 3", "D|foo", "LIT END", "END", "LIT 2",
                             "D|hi", "LIT END", "END"});
    }
    SUBCASE("literal content ending in CR, then a new line") {
        check_all_chunkings("* 1 FETCH (BODY[] {2}\r\n\r\r\n* 2 EXISTS\r\n",
                            {"T|* 1 FETCH (BODY[] ", "LIT 2", "D|\r\r", "LIT END", "END",
                             "T|* 2 EXISTS", "END"});
    }
}

TEST_CASE("imap: braces that are not literal markers") {
    // Inside quoted strings, not at the end, or not digits: plain text.
    check_all_chunkings(
        "* 1 FETCH (ENVELOPE (\"date\" \"subject {5}\" NIL))\r\n"
        "* LIST () \"/\" \"foo {3}\"\r\n"
        "* OK \"unterminated {3}\r\n"
        "* LIST () \"/\" \"a\\\" {3}\r\n"
        "* OK see {foo}\r\n"
        "* OK {5} in the middle\r\n",
        {"T|* 1 FETCH (ENVELOPE (\"date\" \"subject {5}\" NIL))", "END",
         "T|* LIST () \"/\" \"foo {3}\"", "END", "T|* OK \"unterminated {3}", "END",
         "T|* LIST () \"/\" \"a\\\" {3}", "END", "T|* OK see {foo}", "END",
         "T|* OK {5} in the middle", "END"});
    // An escaped backslash closes the string: the marker is real.
    check_all_chunkings("* LIST () \"/\" \"a\\\\\" {3}\r\nabc\r\n",
                        {"T|* LIST () \"/\" \"a\\\\\" ", "LIT 3", "D|abc", "LIT END", "END"});
    // Quotes before a literal do not leak past it.
    check_all_chunkings("* 1 FETCH (X \"q\" {1}\r\n\" {2}\r\nab)\r\n",
                        {"T|* 1 FETCH (X \"q\" ", "LIT 1", "D|\"", "LIT END", "T| ", "LIT 2",
                         "D|ab", "LIT END", "T|)", "END"});
}

TEST_CASE("imap: a continuation request is free text, never a literal announcement") {
    // continue-req = "+" SP (resp-text / base64): a "{5}" at its end is text,
    // so a hostile server cannot make the parser swallow the EXISTS and the
    // tagged reply that follow as the bytes of a literal.
    check_all_chunkings("+ Ready for more {5}\r\n* 3 EXISTS\r\nA1 OK done\r\n",
                        {"T|+ Ready for more {5}", "END", "T|* 3 EXISTS", "END", "T|A1 OK done", "END"});
    check_all_chunkings("+{12}\r\n+ ~{3+}\nA1 OK\r\n",
                        {"T|+{12}", "END", "T|+ ~{3+}", "END", "T|A1 OK", "END"});
    // What would be a malformed size after a tag is no error in free text.
    check_all_chunkings("+ {99999999999999999999999}\r\n+ {-1}\r\n",
                        {"T|+ {99999999999999999999999}", "END", "T|+ {-1}", "END"});
    // Only the start of a response makes it a continuation: text after a
    // literal that happens to begin with "+" still announces the next one.
    check_all_chunkings("* 1 FETCH (X {1}\r\n++ {2}\r\nab)\r\n",
                        {"T|* 1 FETCH (X ", "LIT 1", "D|+", "LIT END", "T|+ ", "LIT 2", "D|ab",
                         "LIT END", "T|)", "END"});
}

TEST_CASE("imap: bare LF line ends") {
    check_all_chunkings("* 2 EXISTS\n* 1 FETCH (BODY[] {1}\nx)\nA1 OK\r\n",
                        {"T|* 2 EXISTS", "END", "T|* 1 FETCH (BODY[] ", "LIT 1", "D|x", "LIT END",
                         "T|)", "END", "T|A1 OK", "END"});
}

TEST_CASE("imap: malformed literal sizes") {
    for (std::string line : {"* 1 FETCH (BODY[] {99999999999999999999999}\r\n"s,
                             "* 1 FETCH (BODY[] {18446744073709551616}\r\n"s, "* OK {}\r\n"s,
                             "* OK {+}\r\n"s, "* OK {-1}\r\n"s, "* OK {1+2}\r\n"s, "~{}\r\n"s}) {
        CAPTURE(line);
        check_all_chunkings(line, {"ERROR|server sent a malformed literal size"});
    }
    // The largest 64-bit size is a valid marker (the literal then streams).
    auto events = run("* 1 FETCH (BODY[] {18446744073709551615}\r\nabc", {});
    CHECK(events == std::vector<std::string>{"T|* 1 FETCH (BODY[] ", "LIT 18446744073709551615",
                                             "D|abc"});
}

TEST_CASE("imap: random responses with literals under random chunkings") {
    std::mt19937 rng(9051);
    auto pick = [&](std::string_view from) {
        return from[std::uniform_int_distribution<std::size_t>(0, from.size() - 1)(rng)];
    };
    auto rand_len = [&](int max) { return std::uniform_int_distribution<int>(0, max)(rng); };
    for (int sample = 0; sample < 150; ++sample) {
        std::string wire;
        std::vector<std::string> expected;
        int responses = 1 + rand_len(2);
        for (int r = 0; r < responses; ++r) {
            int literals = rand_len(3);
            for (int l = 0; l <= literals; ++l) {
                // Text: plain bytes plus complete quoted strings that may
                // hold braces, digits and escapes.
                std::string text;
                for (int k = rand_len(6); k > 0; --k) {
                    if (rng() % 4 == 0) {
                        text += '"';
                        for (int q = rand_len(4); q > 0; --q) {
                            char c = pick("{}5 a\"\\");
                            if (c == '"' || c == '\\') text += '\\';
                            text += c;
                        }
                        text += '"';
                    } else {
                        text += pick("ab ()[]\\{}7*");
                    }
                }
                // Make sure the text itself does not end in a marker.
                if (!text.empty() && text.back() == '}') text += 'x';
                wire += text;
                if (!text.empty()) {
                    if (!expected.empty() && expected.back().starts_with("T|")) {
                        expected.back() += text;
                    } else {
                        expected.push_back("T|" + text);
                    }
                }
                if (l == literals) break;
                std::string content;
                for (int k = rand_len(8); k > 0; --k) content += pick("\r\nA1 OK{3}\"\0"s);
                std::string marker = (rng() % 3 == 0 ? "~{" : "{") + std::to_string(content.size()) +
                                     (rng() % 3 == 0 ? "+}" : "}");
                wire += marker + (rng() % 5 == 0 ? "\n" : "\r\n") + content;
                expected.push_back("LIT " + std::to_string(content.size()));
                if (!content.empty()) expected.push_back("D|" + content);
                expected.push_back("LIT END");
            }
            wire += "\r\n";
            expected.push_back("END");
        }
        CAPTURE(wire);
        check_all_chunkings(wire, expected);
    }
}

TEST_CASE("imap: idle() is true only between responses") {
    ImapResponseParser parser;
    ImapRecorder rec;
    CHECK(parser.idle());
    parser.feed("* 1 FETCH (BODY[] {5}", rec);
    CHECK_FALSE(parser.idle());
    parser.feed("\r\nab", rec);
    CHECK_FALSE(parser.idle());
    parser.feed("cde", rec);  // literal complete, line not yet
    CHECK_FALSE(parser.idle());
    parser.feed(")\r", rec);
    CHECK_FALSE(parser.idle());
    parser.feed("\n", rec);
    CHECK(parser.idle());
    parser.feed("* 2 EXISTS\r\n* 3 EX", rec);
    CHECK_FALSE(parser.idle());
    parser.feed("ISTS\r\n", rec);
    CHECK(parser.idle());
    CHECK(rec.events == std::vector<std::string>{"T|* 1 FETCH (BODY[] ", "LIT 5", "D|abcde",
                                                 "LIT END", "T|)", "END", "T|* 2 EXISTS", "END",
                                                 "T|* 3 EXISTS", "END"});
}

TEST_CASE("imap: literal data is streamed as it arrives, in whole input ranges") {
    ImapResponseParser parser;
    ImapRecorder rec;
    parser.feed("* 1 FETCH (BODY[] {10}\r\n0123", rec);
    CHECK(rec.events == std::vector<std::string>{"T|* 1 FETCH (BODY[] ", "LIT 10", "D|0123"});
    CHECK(rec.literal_calls == 1);
    parser.feed("456789)\r\n", rec);
    CHECK(rec.literal_calls == 2);
    CHECK(rec.events.back() == "END");
}

TEST_CASE("imap: a 10 MB literal streams quickly") {
    std::string body;
    body.reserve(10'100'000);
    while (body.size() < 10'000'000) body += "A005 OK this line is literal data, not a response\r\n";
    std::string wire = "* 1 FETCH (UID 9 BODY[] {" + std::to_string(body.size()) + "}\r\n" + body +
                       ")\r\nA005 OK done\r\n";
    struct Sink : ImapEvents {
        std::string data;
        std::size_t calls = 0, responses = 0;
        void on_text(std::string_view) override {}
        void on_literal_begin(std::uint64_t) override {}
        void on_literal_data(std::string_view c) override {
            ++calls;
            data.append(c);
        }
        void on_literal_end() override {}
        void on_response_end() override { ++responses; }
    } sink;
    sink.data.reserve(body.size());
    ImapResponseParser parser;
    const std::size_t chunk = 64 * 1024;
    auto t0 = std::chrono::steady_clock::now();
    for (std::size_t off = 0; off < wire.size(); off += chunk) {
        parser.feed(std::string_view(wire).substr(off, chunk), sink);
    }
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE("10 MB IMAP literal parsed in " << elapsed * 1000 << " ms");
    CHECK(sink.responses == 2);
    CHECK(sink.data == body);
    CHECK(sink.calls <= (wire.size() + chunk - 1) / chunk);
    CHECK(elapsed < 5.0);
}

TEST_CASE("imap: text length limit") {
    const std::size_t max = ImapResponseParser::kMaxText;
    const std::string too_long = "ERROR|server sent a response line longer than 16 MiB";
    SUBCASE("exactly the limit is accepted") {
        std::string line(max, 'a');
        auto events = run(line + "\r\n", {});
        REQUIRE(events.size() == 2);
        CHECK(events[0].size() == 2 + max);
    }
    SUBCASE("one byte more is refused, whole or in pieces") {
        std::string line(max + 1, 'a');
        CHECK(run(line + "\r\n", {}) == std::vector<std::string>{too_long});
        CHECK(run(line + "\r\n", {max / 2, max, max + 1}) == std::vector<std::string>{too_long});
        CHECK(run(line + "\n", {}) == std::vector<std::string>{too_long});
        CHECK(run(line + "\n", {max + 1}) == std::vector<std::string>{too_long});
    }
    SUBCASE("an endless line is refused before it ends") {
        std::string line(max + 2, 'a');
        CHECK(run(line, {}) == std::vector<std::string>{too_long});
    }
    SUBCASE("the limit applies to each piece between literals") {
        std::string half(max / 2 + 10, 'b');
        std::string wire = half + "{1}\r\nx" + half + "{0}\r\n" + half + "\r\n";
        auto events = run(wire, {});
        REQUIRE(events.size() == 9);
        CHECK(events.back() == "END");
    }
}

// ---------------------------------------------------------------------------
// Values

TEST_CASE("imap values: FETCH responses") {
    // The brief's example, with the literal replaced by a quoted string.
    auto v = values(
        "* 12 FETCH (UID 345 RFC822.SIZE 1234 FLAGS (\\Seen $Forwarded) INTERNALDATE "
        "\"17-Jul-1996 02:44:25 -0700\" BODY[] \"\xe2\x80\xa6\")");
    CHECK(show(v) ==
          "(* #12 FETCH (UID #345 RFC822.SIZE #1234 FLAGS (\\Seen $Forwarded) INTERNALDATE "
          "\"17-Jul-1996 02:44:25 -0700\" BODY[] \"\xe2\x80\xa6\"))");
    REQUIRE(v.size() == 4);
    CHECK(v[1].number() == 12);
    CHECK(v[2].is_atom("FETCH"));
    CHECK(v[2].is_atom("fetch"));
    const auto& items = v[3].items;
    REQUIRE(items.size() == 10);
    CHECK(items[1].type == ImapValue::Type::Number);
    CHECK(items[1].number() == 345);
    CHECK(items[5].items[0].is_atom("\\SEEN"));
    CHECK(items[7].type == ImapValue::Type::String);
    CHECK(items[8].is_atom("BODY[]"));

    // RFC 3501 7.4.2 example (ENVELOPE and BODY), including lists written
    // back to back without a space.
    v = values(
        "* 12 FETCH (FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" "
        "RFC822.SIZE 4286 ENVELOPE (\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" "
        "\"IMAP4rev1 WG mtg summary and minutes\" "
        "((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
        "((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
        "((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
        "((NIL NIL \"imap\" \"cac.washington.edu\")) "
        "((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")"
        "(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) NIL NIL "
        "\"<B27397-0100000@cac.washington.edu>\") "
        "BODY (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92))");
    REQUIRE(v.size() == 4);
    const auto& f = v[3].items;
    REQUIRE(f.size() == 10);
    const auto& env = f[7].items;
    REQUIRE(env.size() == 10);
    CHECK(env[0].text == "Wed, 17 Jul 1996 02:23:25 -0700 (PDT)");
    CHECK(show(env[6]) == "((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\") (\"John Klensin\" NIL "
                          "\"KLENSIN\" \"MIT.EDU\"))");
    CHECK(env[7].type == ImapValue::Type::Nil);
    CHECK(env[9].text == "<B27397-0100000@cac.washington.edu>");
    CHECK(show(f[9]) == "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" #3028 #92)");

    // Section and partial atoms keep their bracket part verbatim.
    v = values(
        "* 2 FETCH (UID 7 BODY[HEADER.FIELDS (MESSAGE-ID DATE)] \"Message-ID: <x@y>\" "
        "BODY[]<0> \"abc\" BINARY.SIZE[1.2] 44 MODSEQ (624140003))");
    const auto& g = v[3].items;
    REQUIRE(g.size() == 10);
    CHECK(g[2].is_atom("BODY[HEADER.FIELDS (MESSAGE-ID DATE)]"));
    CHECK(g[4].is_atom("BODY[]<0>"));
    CHECK(g[6].is_atom("BINARY.SIZE[1.2]"));
    CHECK(g[9].items[0].number() == 624140003);
}

TEST_CASE("imap values: LIST, STATUS, SEARCH, ENABLED, CAPABILITY, FLAGS") {
    CHECK(show(values("* LIST (\\HasNoChildren) \".\" INBOX.Sent")) ==
          "(* LIST (\\HasNoChildren) \".\" INBOX.Sent)");
    CHECK(show(values("* LIST (\\Noselect) \"/\" ~/Mail/foo")) ==
          "(* LIST (\\Noselect) \"/\" ~/Mail/foo)");
    CHECK(show(values("* LIST () NIL \"\"")) == "(* LIST () NIL \"\")");
    CHECK(show(values("* LIST (\\Marked \\NoInferiors) \"/\" \"inbox\"")) ==
          "(* LIST (\\Marked \\NoInferiors) \"/\" \"inbox\")");
    // RFC 9051 LIST with extended data.
    CHECK(show(values("* LIST (\\Subscribed) \"/\" \"Foo\" (\"CHILDINFO\" (\"SUBSCRIBED\"))")) ==
          "(* LIST (\\Subscribed) \"/\" \"Foo\" (\"CHILDINFO\" (\"SUBSCRIBED\")))");

    auto st = values("* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)");
    CHECK(show(st) == "(* STATUS blurdybloop (MESSAGES #231 UIDNEXT #44292))");
    CHECK(st[3].items[3].number() == 44292);

    auto search = values("* SEARCH 2 84 882");
    CHECK(show(search) == "(* SEARCH #2 #84 #882)");
    CHECK(show(values("* SEARCH")) == "(* SEARCH)");
    CHECK(show(values("* ESEARCH (TAG \"A282\") UID MIN 2 COUNT 3 ALL 2,10:11")) ==
          "(* ESEARCH (TAG \"A282\") UID MIN #2 COUNT #3 ALL 2,10:11)");

    CHECK(show(values("* ENABLED CONDSTORE QRESYNC")) == "(* ENABLED CONDSTORE QRESYNC)");
    CHECK(show(values("* CAPABILITY IMAP4rev1 STARTTLS AUTH=GSSAPI LOGINDISABLED")) ==
          "(* CAPABILITY IMAP4rev1 STARTTLS AUTH=GSSAPI LOGINDISABLED)");
    CHECK(show(values("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)")) ==
          "(* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft))");
    // A response code handed over by parse_status_line.
    auto code = values("PERMANENTFLAGS (\\Deleted \\Seen \\*)");
    CHECK(show(code) == "(PERMANENTFLAGS (\\Deleted \\Seen \\*))");
    CHECK(code[1].items[2].is_atom("\\*"));
    CHECK(show(values("COPYUID 38505 304,319:320 3956:3958")) ==
          "(COPYUID #38505 304,319:320 3956:3958)");
    // A whole untagged OK with its code as one atom.
    CHECK(show(values("* OK [UIDVALIDITY 3857529045] UIDs valid")) ==
          "(* OK [UIDVALIDITY 3857529045] UIDs valid)");
}

TEST_CASE("imap values: strings, numbers, NIL") {
    auto v = values("\"a \\\"b\\\" c\\\\d\" \"\" \"C:\\dir\" \"NIL\" NIL nil \"tab\tin\" \"caf\xc3\xa9\"");
    REQUIRE(v.size() == 8);
    CHECK(v[0].text == "a \"b\" c\\d");
    CHECK(v[1].type == ImapValue::Type::String);
    CHECK(v[1].text.empty());
    CHECK(v[2].text == "C:\\dir");
    CHECK(v[3].type == ImapValue::Type::String);
    CHECK(v[4].type == ImapValue::Type::Nil);
    CHECK(v[5].type == ImapValue::Type::Nil);
    CHECK(v[6].text == "tab\tin");
    CHECK(v[7].text == "caf\xc3\xa9");

    v = values("0 4294967296 18446744073709551615 18446744073709551616 007 12a NILS");
    REQUIRE(v.size() == 7);
    CHECK(v[0].number() == 0);
    CHECK(v[1].number() == 4294967296ull);
    CHECK(v[2].number() == UINT64_MAX);
    CHECK(v[3].type == ImapValue::Type::Atom);  // beyond 64 bits
    CHECK_THROWS_AS(v[3].number(), Error);
    CHECK(v[4].number() == 7);
    CHECK(v[5].type == ImapValue::Type::Atom);
    CHECK_THROWS_AS(v[5].number(), Error);
    CHECK(v[6].is_atom("NILS"));
    CHECK_THROWS_AS(str("12").number(), Error);
    CHECK_THROWS_AS(nil().number(), Error);
    CHECK_THROWS_AS(list({}).number(), Error);
    CHECK(atom("42").number() == 42);
    CHECK_FALSE(num("42").is_atom("42"));
    try {
        (void)atom("abc").number();
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Protocol);
        CHECK(std::string(e.what()) == "server sent \"abc\" where a number was expected");
    }

    CHECK(values("").empty());
    CHECK(values("   ").empty());
    CHECK(show(values("  a   (b  c)  ")) == "(a (b c))");
    CHECK(show(values("(a)(b)\"c\"d")) == "((a) (b) \"c\" d)");
    CHECK(show(values("((()))")) == "(((())))");
}

TEST_CASE("imap values: malformed input") {
    for (std::string_view bad : {"(a b", "a b)", ")", "\"abc", "\"abc\\", "BODY[HEADER", "a\x01",
                                 "a\tb", "\"a\r\nb\"", "((a)"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_imap_values(bad));
    }
    // Nesting is bounded: 64 levels parse, 65 do not, a million do not crash.
    std::string deep64 = std::string(64, '(') + std::string(64, ')');
    std::string deep65 = std::string(65, '(') + std::string(65, ')');
    CHECK(parse_imap_values(deep64));
    CHECK_FALSE(parse_imap_values(deep65));
    CHECK_FALSE(parse_imap_values(std::string(1'000'000, '(')));
}

// ---------------------------------------------------------------------------
// Status lines

TEST_CASE("imap: parse_status_line") {
    auto s = parse_status_line("A1 OK [UIDVALIDITY 3857529045] UIDs valid");
    REQUIRE(s);
    CHECK(s->tag == "A1");
    CHECK(s->status == "OK");
    CHECK(s->code == "UIDVALIDITY 3857529045");
    CHECK(s->text == "UIDs valid");

    s = parse_status_line("* 3 EXISTS");
    REQUIRE(s);
    CHECK(s->tag == "*");
    CHECK(s->status == "");
    CHECK(s->code == "");
    CHECK(s->text == "3 EXISTS");

    s = parse_status_line("+ Ready for additional command text");
    REQUIRE(s);
    CHECK(s->tag == "+");
    CHECK(s->status == "");
    CHECK(s->text == "Ready for additional command text");

    s = parse_status_line("+");
    REQUIRE(s);
    CHECK(s->tag == "+");
    CHECK(s->text == "");
    CHECK(parse_status_line("+ ")->text == "");
    CHECK(parse_status_line("+ [ALERT] hi")->code == "ALERT");

    s = parse_status_line("a2 no [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n");
    REQUIRE(s);
    CHECK(s->tag == "a2");
    CHECK(s->status == "NO");
    CHECK(s->code == "AUTHENTICATIONFAILED");
    CHECK(s->text == "Invalid credentials (Failure)");

    s = parse_status_line("* BYE Logging out");
    CHECK(s->status == "BYE");
    CHECK(s->text == "Logging out");
    s = parse_status_line("* PREAUTH [CAPABILITY IMAP4rev1 IDLE] hello");
    CHECK(s->status == "PREAUTH");
    CHECK(s->code == "CAPABILITY IMAP4rev1 IDLE");
    s = parse_status_line("A3 BAD");
    CHECK(s->status == "BAD");
    CHECK(s->text == "");
    s = parse_status_line("* OK [ALERT]");
    CHECK(s->code == "ALERT");
    CHECK(s->text == "");
    s = parse_status_line("* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited");
    CHECK(s->code == "PERMANENTFLAGS (\\Deleted \\Seen \\*)");
    CHECK(s->text == "Limited");
    s = parse_status_line("A4 OK [unterminated code");
    CHECK(s->code == "");
    CHECK(s->text == "[unterminated code");
    s = parse_status_line("* OKAY fine");
    CHECK(s->status == "");
    CHECK(s->text == "OKAY fine");
    s = parse_status_line("* CAPABILITY IMAP4rev1 IDLE");
    CHECK(s->status == "");
    CHECK(s->text == "CAPABILITY IMAP4rev1 IDLE");

    for (std::string_view bad : {"", "A1", "A1 ", " A1 OK", "+Ready", "A\x01 OK", "*  OK"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_status_line(bad));
    }
}

// ---------------------------------------------------------------------------
// Modified UTF-7

TEST_CASE("imap: mutf7 known values") {
    struct Case {
        std::string utf8, mutf7;
    };
    for (const auto& [utf8, mutf7] : std::vector<Case>{
             {"", ""},
             {"INBOX", "INBOX"},
             {"&", "&-"},
             {"Tom & Jerry", "Tom &- Jerry"},
             {"Entw\xc3\xbc" "rfe", "Entw&APw-rfe"},
             // RFC 3501 5.1.3 example.
             {"~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
              "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
             {"\xf0\x9f\x93\xa7", "&2D3c5w-"},  // U+1F4E7, a surrogate pair
             {"a\tb", "a&AAk-b"},
             {"\xc3\xbc&\xc3\xbc", "&APw-&-&APw-"},
         }) {
        CAPTURE(utf8);
        CHECK(mutf7_encode(utf8) == mutf7);
        CHECK(mutf7_decode(mutf7) == utf8);
    }
    // Two shifted runs back to back are wasteful but legal.
    CHECK(mutf7_decode("&APw-&APw-") == "\xc3\xbc\xc3\xbc");
}

TEST_CASE("imap: mutf7 round trips every code point") {
    for (char32_t cp = 1; cp <= 0x10ffff; cp += (cp < 0x10000 ? 1 : 97)) {
        if (cp >= 0xd800 && cp <= 0xdfff) continue;
        std::string utf8;
        if (cp < 0x80) {
            utf8 += static_cast<char>(cp);
        } else if (cp < 0x800) {
            utf8 += static_cast<char>(0xc0 | (cp >> 6));
            utf8 += static_cast<char>(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            utf8 += static_cast<char>(0xe0 | (cp >> 12));
            utf8 += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            utf8 += static_cast<char>(0x80 | (cp & 0x3f));
        } else {
            utf8 += static_cast<char>(0xf0 | (cp >> 18));
            utf8 += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
            utf8 += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            utf8 += static_cast<char>(0x80 | (cp & 0x3f));
        }
        std::string name = "x" + utf8 + utf8 + "y";
        std::string encoded = mutf7_encode(name);
        for (char c : encoded) {
            if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) {
                FAIL("non-printable byte in encoding of code point " << static_cast<unsigned>(cp));
            }
        }
        auto decoded = mutf7_decode(encoded);
        if (decoded != name) FAIL("round trip failed for code point " << static_cast<unsigned>(cp));
    }
    std::string mixed = "Japanese \xe6\x97\xa5\xe6\x9c\xac and emoji \xf0\x9f\x98\x80\xf0\x9f\x93\xa7 & more";
    CHECK(mutf7_decode(mutf7_encode(mixed)) == mixed);
}

TEST_CASE("imap: mutf7_decode rejects malformed input") {
    for (std::string_view bad : {
             "&",          // shift never closed
             "&APw",       // no "-"
             "a&APwrfe",   // no "-"
             "&A-",        // 6 bits: not a whole UTF-16 unit
             "&APx-",      // stray non-zero bits
             "&APwA-",     // a superfluous base64 character
             "&APw/-",     // "/" belongs to standard base64, not this one
             "&AP=-",      // padding is not used
             "&AGE-",      // "a" must stand for itself
             "&ACY-",      // "&" must be "&-"
             "&2D0-",      // high surrogate without its partner
             "&3Oc-",      // low surrogate alone
             "&2D3YPQ-",   // high surrogate followed by a high surrogate
             "Entw\xc3\xbcrfe",  // raw 8-bit
             "a\tb",       // raw control character
         }) {
        CAPTURE(bad);
        CHECK_FALSE(mutf7_decode(bad));
    }
}

TEST_CASE("imap: mutf7_encode refuses invalid UTF-8") {
    for (std::string_view bad : {"\xff", "a\xc3", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
                                 "\xf4\x90\x80\x80", "\x80", "\xc3\x28"}) {
        CAPTURE(bad);
        try {
            (void)mutf7_encode(bad);
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::Config);
            CHECK(std::string(e.what()).find("not valid UTF-8") != std::string::npos);
        }
    }
}

// ---------------------------------------------------------------------------
// Command syntax

TEST_CASE("imap: imap_astring") {
    CHECK(imap_astring("INBOX", false) == "INBOX");
    CHECK(imap_astring("INBOX.Sent", false) == "INBOX.Sent");
    CHECK(imap_astring("user@example.com", false) == "user@example.com");
    CHECK(imap_astring("Entw&APw-rfe", false) == "Entw&APw-rfe");
    CHECK(imap_astring("a+b~c", false) == "a+b~c");
    CHECK(imap_astring("", false) == "\"\"");
    CHECK(imap_astring("", true) == "\"\"");
    for (std::string_view special : {"with space", "a(b", "a)b", "a{b", "50%", "*", "a]b", "tab\there",
                                     "del\x7f"}) {
        CAPTURE(special);
        CHECK(imap_astring(special, false) == "\"" + std::string(special) + "\"");
    }
    CHECK(imap_astring("a\"b\\c", false) == "\"a\\\"b\\\\c\"");
    CHECK(imap_astring("p\xc3\xa4ssword", false) == std::nullopt);
    CHECK(imap_astring("p\xc3\xa4ssword", true) == "{9+}\r\np\xc3\xa4ssword");
    CHECK(imap_astring("a\r\nb", false) == std::nullopt);
    CHECK(imap_astring("a\r\nb", true) == "{4+}\r\na\r\nb");
    CHECK(imap_astring("a\nb", true) == "{3+}\r\na\nb");
    CHECK(imap_astring("a\0b"s, false) == std::nullopt);
}

TEST_CASE("imap: imap_uid_set") {
    std::string out;
    std::vector<std::uint32_t> uids = {1, 2, 3, 4, 5, 7, 9, 10, 11, 12};
    CHECK(imap_uid_set(uids, 0, 1000, out) == 10);
    CHECK(out == "1:5,7,9:12");
    CHECK(imap_uid_set(uids, 5, 1000, out) == 5);
    CHECK(out == "7,9:12");
    CHECK(imap_uid_set(uids, 10, 1000, out) == 0);
    CHECK(out == "");
    CHECK(imap_uid_set({}, 0, 1000, out) == 0);
    CHECK(imap_uid_set(uids, 0, 0, out) == 0);

    // Stops before exceeding max_len.
    CHECK(imap_uid_set(uids, 0, 5, out) == 6);
    CHECK(out == "1:5,7");
    CHECK(imap_uid_set(uids, 0, 4, out) == 5);
    CHECK(out == "1:5");
    // A run that does not fit whole is cut.
    CHECK(imap_uid_set(uids, 0, 1, out) == 1);
    CHECK(out == "1");
    CHECK(imap_uid_set(uids, 0, 8, out) == 7);
    CHECK(out == "1:5,7,9");
    std::vector<std::uint32_t> run(1000);
    for (std::uint32_t i = 0; i < 1000; ++i) run[i] = i + 1;
    CHECK(imap_uid_set(run, 0, 5, out) == 999);
    CHECK(out == "1:999");
    CHECK(imap_uid_set(run, 999, 5, out) == 1);
    CHECK(out == "1000");
    CHECK(imap_uid_set({123456}, 0, 5, out) == 0);  // cannot hold even one UID

    CHECK(imap_uid_set({4294967294u, 4294967295u}, 0, 100, out) == 2);
    CHECK(out == "4294967294:4294967295");
    CHECK(imap_uid_set({4294967295u}, 0, 100, out) == 1);
    CHECK(out == "4294967295");
}

TEST_CASE("imap: imap_uid_set covers random sets exactly in bounded pieces") {
    std::mt19937 rng(7);
    for (int sample = 0; sample < 300; ++sample) {
        std::vector<std::uint32_t> uids;
        std::uint32_t u = 1 + rng() % 50000;
        int n = static_cast<int>(rng() % 400);
        for (int i = 0; i < n; ++i) {
            uids.push_back(u);
            u += (rng() % 3 == 0) ? 1 + rng() % 1000 : 1;
        }
        std::size_t max_len = 6 + rng() % 60;
        std::vector<std::uint32_t> back;
        std::size_t start = 0;
        while (start < uids.size()) {
            std::string out;
            std::size_t used = imap_uid_set(uids, start, max_len, out);
            REQUIRE(used > 0);
            CHECK(out.size() <= max_len);
            auto part = expand_uid_set(out);
            CHECK(part.size() == used);
            back.insert(back.end(), part.begin(), part.end());
            start += used;
        }
        CHECK(back == uids);
    }
}
