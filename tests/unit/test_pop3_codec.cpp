// Tests for pop3_codec: reply framing under every chunking, dot-unstuffing,
// pipelining, limits, and the small line parsers.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "error.h"
#include "test_support.h"
#include "pop3_codec.h"

using namespace pullmail;
using namespace pullmail::test;

namespace {

// Records events as strings; consecutive on_data chunks are merged so that
// streams from different chunkings of the same input compare equal.
struct Pop3Recorder : Pop3Events {
    std::vector<std::string> events;
    std::size_t data_calls = 0;
    std::size_t empty_data_calls = 0;
    bool last_was_data = false;

    void on_status(bool ok, std::string_view text) override {
        events.push_back(std::string(ok ? "+OK|" : "-ERR|") + std::string(text));
        last_was_data = false;
    }
    void on_data(std::string_view chunk) override {
        ++data_calls;
        if (chunk.empty()) ++empty_data_calls;
        if (last_was_data) {
            events.back().append(chunk);
        } else {
            events.push_back("DATA|" + std::string(chunk));
        }
        last_was_data = true;
    }
    void on_reply_end() override {
        events.push_back("END");
        last_was_data = false;
    }
};

using Setup = std::function<void(Pop3ReplyParser&)>;

// Feeds wire cut at the given offsets (ascending) into a fresh parser. A
// thrown pullmail::Error is recorded as a final "ERROR|<message>" event.
std::vector<std::string> run(const Setup& setup, std::string_view wire,
                             const std::vector<std::size_t>& cuts) {
    Pop3ReplyParser parser;
    setup(parser);
    Pop3Recorder rec;
    feed_in_pieces(parser, wire, cuts, rec);
    CHECK(rec.empty_data_calls == 0);
    return rec.events;
}

// The whole input at once, one byte at a time, every two-chunk split and a
// few random multi-chunk splits must all give the expected stream.
void check_all_chunkings(const Setup& setup, std::string_view wire,
                         const std::vector<std::string>& expected) {
    CHECK(run(setup, wire, {}) == expected);
    std::vector<std::size_t> every;
    for (std::size_t i = 1; i < wire.size(); ++i) every.push_back(i);
    CHECK(run(setup, wire, every) == expected);
    for (std::size_t i = 0; i <= wire.size(); ++i) {
        CAPTURE(i);
        CHECK(run(setup, wire, {i}) == expected);
    }
    std::mt19937 rng(42);
    for (int round = 0; round < 50 && wire.size() > 1; ++round) {
        std::vector<std::size_t> cuts;
        std::uniform_int_distribution<std::size_t> pos(0, wire.size());
        for (int k = 0; k < 4; ++k) cuts.push_back(pos(rng));
        std::sort(cuts.begin(), cuts.end());
        CHECK(run(setup, wire, cuts) == expected);
    }
}

Setup expects(std::vector<bool> kinds) {
    return [kinds](Pop3ReplyParser& p) {
        for (bool multi : kinds) p.expect(multi);
    };
}

std::string error_message_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Protocol);
        return e.what();
    }
    return "(no error)";
}

// RFC 1939 byte-stuffing of a payload whose lines end in LF or CRLF.
std::string stuff(std::string_view payload) {
    std::string out;
    bool line_start = true;
    for (char c : payload) {
        if (line_start && c == '.') out += '.';
        out += c;
        line_start = c == '\n';
    }
    return out;
}

}  // namespace

TEST_CASE("pop3: greeting and single-line replies") {
    check_all_chunkings(expects({false, false}),
                        "+OK POP3 server ready <1896.697170952@dbc.mmm.com>\r\n+OK 2 320\r\n",
                        {"+OK|POP3 server ready <1896.697170952@dbc.mmm.com>", "END", "+OK|2 320",
                         "END"});
    check_all_chunkings(expects({false, false, false}), "+OK\r\n-ERR\r\n-ERR  two spaces \r\n",
                        {"+OK|", "END", "-ERR|", "END", "-ERR| two spaces ", "END"});
    // Lower-case indicators are out of spec but harmless.
    check_all_chunkings(expects({false}), "+ok fine\r\n", {"+OK|fine", "END"});
}

