// test_imap_folders_pipelined.cpp — ImapSession with several folders in one
// flight (select_many, fetch over several folders, reselect): replies are
// routed to the folder whose command they answer, and a folder whose
// UIDVALIDITY changed between its listing and its re-SELECT gives up none
// of its bodies (its UIDs would name other messages).
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "error.h"
#include "imap_session.h"
#include "transport.h"

using namespace pullmail;

namespace {

// A scripted server: a fixed byte stream, whatever the client sends (tags
// are predictable: P1, P2, ...). `sent` keeps what the client wrote.
class ScriptedConnection final : public Connection {
public:
    explicit ScriptedConnection(std::string server) : in_(std::move(server)) {}
    std::size_t try_send(std::string_view data) override {
        sent.append(data);
        return data.size();
    }
    std::size_t try_recv(char* buf, std::size_t n, bool& eof) override {
        if (pos_ == in_.size()) {
            eof = true;
            return 0;
        }
        std::size_t k = std::min<std::size_t>(n, 7);
        k = in_.copy(buf, k, pos_);
        pos_ += k;
        return k;
    }
    bool wait(bool, bool, int) override { return true; }
    std::string sent;

private:
    std::string in_;
    std::size_t pos_ = 0;
};

struct Bodies final : MessageHandler {
    std::vector<std::string> log;
    std::string data_;
    void begin(const RemoteMessage& m) override {
        data_.clear();
        log.push_back("begin " + m.folder() + " " + std::to_string(m.uid));
    }
    void data(std::string_view c) override { data_ += c; }
    void end(const RemoteMessage& m) override { log.push_back("end " + m.folder() + " " + std::to_string(m.uid) + " " + data_); }
    void failed(const RemoteMessage& m, std::string_view) override {
        log.push_back("failed " + m.folder() + " " + std::to_string(m.uid));
    }
    bool stop_requested() const override { return false; }
};

const std::string kStart = "* CAPABILITY IMAP4rev1 UIDPLUS\r\nP1 OK\r\n* LIST () \".\" \"\"\r\nP2 OK\r\n";

// EXAMINE A, its listing, EXAMINE B, its listing (P3..P6).
const std::string kTwoListings =
    "* 2 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 3] n\r\nP3 OK [READ-ONLY] done\r\n"
    "* 1 FETCH (UID 1 RFC822.SIZE 3)\r\n* 2 FETCH (UID 2 RFC822.SIZE 4)\r\nP4 OK done\r\n"
    "* 1 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\n* OK [UIDNEXT 6] n\r\nP5 OK [READ-ONLY] done\r\n"
    "* 1 FETCH (UID 5 RFC822.SIZE 2)\r\nP6 OK done\r\n";

}  // namespace

TEST_CASE("imap session: select_many lists every folder in one flight, each reply to its folder") {
    ScriptedConnection conn(kStart + kTwoListings);
    Channel ch(conn, 5, "t", nullptr, 0);
    ImapSession imap(ch);
    imap.start();
    auto got = imap.select_many({"A", "B"}, true);
    REQUIRE(got.size() == 2);
    CHECK_FALSE(got[0].error);
    CHECK_FALSE(got[1].error);
    CHECK(got[0].info.uidvalidity == 7);
    CHECK(got[0].info.exists == 2);
    CHECK(got[0].info.uidnext == 3);
    REQUIRE(got[0].listing.size() == 2);
    CHECK(got[0].listing[1].uid == 2);
    CHECK(got[0].listing[1].folder() == "A");
    CHECK(got[1].info.uidvalidity == 8);
    REQUIRE(got[1].listing.size() == 1);
    CHECK(got[1].listing[0].uid == 5);
    CHECK(got[1].listing[0].size == 2);
    // All four commands went out before any reply was read.
    CHECK(conn.sent.find("P3 EXAMINE A\r\nP4 UID FETCH 1:* (UID RFC822.SIZE)\r\nP5 EXAMINE B\r\nP6 UID FETCH") !=
          std::string::npos);
}

