// test_fuzz_findings.cpp — reproductions of what the fuzz targets
// (tests/fuzz/) found, as plain unit tests, so a regression shows up here
// too and not only in the fuzz build.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "error.h"
#include "imap_session.h"
#include "transport.h"

using namespace pullmail;

namespace {

// The server side is a fixed byte stream, handed out one byte at a time
// whatever the client sends (the tags are predictable: P1, P2, ...), so each
// command's pump stops right after its completion; the end of the stream
// closes the connection.
class StreamConnection final : public Connection {
public:
    explicit StreamConnection(std::string server) : in_(std::move(server)) {}
    std::size_t try_send(std::string_view data) override { return data.size(); }
    std::size_t try_recv(char* buf, std::size_t n, bool& eof) override {
        if (pos_ == in_.size()) {
            eof = true;
            return 0;
        }
        std::size_t k = std::min<std::size_t>(n, 1);
        in_.copy(buf, k, pos_);
        pos_ += k;
        return k;
    }
    bool wait(bool, bool, int) override { return true; }

private:
    std::string in_;
    std::size_t pos_ = 0;
};

// Records the MessageHandler calls and whether begin() came while a message
// was still open (the contract: begin, data..., then end or failed).
struct Calls final : MessageHandler {
    std::vector<std::string> log;
    bool open = false, nested_begin = false;
    void begin(const RemoteMessage&) override {
        nested_begin |= open;
        open = true;
        log.push_back("begin");
    }
    void data(std::string_view c) override { log.push_back("data " + std::string(c)); }
    void end(const RemoteMessage& m) override {
        open = false;
        log.push_back("end " + std::to_string(m.uid));
    }
    void failed(const RemoteMessage& m, std::string_view) override {
        open = false;
        log.push_back("failed " + std::to_string(m.uid));
    }
    bool stop_requested() const override { return false; }
};

}  // namespace

TEST_CASE("imap session: a FETCH response with two BODY[] items is a protocol error, not two messages") {
    // Found by fuzz_imap_session: the second BODY[] literal began a second
    // message while the first was still open, so Intake replaced
    // the first's sink and delivered the second body under the first's UID.
    const std::string server =
        "* CAPABILITY IMAP4rev1 UIDPLUS\r\nP1 OK\r\n* LIST () \".\" \"\"\r\nP2 OK\r\n"
        "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* 1 FETCH (UID 3 RFC822.SIZE 5)\r\nP3 OK\r\nP4 OK\r\n"
        "* 1 FETCH (UID 3 BODY[] {5}\r\nfirst BODY[] {6}\r\nsecond)\r\nP5 OK\r\n";
    StreamConnection conn(server);
    Channel ch(conn, 5, "t", nullptr, 0);
    ImapSession imap(ch);
    imap.start();
    std::vector<RemoteMessage> list;
    imap.select("INBOX", true, &list);
    REQUIRE(list.size() == 1);
    Calls calls;
    CHECK_THROWS_AS(imap.fetch(list, calls), Error);
    CHECK_FALSE(calls.nested_begin);
    CHECK(std::find(calls.log.begin(), calls.log.end(), "end 3") == calls.log.end());
}
