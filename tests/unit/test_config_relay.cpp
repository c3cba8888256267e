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
