// Session tests over an in-memory connection: a scripted server answers each
// client line, and the server's bytes are handed out in small random pieces
// to exercise the codecs' streaming paths through the sessions.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "error.h"
#include "imap_append_args.h"
#include "imap_session.h"
#include "pop3_session.h"
#include "transport.h"

using namespace pullmail;

namespace {

class FakeConnection final : public Connection {
public:
    using Script = std::function<std::string(const std::string& line)>;
    explicit FakeConnection(Script script, unsigned seed = 1) : script_(std::move(script)), rng_(seed) {}

    std::size_t try_send(std::string_view data) override {
        in_.append(data);
        for (;;) {
            auto nl = in_.find("\r\n");
            if (nl == std::string::npos) break;
            std::string line = in_.substr(0, nl);
            in_.erase(0, nl + 2);
            lines.push_back(line);
            out_ += script_(line);
        }
        return data.size();
    }
    std::size_t try_recv(char* buf, std::size_t n, bool& eof) override {
        if (sent_before_first_recv < 0) sent_before_first_recv = static_cast<int>(lines.size());
        if (out_pos_ == out_.size()) {
            eof = closed;
            return 0;
        }
        std::size_t left = out_.size() - out_pos_;
        std::size_t k = std::min<std::size_t>({n, left, std::uniform_int_distribution<std::size_t>(1, piece)(rng_)});
        std::copy(out_.begin() + static_cast<long>(out_pos_), out_.begin() + static_cast<long>(out_pos_ + k), buf);
        out_pos_ += k;
        if (out_pos_ == out_.size()) {
            out_.clear();
            out_pos_ = 0;
        }
        return k;
    }
    bool wait(bool, bool, int timeout_ms) override {
        if (out_pos_ == out_.size() && !closed) {
            ++idle_waits;  // a real connection would block here
            std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
        }
        return out_pos_ != out_.size() || closed;
    }

    std::vector<std::string> lines;
    int sent_before_first_recv = -1;  // lines the client sent before it first read
    int idle_waits = 0;               // waits for a server that had nothing to say
    bool closed = false;
    std::size_t piece = 97;           // largest piece handed out per recv

private:
    Script script_;
    std::string in_, out_;
    std::size_t out_pos_ = 0;  // out_ before it was handed out
    std::mt19937 rng_;
};

struct Collect final : MessageHandler {
    std::map<std::string, std::string> done;  // key or uid -> bytes
    std::string cur;
    std::vector<std::string> failures;
    void begin(const RemoteMessage&) override { cur.clear(); }
    void data(std::string_view c) override { cur.append(c); }
    void end(const RemoteMessage& m) override { done[m.uid ? std::to_string(m.uid) : m.uidl] = cur; }
    void failed(const RemoteMessage& m, std::string_view) override {
        failures.push_back(m.uid ? std::to_string(m.uid) : m.uidl);
    }
    bool stop_requested() const override { return false; }
};

}  // namespace

TEST_CASE("pop3 session: pipelined RETR streams every message; -ERR for one does not stop the rest") {
    std::map<int, std::string> mail = {{1, "Subject: a\r\n\r\n.hidden\r\n"}, {2, "gone"}, {3, "Subject: c\r\n\r\nbody\r\n"}};
    FakeConnection conn([&](const std::string& line) -> std::string {
        if (line == "CAPA") return "+OK\r\nPIPELINING\r\nUIDL\r\n.\r\n";
        if (line == "UIDL") return "+OK\r\n1 u1\r\n2 u2\r\n3 u3\r\n.\r\n";
        if (line == "LIST") return "+OK\r\n1 20\r\n2 4\r\n3 22\r\n.\r\n";
        if (line == "RETR 2") return "-ERR no such message\r\n";
        if (line.rfind("RETR ", 0) == 0) {
            std::string body = mail[std::stoi(line.substr(5))];
            std::string stuffed;
            std::size_t pos = 0;
            while (pos < body.size()) {
                auto nl = body.find("\r\n", pos);
                std::string l = body.substr(pos, nl - pos);
                if (!l.empty() && l[0] == '.') stuffed += '.';
                stuffed += l + "\r\n";
                pos = nl + 2;
            }
            return "+OK\r\n" + stuffed + ".\r\n";
        }
        if (line.rfind("DELE", 0) == 0) return "+OK\r\n";
        if (line == "QUIT") return "+OK bye\r\n";
        return "-ERR what\r\n";
    });
    Channel ch(conn, 5, "t", nullptr, 0);
    Pop3Session pop(ch, true);
    pop.start();
    CHECK(pop.pipelining());
    auto list = pop.list();
    REQUIRE(list.size() == 3);
    CHECK(list[2].size == 22);
    Collect c;
    pop.retrieve(list, c);
    CHECK(c.done["u1"] == mail[1]);
    CHECK(c.done["u3"] == mail[3]);
    CHECK(c.done.count("u2") == 0);
    CHECK(c.failures == std::vector<std::string>{"u2"});
    auto q = pop.delete_and_quit({1, 3});
    CHECK(q.committed);
    CHECK(q.marked == 2);
}

