// Tests for smtp_codec: reply framing under every chunking, capabilities,
// dot-stuffing (byte-exact round trip), the envelope sender, and the pairing
// of pipelined SMTP/LMTP replies with their transactions.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "error.h"
#include "smtp_codec.h"

using namespace pullmail;

namespace {

std::vector<SmtpReply> parse_all(std::string_view bytes, std::size_t chunk) {
    SmtpReplyParser p;
    std::vector<SmtpReply> out;
    for (std::size_t i = 0; i < bytes.size(); i += chunk) p.feed(bytes.substr(i, chunk), out);
    return out;
}

// Reverses dot-stuffing the way a server does (RFC 5321 4.5.2).
std::string unstuff(const std::string& wire) {
    std::string out;
    std::size_t i = 0;
    while (i < wire.size()) {
        auto e = wire.find("\r\n", i);
        REQUIRE(e != std::string::npos);
        std::string line = wire.substr(i, e - i);
        i = e + 2;
        if (line == ".") {
            CHECK(i == wire.size());
            return out;
        }
        if (!line.empty() && line[0] == '.') line.erase(0, 1);
        out += line + "\r\n";
    }
    FAIL("no terminating dot");
    return out;
}

SmtpReply reply(int code, std::string text = "ok") { return SmtpReply{code, {std::move(text)}}; }

}  // namespace

TEST_CASE("smtp replies: single and multi-line, any chunking, LF or CRLF") {
    std::string wire = "220 mx ESMTP\r\n250-mx.example\r\n250-PIPELINING\r\n250 CHUNKING\r\n354 go\n550 5.1.1 no\r\n";
    for (std::size_t chunk : {1u, 2u, 3u, 7u, 1000u}) {
        auto r = parse_all(wire, chunk);
        REQUIRE(r.size() == 4);
        CHECK(r[0].code == 220);
        CHECK(r[1].lines == std::vector<std::string>{"mx.example", "PIPELINING", "CHUNKING"});
        CHECK(r[2].code == 354);
        CHECK(r[3].text() == "550 5.1.1 no");
    }
    CHECK_THROWS_AS(parse_all("hello\r\n", 100), Error);
    CHECK_THROWS_AS(parse_all("250-a\r\n251 b\r\n", 100), Error);
    CHECK_THROWS_AS(parse_all(std::string(SmtpReplyParser::kMaxLine + 10, '2'), 100), Error);
    // A multi-line reply that never ends is refused, not held in memory.
    std::string endless;
    for (std::size_t i = 0; i <= SmtpReplyParser::kMaxLines; ++i) endless += "250-x\r\n";
    CHECK_THROWS_AS(parse_all(endless, 1000), Error);
    std::string ehlo;
    for (int i = 0; i < 40; ++i) ehlo += "250-EXT" + std::to_string(i) + "\r\n";
    CHECK(parse_all(ehlo + "250 LAST\r\n", 1000).size() == 1);
}

TEST_CASE("smtp capabilities from EHLO/LHLO and from libcurl's login record") {
    auto c = parse_capabilities(SmtpReply{250, {"mx", "pipelining", "CHUNKING", "8BITMIME", "SMTPUTF8", "SIZE 1000"}});
    CHECK(c.pipelining);
    CHECK(c.chunking);
    CHECK(c.eightbitmime);
    CHECK(c.smtputf8);
    CHECK(c.size);
    CHECK(c.max_size == 1000);
    // The first line is the server's name, never a keyword.
    CHECK_FALSE(parse_capabilities(SmtpReply{250, {"PIPELINING"}}).pipelining);
    // After STARTTLS the second EHLO counts; AUTH's 235 does not end it.
    auto l = capabilities_from_login({"220 mx", "250-mx", "250-STARTTLS", "250 8BITMIME", "220 go ahead", "250-mx",
                                      "250-PIPELINING", "250 CHUNKING", "235 2.7.0 ok"});
    CHECK(l.pipelining);
    CHECK(l.chunking);
    CHECK_FALSE(l.eightbitmime);
}

TEST_CASE("smtp commands") {
    CHECK(smtp_mail_from("", {}) == "MAIL FROM:<>\r\n");
    CHECK(smtp_mail_from("a@b", MailParams{true, true, 42}) == "MAIL FROM:<a@b> BODY=8BITMIME SMTPUTF8 SIZE=42\r\n");
    CHECK(smtp_rcpt_to("u") == "RCPT TO:<u>\r\n");
    CHECK(smtp_bdat(12, true) == "BDAT 12 LAST\r\n");
    CHECK(smtp_bdat(0, false) == "BDAT 0\r\n");
}

TEST_CASE("dot-stuffing: round trip under every chunking, terminator, missing final CRLF") {
    std::vector<std::string> messages = {
        "",
        ".",
        "Subject: x\r\n\r\n.\r\n..\r\n.x\r\nend",
        ".leading\r\n\r\n.\r\n",
        "a\r\n.\r\nb\r\n",
        "bare\rcr.\r\n.after\n.notline\r\n",
    };
    for (const auto& m : messages) {
        for (std::size_t chunk : {1u, 2u, 3u, 5u, 1000u}) {
            DotStuffer s;
            std::string wire;
            for (std::size_t i = 0; i < m.size(); i += chunk) s.encode(std::string_view(m).substr(i, chunk), wire);
            s.finish(wire);
            std::string want = m;
            if (!want.empty() && !(want.size() >= 2 && want.compare(want.size() - 2, 2, "\r\n") == 0)) want += "\r\n";
            CHECK(unstuff(wire) == want);
            CHECK(wire.size() >= 3);
            CHECK(wire.compare(wire.size() - 3, 3, ".\r\n") == 0);
        }
    }
    DotStuffer s;
    std::string wire;
    s.encode(".a\r\n.\r\n", wire);
    s.finish(wire);
    CHECK(wire == "..a\r\n..\r\n.\r\n");
    // A dot after a bare LF or a bare CR is not at a line start on the wire.
    wire.clear();
    s.encode("x\n.y\r.z\r\n", wire);
    s.finish(wire);
    CHECK(wire == "x\n.y\r.z\r\n.\r\n");
}

