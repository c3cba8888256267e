// Unit tests for the state journal: load/save, crash leftovers, corruption.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "error.h"
#include "test_support.h"
#include "fingerprint.h"
#include "state_journal.h"
#include "text_util.h"

using namespace pullmail;
using namespace pullmail::test;

namespace {




}  // namespace

TEST_CASE("state: records survive a reload, intents stay pending until seen") {
    TempDir d;
    std::string p = d.path + "/sub/acct.state";
    {
        StateJournal s(p);
        s.record_intent(pop3_key("a"), "maildir 1.M1P1Q1.host");
        s.record_seen(pop3_key("a"), 100, "ff");
        s.record_intent(pop3_key("b"), "mbox 0 10 abc");
        s.record_seen(pop3_key("c"), 7, "ee", "appenduid:9:4");
        s.record_uidvalidity("INBOX", 42);
        s.sync();
    }
    StateJournal s(p);
    CHECK(s.seen(pop3_key("a")));
    CHECK(s.find(pop3_key("a"))->size == 100);
    CHECK(s.find(pop3_key("a"))->fingerprint == "ff");
    CHECK(s.find(pop3_key("a"))->where.empty());
    CHECK(s.find(pop3_key("c"))->where == "appenduid:9:4");
    CHECK_FALSE(s.seen(pop3_key("b")));
    auto pending = s.pending_intents();
    REQUIRE(pending.size() == 1);
    CHECK(pending[0].key == pop3_key("b"));
    CHECK(pending[0].intent == "mbox 0 10 abc");
    CHECK(s.uidvalidity("INBOX") == 42u);
    CHECK_FALSE(s.uidvalidity("Other").has_value());
}

TEST_CASE("state: compact prunes and keeps intents; file stays loadable") {
    TempDir d;
    std::string p = d.path + "/acct.state";
    {
        StateJournal s(p);
        for (int i = 0; i < 50; ++i) s.record_seen(pop3_key("m" + std::to_string(i)), i, "-");
        s.record_intent(pop3_key("x"), "mda");
        s.compact([](const std::string& k) { return k != pop3_key("m7"); });
        s.record_seen(pop3_key("after"), 1, "-");
    }
    StateJournal s(p);
    CHECK(s.entries().size() == 50);  // 49 kept + "after"
    CHECK_FALSE(s.seen(pop3_key("m7")));
    CHECK(s.seen(pop3_key("after")));
    CHECK(s.pending_intents().size() == 1);
}

TEST_CASE("state: a file truncated at every byte offset either loads a prefix or is reported") {
    TempDir d;
    std::string p = d.path + "/acct.state";
    {
        StateJournal s(p);
        for (int i = 0; i < 5; ++i) {
            s.record_intent(pop3_key("k" + std::to_string(i)), "maildir name" + std::to_string(i));
            s.record_seen(pop3_key("k" + std::to_string(i)), 10, "-");
        }
        s.sync();
    }
    const std::string full = read_file(p);
    const std::size_t header_len = full.find('\n') + 1;
    for (std::size_t cut = 0; cut < full.size(); ++cut) {
        CAPTURE(cut);
        write_file(p, full.substr(0, cut));
        if (cut < header_len) {
            // Header damaged: reported with the path, never silently reset.
            CHECK_THROWS_WITH_AS(StateJournal{p}, doctest::Contains(p.c_str()), Error);
            continue;
        }
        StateJournal s(p);
        // Never claims more than was written: every seen key's S record is whole in the prefix.
        for (const auto& [key, e] : s.entries()) {
            std::string rec = "S " + key + " ";
            auto pos = full.find(rec);
            REQUIRE(pos != std::string::npos);
            CHECK(full.find('\n', pos) <= cut);  // whole record (its newline may be cut)
        }
        // Torn = the cut falls inside a record, not just before its newline.
        bool torn = full[cut - 1] != '\n' && full[cut] != '\n';
        CHECK(s.load_warning().empty() == !torn);
        if (torn) CHECK(s.load_warning().find(p) != std::string::npos);
        // A second load after the repairing rewrite is clean.
        StateJournal again(p);
        CHECK(again.load_warning().empty());
        CHECK(again.entries().size() == s.entries().size());
    }
}

