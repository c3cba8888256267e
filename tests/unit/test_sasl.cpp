// The login codec (sasl.h): what is offered, what is chosen, and every byte
// of each dialogue.
#include <doctest/doctest.h>

#include "error.h"
#include "sasl.h"

using namespace pullmail;

namespace {

using Kind = LoginExchange::Step::Kind;

ServerOffer pop3(std::vector<std::string> lines) { return parse_offer(Protocol::Pop3, lines); }
ServerOffer imap(std::vector<std::string> lines) { return parse_offer(Protocol::Imap, lines); }

std::string config_error(AuthMethod m, const ServerOffer& o, bool token, bool tls) {
    try {
        choose_auth_method(m, o, token, tls, "pop3s://h:995");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Config);
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("sasl: base64 and the digests of RFC 1939 and RFC 2195") {
    CHECK(base64_encode("") == "");
    CHECK(base64_encode(std::string("\0u\0p", 4)) == "AHUAcA==");
    CHECK(base64_decode("AHUAcA==") == std::string("\0u\0p", 4));
    CHECK(base64_decode("abc") == std::nullopt);
    CHECK(base64_decode("ab=c") == std::nullopt);
    CHECK(base64_decode("") == std::string());
    // RFC 1939 section 7.
    CHECK(apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf") == "c4c9334bac560ecc979e58001b3e22fb");
    // RFC 2195 section 2.
    CHECK(cram_md5_response("tim", "tanstaaftanstaaf", "<1896.697170952@postoffice.reston.mci.net>") ==
          "tim b913a602c7eda7a495b4e6e7334d3890");
    CHECK(xoauth2_payload("u@x", "T") == "user=u@x\x01" "auth=Bearer T\x01\x01");
    CHECK(oauthbearer_payload("a,b=c", "T", "h", 993) == "n,a=a=2Cb=3Dc,\x01host=h\x01port=993\x01" "auth=Bearer T\x01\x01");
}

TEST_CASE("sasl: the POP3 offer is the greeting's timestamp and the last CAPA listing") {
    auto o = pop3({"+OK Mailutils <1234.5678@host>", "+OK Capability list follows", "USER", "STLS", ".",
                   "+OK Begin TLS", "+OK Capability list follows", "SASL PLAIN CRAM-MD5 GSSAPI", "USER", "."});
    CHECK(o.apop_timestamp == "<1234.5678@host>");
    CHECK(o.offers(AuthMethod::User));
    CHECK(o.offers(AuthMethod::Apop));
    CHECK(o.offers(AuthMethod::Plain));
    CHECK(o.offers(AuthMethod::CramMd5));
    CHECK_FALSE(o.offers(AuthMethod::Login));
    CHECK(o.describe() == "user, apop, plain, cram-md5, gssapi (not supported by pullmail)");
    // No CAPA (an RFC 1939 server): USER, and no APOP without a timestamp.
    auto old = pop3({"+OK ready", "-ERR unknown command"});
    CHECK(old.offers(AuthMethod::User));
    CHECK_FALSE(old.offers(AuthMethod::Apop));
    CHECK(old.sasl.empty());
    // A CAPA without USER: no USER.
    auto ms = pop3({"+OK The Microsoft Exchange POP3 service is ready.", "+OK", "TOP", "UIDL", "SASL PLAIN XOAUTH2", "."});
    CHECK_FALSE(ms.offers(AuthMethod::User));
    CHECK(ms.offers(AuthMethod::XOAuth2));
}

TEST_CASE("sasl: the IMAP offer is the last capability listing") {
    auto o = imap({"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready", "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED",
                   "A001 OK done", "A002 OK Begin TLS", "* CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=XOAUTH2 LITERAL+",
                   "A003 OK done"});
    CHECK(o.offers(AuthMethod::User));
    CHECK(o.sasl_ir);
    CHECK(o.literal_plus);
    CHECK(o.offers(AuthMethod::Plain));
    CHECK(o.offers(AuthMethod::XOAuth2));
    CHECK_FALSE(o.offers(AuthMethod::Apop));
    auto plain = imap({"* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN] hi"});
    CHECK_FALSE(plain.offers(AuthMethod::User));
    CHECK_FALSE(plain.sasl_ir);
}

TEST_CASE("sasl: auto takes the strongest method there are credentials for, never plaintext without TLS") {
    auto o = pop3({"+OK <1.2@h>", "+OK", "SASL PLAIN LOGIN CRAM-MD5 XOAUTH2 OAUTHBEARER", "USER", "."});
    CHECK(choose_auth_method(AuthMethod::Auto, o, false, true, "x") == AuthMethod::Plain);
    CHECK(choose_auth_method(AuthMethod::Auto, o, true, true, "x") == AuthMethod::OAuthBearer);
    CHECK(choose_auth_method(AuthMethod::Auto, o, false, false, "x") == AuthMethod::CramMd5);
    auto mailutils = pop3({"+OK <1.2@h>", "+OK", "USER", "."});
    CHECK(choose_auth_method(AuthMethod::Auto, mailutils, false, true, "x") == AuthMethod::User);
    CHECK(choose_auth_method(AuthMethod::Auto, mailutils, false, false, "x") == AuthMethod::Apop);
    CHECK(choose_auth_method(AuthMethod::User, mailutils, false, true, "x") == AuthMethod::User);
    auto plain_only = pop3({"+OK hi", "+OK", "SASL PLAIN", "USER", "."});
    CHECK(config_error(AuthMethod::Auto, plain_only, false, false).find("without TLS") != std::string::npos);
    CHECK(config_error(AuthMethod::Auto, plain_only, true, true) ==
          "pop3s://h:995 offers no OAuth2 login (XOAUTH2 or OAUTHBEARER) (the server offers: user, plain)");
    CHECK(config_error(AuthMethod::CramMd5, plain_only, false, true) ==
          "auth = \"cram-md5\": pop3s://h:995 does not offer it (the server offers: user, plain)");
    CHECK(config_error(AuthMethod::Apop, imap({"* CAPABILITY IMAP4rev1"}), false, true).find("POP3 method") !=
          std::string::npos);
    // An explicit plaintext method without TLS is the user's call.
    CHECK(choose_auth_method(AuthMethod::Plain, plain_only, false, false, "x") == AuthMethod::Plain);
}

TEST_CASE("sasl: POP3 USER/PASS despite an APOP timestamp, and APOP") {
    auto o = pop3({"+OK <1896.697170952@dbc.mtview.ca.us>", "+OK", "USER", "."});
    LoginExchange u(AuthMethod::User, o, "mrose", "tanstaaf", "h", 110);
    auto s = u.start();
    CHECK(s.bytes == "USER mrose\r\n");
    s = u.feed("+OK");
    CHECK(s.bytes == "PASS tanstaaf\r\n");
    CHECK(s.trace == "PASS ****");
    CHECK(u.feed("+OK maildrop locked").kind == Kind::Done);

    LoginExchange a(AuthMethod::Apop, o, "mrose", "tanstaaf", "h", 110);
    s = a.start();
    CHECK(s.bytes == "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n");
    CHECK(s.trace == "APOP mrose ****");
    s = a.feed("-ERR [AUTH] permission denied");
    CHECK(s.kind == Kind::Refused);
    CHECK(s.server == "-ERR [AUTH] permission denied");

    LoginExchange bad(AuthMethod::User, o, "mrose", "x", "h", 110);
    bad.start();
    CHECK(bad.feed("-ERR no such user").kind == Kind::Refused);
}

TEST_CASE("sasl: IMAP initial responses only with SASL-IR") {
    auto without = imap({"* CAPABILITY IMAP4rev1 AUTH=PLAIN"});
    LoginExchange p(AuthMethod::Plain, without, "u", "p", "h", 143);
    auto s = p.start();
    CHECK(s.bytes == "L1 AUTHENTICATE PLAIN\r\n");
    s = p.feed("+ ");
    CHECK(s.bytes == "AHUAcA==\r\n");
    CHECK(s.trace == "****");
    CHECK(p.feed("* CAPABILITY IMAP4rev1").kind == Kind::Wait);
    CHECK(p.feed("L1 OK logged in").kind == Kind::Done);

    auto with = imap({"* CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN"});
    LoginExchange q(AuthMethod::Plain, with, "u", "p", "h", 143);
    s = q.start();
    CHECK(s.bytes == "L1 AUTHENTICATE PLAIN AHUAcA==\r\n");
    CHECK(s.trace == "L1 AUTHENTICATE PLAIN ****");
    s = q.feed("L1 NO [AUTHENTICATIONFAILED] Authentication failed.");
    CHECK(s.kind == Kind::Refused);
}

TEST_CASE("sasl: IMAP LOGIN quotes, or sends literals for 8-bit passwords") {
    auto o = imap({"* CAPABILITY IMAP4rev1"});
    LoginExchange l(AuthMethod::User, o, "u", "a\"b\\c", "h", 143);
    auto s = l.start();
    CHECK(s.bytes == "L1 LOGIN \"u\" \"a\\\"b\\\\c\"\r\n");
    CHECK(s.trace == "L1 LOGIN \"u\" ****");
    CHECK(l.feed("L1 OK").kind == Kind::Done);

    LoginExchange lit(AuthMethod::User, o, "u", "p\xc3\xa4", "h", 143);
    s = lit.start();
    CHECK(s.bytes == "L1 LOGIN \"u\" {3}\r\n");
    s = lit.feed("+ go ahead");
    CHECK(s.bytes == "p\xc3\xa4\r\n");
    CHECK(s.trace == "****");
    CHECK(lit.feed("L1 OK").kind == Kind::Done);

    auto plus = imap({"* CAPABILITY IMAP4rev1 LITERAL+"});
    LoginExchange lp(AuthMethod::User, plus, "u", "p\xc3\xa4", "h", 143);
    CHECK(lp.start().bytes == "L1 LOGIN \"u\" {3+}\r\np\xc3\xa4\r\n");
}

TEST_CASE("sasl: LOGIN and CRAM-MD5 answer the server's challenges") {
    auto o = pop3({"+OK hi", "+OK", "SASL LOGIN CRAM-MD5", "."});
    LoginExchange l(AuthMethod::Login, o, "u", "p", "h", 110);
    CHECK(l.start().bytes == "AUTH LOGIN\r\n");
    CHECK(l.feed("+ VXNlcm5hbWU6").bytes == "dQ==\r\n");
    CHECK(l.feed("+ UGFzc3dvcmQ6").bytes == "cA==\r\n");
    CHECK(l.feed("+OK").kind == Kind::Done);

    LoginExchange c(AuthMethod::CramMd5, o, "tim", "tanstaaftanstaaf", "h", 110);
    CHECK(c.start().bytes == "AUTH CRAM-MD5\r\n");
    auto s = c.feed("+ " + base64_encode("<1896.697170952@postoffice.reston.mci.net>"));
    CHECK(s.bytes == base64_encode("tim b913a602c7eda7a495b4e6e7334d3890") + "\r\n");
    CHECK_THROWS_AS(c.feed("+ " + base64_encode("again")), Error);
}

TEST_CASE("sasl: POP3 XOAUTH2 in two steps (Microsoft), OAUTHBEARER with an initial response") {
    auto o = pop3({"+OK", "+OK", "SASL PLAIN XOAUTH2 OAUTHBEARER", "."});
    LoginExchange x(AuthMethod::XOAuth2, o, "u@x", "T", "h", 995);
    auto s = x.start();
    CHECK(s.bytes == "AUTH XOAUTH2\r\n");
    s = x.feed("+ ");
    CHECK(s.bytes == base64_encode(xoauth2_payload("u@x", "T")) + "\r\n");
    CHECK(x.feed("+OK User successfully authenticated.").kind == Kind::Done);

    LoginExchange b(AuthMethod::OAuthBearer, o, "u", "T", "h", 995);
    CHECK(b.start().bytes == "AUTH OAUTHBEARER " + base64_encode(oauthbearer_payload("u", "T", "h", 995)) + "\r\n");
    // A token of several KB: no initial response past 255 octets.
    LoginExchange big(AuthMethod::OAuthBearer, o, "u", std::string(3000, 'A'), "h", 995);
    CHECK(big.start().bytes == "AUTH OAUTHBEARER\r\n");
    s = big.feed("+ ");
    CHECK(s.bytes.size() > 4000);
}

TEST_CASE("sasl: a refused OAuth2 token: the error challenge gets a dummy answer, its text is reported") {
    auto o = imap({"* CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER AUTH=XOAUTH2"});
    LoginExchange b(AuthMethod::OAuthBearer, o, "u", "T", "h", 993);
    b.start();
    auto s = b.feed("+ " + base64_encode("{\"status\":\"invalid_token\"}"));
    CHECK(s.bytes == "AQ==\r\n");
    s = b.feed("L1 NO [AUTHENTICATIONFAILED] Authentication failed.");
    CHECK(s.kind == Kind::Refused);
    CHECK(s.server.find("invalid_token") != std::string::npos);

    LoginExchange x(AuthMethod::XOAuth2, o, "u", "T", "h", 993);
    x.start();
    CHECK(x.feed("+ " + base64_encode("{\"status\":\"400\"}")).bytes == "\r\n");
    CHECK(x.feed("L1 NO failed").kind == Kind::Refused);
}

TEST_CASE("sasl: lines that fit no state are protocol errors") {
    auto o = pop3({"+OK", "+OK", "USER", "."});
    LoginExchange u(AuthMethod::User, o, "u", "p", "h", 110);
    CHECK_THROWS_AS(u.feed("+OK"), Error);  // before start()
    u.start();
    CHECK_THROWS_AS(u.feed("+ challenge"), Error);
    CHECK_THROWS_AS(u.feed("HELLO"), Error);
    auto i = imap({"* CAPABILITY IMAP4rev1"});
    LoginExchange l(AuthMethod::User, i, "u", "p", "h", 143);
    l.start();
    CHECK_THROWS_AS(l.feed("A9 OK"), Error);
}

TEST_CASE("sasl: a refusal whose response code says it is temporary is told apart from a wrong password") {
    CHECK(refusal_is_temporary("-ERR [IN-USE] Mailbox is locked by another POP3 session"));
    CHECK(refusal_is_temporary("-ERR [SYS/TEMP] Try again later"));
    CHECK(refusal_is_temporary("-ERR [login-delay] wait"));
    CHECK(refusal_is_temporary("A1 NO [UNAVAILABLE] Temporary authentication failure"));
    CHECK(refusal_is_temporary("A1 NO [INUSE] mailbox in use"));
    CHECK(refusal_is_temporary("A1 NO [LIMIT] too many connections"));
    CHECK_FALSE(refusal_is_temporary("-ERR [AUTH] Authentication failed."));
    CHECK_FALSE(refusal_is_temporary("A1 NO [AUTHENTICATIONFAILED] Authentication failed."));
    CHECK_FALSE(refusal_is_temporary("-ERR invalid password [IN-USE]"));  // not a response code
    CHECK_FALSE(refusal_is_temporary("A1 NO"));
    CHECK_FALSE(refusal_is_temporary(""));
}
