// The IDLE decoder keeps at most 64 KiB of literals per response, however
// many literals a hostile server splits them into (one literal was limited,
// their number was not: memory grew with whatever the server sent).
#include <doctest/doctest.h>

#include <string>

#include "error.h"
#include "imap_idle.h"

using namespace pullmail;

TEST_CASE("imap idle: many literals in one response are limited in total") {
    std::string chunk(1024, 'x');
    std::string response = "* STATUS";
    for (int i = 0; i < 80; ++i) response += " {1024}\r\n" + chunk;
    response += "\r\n";
    IdleDecoder d;
    bool refused = false;
    try {
        d.feed(response);
    } catch (const Error& e) {
        refused = e.kind() == ErrorKind::Protocol;
    }
    CHECK(refused);
    // Below the limit, literals are fine.
    IdleDecoder ok;
    std::string small = "* STATUS {5}\r\nInbox (UIDNEXT 4)\r\n* STATUS";
    for (int i = 0; i < 60; ++i) small += " {1024}\r\n" + chunk;
    small += "\r\n";
    CHECK(ok.feed(small).size() == 2);
}