TEST_CASE("envelope sender: Return-Path, bounces, From") {
    CHECK(envelope_sender("Return-Path: <b@l.example>\nFrom: a@x\n\nbody") == "b@l.example");
    CHECK(envelope_sender("Return-Path: <>\nFrom: a@x\n\n") == "");
    CHECK(envelope_sender("From: Mail System <MAILER-DAEMON@mx>\n\n") == "");
    CHECK(envelope_sender("From: postmaster@mx\n\n") == "");
    CHECK(envelope_sender("From: x@y\nContent-Type: multipart/report; report-type=delivery-status;\n"
                          " boundary=b\n\n") == "");
    CHECK(envelope_sender("From: \"Bob, B.\" <bob@example.net>\n\n") == "bob@example.net");
    CHECK(envelope_sender("From: bob@example.net (Bob)\r\n\r\n") == "bob@example.net");
    CHECK(envelope_sender("Subject: none\n\n") == "");
    // Nothing that could break the command line: a bad Return-Path falls back.
    CHECK(envelope_sender("Return-Path: <a b@x>\nFrom: c@d\n\n") == "c@d");
    CHECK(envelope_sender("From: <a@b>\r\nRCPT TO:<x>\n\n") == "a@b");
    CHECK_FALSE(plain_mail_address("a@b\r\nRSET"));
}

TEST_CASE("pipelined transactions: SMTP, BDAT, one reply after the data") {
    SmtpTransactions t(false);
    t.begin("m1", {"a", "b"}, false, true);
    t.begin("m2", {"a"}, true, true);
    for (int code : {250, 250, 250, 250}) t.on_reply(reply(code));  // MAIL, RCPT a, RCPT b, BDAT
    auto f = t.take_finished();
    REQUIRE(f.size() == 1);
    CHECK(f[0].id == "m1");
    CHECK(f[0].result == SmtpOutcome::Result::Delivered);
    for (int code : {250, 250}) t.on_reply(reply(code));  // RSET, MAIL
    t.on_reply(reply(450, "4.2.0 busy"));                // RCPT a
    CHECK(t.take_finished().empty());
    t.on_reply(reply(554, "5.5.1 no valid recipients"));  // BDAT
    f = t.take_finished();
    REQUIRE(f.size() == 1);
    // The permanent refusal says more than the temporary one before it.
    CHECK(f[0].result == SmtpOutcome::Result::Permanent);
    CHECK(f[0].step == "end of data");
    CHECK(t.idle());
    CHECK_THROWS_AS(t.on_reply(reply(250)), Error);
}

TEST_CASE("pipelined transactions: LMTP answers once per accepted recipient") {
    SmtpTransactions t(true);
    t.begin("m1", {"a", "b", "c"}, false, true);
    t.on_reply(reply(250));  // MAIL
    t.on_reply(reply(250));  // a
    t.on_reply(reply(550, "5.1.1 no c"));  // b refused
    t.on_reply(reply(250));  // c
    t.on_reply(reply(250));  // data for a
    CHECK(t.take_finished().empty());
    t.on_reply(reply(452, "4.2.2 over quota"));  // data for c
    auto f = t.take_finished();
    REQUIRE(f.size() == 1);
    CHECK(f[0].result == SmtpOutcome::Result::Permanent);
    CHECK(f[0].step == "RCPT TO:<b>");

    t.begin("m2", {"a", "b"}, true, true);
    for (int code : {250, 250, 250, 250, 250}) t.on_reply(reply(code));  // RSET MAIL a b data(a)
    CHECK(t.take_finished().empty());
    t.on_reply(reply(451, "4.3.0 later"));  // data(b)
    f = t.take_finished();
    REQUIRE(f.size() == 1);
    CHECK(f[0].result == SmtpOutcome::Result::Temporary);
    CHECK(f[0].server_text == "451 4.3.0 later");
}

TEST_CASE("transactions with DATA: 354 decides whether the body is sent") {
    SmtpTransactions t(false);
    t.begin("m1", {"a"}, false, false);
    CHECK_FALSE(t.data_decided());
    t.on_reply(reply(250));
    t.on_reply(reply(250));
    t.on_reply(reply(354, "go"));
    CHECK(t.data_decided());
    CHECK(t.data_accepted());
    t.data_sent();
    t.on_reply(reply(250));
    auto f = t.take_finished();
    REQUIRE(f.size() == 1);
    CHECK(f[0].result == SmtpOutcome::Result::Delivered);

    t.begin("m2", {"a"}, true, false);
    t.on_reply(reply(250));
    t.on_reply(reply(250));
    t.on_reply(reply(550, "5.1.1 unknown"));
    t.on_reply(reply(503, "5.5.1 no recipients"));  // DATA refused: no body, done
    CHECK(t.data_decided());
    CHECK_FALSE(t.data_accepted());
    f = t.take_finished();
    REQUIRE(f.size() == 1);
    CHECK(f[0].result == SmtpOutcome::Result::Permanent);
    CHECK(f[0].step == "RCPT TO:<a>");
    CHECK(t.idle());
}