TEST_CASE("pop3 session: PIPELINING announced before login: CAPA, UIDL and LIST in one flight") {
    auto script = [](const std::string& line) -> std::string {
        if (line == "CAPA") return "+OK\r\nPIPELINING\r\nUIDL\r\n.\r\n";
        if (line == "UIDL") return "+OK\r\n1 u1\r\n2 u2\r\n.\r\n";
        if (line == "LIST") return "+OK\r\n1 20\r\n2 4\r\n.\r\n";
        if (line == "QUIT") return "+OK bye\r\n";
        return "-ERR what\r\n";
    };
    SUBCASE("announced: one flight") {
        FakeConnection conn(script);
        Channel ch(conn, 5, "t", nullptr, 0);
        Pop3Session pop(ch, true);
        auto list = pop.start_and_list({"+OK ready", "CAPA", "PIPELINING ", "USER"});
        CHECK(conn.sent_before_first_recv == 3);
        REQUIRE(list.size() == 2);
        CHECK(list[1].uidl == "u2");
        CHECK(list[1].size == 4);
        CHECK(pop.pipelining());
    }
    SUBCASE("not announced: CAPA first, as start() then list()") {
        FakeConnection conn(script);
        Channel ch(conn, 5, "t", nullptr, 0);
        Pop3Session pop(ch, true);
        auto list = pop.start_and_list({"+OK ready", "USER"});
        CHECK(conn.sent_before_first_recv == 1);
        CHECK(list.size() == 2);
        CHECK(pop.pipelining());  // learnt from the CAPA after login
    }
    SUBCASE("pipelining = false: never more than one command in flight") {
        FakeConnection conn(script);
        Channel ch(conn, 5, "t", nullptr, 0);
        Pop3Session pop(ch, false);
        auto list = pop.start_and_list({"PIPELINING"});
        CHECK(conn.sent_before_first_recv == 1);
        CHECK(list.size() == 2);
        CHECK_FALSE(pop.pipelining());
    }
    SUBCASE("quit without waiting: QUIT goes out, its answer is not awaited") {
        auto silent = [](const std::string&) { return std::string(); };  // never answers
        FakeConnection conn(silent);
        Channel ch(conn, 1, "t", nullptr, 0);
        Pop3Session pop(ch, true);
        pop.quit(false);
        CHECK(conn.lines == std::vector<std::string>{"QUIT"});
        CHECK(conn.idle_waits == 0);
        FakeConnection control(silent);
        Channel ch2(control, 1, "t", nullptr, 0);
        Pop3Session waiting(ch2, true);
        waiting.quit(true);  // waits for the answer (and gives up quietly)
        CHECK(control.idle_waits > 0);
    }
}

TEST_CASE("pop3 session: QUIT answered -ERR means nothing was deleted") {
    FakeConnection conn([&](const std::string& line) -> std::string {
        if (line == "CAPA") return "-ERR no capa\r\n";
        if (line.rfind("DELE", 0) == 0) return "+OK\r\n";
        if (line == "QUIT") return "-ERR cannot commit\r\n";
        return "-ERR\r\n";
    });
    Channel ch(conn, 5, "t", nullptr, 0);
    Pop3Session pop(ch, true);
    pop.start();
    CHECK_FALSE(pop.pipelining());
    auto q = pop.delete_and_quit({1});
    CHECK_FALSE(q.committed);
    CHECK(q.server_text.find("cannot commit") != std::string::npos);
}

TEST_CASE("pop3 session: UTF8 (RFC 6856) is sent after login when the server advertises it") {
    bool utf8_on = false;
    auto script = [&](const std::string& line) -> std::string {
        if (line == "CAPA") return "+OK\r\nUIDL\r\nUTF8 USER\r\n.\r\n";
        if (line == "UTF8") {
            utf8_on = true;
            return "+OK UTF8 enabled\r\n";
        }
        if (line == "UIDL") return "+OK\r\n1 u1\r\n.\r\n";
        if (line == "LIST") return "+OK\r\n1 20\r\n.\r\n";
        return "-ERR what\r\n";
    };
    SUBCASE("advertised: UTF8 before anything is retrieved") {
        FakeConnection conn(script);
        Channel ch(conn, 5, "t", nullptr, 0);
        Pop3Session pop(ch, true);
        auto list = pop.start_and_list({"+OK ready"});
        CHECK(list.size() == 1);
        CHECK(utf8_on);
        CHECK(pop.utf8());
    }
    SUBCASE("advertised before login, with pipelining: still sent") {
        FakeConnection conn([&](const std::string& line) -> std::string {
            if (line == "CAPA") return "+OK\r\nPIPELINING\r\nUTF8\r\n.\r\n";
            return script(line);
        });
        Channel ch(conn, 5, "t", nullptr, 0);
        Pop3Session pop(ch, true);
        pop.start_and_list({"+OK ready", "PIPELINING", "UTF8"});
        CHECK(utf8_on);
    }
    SUBCASE("refused: the session goes on without it") {
        FakeConnection conn([&](const std::string& line) -> std::string {
            if (line == "UTF8") return "-ERR not now\r\n";
            return script(line);
        });
        Channel ch(conn, 5, "t", nullptr, 0);
        Pop3Session pop(ch, true);
        CHECK(pop.start_and_list({}).size() == 1);
        CHECK_FALSE(pop.utf8());
    }
    SUBCASE("not advertised: never sent") {
        FakeConnection conn([&](const std::string& line) -> std::string {
            if (line == "CAPA") return "+OK\r\nUIDL\r\n.\r\n";
            return script(line);
        });
        Channel ch(conn, 5, "t", nullptr, 0);
        Pop3Session pop(ch, true);
        pop.start_and_list({});
        CHECK_FALSE(utf8_on);
        for (const auto& l : conn.lines) CHECK(l != "UTF8");
    }
}