TEST_CASE("imap session: a refused folder in select_many is that folder's error only") {
    const std::string server = kStart + "P3 NO [NONEXISTENT] no such mailbox\r\nP4 BAD no mailbox selected\r\n" +
                               "* 1 EXISTS\r\n* OK [UIDVALIDITY 8] v\r\nP5 OK done\r\n"
                               "* 1 FETCH (UID 5 RFC822.SIZE 2)\r\nP6 OK done\r\n";
    ScriptedConnection conn(server);
    Channel ch(conn, 5, "t", nullptr, 0);
    ImapSession imap(ch);
    imap.start();
    auto got = imap.select_many({"Gone", "B"}, true);
    REQUIRE(got[0].error);
    CHECK(got[0].error->folder_scoped());
    CHECK(got[0].listing.empty());
    CHECK_FALSE(got[1].error);
    CHECK(got[1].listing.size() == 1);
}

TEST_CASE("imap session: fetch over two folders selects the first again and takes both folders' bodies") {
    const std::string server = kStart + kTwoListings +
                               // EXAMINE A again (B was the last opened), A's bodies, EXAMINE B, B's body.
                               "* OK [UIDVALIDITY 7] v\r\nP7 OK [READ-ONLY] done\r\n"
                               "* 1 FETCH (UID 1 RFC822.SIZE 3 BODY[] {3}\r\naaa)\r\n"
                               "* 2 FETCH (UID 2 RFC822.SIZE 4 BODY[] {4}\r\nbbbb)\r\nP8 OK done\r\n"
                               "* OK [UIDVALIDITY 8] v\r\nP9 OK [READ-ONLY] done\r\n"
                               "* 1 FETCH (UID 5 RFC822.SIZE 2 BODY[] {2}\r\nee)\r\nP10 OK done\r\n";
    ScriptedConnection conn(server);
    Channel ch(conn, 5, "t", nullptr, 0);
    ImapSession imap(ch);
    imap.start();
    auto got = imap.select_many({"A", "B"}, true);
    std::vector<RemoteMessage> msgs = got[0].listing;
    msgs.insert(msgs.end(), got[1].listing.begin(), got[1].listing.end());
    Bodies h;
    imap.fetch(msgs, h);
    CHECK(h.log == std::vector<std::string>{"begin A 1", "end A 1 aaa", "begin A 2", "end A 2 bbbb", "begin B 5",
                                             "end B 5 ee"});
    // B's SELECT went out behind A's FETCH, before A's bodies came back.
    CHECK(conn.sent.find("P8 UID FETCH 1:2 (UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[])\r\nP9 EXAMINE B\r\nP10 "
                         "UID FETCH 5") != std::string::npos);
}

TEST_CASE("imap session: a folder whose UIDVALIDITY changed before its re-SELECT gives up none of its bodies") {
    const std::string server = kStart + kTwoListings +
                               "* OK [UIDVALIDITY 7] v\r\nP7 OK [READ-ONLY] done\r\n"
                               "* 1 FETCH (UID 1 RFC822.SIZE 3 BODY[] {3}\r\naaa)\r\n"
                               "* 2 FETCH (UID 2 RFC822.SIZE 4 BODY[] {4}\r\nbbbb)\r\nP8 OK done\r\n"
                               // B was recreated: UID 5 is another message now.
                               "* OK [UIDVALIDITY 99] v\r\nP9 OK [READ-ONLY] done\r\n"
                               "* 1 FETCH (UID 5 RFC822.SIZE 2 BODY[] {2}\r\nzz)\r\nP10 OK done\r\n";
    ScriptedConnection conn(server);
    Channel ch(conn, 5, "t", nullptr, 0);
    ImapSession imap(ch);
    imap.start();
    auto got = imap.select_many({"A", "B"}, true);
    std::vector<RemoteMessage> msgs = got[0].listing;
    msgs.insert(msgs.end(), got[1].listing.begin(), got[1].listing.end());
    Bodies h;
    CHECK_THROWS_AS(imap.fetch(msgs, h), Error);
    CHECK(h.log == std::vector<std::string>{"begin A 1", "end A 1 aaa", "begin A 2", "end A 2 bbbb"});
}

TEST_CASE("imap session: reselect refuses a folder whose UIDVALIDITY changed since it was opened") {
    const std::string server = kStart + kTwoListings + "* OK [UIDVALIDITY 70] v\r\nP7 OK done\r\n";
    ScriptedConnection conn(server);
    Channel ch(conn, 5, "t", nullptr, 0);
    ImapSession imap(ch);
    imap.start();
    imap.select_many({"A", "B"}, true);
    imap.reselect("B", true);  // selected already: nothing sent
    CHECK(conn.sent.find("P7") == std::string::npos);
    CHECK_THROWS_AS(imap.reselect("A", false), Error);
    CHECK(conn.sent.find("P7 SELECT A") != std::string::npos);
}