TEST_CASE("state: damage in the middle is an error naming the file; repair keeps valid records") {
    TempDir d;
    std::string p = d.path + "/acct.state";
    {
        StateJournal s(p);
        s.sync();  // the file exists: the records are appended as text lines
        for (int i = 0; i < 4; ++i) s.record_seen(pop3_key("k" + std::to_string(i)), 1, "-");
        s.sync();
    }
    std::string data = read_file(p);
    auto second = data.find('\n', data.find('\n') + 1) + 1;  // start of record 2
    data[second + 12] ^= 0x20;                                 // flip a bit in record 2
    write_file(p, data);
    try {
        StateJournal s(p);
        FAIL("damaged state loaded");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::State);
        CHECK(std::string(e.what()).find(p) != std::string::npos);
        CHECK(std::string(e.what()).find("repair") != std::string::npos);
    }
    auto r = StateJournal::repair(p);
    CHECK(r.outcome == StateJournal::Repair::Outcome::Rebuilt);
    CHECK(r.records == 3);
    CHECK(std::filesystem::exists(r.backup));
    StateJournal s(p);
    CHECK(s.entries().size() == 3);
    // Now healthy: a second repair changes nothing and makes no copy.
    std::string before = read_file(p);
    auto files_before = std::distance(std::filesystem::directory_iterator(d.path), {});
    auto again = StateJournal::repair(p);
    CHECK(again.outcome == StateJournal::Repair::Outcome::Healthy);
    CHECK(again.records == 3);
    CHECK(again.backup.empty());
    CHECK(read_file(p) == before);
    CHECK(std::distance(std::filesystem::directory_iterator(d.path), {}) == files_before);
}

TEST_CASE("state: a newer format version is refused") {
    TempDir d;
    std::string p = d.path + "/acct.state";
    write_file(p, "pullmail-state 5 00112233445566778899aabbccddeeff\n");
    try {
        StateJournal s(p);
        FAIL("newer format loaded");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::State);
        CHECK(std::string(e.what()).find("newer") != std::string::npos);
    }
}

TEST_CASE("state: an unusable state directory is a local I/O error naming the path") {
    // A state directory below a regular file cannot be created, even by root
    // (CI runs as root, where a mode-0500 directory would still be writable).
    TempDir d;
    write_file(d.path + "/file", "x");
    std::string dir = d.path + "/file/state";
    try {
        StateJournal s(dir + "/acct.state");
        FAIL("state opened below a regular file");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::LocalIO);
        CHECK(std::string(e.what()).find(d.path + "/file") != std::string::npos);
    }
    if (::geteuid() != 0) {  // permissions only bind non-root users
        std::string ro = d.path + "/ro";
        std::filesystem::create_directory(ro);
        ::chmod(ro.c_str(), 0500);
        CHECK_THROWS_AS(StateJournal(ro + "/acct.state"), Error);
    }
}

TEST_CASE("state: keys have no spaces and folders are encoded") {
    CHECK(imap_key("Lists/cpp", 7, 9) == "imap:Lists/cpp:7:9");
    CHECK(imap_key("My Folder:x", 1, 2) == "imap:My%20Folder%3Ax:1:2");
    CHECK(encode_folder("Entw\xc3\xbcrfe") == "Entw%C3%BCrfe");
    for (std::string f : {"INBOX", "My Folder:x", "Entw\xc3\xbcrfe", "100%", "a/b"})
        CHECK(decode_folder(encode_folder(f)) == f);
    CHECK(crc32("123456789") == 0xCBF43926u);
}

TEST_CASE("fingerprint: same message over POP3 and IMAP, different messages differ") {
    std::string a = "From: A <a@x>\r\nSubject: hello\r\n  world\r\nMessage-ID: <ID@X>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nbody";
    std::string a_lf = "Message-Id: <id@x>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nFrom: A <a@x>\nSubject: hello world\n";
    CHECK(header_fingerprint(a) == header_fingerprint(a_lf));
    CHECK(header_fingerprint(a).size() == 32);
    std::string b = "From: A <a@x>\nSubject: hello world\nMessage-ID: <id2@x>\n\n";
    CHECK(header_fingerprint(a) != header_fingerprint(b));
    CHECK(header_fingerprint("X-Other: 1\n\nFrom: body\n") == "-");

    HeaderCapture cap;
    std::string msg = "Subject: s\nFrom: f\n\nFrom: body line\n";
    for (char c : msg) cap.feed(std::string_view(&c, 1));
    CHECK(cap.complete());
    CHECK(cap.header() == "Subject: s\nFrom: f\n");
}

