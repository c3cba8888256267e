// Tests of the config of SMTP/LMTP delivery targets (issue 16): the deliver
// forms, recipient (required, one or several), TLS and AUTH settings, and
// the errors for what does not fit.
#include <doctest/doctest.h>

#include <string>

#include "config.h"
#include "config_support.h"
#include "error.h"

using namespace pullmail;

namespace {

const std::string kHead =
    "[accounts.a]\nurl = \"pop3s://pop.example\"\nuser = \"me\"\npassword = \"pw\"\n";

Account parse(const std::string& rest) { return test::parse_one_account(kHead + rest); }

std::string error_of(const std::string& rest) { return test::config_error(kHead + rest); }

}  // namespace

TEST_CASE("relay targets: lmtp socket, lmtp://, smtp://, smtps:// with recipients") {
    Account a = parse("deliver = \"lmtp:/run/dovecot/lmtp\"\nrecipient = \"me\"\n");
    REQUIRE(a.deliver.kind == DeliveryTarget::Kind::Relay);
    CHECK(a.deliver.relay->protocol == Protocol::Lmtp);
    CHECK(a.deliver.relay->socket_path == "/run/dovecot/lmtp");
    CHECK(a.deliver.relay->display() == "lmtp:/run/dovecot/lmtp");
    CHECK(a.deliver.recipients == std::vector<std::string>{"me"});

    a = parse("deliver = \"lmtp://mail.internal\"\nrecipient = [\"a@x\", \"b@y\"]\n");
    CHECK(a.deliver.relay->port == 24);
    CHECK(a.deliver.relay->tls == TlsMode::Off);
    CHECK(a.deliver.recipients == std::vector<std::string>{"a@x", "b@y"});

    a = parse("deliver = \"smtp://localhost\"\nrecipient = \"me@x\"\n");
    CHECK(a.deliver.relay->protocol == Protocol::Smtp);
    CHECK(a.deliver.relay->port == 25);
    CHECK(a.deliver.relay->tls == TlsMode::IfOffered);
    CHECK(a.deliver.relay->user.empty());

    a = parse("deliver = \"smtps://mx.example\"\nrecipient = \"me@x\"\n");
    CHECK(a.deliver.relay->port == 465);
    CHECK(a.deliver.relay->tls == TlsMode::Implicit);
    CHECK(a.deliver.relay->display() == "smtps://mx.example:465");
}

TEST_CASE("relay targets: table form with STARTTLS required and AUTH") {
    Account a = parse("deliver = { url = \"smtp://mx:587\", tls = \"starttls\", user = \"u\", "
                      "password_command = \"pass mx\" }\nrecipient = \"me@x\"\n");
    CHECK(a.deliver.relay->tls == TlsMode::StartTls);
    CHECK(a.deliver.relay->port == 587);
    CHECK(a.deliver.relay->user == "u");
    CHECK(a.deliver.relay->password.kind == PasswordSource::Kind::Command);
    a = parse("deliver = { url = \"smtp://mx\", tls = \"off\" }\nrecipient = \"me@x\"\n");
    CHECK(a.deliver.relay->tls == TlsMode::Off);
    CHECK(a.deliver.relay->user.empty());
}

TEST_CASE("relay targets: errors") {
    CHECK(error_of("deliver = \"lmtp:/s\"\n").find("missing required key 'recipient'") != std::string::npos);
    CHECK(error_of("deliver = \"maildir:/m\"\nrecipient = \"x\"\n").find("recipient is only for") !=
          std::string::npos);
    CHECK(error_of("deliver = \"smtp://mx\"\nrecipient = \"a b\"\n").find("is not a mail address") !=
          std::string::npos);
    CHECK(error_of("deliver = \"smtp://mx\"\nrecipient = []\n").find("at least one recipient") != std::string::npos);
    CHECK(error_of("deliver = { url = \"smtp://mx\", password = \"x\" }\nrecipient = \"a\"\n")
              .find("needs user") != std::string::npos);
    CHECK(error_of("deliver = { url = \"lmtp://mx\", tls = \"starttls\" }\nrecipient = \"a\"\n")
              .find("LMTP target has no TLS") != std::string::npos);
    CHECK(error_of("deliver = \"smtps://mx\"\nrecipient = \"a\"\ntls = \"off\"\n").size() > 0);
    CHECK(error_of("deliver = \"smtp://mx/path\"\nrecipient = \"a\"\n").find("no path") != std::string::npos);
    // An account fetches only from POP3 or IMAP.
    try {
        parse_config("[accounts.a]\nurl = \"smtp://mx\"\nuser = \"me\"\npassword = \"pw\"\ndeliver = \"maildir:/m\"\n",
                     "config.toml", test::config_env());
        FAIL("smtp account accepted");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("smtp and lmtp are for deliver") != std::string::npos);
    }
}