TEST_CASE("imap session: '* N EXPUNGED' (GNU Mailutils) is counted; removed is what is no longer listed") {
    for (bool uidplus : {true, false}) {
        CAPTURE(uidplus);
        std::set<std::uint32_t> present = {3, 4, 7};
        FakeConnection conn([&](const std::string& line) -> std::string {
            auto sp = line.find(' ');
            std::string tag = line.substr(0, sp), cmd = line.substr(sp + 1);
            if (cmd == "CAPABILITY")
                return std::string("* CAPABILITY IMAP4rev1") + (uidplus ? " UIDPLUS" : "") + "\r\n" + tag + " OK\r\n";
            if (cmd == "LIST \"\" \"\"") return "* LIST () \".\" \"\"\r\n" + tag + " OK\r\n";
            if (cmd.rfind("UID STORE", 0) == 0) return tag + " OK\r\n";
            if (cmd == "UID SEARCH DELETED") return "* SEARCH 3 4\r\n" + tag + " OK\r\n";
            if (cmd.rfind("UID EXPUNGE", 0) == 0 || cmd == "EXPUNGE") {
                present.erase(3);  // the server removes only one of the two
                return "* 1 EXPUNGED\r\n" + tag + " OK\r\n";
            }
            if (cmd.rfind("UID SEARCH UID ", 0) == 0) {
                std::string r = "* SEARCH";
                for (auto u : present)
                    if (u == 3 || u == 4) r += " " + std::to_string(u);
                return r + "\r\n" + tag + " OK\r\n";
            }
            return tag + " BAD unexpected " + cmd + "\r\n";
        });
        Channel ch(conn, 5, "t", nullptr, 0);
        ImapSession imap(ch);
        imap.start();
        auto r = imap.delete_messages({4, 3});
        CHECK_FALSE(r.expunge_skipped);
        CHECK(r.expunged == 1);
        CHECK(r.removed == std::vector<std::uint32_t>{3});
    }
}

TEST_CASE("imap session: delete into the trash: UID MOVE where offered, else COPY first; a refused copy flags nothing") {
    for (std::string caps : {"IMAP4rev1 UIDPLUS MOVE", "IMAP4rev1 UIDPLUS", "IMAP4rev1 UIDPLUS COPYFAILS"}) {
        CAPTURE(caps);
        bool copy_fails = caps.find("COPYFAILS") != std::string::npos;
        std::set<std::uint32_t> present = {3, 4};
        FakeConnection conn([&](const std::string& line) -> std::string {
            auto sp = line.find(' ');
            std::string tag = line.substr(0, sp), cmd = line.substr(sp + 1);
            if (cmd == "CAPABILITY") return "* CAPABILITY " + caps + "\r\n" + tag + " OK\r\n";
            if (cmd == "LIST \"\" \"\"") return "* LIST () \"/\" \"\"\r\n" + tag + " OK\r\n";
            if (cmd == "UID MOVE 3:4 \"[Gmail]/Papierkorb\"") {
                present.clear();
                return "* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n" + tag + " OK\r\n";
            }
            if (cmd == "UID COPY 3:4 \"[Gmail]/Papierkorb\"")
                return copy_fails ? tag + " NO [OVERQUOTA] full\r\n" : tag + " OK\r\n";
            if (cmd.rfind("UID STORE", 0) == 0) return tag + " OK\r\n";
            if (cmd.rfind("UID EXPUNGE", 0) == 0) {
                present.clear();
                return "* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n" + tag + " OK\r\n";
            }
            if (cmd.rfind("UID SEARCH UID ", 0) == 0) {
                std::string r = "* SEARCH";
                for (auto u : present) r += " " + std::to_string(u);
                return r + "\r\n" + tag + " OK\r\n";
            }
            return tag + " BAD unexpected " + cmd + "\r\n";
        });
        Channel ch(conn, 5, "t", nullptr, 0);
        ImapSession imap(ch);
        imap.start();
        if (copy_fails) {
            CHECK_THROWS_AS(imap.move_to_trash({3, 4}, "[Gmail]/Papierkorb"), Error);
            for (const auto& l : conn.lines) CHECK(l.find("STORE") == std::string::npos);
            continue;
        }
        auto r = imap.move_to_trash({3, 4}, "[Gmail]/Papierkorb");
        CHECK(r.removed == std::vector<std::uint32_t>{3, 4});
        bool moved = false, copied = false;
        for (const auto& l : conn.lines) {
            moved |= l.find("UID MOVE") != std::string::npos;
            copied |= l.find("UID COPY") != std::string::npos;
        }
        CHECK(moved == (caps.find("MOVE") != std::string::npos));
        CHECK(copied == !moved);
    }
}

TEST_CASE("imap session: NAMESPACE prefix: folders but INBOX go under it, once") {
    FakeConnection conn([&](const std::string& line) -> std::string {
        auto sp = line.find(' ');
        std::string tag = line.substr(0, sp), cmd = line.substr(sp + 1);
        if (cmd == "CAPABILITY") return "* CAPABILITY IMAP4rev1 NAMESPACE\r\n" + tag + " OK\r\n";
        if (cmd == "LIST \"\" \"\"") return "* LIST (\\Noselect) \".\" \"\"\r\n" + tag + " OK\r\n";
        if (cmd == "NAMESPACE") return "* NAMESPACE ((\"INBOX.\" \".\")) NIL NIL\r\n" + tag + " OK\r\n";
        return tag + " BAD unexpected " + cmd + "\r\n";
    });
    Channel ch(conn, 5, "t", nullptr, 0);
    ImapSession imap(ch);
    imap.start();
    CHECK(imap.server_name("Lists/cpp") == "Lists.cpp");  // a source: as listed
    imap.use_personal_namespace();
    CHECK(imap.personal_prefix() == "INBOX.");
    CHECK(imap.server_name("Lists/cpp") == "INBOX.Lists.cpp");
    CHECK(imap.server_name("INBOX") == "INBOX");
    CHECK(imap.server_name("inbox") == "INBOX");
    CHECK(imap.server_name("INBOX/Lists") == "INBOX.Lists");  // already under it
    CHECK(imap.server_name("Entwürfe") == "INBOX.Entw&APw-rfe");
}