TEST_CASE("pop3: multi-line reply with dot-stuffing") {
    std::string wire =
        "+OK 120 octets\r\n"
        "Subject: dots\r\n"
        "\r\n"
        "..leading dot\r\n"
        "..\r\n"
        "...\r\n"
        "mid.dle. dots.\r\n"
        ". \r\n"
        "trailing\r\n"
        ".\r\n";
    check_all_chunkings(expects({true}), wire,
                        {"+OK|120 octets",
                         "DATA|Subject: dots\r\n\r\n.leading dot\r\n.\r\n..\r\nmid.dle. dots.\r\n \r\n"
                         "trailing\r\n",
                         "END"});
}

TEST_CASE("pop3: terminator only at line start") {
    check_all_chunkings(expects({true}), "+OK\r\nfoo.\r\nbar .\r\n.\r\n",
                        {"+OK|", "DATA|foo.\r\nbar .\r\n", "END"});
    // A bare CR does not end a line, so the dot after it is data.
    check_all_chunkings(expects({true}), "+OK\r\nx\r.\r\n.\r\n",
                        {"+OK|", "DATA|x\r.\r\n", "END"});
    // ".\r" not followed by LF: the stuffing dot goes, the CR stays.
    check_all_chunkings(expects({true}), "+OK\r\n.\rX\r\n.\r\r\n.\r\n",
                        {"+OK|", "DATA|\rX\r\n\r\r\n", "END"});
}

TEST_CASE("pop3: empty multi-line reply and -ERR to a multi-line command") {
    check_all_chunkings(expects({true}), "+OK 0 messages\r\n.\r\n", {"+OK|0 messages", "END"});
    // -ERR carries no data: the next line is the next reply's status.
    check_all_chunkings(expects({true, false}), "-ERR no such message\r\n+OK\r\n",
                        {"-ERR|no such message", "END", "+OK|", "END"});
}

TEST_CASE("pop3: pipelined replies back to back") {
    std::string wire =
        "+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n"  // UIDL
        "-ERR no such message\r\n"                                          // RETR 9
        "+OK 2 octets\r\nhi\r\n.\r\n"                                       // RETR 1
        "+OK message 1 deleted\r\n"                                         // DELE 1
        "+OK scan listing follows\r\n1 120\r\n2 200\r\n.\r\n"               // LIST
        "+OK dewey POP3 server signing off\r\n";                            // QUIT
    check_all_chunkings(expects({true, true, true, false, true, false}), wire,
                        {"+OK|", "DATA|1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n", "END",
                         "-ERR|no such message", "END", "+OK|2 octets", "DATA|hi\r\n", "END",
                         "+OK|message 1 deleted", "END", "+OK|scan listing follows",
                         "DATA|1 120\r\n2 200\r\n", "END", "+OK|dewey POP3 server signing off",
                         "END"});
}

TEST_CASE("pop3: bare LF line ends from sloppy servers") {
    check_all_chunkings(expects({false, true, true}),
                        "+OK hello\n+OK\nline1\n..x\n..\n.\n+OK\r\nmixed\nends\r\n.\n",
                        {"+OK|hello", "END", "+OK|", "DATA|line1\n.x\n.\n", "END", "+OK|",
                         "DATA|mixed\nends\r\n", "END"});
}

TEST_CASE("pop3: random payloads round-trip through stuffing under random chunkings") {
    std::mt19937 rng(1939);
    const std::string alphabet = "..\r a\t";
    for (int sample = 0; sample < 200; ++sample) {
        std::string payload;
        int lines = std::uniform_int_distribution<int>(0, 8)(rng);
        for (int l = 0; l < lines; ++l) {
            int len = std::uniform_int_distribution<int>(0, 6)(rng);
            for (int k = 0; k < len; ++k) {
                payload += alphabet[std::uniform_int_distribution<std::size_t>(0, alphabet.size() - 1)(rng)];
            }
            payload += (rng() % 4 == 0) ? "\n" : "\r\n";
        }
        std::string wire = "+OK\r\n" + stuff(payload) + ".\r\n+OK\r\n";
        std::vector<std::string> expected = {"+OK|"};
        if (!payload.empty()) expected.push_back("DATA|" + payload);
        expected.insert(expected.end(), {"END", "+OK|", "END"});
        CAPTURE(payload);
        check_all_chunkings(expects({true, false}), wire, expected);
    }
}