TEST_CASE("state: compact writes nothing when nothing changed, and keeps the journal within 1.5 times the records plus 16 KiB") {
    TempDir d;
    std::string p = d.path + "/acct.state";
    auto inode_and_size = [&] {
        struct stat st {};
        REQUIRE(::stat(p.c_str(), &st) == 0);
        return std::make_pair(st.st_ino, st.st_size);
    };
    auto live_bytes = [&](const StateJournal& s) {
        std::size_t n = 40;  // header
        for (const auto& [k, e] : s.entries()) n += k.size() + e.fingerprint.size() + 40;
        return n;
    };
    StateJournal s(p);
    for (int i = 0; i < 20; ++i) {
        s.record_intent(pop3_key("a" + std::to_string(i)), "maildir x" + std::to_string(i), false);
        s.record_seen(pop3_key("a" + std::to_string(i)), 100, std::string(64, 'f'));
    }
    s.compact([](const std::string&) { return true; });
    auto before = inode_and_size();
    s.compact([](const std::string&) { return true; });  // a run with no new mail
    CHECK(inode_and_size() == before);

    // Many runs: each delivers 10 messages and 10 old ones leave the server.
    int next = 0;
    std::deque<std::string> on_server;
    for (int i = 0; i < 20; ++i) on_server.push_back(pop3_key("a" + std::to_string(i)));
    std::size_t rewrites = 0;
    for (int run = 0; run < 60; ++run) {
        for (int k = 0; k < 10; ++k, ++next) {
            std::string key = pop3_key("b" + std::to_string(next));
            s.record_intent(key, "maildir y" + std::to_string(next), false);
            s.record_seen(key, 100, std::string(64, 'f'));
            on_server.push_back(key);
        }
        for (int k = 0; k < 10; ++k) on_server.pop_front();
        std::set<std::string> present(on_server.begin(), on_server.end());
        auto ino = inode_and_size().first;
        s.compact([&](const std::string& key) { return present.count(key) != 0; });
        if (inode_and_size().first != ino) ++rewrites;
        CHECK(s.entries().size() == present.size());
        // Packed records plus at most half their size and 16 KiB of text
        // records (state_journal.h), plus the one run's records (2.6 KB);
        // live_bytes is their size as text, more than packed.
        CHECK(static_cast<std::size_t>(inode_and_size().second) <= live_bytes(s) * 3 / 2 + 16384 + 2600);
    }
    CHECK(rewrites > 0);
    CHECK(rewrites < 30);  // most runs append, not rewrite

    StateJournal again(p);
    CHECK(again.entries().size() == on_server.size());
    for (const auto& key : on_server) CHECK(again.seen(key));
    CHECK_FALSE(again.seen(pop3_key("a0")));
    CHECK(again.pending_intents().empty());
}

TEST_CASE("state: a folder mark survives a reload and is dropped when one of its keys is forgotten") {
    TempDir d;
    std::string p = d.path + "/acct.state";
    const FolderMark m{7, 3, 2};
    {
        StateJournal s(p);
        s.record_uidvalidity("Lists/cpp", 7);
        s.record_seen(imap_key("Lists/cpp", 7, 1), 10, "-");
        s.record_seen(imap_key("Lists/cpp", 7, 2), 20, "-");
        s.record_uidvalidity("INBOX", 9);
        s.record_mark("Lists/cpp", m);
        s.record_mark("INBOX", FolderMark{9, 1, 0});
        s.sync();
    }
    {
        StateJournal s(p);
        REQUIRE(s.mark("Lists/cpp"));
        CHECK(*s.mark("Lists/cpp") == m);
        REQUIRE(s.mark("INBOX"));
        CHECK_FALSE(s.mark("Other"));
        // A POP3 sync retiring IMAP records, or any prune: the folder no
        // longer holds only recorded messages as far as the state knows.
        s.compact([&](const std::string& k) { return k != imap_key("Lists/cpp", 7, 2); });
        CHECK_FALSE(s.mark("Lists/cpp"));
        CHECK(s.mark("INBOX"));
    }
    {
        StateJournal s(p);  // the F record drops the mark on reload too
        CHECK_FALSE(s.mark("Lists/cpp"));
        CHECK(s.mark("INBOX"));
        s.record_uidvalidity("INBOX", 10);  // a new UIDVALIDITY drops it
        CHECK_FALSE(s.mark("INBOX"));
        s.record_mark("INBOX", FolderMark{10, 5, 4});
        s.compact([](const std::string&) { return true; }, true);  // a rewrite keeps it
    }
    StateJournal s(p);
    REQUIRE(s.mark("INBOX"));
    CHECK(*s.mark("INBOX") == FolderMark{10, 5, 4});
}