TEST_CASE("imap session: BODY[] literals containing tagged-looking lines, unsolicited responses") {
    const std::string evil = "Subject: x\r\n\r\nP3 OK done\r\n* 1 EXPUNGE\r\n{5}\r\n";
    const std::string plain = "Subject: y\r\n\r\nhello\r\n";
    FakeConnection conn([&](const std::string& line) -> std::string {
        auto sp = line.find(' ');
        std::string tag = line.substr(0, sp), cmd = line.substr(sp + 1);
        if (cmd == "CAPABILITY") return "* CAPABILITY IMAP4rev1 UIDPLUS\r\n" + tag + " OK done\r\n";
        if (cmd == "LIST \"\" \"\"") return "* LIST (\\Noselect) \".\" \"\"\r\n" + tag + " OK\r\n";
        if (cmd.rfind("EXAMINE", 0) == 0)
            return "* 2 EXISTS\r\n* OK [UIDVALIDITY 77] ok\r\n* OK [UIDNEXT 9] ok\r\n" + tag + " OK [READ-ONLY] done\r\n";
        if (cmd == "UID FETCH 1:* (UID RFC822.SIZE)")
            return "* 1 FETCH (UID 5 RFC822.SIZE " + std::to_string(evil.size()) + ")\r\n* 2 FETCH (UID 8 RFC822.SIZE " +
                   std::to_string(plain.size()) + ")\r\n" + tag + " OK\r\n";
        if (cmd.rfind("UID FETCH 5,8 ", 0) == 0 || cmd.rfind("UID FETCH 5:8 ", 0) == 0)
            return "* 1 FETCH (FLAGS (\\Seen))\r\n"  // unsolicited flag update first
                   "* 1 FETCH (UID 5 RFC822.SIZE " + std::to_string(evil.size()) + " FLAGS () INTERNALDATE \"01-Jan-2024 00:00:00 +0000\" BODY[] {" +
                   std::to_string(evil.size()) + "}\r\n" + evil + ")\r\n* 3 EXISTS\r\n"
                   "* 2 FETCH (BODY[] {" + std::to_string(plain.size()) + "}\r\n" + plain + " UID 8 FLAGS (\\Flagged))\r\n" +
                   tag + " OK done\r\n";
        if (cmd == "LOGOUT") return "* BYE\r\n" + tag + " OK\r\n";
        return tag + " BAD unexpected " + cmd + "\r\n";
    });
    Channel ch(conn, 5, "t", nullptr, 0);
    ImapSession imap(ch);
    imap.start();
    CHECK(imap.delimiter() == '.');
    CHECK(imap.server_name("Lists/cpp") == "Lists.cpp");
    std::vector<RemoteMessage> list;
    auto info = imap.select("INBOX", true, &list);
    CHECK(info.uidvalidity == 77);
    CHECK(info.exists == 2);
    REQUIRE(list.size() == 2);
    CHECK(list[0].uid == 5);
    CHECK(list[0].key.empty());  // state keys are the sync layer's (message_key.h)
    Collect c;
    imap.fetch(list, c);
    CHECK(c.failures.empty());
    CHECK(c.done["5"] == evil);
    CHECK(c.done["8"] == plain);  // UID after the literal still works
    imap.logout();
    for (const auto& l : conn.lines) CHECK(l.find("BODY[]") == std::string::npos);  // only BODY.PEEK[]
}

TEST_CASE("credentials are masked in protocol traces") {
    CHECK(mask_credentials("PASS hunter2") == "PASS ****");
    CHECK(mask_credentials("A001 LOGIN me hunter2") == "A001 LOGIN ****");
    CHECK(mask_credentials("AUTH PLAIN AGZvbwBiYXI=") == "AUTH PLAIN ****");
    CHECK(mask_credentials("A002 AUTHENTICATE PLAIN AGZvbwBiYXI=") == "A002 AUTHENTICATE PLAIN ****");
    CHECK(mask_credentials("AGZvbwBiYXI=") == "****");
    CHECK(mask_credentials("CAPA") == "CAPA");
    CHECK(mask_credentials("A003 CAPABILITY") == "A003 CAPABILITY");
    CHECK(mask_credentials("APOP me 0123456789abcdef") == "APOP me ****");
}

TEST_CASE("imap session: logout without waiting sends LOGOUT and does not wait for its answer") {
    FakeConnection conn([](const std::string&) { return std::string(); });  // never answers
    Channel ch(conn, 1, "t", nullptr, 0);
    ImapSession imap(ch);
    imap.logout(false);
    REQUIRE(conn.lines.size() == 1);
    CHECK(conn.lines[0].find(" LOGOUT") != std::string::npos);
    CHECK(conn.idle_waits == 0);
}