TEST_CASE("pop3: data is streamed, not buffered until the terminator") {
    Pop3ReplyParser parser;
    parser.expect(true);
    Pop3Recorder rec;
    parser.feed("+OK\r\nhello wor", rec);
    CHECK(rec.events == std::vector<std::string>{"+OK|", "DATA|hello wor"});
    parser.feed("ld\r\n.", rec);  // the dot may be the terminator: held back
    CHECK(rec.events == std::vector<std::string>{"+OK|", "DATA|hello world\r\n"});
    parser.feed(".x\r\n.\r", rec);
    CHECK(rec.events == std::vector<std::string>{"+OK|", "DATA|hello world\r\n.x\r\n"});
    CHECK(parser.pending() == 1);
    parser.feed("\n", rec);
    CHECK(rec.events == std::vector<std::string>{"+OK|", "DATA|hello world\r\n.x\r\n", "END"});
    CHECK(parser.pending() == 0);
}

TEST_CASE("pop3: data chunks are whole ranges of the input") {
    Pop3ReplyParser parser;
    parser.expect(true);
    Pop3Recorder rec;
    parser.feed("+OK\r\nline one\r\nline two\r\nline three\r\n.\r\n", rec);
    CHECK(rec.data_calls == 1);
    Pop3ReplyParser stuffed;
    stuffed.expect(true);
    Pop3Recorder rec2;
    stuffed.feed("+OK\r\na\r\n..b\r\nc\r\n", rec2);
    CHECK(rec2.data_calls == 2);  // split only where the stuffing dot is dropped
}

TEST_CASE("pop3: a 10 MB message goes through quickly in large chunks") {
    std::string payload;
    payload.reserve(10'500'000);
    std::size_t stuffed_lines = 0;
    for (std::size_t n = 0; payload.size() < 10'000'000; ++n) {
        if (n % 100 == 0) {
            payload += ".starts with a dot and needs stuffing on the wire\r\n";
            ++stuffed_lines;
        } else {
            payload += "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod\r\n";
        }
    }
    std::string wire = "+OK " + std::to_string(payload.size()) + " octets\r\n" + stuff(payload) +
                       ".\r\n";

    struct Counter : Pop3Events {
        std::string data;
        std::size_t calls = 0, ends = 0;
        void on_status(bool, std::string_view) override {}
        void on_data(std::string_view c) override {
            ++calls;
            data.append(c);
        }
        void on_reply_end() override { ++ends; }
    } counter;
    counter.data.reserve(payload.size());

    Pop3ReplyParser parser;
    parser.expect(true);
    const std::size_t chunk = 64 * 1024;
    auto t0 = std::chrono::steady_clock::now();
    for (std::size_t off = 0; off < wire.size(); off += chunk) {
        parser.feed(std::string_view(wire).substr(off, chunk), counter);
    }
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE("10 MB POP3 message parsed in " << elapsed * 1000 << " ms, " << counter.calls
                                            << " on_data calls");
    CHECK(counter.ends == 1);
    CHECK(counter.data == payload);
    std::size_t chunks = (wire.size() + chunk - 1) / chunk;
    CHECK(counter.calls <= chunks + stuffed_lines + 1);
    CHECK(elapsed < 5.0);  // generous: sanitizer builds included; normally a few ms
}

