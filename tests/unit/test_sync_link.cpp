// The daemon's kept sync connection (sync_link.h) over an in-memory server:
// kept only after UNSELECT, handed out again after a NOOP, dropped when the
// server closed it meanwhile, logged out once idle for the limit.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "daemon_schedule.h"
#include "log.h"
#include "sync_link.h"

using namespace pullmail;

namespace {

// Answers every tagged command; CAPABILITY with `caps`. The commands go
// to a list that outlives the connection (the keeper destroys links).
class ScriptedServer final : public Connection {
public:
    ScriptedServer(std::string caps, std::vector<std::string>& commands) : commands(commands), caps_(std::move(caps)) {}
    std::size_t try_send(std::string_view data) override {
        in_.append(data);
        for (std::size_t nl; (nl = in_.find("\r\n")) != std::string::npos;) {
            std::string line = in_.substr(0, nl);
            in_.erase(0, nl + 2);
            auto sp = line.find(' ');
            std::string tag = line.substr(0, sp), cmd = line.substr(sp + 1);
            commands.push_back(cmd);
            if (cmd == "CAPABILITY") out_ += "* CAPABILITY " + caps_ + "\r\n";
            if (cmd.rfind("LIST", 0) == 0) out_ += "* LIST (\\Noselect) \"/\" \"\"\r\n";
            if (cmd.rfind("SELECT", 0) == 0) out_ += "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n";
            out_ += tag + " OK done\r\n";
        }
        return data.size();
    }
    std::size_t try_recv(char* buf, std::size_t n, bool& eof) override {
        eof = closed && out_.empty();
        std::size_t k = std::min(n, out_.size());
        out_.copy(buf, k);
        out_.erase(0, k);
        return k;
    }
    bool wait(bool, bool, int) override { return !out_.empty() || closed; }
    // What the server sends on its own (autologout, shutdown).
    void say_bye() {
        out_ += "* BYE autologout\r\n";
        closed = true;
    }
    std::vector<std::string>& commands;
    bool closed = false;

private:
    std::string caps_, in_, out_;
};

std::unique_ptr<SyncLink> make_link(const std::string& caps, std::vector<std::string>& commands,
                                    ScriptedServer** server = nullptr) {
    auto link = std::make_unique<SyncLink>();
    auto conn = std::make_unique<ScriptedServer>(caps, commands);
    if (server) *server = conn.get();
    link->conn = std::move(conn);
    link->channel = std::make_unique<Channel>(*link->conn, 5, "t", nullptr, 0);
    link->session = std::make_unique<ImapSession>(*link->channel);
    link->session->start();
    link->session->select("INBOX", false);  // as a sync leaves it
    commands.clear();
    return link;
}

}  // namespace

TEST_CASE("sync link: kept after UNSELECT, reused after NOOP, logged out once idle for the limit") {
    ManualClock clock;
    Logger log(0);
    SyncLinkKeeper keeper(clock, std::chrono::minutes(5));
    std::vector<std::string> sent;
    keeper.keep(make_link("IMAP4rev1 UNSELECT", sent));
    CHECK(sent == std::vector<std::string>{"UNSELECT"});

    clock.advance(std::chrono::minutes(4));
    auto link = keeper.take("t", log);
    REQUIRE(link);
    CHECK(sent.back() == "NOOP");
    CHECK(keeper.reused() == 1);
    CHECK_FALSE(keeper.take("t", log));  // handed out: nothing kept meanwhile

    keeper.keep(std::move(link));
    clock.advance(std::chrono::minutes(4));
    keeper.expire();  // 4 min: still kept
    CHECK(sent.back() == "NOOP");  // nothing selected since: nothing sent
    clock.advance(std::chrono::minutes(1));
    keeper.expire();  // 5 min: logged out
    CHECK(sent.back() == "LOGOUT");
    CHECK_FALSE(keeper.take("t", log));
    CHECK(keeper.reused() == 1);
}

TEST_CASE("sync link: a link the server closed while kept is dropped without a command; none kept without UNSELECT") {
    ManualClock clock;
    Logger log(0);
    SyncLinkKeeper keeper(clock);
    std::vector<std::string> sent;
    ScriptedServer* server = nullptr;
    keeper.keep(make_link("IMAP4rev1 UNSELECT", sent, &server));
    server->say_bye();
    std::size_t before = sent.size();
    CHECK_FALSE(keeper.take("t", log));
    CHECK(sent.size() == before);  // no NOOP into a closed connection
    CHECK(keeper.dropped() == 1);

    // No UNSELECT: the folder would stay selected (CLOSE would expunge),
    // so the link is logged out rather than kept.
    keeper.keep(make_link("IMAP4rev1", sent));
    CHECK(sent == std::vector<std::string>{"LOGOUT"});
    CHECK_FALSE(keeper.take("t", log));
}