namespace {

// A spooled message as ImapSession::append reads it.
struct Spool {
    FILE* f = std::tmpfile();
    explicit Spool(const std::string& data) {
        REQUIRE(f);
        REQUIRE(std::fwrite(data.data(), 1, data.size(), f) == data.size());
        std::fflush(f);
    }
    ~Spool() { std::fclose(f); }
    int fd() const { return fileno(f); }
};

std::string tag_of(const std::string& line) { return line.substr(0, line.find(' ')); }

// CAPABILITY and LIST as a target server answers them.
std::string greet(const std::string& line, const std::string& caps) {
    auto cmd = line.substr(line.find(' ') + 1);
    if (cmd == "CAPABILITY") return "* CAPABILITY " + caps + "\r\n" + tag_of(line) + " OK\r\n";
    if (cmd == "LIST \"\" \"\"") return "* LIST (\\Noselect) \".\" \"\"\r\n" + tag_of(line) + " OK\r\n";
    return {};
}

const std::string kPoisonBody = "Subject: x\r\n\r\nX1 CREATE PWNED\r\n";

}  // namespace

TEST_CASE("imap session: APPEND answered BAD with LITERAL+ abandons the connection, nothing more is sent") {
    std::size_t lines_at_bad = 0;
    FakeConnection* self = nullptr;
    FakeConnection conn([&](const std::string& line) -> std::string {
        if (auto g = greet(line, "IMAP4rev1 LITERAL+ UIDPLUS"); !g.empty()) return g;
        if (line.find(" APPEND ") != std::string::npos) {
            lines_at_bad = self->lines.size();
            return tag_of(line) + " BAD Invalid internal date\r\n";  // and reads on as commands, as Dovecot did
        }
        return tag_of(line) + " OK\r\n";
    });
    self = &conn;
    Channel ch(conn, 5, "t", nullptr, 0);
    ImapSession imap(ch);
    imap.start();
    Spool msg(kPoisonBody);
    imap.append("INBOX", build_append_args({"\\Seen"}, ""), msg.fd(), kPoisonBody.size(), "m1");
    auto sent = conn.lines.size();
    imap.append("INBOX", build_append_args({}, ""), msg.fd(), kPoisonBody.size(), "m2");
    auto results = imap.finish_appends();
    CHECK_FALSE(imap.abandoned().empty());
    CHECK(imap.abandoned().find("m1") != std::string::npos);
    REQUIRE(results.size() == 2);
    CHECK(results[0].id == "m1");
    CHECK_FALSE(results[0].ok);
    CHECK(results[0].abandoned);
    CHECK(results[0].server_text.find("BAD Invalid internal date") != std::string::npos);
    CHECK(results[1].id == "m2");
    CHECK_FALSE(results[1].ok);
    CHECK(results[1].abandoned);
    imap.logout();
    CHECK(conn.lines.size() == sent);  // no second APPEND, no LOGOUT on it
    CHECK(lines_at_bad > 0);
    CHECK_THROWS_AS(imap.list_all_folders(), Error);
    CHECK(conn.lines.size() == sent);
}

TEST_CASE("imap session: a tagged answer while LITERAL+ data is still going out abandons; one after it does not") {
    SUBCASE("NO before the literal is sent: streaming stops, connection abandoned") {
        const std::string big = "Subject: big\r\n\r\n" + std::string(1 << 20, 'a') + "\r\n";
        std::size_t received = 0;
        FakeConnection conn([&](const std::string& line) -> std::string {
            if (auto g = greet(line, "IMAP4rev1 LITERAL+"); !g.empty()) return g;
            received += line.size() + 2;
            if (line.find(" APPEND ") != std::string::npos) return tag_of(line) + " NO [OVERQUOTA] full\r\n";
            return {};
        });
        Channel ch(conn, 5, "t", nullptr, 0);
        ImapSession imap(ch);
        imap.start();
        Spool msg(big);
        imap.append("INBOX", build_append_args({}, ""), msg.fd(), big.size(), "big");
        auto results = imap.finish_appends();
        REQUIRE(results.size() == 1);
        CHECK(results[0].abandoned);
        CHECK(results[0].server_text.find("OVERQUOTA") != std::string::npos);
        CHECK(received < big.size());  // the rest of the literal was never sent
    }
    SUBCASE("NO once the literal is in: an ordinary refusal, the connection goes on") {
        std::string pending;
        int appends = 0;
        FakeConnection conn([&](const std::string& line) -> std::string {
            if (auto g = greet(line, "IMAP4rev1 LITERAL+ UIDPLUS"); !g.empty()) return g;
            if (line.find(" APPEND ") != std::string::npos) {
                pending = tag_of(line);
                return {};
            }
            if (line.empty() && !pending.empty()) {  // the CRLF after the literal
                auto t = pending;
                pending.clear();
                return ++appends == 1 ? t + " NO [OVERQUOTA] full\r\n" : t + " OK [APPENDUID 7 3] done\r\n";
            }
            return {};
        });
        Channel ch(conn, 5, "t", nullptr, 0);
        ImapSession imap(ch);
        imap.start();
        const std::string headers_only = "Subject: x\r\nX-A: b\r\n";  // no empty line but the one after it
        Spool msg(headers_only);
        imap.append("INBOX", build_append_args({}, ""), msg.fd(), headers_only.size(), "m1");
        imap.append("INBOX", build_append_args({}, ""), msg.fd(), headers_only.size(), "m2");
        auto results = imap.finish_appends();
        CHECK(imap.abandoned().empty());
        REQUIRE(results.size() == 2);
        CHECK_FALSE(results[0].ok);
        CHECK_FALSE(results[0].abandoned);
        CHECK(results[1].ok);
        CHECK(results[1].uid == 3);
    }
}