TEST_CASE("pop3: pending() counts replies not yet complete") {
    Pop3ReplyParser parser;
    CHECK(parser.pending() == 0);
    parser.expect_greeting();
    parser.expect(true);
    parser.expect(false);
    CHECK(parser.pending() == 3);

    struct Check : Pop3Events {
        Pop3ReplyParser* parser;
        std::vector<std::size_t> at_end;
        void on_status(bool, std::string_view) override {}
        void on_data(std::string_view) override {}
        void on_reply_end() override {
            at_end.push_back(parser->pending());
            if (at_end.size() == 1) parser->expect(false);  // queue from inside a handler
        }
    } check;
    check.parser = &parser;
    parser.feed("+OK hi\r\n+OK\r\nx\r\n", check);
    CHECK(parser.pending() == 3);  // greeting done, one queued from the handler
    parser.feed(".\r\n+OK\r\n+OK\r\n", check);
    CHECK(check.at_end == std::vector<std::size_t>{2, 2, 1, 0});
    CHECK(parser.pending() == 0);
}

TEST_CASE("pop3: data when no reply is expected is a protocol error") {
    check_all_chunkings(expects({}), "+OK\r\n",
                        {"ERROR|server sent data when no reply was expected"});
    check_all_chunkings(expects({true}), "+OK\r\n.\r\n+OK surprise\r\n",
                        {"+OK|", "END", "ERROR|server sent data when no reply was expected"});
    // Nothing fed, nothing wrong.
    Pop3ReplyParser idle;
    Pop3Recorder rec;
    idle.feed("", rec);
    CHECK(rec.events.empty());
}

TEST_CASE("pop3: malformed status lines") {
    for (std::string_view line : {"HELLO\r\n", "+OKAY\r\n", "-ERRNO\r\n", "\r\n", "+\r\n", "OK\r\n",
                                  " +OK\r\n"}) {
        CAPTURE(line);
        Pop3ReplyParser parser;
        parser.expect(false);
        Pop3Recorder rec;
        CHECK(error_message_of([&] { parser.feed(line, rec); }) ==
              "server sent a reply that starts with neither +OK nor -ERR");
    }
    // The server's words travel with the error, sanitised.
    Pop3ReplyParser parser;
    parser.expect(false);
    Pop3Recorder rec;
    try {
        parser.feed("* OK IMAP4rev1\x1b[31m ready\r\n", rec);
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.server_text() == "* OK IMAP4rev1\\x1b[31m ready");
    }
}

TEST_CASE("pop3: status line length limit") {
    const std::size_t max = Pop3ReplyParser::kMaxStatusLine;
    const std::string too_long = "server sent a status line longer than 64 KiB";

    SUBCASE("exactly the limit is accepted, with CRLF or bare LF") {
        for (std::string_view end : {"\r\n", "\n"}) {
            Pop3ReplyParser parser;
            parser.expect(false);
            Pop3Recorder rec;
            std::string line = "+OK " + std::string(max - 4, 'a');
            parser.feed(line, rec);
            parser.feed(end, rec);
            REQUIRE(rec.events.size() == 2);
            CHECK(rec.events[0].size() == max);  // "+OK|" + text
        }
    }
    SUBCASE("one byte more is refused, whatever the line end and chunking") {
        std::string line = "+OK " + std::string(max - 3, 'a');
        for (std::string_view end : {"\r\n", "\n"}) {
            for (bool split : {false, true}) {
                CAPTURE(end);
                CAPTURE(split);
                Pop3ReplyParser parser;
                parser.expect(false);
                Pop3Recorder rec;
                CHECK(error_message_of([&] {
                    if (split) {
                        parser.feed(line, rec);
                        parser.feed(end, rec);
                    } else {
                        parser.feed(line + std::string(end), rec);
                    }
                }) == too_long);
            }
        }
    }
    SUBCASE("a 1 MB line is refused, at once or in pieces, before its end arrives") {
        std::string huge = "+OK " + std::string(1024 * 1024, 'x');
        {
            Pop3ReplyParser parser;
            parser.expect(false);
            Pop3Recorder rec;
            CHECK(error_message_of([&] { parser.feed(huge, rec); }) == too_long);
        }
        {
            Pop3ReplyParser parser;
            parser.expect(false);
            Pop3Recorder rec;
            std::size_t fed = 0;
            std::string msg = error_message_of([&] {
                for (; fed < huge.size(); fed += 4096) {
                    parser.feed(std::string_view(huge).substr(fed, 4096), rec);
                }
            });
            CHECK(msg == too_long);
            CHECK(fed <= max + 4096);
        }
    }
    SUBCASE("data lines are not limited") {
        Pop3ReplyParser parser;
        parser.expect(true);
        Pop3Recorder rec;
        std::string line(1024 * 1024, 'y');
        parser.feed("+OK\r\n" + line + "\r\n.\r\n", rec);
        CHECK(rec.events == std::vector<std::string>{"+OK|", "DATA|" + line + "\r\n", "END"});
    }
}