TEST_CASE("relay targets: a relay with a user requires STARTTLS unless told otherwise") {
    // No tls key: the password must never go out before STARTTLS, so an
    // attacker who strips STARTTLS from the EHLO reply gets nothing.
    Account a = parse("deliver = { url = \"smtp://mx:587\", user = \"u\", password_command = \"pass mx\" }\n"
                      "recipient = \"me@x\"\n");
    CHECK(a.deliver.relay->tls == TlsMode::StartTls);
    // Without a user there is nothing to protect: STARTTLS when offered.
    a = parse("deliver = { url = \"smtp://mx:587\" }\nrecipient = \"me@x\"\n");
    CHECK(a.deliver.relay->tls == TlsMode::IfOffered);
    // user with tls = "off": only on loopback.
    for (std::string host : {"localhost", "127.0.0.1", "127.1.2.3", "[::1]"}) {
        a = parse("deliver = { url = \"smtp://" + host + ":25\", tls = \"off\", user = \"u\", password = \"p\" }\n"
                  "recipient = \"me@x\"\n");
        CHECK(a.deliver.relay->tls == TlsMode::Off);
    }
    for (std::string host : {"mx.example", "127.0.0.1.example", "10.0.0.1", "localhost.example"}) {
        std::string err = error_of("deliver = { url = \"smtp://" + host + ":25\", tls = \"off\", user = \"u\", "
                                   "password = \"p\" }\nrecipient = \"me@x\"\n");
        CHECK_MESSAGE(err.find("password in clear") != std::string::npos, err);
    }
}

TEST_CASE("relay targets: proxy and ca_file apply with or without a user") {
    Account a = parse("deliver = { url = \"lmtp://mx:24\", proxy = \"socks5h://127.0.0.1:9050\" }\n"
                      "recipient = \"me@x\"\n");
    CHECK(a.deliver.relay->proxy == "socks5h://127.0.0.1:9050");
    a = parse("deliver = { url = \"smtp://mx\", proxy = \"http://127.0.0.1:3128\", ca_file = \"/ca.pem\" }\n"
              "recipient = \"me@x\"\n");
    CHECK(a.deliver.relay->proxy == "http://127.0.0.1:3128");
    CHECK(a.deliver.relay->ca_file == "/ca.pem");
    a = parse("deliver = { url = \"smtps://mx\", user = \"u\", password = \"p\", proxy = \"socks5h://127.0.0.1:1\" }\n"
              "recipient = \"me@x\"\n");
    CHECK(a.deliver.relay->proxy == "socks5h://127.0.0.1:1");
    CHECK(error_of("deliver = { url = \"smtp://mx\", proxy = \"ftp://x\" }\nrecipient = \"me@x\"\n")
              .find("not a proxy URL") != std::string::npos);
}

TEST_CASE("relay targets: auth and oauth2_token_command are refused (libcurl logs in to a relay)") {
    // Accepted and ignored, they would let libcurl pick PLAIN despite
    // auth = "cram-md5", or send an access token as a password.
    std::string err = error_of("deliver = { url = \"smtps://mx\", user = \"u\", password = \"p\", auth = \"cram-md5\" }\n"
                               "recipient = \"me@x\"\n");
    CHECK_MESSAGE(err.find("auth is not supported for an SMTP relay") != std::string::npos, err);
    err = error_of("deliver = { url = \"smtps://mx\", user = \"u\", oauth2_token_command = \"tok\" }\n"
                   "recipient = \"me@x\"\n");
    CHECK_MESSAGE(err.find("oauth2_token_command is not supported for an SMTP relay") != std::string::npos, err);
    // An IMAP target keeps both (login.cpp logs in there).
    Account a = parse("deliver = { url = \"imaps://t/INBOX\", user = \"u\", oauth2_token_command = \"tok\", "
                      "auth = \"xoauth2\" }\n");
    CHECK(a.deliver.imap->auth == "XOAUTH2");
    CHECK(a.deliver.imap->oauth2);
}

TEST_CASE("relay targets: connections = n in the deliver table, also for an lmtp: socket") {
    Account a = parse("deliver = \"lmtp:/run/dovecot/lmtp\"\nrecipient = \"me\"\n");
    CHECK(a.deliver.relay_connections == 0);  // the default (deliver_smtp.h)
    a = parse("deliver = { url = \"lmtp:/run/dovecot/lmtp\", connections = 4 }\nrecipient = \"me\"\n");
    REQUIRE(a.deliver.kind == DeliveryTarget::Kind::Relay);
    CHECK(a.deliver.relay->socket_path == "/run/dovecot/lmtp");
    CHECK(a.deliver.relay_connections == 4);
    a = parse("deliver = { url = \"smtp://mx\", connections = 3 }\nrecipient = \"a@x\"\n");
    CHECK(a.deliver.relay_connections == 3);
    CHECK(a.deliver.relay->host == "mx");
    std::string err = error_of("deliver = { url = \"smtp://mx\", connections = 17 }\nrecipient = \"a@x\"\n");
    CHECK_MESSAGE(err.find("must be from 1 to 16, not 17") != std::string::npos, err);
    err = error_of("deliver = { url = \"imaps://t/INBOX\", user = \"u\", password = \"p\", connections = 2 }\n");
    CHECK_MESSAGE(err.find("connections here is only for smtp://, smtps:// and lmtp: targets") != std::string::npos,
                  err);
    err = error_of("deliver = { url = \"lmtp:/s\", proxy = \"socks5h://127.0.0.1:9050\" }\nrecipient = \"a\"\n");
    CHECK_MESSAGE(err.find("proxy is not for an lmtp: socket target") != std::string::npos, err);
}