TEST_CASE("imap session: a tagged answer instead of '+' for a synchronising literal abandons the connection") {
    bool body_seen = false;
    FakeConnection conn([&](const std::string& line) -> std::string {
        if (auto g = greet(line, "IMAP4rev1"); !g.empty()) return g;
        if (line.find(" APPEND ") != std::string::npos) return tag_of(line) + " NO [TOOBIG] no\r\n";
        if (line.find("PWNED") != std::string::npos) body_seen = true;
        return {};
    });
    Channel ch(conn, 5, "t", nullptr, 0);
    ImapSession imap(ch);
    imap.start();
    Spool msg(kPoisonBody);
    imap.append("INBOX", build_append_args({}, ""), msg.fd(), kPoisonBody.size(), "m1");
    auto sent = conn.lines.size();
    auto results = imap.finish_appends();
    REQUIRE(results.size() == 1);
    CHECK(results[0].abandoned);
    CHECK_FALSE(body_seen);
    imap.logout();
    CHECK(conn.lines.size() == sent);
}

namespace {
// What ImapSession::start() throws when the server answers with `bytes`
// and closes the connection, handing out up to `piece` bytes a read.
Error start_error(const std::string& bytes, std::size_t piece = 97) {
    FakeConnection* self = nullptr;
    FakeConnection conn([&](const std::string&) -> std::string {
        self->closed = true;
        return bytes;
    });
    self = &conn;
    conn.piece = piece;
    Channel ch(conn, 5, "t", nullptr, 0);
    ImapSession imap(ch);
    std::optional<Error> err;
    try {
        imap.start();
    } catch (const Error& e) {
        err = e;
    }
    REQUIRE(err);
    return *err;
}
}  // namespace

TEST_CASE("imap session: the connection closed after an untagged BYE: the error carries the BYE text") {
    Error e = start_error("* BYE [UNAVAILABLE] System shutting down \x1b[31mnow\r\n");
    CHECK(e.kind() == ErrorKind::Temporary);
    CHECK(e.detail().find("BYE") != std::string::npos);
    CHECK(e.server_text().find("System shutting down") != std::string::npos);
    CHECK(e.server_text().find('\x1b') == std::string::npos);
}

TEST_CASE("imap session: an untagged BYE followed by malformed bytes in the same read reports the BYE") {
    // The server is leaving and said why; the garbage after its BYE must not
    // turn that into a bare protocol error. Up to 4 KiB a read: the BYE and
    // what follows usually in one.
    Error e = start_error("* BYE [UNAVAILABLE] System shutting down\r\n* 1 FETCH (BODY[] {1-2}\r\n", 4096);
    CHECK(e.kind() == ErrorKind::Temporary);
    CHECK(e.detail().find("BYE") != std::string::npos);
    CHECK(e.server_text().find("System shutting down") != std::string::npos);
}

TEST_CASE("imap session: a malformed response after a BYE and another response stays a protocol error") {
    CHECK(start_error("* BYE going\r\n* 2 EXISTS\r\n* 1 FETCH (BODY[] {1-2}\r\n", 4096).kind() == ErrorKind::Protocol);
}

TEST_CASE("imap session: a literal cut short by a local error abandons the connection") {
    FakeConnection conn([&](const std::string& line) -> std::string {
        if (auto g = greet(line, "IMAP4rev1 LITERAL+"); !g.empty()) return g;
        return {};
    });
    Channel ch(conn, 5, "t", nullptr, 0);
    ImapSession imap(ch);
    imap.start();
    Spool msg(kPoisonBody);
    // The spool holds fewer bytes than announced: the literal cannot be finished.
    CHECK_THROWS_AS(imap.append("INBOX", build_append_args({}, ""), msg.fd(), kPoisonBody.size() + 10, "m1"), Error);
    CHECK_FALSE(imap.abandoned().empty());
    auto sent = conn.lines.size();
    auto results = imap.finish_appends();
    REQUIRE(results.size() == 1);
    CHECK(results[0].abandoned);
    imap.logout();
    CHECK(conn.lines.size() == sent);
}

TEST_CASE("imap session: after an APPEND answered BAD, answers to the message's own lines are not trusted") {
    // m1 is still unanswered when m2's APPEND is answered BAD; m2's body then
    // runs as commands, one of them carrying m1's tag: its "OK" must not
    // count as m1 stored (with keep = false m1 would be deleted unstored).
    // The server's bytes come in random pieces: over the seeds, the spoofed
    // answer is sometimes in the same piece as the BAD.
    for (unsigned seed = 1; seed <= 60; ++seed) {
        CAPTURE(seed);
        int appends = 0;
        FakeConnection conn(
            [&](const std::string& line) -> std::string {
                if (auto g = greet(line, "IMAP4rev1 LITERAL+ UIDPLUS"); !g.empty()) return g;
                if (line.find(" APPEND ") != std::string::npos)
                    return ++appends == 1 ? std::string() : tag_of(line) + " BAD x\r\n";
                if (line.empty()) return {};
                return tag_of(line) + " OK [APPENDUID 1 99] spoofed\r\n";
            },
            seed);
        Channel ch(conn, 5, "t", nullptr, 0);
        ImapSession imap(ch);
        imap.start();
        const std::string plain = "Subject: a\r\nX-A: b\r\n";
        const std::string evil = "P3 NOOP\r\n";  // P3: m1's tag (after CAPABILITY, LIST)
        Spool m1(plain), m2(evil);
        imap.append("INBOX", build_append_args({}, ""), m1.fd(), plain.size(), "m1");
        imap.append("INBOX", build_append_args({}, ""), m2.fd(), evil.size(), "m2");
        auto results = imap.finish_appends();
        REQUIRE(results.size() == 2);
        for (const auto& r : results) {
            CAPTURE(r.id);
            CHECK_FALSE(r.ok);
            CHECK(r.abandoned);
            CHECK(r.uid == 0);
        }
        bool m1_tag_p3 = false;
        for (const auto& l : conn.lines) m1_tag_p3 = m1_tag_p3 || l.rfind("P3 APPEND ", 0) == 0;
        CHECK(m1_tag_p3);
    }
}