TEST_CASE("pop3: parse_uidl_line") {
    auto e = parse_uidl_line("1 whqtswO00WBw418f9t5JxYwZ");
    REQUIRE(e);
    CHECK(e->number == 1);
    CHECK(e->uid == "whqtswO00WBw418f9t5JxYwZ");

    e = parse_uidl_line("4294967295   QhdPYR:00WBw1Ph7x7 \t");
    REQUIRE(e);
    CHECK(e->number == 4294967295u);
    CHECK(e->uid == "QhdPYR:00WBw1Ph7x7");

    CHECK(parse_uidl_line("2 " + std::string(70, '~'))->uid == std::string(70, '~'));
    CHECK(parse_uidl_line("3 !")->uid == "!");

    for (std::string_view bad : {"", "1", "1 ", " 1 abc", "0 abc", "x abc", "-1 abc", "+1 abc",
                                 "4294967296 abc", "1 two words", "1 caf\xc3\xa9", "1 a\x7f",
                                 "1 a\x01"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_uidl_line(bad));
    }
    CHECK_FALSE(parse_uidl_line("2 " + std::string(71, 'a')));
}

TEST_CASE("pop3: parse_list_line") {
    auto e = parse_list_line("1 1205");
    REQUIRE(e);
    CHECK(e->number == 1);
    CHECK(e->size == 1205);
    CHECK(parse_list_line("2 18446744073709551615")->size == UINT64_MAX);
    CHECK(parse_list_line("7 0")->size == 0);
    // RFC 1939 5: servers may add information after the size.
    CHECK(parse_list_line("3 200 extra info")->size == 200);
    CHECK(parse_list_line("3\t200\t")->size == 200);
    for (std::string_view bad : {"", "1", "1 ", "0 10", "a 10", "1 10x", "1 -10", "1 18446744073709551616",
                                 "4294967296 1"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_list_line(bad));
    }
}

TEST_CASE("pop3: parse_capa_lines") {
    // RFC 2449 6 example, plus a lower-case and a blank line.
    std::string payload =
        "TOP\r\nUSER\r\nSASL CRAM-MD5 KERBEROS_V4\r\nRESP-CODES\r\nLOGIN-DELAY 900\r\n"
        "PIPELINING\r\nEXPIRE 60\r\nUIDL\r\nIMPLEMENTATION Shlemazle-Plotz-v302\r\n\r\n"
        "  stls\n";
    CHECK(parse_capa_lines(payload) ==
          std::vector<std::string>{"TOP", "USER", "SASL", "RESP-CODES", "LOGIN-DELAY", "PIPELINING",
                                   "EXPIRE", "UIDL", "IMPLEMENTATION", "STLS"});
    CHECK(parse_capa_lines("").empty());
}

TEST_CASE("pop3: split_lines") {
    using V = std::vector<std::string_view>;
    CHECK(split_lines("") == V{});
    CHECK(split_lines("a\r\nb\r\n") == V{"a", "b"});
    CHECK(split_lines("a\nb\n") == V{"a", "b"});
    CHECK(split_lines("a\r\n\r\nb") == V{"a", "", "b"});
    CHECK(split_lines("\r\n") == V{""});
    CHECK(split_lines("a\rb\r\n") == V{"a\rb"});
    CHECK(split_lines("trailing cr\r") == V{"trailing cr\r"});
}