namespace {
std::string v1_line(const std::string& record) {
    char crc[9];
    std::snprintf(crc, sizeof crc, "%08x", crc32(record));
    return std::string(crc) + " " + record + "\n";
}

// Sets PULLMAIL_TEST_NOW for the scope (state_journal.h takes its times from clock_now()).
struct FakeNow {
    explicit FakeNow(long long t) { ::setenv("PULLMAIL_TEST_NOW", std::to_string(t).c_str(), 1); }
    ~FakeNow() { ::unsetenv("PULLMAIL_TEST_NOW"); }
};
}  // namespace

TEST_CASE("state: version 1 files are read as they are, stamped at the first load and rewritten as version 4") {
    TempDir d;
    std::string p = d.path + "/acct.state";
    write_file(p, "pullmail-state 1\n" + v1_line("S pop3:a 100 ff") + v1_line("S pop3:b 7 ee appenduid:9:4") +
                      v1_line("S pop3:c 5 dd - keep") + v1_line("V INBOX 42"));
    {
        FakeNow now(1000000);
        StateJournal s(p);
        CHECK(s.find(pop3_key("a"))->recorded_at == 1000000);
        CHECK(s.find(pop3_key("a"))->delivered == Delivered::Whole);
        CHECK(s.find(pop3_key("b"))->where == "appenduid:9:4");
        CHECK(s.find(pop3_key("c"))->keep_on_server);
        CHECK(s.uidvalidity("INBOX") == 42u);
    }
    CHECK(read_file(p).rfind("pullmail-state 4 ", 0) == 0);
    FakeNow later(2000000);  // a later run keeps the time of the first load
    StateJournal s(p);
    CHECK(s.find(pop3_key("a"))->recorded_at == 1000000);
    CHECK(s.find(pop3_key("c"))->recorded_at == 1000000);
    CHECK(s.find(pop3_key("c"))->keep_on_server);
    CHECK(s.find(pop3_key("b"))->where == "appenduid:9:4");
}

TEST_CASE("state: a read-only load of a version 1 file changes nothing") {
    TempDir d;
    std::string p = d.path + "/acct.state";
    std::string v1 = "pullmail-state 1\n" + v1_line("S pop3:a 100 ff");
    write_file(p, v1);
    FakeNow now(1000000);
    StateJournal s(p, true);
    CHECK(s.find(pop3_key("a"))->recorded_at == 1000000);
    CHECK(read_file(p) == v1);
}

TEST_CASE("state: marks and delivery times survive reload and compaction") {
    TempDir d;
    std::string p = d.path + "/acct.state";
    {
        FakeNow now(5000);
        StateJournal s(p);
        s.record_seen(pop3_key("whole"), 10, "aa");
        s.record_seen(pop3_key("hdr"), SeenEntry{20, "bb", {}, false, Delivered::HeadersOnly, 0});
        s.record_seen(pop3_key("skip"), SeenEntry{30, "-", {}, false, Delivered::Skipped, 4000});
        s.record_seen(pop3_key("keep"), 40, "cc", {}, true);
        s.sync();
    }
    for (int round = 0; round < 2; ++round) {
        StateJournal s(p);
        CHECK(s.find(pop3_key("whole"))->recorded_at == 5000);
        CHECK(s.find(pop3_key("whole"))->delivered == Delivered::Whole);
        CHECK(s.find(pop3_key("hdr"))->delivered == Delivered::HeadersOnly);
        CHECK(s.find(pop3_key("hdr"))->fingerprint == "bb");
        CHECK(s.find(pop3_key("skip"))->delivered == Delivered::Skipped);
        CHECK(s.find(pop3_key("skip"))->recorded_at == 4000);
        CHECK(s.find(pop3_key("keep"))->keep_on_server);
        CHECK_FALSE(s.find(pop3_key("hdr"))->keep_on_server);
        s.compact([](const std::string&) { return true; }, true);
    }
}

TEST_CASE("state: an unknown mark of a newer writer is read as never delete") {
    TempDir d;
    std::string p = d.path + "/acct.state";
    write_file(p, "pullmail-state 2\n" + v1_line("S pop3:a 100 ff - future 77"));
    StateJournal s(p);
    CHECK(s.find(pop3_key("a"))->keep_on_server);
    CHECK(s.find(pop3_key("a"))->recorded_at == 77);
}
