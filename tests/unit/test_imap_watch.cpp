// The daemon's watching connection (imap_watch.h) over an in-memory server:
// a wake pipe that holds a byte although stop() says "go on" does not make
// the idling watcher spin; a re-arm is NOTIFY NONE, then NOTIFY SET.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "imap_watch.h"

using namespace pullmail;

namespace {

// Accepts IDLE ("+ idling") and DONE; answers NOTIFY with `notify_answer`
// before its completion. poll_fd() is a pipe nobody writes: the socket of
// a server with nothing to say.
class IdleServer final : public Connection {
public:
    IdleServer() {
        REQUIRE(::pipe2(silent_, O_CLOEXEC) == 0);
    }
    ~IdleServer() override {
        ::close(silent_[0]);
        ::close(silent_[1]);
    }
    std::size_t try_send(std::string_view data) override {
        in_.append(data);
        for (std::size_t nl; (nl = in_.find("\r\n")) != std::string::npos;) {
            std::string line = in_.substr(0, nl);
            in_.erase(0, nl + 2);
            if (line == "DONE") {
                out_ += idle_tag_ + " OK Idle completed\r\n";
                continue;
            }
            auto sp = line.find(' ');
            std::string tag = line.substr(0, sp), cmd = line.substr(sp + 1);
            commands.push_back(cmd);
            if (cmd == "IDLE") {
                idle_tag_ = tag;
                out_ += "+ idling\r\n";
            } else if (cmd == "NOTIFY NONE" && refuse_notify_none) {
                out_ += tag + " BAD unknown NOTIFY argument\r\n";
            } else {
                if (cmd.rfind("NOTIFY", 0) == 0) out_ += notify_answer;
                out_ += tag + " OK done\r\n";
            }
        }
        return data.size();
    }
    std::size_t try_recv(char* buf, std::size_t n, bool& eof) override {
        eof = false;
        std::size_t k = std::min(n, out_.size());
        out_.copy(buf, k);
        out_.erase(0, k);
        return k;
    }
    bool wait(bool, bool, int) override { return !out_.empty(); }
    int poll_fd() const override { return silent_[0]; }

    std::vector<std::string> commands;
    std::string notify_answer;
    bool refuse_notify_none = false;

private:
    int silent_[2] = {-1, -1};
    std::string in_, out_, idle_tag_;
};

}  // namespace

TEST_CASE("watcher: a stale byte in the wake pipe does not make an idling watcher spin") {
    // A clock jump pokes the pipe after the watcher drained it but before it
    // read the generation it compares with: stop() then says "go on" while
    // the pipe stays readable. The watcher must drain it, not poll in a loop.
    IdleServer server;
    Channel channel(server, 5, "t", nullptr, 0);
    ImapWatcher watcher(server, channel);
    int wake[2];
    REQUIRE(::pipe2(wake, O_CLOEXEC | O_NONBLOCK) == 0);
    REQUIRE(::write(wake[1], "x", 1) == 1);
    long asked = 0;
    auto t0 = std::chrono::steady_clock::now();
    auto w = watcher.idle(300, 1000, wake[0], [&] {
        ++asked;
        return false;
    });
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    CHECK_FALSE(w.any());
    CHECK(ms >= 250);   // idled until max_ms, as asked
    CHECK(asked <= 5);  // before: asked in a busy loop (hundreds of thousands of times)
    char c;
    CHECK(::read(wake[0], &c, 1) < 0);  // drained
    ::close(wake[0]);
    ::close(wake[1]);
}

TEST_CASE("watcher: a re-arm ends the old NOTIFY before it sets a new one") {
    // A NOTIFY SET replacing one that watches the same server file leaves
    // Dovecot deaf; NOTIFY NONE first does not.
    IdleServer server;
    server.notify_answer = "* STATUS \"F 1\" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n";
    Channel channel(server, 5, "t", nullptr, 0);
    ImapWatcher watcher(server, channel);
    auto w = watcher.notify({"INBOX", "\"F 1\""});
    CHECK(w.mailboxes == std::vector<std::string>{"F 1"});  // news during the command is returned
    ImapWatcher::Wake heard;
    CHECK(watcher.rearm_notify({"INBOX", "\"F 1\""}, heard));
    CHECK(heard.mailboxes == std::vector<std::string>{"F 1", "F 1"});
    const std::string set = "NOTIFY SET (mailboxes (INBOX \"F 1\") (MessageNew MessageExpunge))";
    CHECK(server.commands == std::vector<std::string>{set, "NOTIFY NONE", set});
}

TEST_CASE("watcher: a server that refuses NOTIFY NONE keeps its NOTIFY and is not re-armed") {
    // The re-arm works around Dovecot; a server without NOTIFY NONE keeps
    // the NOTIFY it has, and the watcher goes on idling on the connection
    // instead of reconnecting after every burst of news.
    IdleServer server;
    server.refuse_notify_none = true;
    Channel channel(server, 5, "t", nullptr, 0);
    ImapWatcher watcher(server, channel);
    watcher.notify({"INBOX"});
    ImapWatcher::Wake heard;
    CHECK_FALSE(watcher.rearm_notify({"INBOX"}, heard));
    CHECK_FALSE(watcher.rearm_notify({"INBOX"}, heard));  // not tried again on this connection
    const std::string set = "NOTIFY SET (mailboxes (INBOX) (MessageNew MessageExpunge))";
    CHECK(server.commands == std::vector<std::string>{set, "NOTIFY NONE"});
}