namespace {

std::string imap_greeting_script(const std::string& tag, const std::string& cmd) {
    if (cmd == "CAPABILITY") return "* CAPABILITY IMAP4rev1 UIDPLUS\r\n" + tag + " OK done\r\n";
    if (cmd == "LIST \"\" \"\"") return "* LIST (\\Noselect) \".\" \"\"\r\n" + tag + " OK\r\n";
    if (cmd.rfind("EXAMINE", 0) == 0)
        return "* 1 EXISTS\r\n* OK [UIDVALIDITY 77] ok\r\n* OK [UIDNEXT 9] ok\r\n" + tag + " OK [READ-ONLY] done\r\n";
    return "";
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Protocol);
        return e.what();
    }
    FAIL("no error");
    return "";
}

}  // namespace

TEST_CASE("imap session: a response holding more than 32 MiB outside bodies is refused") {
    FakeConnection conn([&](const std::string& line) -> std::string {
        auto sp = line.find(' ');
        std::string tag = line.substr(0, sp), cmd = line.substr(sp + 1);
        if (auto r = imap_greeting_script(tag, cmd); !r.empty()) return r;
        std::string resp = "* 1 FETCH (UID 5 RFC822.SIZE 10";
        for (int i = 0; i < 40; ++i) resp += " X" + std::to_string(i) + " {1048576}\r\n" + std::string(1 << 20, 'x');
        return resp + ")\r\n" + tag + " OK\r\n";
    });
    conn.piece = 1 << 20;
    Channel ch(conn, 5, "t", nullptr, 0);
    ImapSession imap(ch);
    imap.start();
    std::vector<RemoteMessage> list;
    CHECK(error_of([&] { imap.select("INBOX", true, &list); }).find("larger than 32 MiB") != std::string::npos);
}

TEST_CASE("imap session: header fields are kept up to 256 KiB per message, the rest dropped") {
    const std::string big = "Subject: " + std::string(1 << 20, 's') + "\r\n\r\n";
    FakeConnection conn([&](const std::string& line) -> std::string {
        auto sp = line.find(' ');
        std::string tag = line.substr(0, sp), cmd = line.substr(sp + 1);
        if (auto r = imap_greeting_script(tag, cmd); !r.empty()) return r;
        return "* 1 FETCH (UID 5 BODY[HEADER.FIELDS (SUBJECT)] {" + std::to_string(big.size()) + "}\r\n" + big +
               ")\r\n* 2 FETCH (UID 6 BODY[HEADER.FIELDS (SUBJECT)] {14}\r\nSubject: s\r\n\r\n)\r\n" + tag + " OK\r\n";
    });
    conn.piece = 64 * 1024;
    Channel ch(conn, 5, "t", nullptr, 0);
    ImapSession imap(ch);
    imap.start();
    auto h = imap.fetch_header_fields({5, 6}, "SUBJECT");
    REQUIRE(h.size() == 2);
    CHECK(h[5] == big.substr(0, 256 * 1024));
    CHECK(h[6] == "Subject: s\r\n\r\n");
}

TEST_CASE("pop3 session: a listing over 2,000,000 messages is refused; TOP headers are cut at 256 KiB") {
    std::string uidl = "+OK\r\n";
    for (int i = 1; i <= 2000001; ++i) uidl += std::to_string(i) + " u\r\n";
    uidl += ".\r\n";
    const std::string head = "Subject: " + std::string(1 << 20, 'h') + "\r\n";
    FakeConnection conn([&](const std::string& line) -> std::string {
        if (line == "CAPA") return "+OK\r\nUIDL\r\nTOP\r\n.\r\n";
        if (line == "UIDL") return uidl;
        if (line == "LIST") return "+OK\r\n.\r\n";
        if (line == "TOP 1 0") return "+OK\r\n" + head + "\r\n.\r\n";
        return "-ERR what\r\n";
    });
    conn.piece = 1 << 20;
    Channel ch(conn, 5, "t", nullptr, 0);
    Pop3Session pop(ch, false);
    pop.start();
    auto h = pop.headers({1});
    REQUIRE(h.size() == 1);
    CHECK(h[1] == head.substr(0, 256 * 1024));
    CHECK(error_of([&] { pop.list(); }).find("more than 2000000 messages") != std::string::npos);
}

TEST_CASE("channel: a stop request or run_timeout ends a pump on a silent server within a second") {
    auto silent = [](const std::string&) { return std::string(); };
    auto elapsed_of = [](const std::function<void()>& f, std::string& message) {
        auto t0 = std::chrono::steady_clock::now();
        try {
            f();
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::Temporary);
            message = e.what();
        }
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    SUBCASE("stop request") {
        std::atomic<bool> stop{false};
        set_stop_flag(&stop);
        FakeConnection conn(silent);
        Channel ch(conn, 60, "t", nullptr, 0);
        ch.command("NOOP");
        std::thread signal([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(300));
            stop = true;
        });
        std::string message;
        double took = elapsed_of([&] { ch.pump([](std::string_view) {}, [] { return false; }); }, message);
        signal.join();
        set_stop_flag(nullptr);
        CHECK(message.find("interrupted by a signal") != std::string::npos);
        CHECK(took < 1.5);
        CHECK(took >= 0.3 + kStopGraceMs / 1000.0 - 0.25);  // the grace for a responsive server
    }
    SUBCASE("run_timeout") {
        FakeConnection conn(silent);
        Channel ch(conn, 60, "t", nullptr, 0);
        ch.set_deadline(1);
        std::string message;
        double took = elapsed_of([&] { ch.pump([](std::string_view) {}, [] { return false; }); }, message);
        CHECK(message.find("run_timeout = 1 s") != std::string::npos);
        CHECK(took < 1.5);
    }
}

TEST_CASE("pop3 session: the listing is built as its lines arrive, in pieces of one byte and up") {
    // UIDL and LIST out of order, a number LIST gives twice (the last size
    // wins), a message LIST leaves out (size 0), a line ended by a bare LF.
    auto script = [](const std::string& line) -> std::string {
        if (line == "CAPA") return "+OK\r\nUIDL\r\n.\r\n";
        if (line == "UIDL") return "+OK\r\n3 u3\r\n1 u1\r\n2 u2\r\n4 u4\r\n.\r\n";
        if (line == "LIST") return "+OK 4 messages\r\n2 200\n1 100\r\n3 30\r\n3 300\r\n.\r\n";
        return "-ERR what\r\n";
    };
    for (std::size_t piece : {1, 2, 3, 7, 64}) {
        CAPTURE(piece);
        FakeConnection conn(script, static_cast<unsigned>(piece));
        conn.piece = piece;
        Channel ch(conn, 5, "t", nullptr, 0);
        Pop3Session pop(ch, false);
        pop.start();
        auto list = pop.list();
        REQUIRE(list.size() == 4);
        for (std::uint32_t i = 0; i < 4; ++i) {
            CHECK(list[i].number == i + 1);
            CHECK(list[i].uidl == "u" + std::to_string(i + 1));
        }
        CHECK(list[0].size == 100);
        CHECK(list[1].size == 200);
        CHECK(list[2].size == 300);
        CHECK(list[3].size == 0);
    }
    SUBCASE("a malformed UIDL line is an error that shows the line") {
        FakeConnection conn([](const std::string& line) -> std::string {
            if (line == "UIDL") return "+OK\r\n1 u1\r\n2 bad uidl\r\n.\r\n";
            if (line == "LIST") return "+OK\r\n1 1\r\n2 2\r\n.\r\n";
            return "-ERR what\r\n";
        });
        Channel ch(conn, 5, "t", nullptr, 0);
        Pop3Session pop(ch, false);
        try {
            pop.list();
            FAIL("malformed listing accepted");
        } catch (const Error& e) {
            CHECK(std::string(e.what()).find("malformed UIDL line") != std::string::npos);
            CHECK(e.server_text() == "2 bad uidl");
        }
    }
}

TEST_CASE("imap session: after a delivery error in the middle of a body, LOGOUT hands the handler nothing more") {
    const std::string body = "Subject: big\r\n\r\n" + std::string(64 * 1024, 'x') + "\r\n";
    FakeConnection conn([&](const std::string& line) -> std::string {
        auto sp = line.find(' ');
        std::string tag = line.substr(0, sp), cmd = line.substr(sp + 1);
        if (cmd == "CAPABILITY") return "* CAPABILITY IMAP4rev1 UIDPLUS\r\n" + tag + " OK done\r\n";
        if (cmd == "LIST \"\" \"\"") return "* LIST (\\Noselect) \".\" \"\"\r\n" + tag + " OK\r\n";
        if (cmd.rfind("EXAMINE", 0) == 0)
            return "* 1 EXISTS\r\n* OK [UIDVALIDITY 77] ok\r\n* OK [UIDNEXT 9] ok\r\n" + tag + " OK [READ-ONLY] done\r\n";
        if (cmd == "UID FETCH 1:* (UID RFC822.SIZE)")
            return "* 1 FETCH (UID 5 RFC822.SIZE " + std::to_string(body.size()) + ")\r\n" + tag + " OK\r\n";
        if (cmd.rfind("UID FETCH 5 ", 0) == 0)
            return "* 1 FETCH (UID 5 RFC822.SIZE " + std::to_string(body.size()) + " BODY[] {" +
                   std::to_string(body.size()) + "}\r\n" + body + ")\r\n" + tag + " OK done\r\n";
        if (cmd == "LOGOUT") return "* BYE\r\n" + tag + " OK\r\n";
        return tag + " BAD unexpected " + cmd + "\r\n";
    });
    conn.piece = 512;  // the body comes in many pieces: most of it is still unread when the handler fails
    Channel ch(conn, 5, "t", nullptr, 0);
    ImapSession imap(ch);
    imap.start();
    std::vector<RemoteMessage> list;
    imap.select("INBOX", true, &list);
    REQUIRE(list.size() == 1);
    struct FailingDisk final : MessageHandler {
        bool failed_once = false;
        int data_after_failure = 0;
        void begin(const RemoteMessage&) override {}
        void data(std::string_view) override {
            if (failed_once) {
                ++data_after_failure;
                return;
            }
            failed_once = true;
            throw Error(ErrorKind::LocalIO, "disk full");
        }
        void end(const RemoteMessage&) override {}
        void failed(const RemoteMessage&, std::string_view) override {}
        bool stop_requested() const override { return false; }
    } disk;
    CHECK_THROWS_AS(imap.fetch(list, disk), Error);
    REQUIRE(disk.failed_once);
    imap.logout();  // reads the rest of the body before the LOGOUT's answer
    CHECK(disk.data_after_failure == 0);
}
