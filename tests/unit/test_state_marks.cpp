// Unit tests for the marks file beside the state (state_marks.h): a reopen
// of an unchanged state reads no records, and every way the marks file can
// be wrong for the state it sits beside makes it ignored (a full load).
#include <doctest/doctest.h>

#include <filesystem>

#include "error.h"
#include "message_key.h"
#include "state_journal.h"
#include "state_marks.h"
#include "test_support.h"
#include "text_util.h"

using namespace pullmail;
using namespace pullmail::test;

namespace {

const FolderMark kInbox{42, 31, 30};
const FolderMark kLists{7, 4, 3};

// A state as a complete sync of two folders leaves it: 30 + 3 records, the
// marks, made durable and the marks file written (finish_sync's order).
void synced_state(const std::string& p, std::size_t extra = 0) {
    StateJournal s(p);
    s.sync();  // the file exists: the records below are appended as text, a journal
    s.record_uidvalidity("INBOX", 42);
    s.record_uidvalidity("Lists/cpp", 7);
    for (std::uint32_t uid = 1; uid <= 30 + extra; ++uid)
        s.record_seen(imap_key("INBOX", 42, uid), 1000 + uid, "0123456789abcdef0123456789abcdef");
    for (std::uint32_t uid = 1; uid <= 3; ++uid) s.record_seen(imap_key("Lists/cpp", 7, uid), 500, "-");
    s.record_mark("INBOX", kInbox);
    s.record_mark("Lists/cpp", kLists);
    s.sync();
    s.save_marks();
}

// A reopen that had to read the records, with the marks they say.
void check_full_load(const std::string& p, std::size_t records = 33) {
    StateJournal s(p);
    CHECK(s.records_loaded());
    CHECK(s.entries().size() == records);
}

std::string line(const std::string& record) { return checked_line(record); }

}  // namespace

TEST_CASE("state marks: a reopen of an unchanged state reads no records, and loads them at first use") {
    TempDir d;
    std::string p = d.path + "/a.state";
    synced_state(p);
    REQUIRE(std::filesystem::exists(p + ".marks"));
    StateJournal s(p);
    CHECK_FALSE(s.records_loaded());
    REQUIRE(s.mark("INBOX"));
    CHECK(*s.mark("INBOX") == kInbox);
    CHECK(*s.mark("Lists/cpp") == kLists);
    CHECK(s.uidvalidity("INBOX") == 42u);
    CHECK(s.pending_intents().empty());
    CHECK_FALSE(s.records_loaded());
    // A const view of the records before they are loaded is a bug, not an empty state.
    const StateJournal& cs = s;
    CHECK_THROWS_AS(cs.entries(), Error);
    // The first use loads them: the same state as a full load.
    CHECK(s.entries().size() == 33);
    CHECK(s.records_loaded());
    CHECK(*s.mark("INBOX") == kInbox);
    CHECK(s.find(imap_key("INBOX", 42, 7))->size == 1007);
}

TEST_CASE("state marks: every record_*() loads the records first") {
    TempDir d;
    std::string p = d.path + "/a.state";
    synced_state(p);
    {
        StateJournal s(p);
        REQUIRE_FALSE(s.records_loaded());
        s.record_seen(imap_key("INBOX", 42, 31), 9, "-");
        CHECK(s.records_loaded());
        CHECK(s.entries().size() == 34);
    }
    // Appended since the marks file was written: it no longer stands for the file.
    check_full_load(p, 34);
}

TEST_CASE("state marks: an unchanged reopen does not read damage in the records; their first use finds it") {
    TempDir d;
    std::string p = d.path + "/a.state";
    synced_state(p, 200);  // past the stamp's tail of kTailBytes
    std::string data = read_file(p);
    REQUIRE(data.size() > 2 * kTailBytes);
    auto at = data.find(" S imap:INBOX:42:");  // the first seen record, after the V and M ones
    REQUIRE(at != std::string::npos);
    REQUIRE(at + kTailBytes < data.size());
    data[at + 14] = '9';  // same size, the tail untouched: the checksum of that line fails
    write_file(p, data);
    StateJournal s(p);
    CHECK_FALSE(s.records_loaded());
    CHECK(*s.mark("INBOX") == kInbox);
    CHECK_THROWS_AS(s.entries(), Error);
    try {
        s.entries();
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::State);
        CHECK(std::string(e.what()).find("damaged") != std::string::npos);
    }
}

TEST_CASE("state marks: a missing or damaged marks file means a full load") {
    TempDir d;
    std::string p = d.path + "/a.state";
    synced_state(p);
    std::string good = read_file(p + ".marks");
    SUBCASE("missing") { std::filesystem::remove(p + ".marks"); }
    SUBCASE("a record's checksum") {
        std::string bad = good;
        bad[bad.find(" M ") + 3] = 'X';
        write_file(p + ".marks", bad);
    }
    SUBCASE("torn (no end record)") { write_file(p + ".marks", good.substr(0, good.rfind(line("E 4")))); }
    SUBCASE("cut in a line") { write_file(p + ".marks", good.substr(0, good.size() - 3)); }
    SUBCASE("another version") { write_file(p + ".marks", "pullmail-marks 2" + good.substr(good.find('\n'))); }
    SUBCASE("an end record counting other lines") {
        write_file(p + ".marks", good.substr(0, good.rfind(line("E 4"))) + line("E 3"));
    }
    SUBCASE("empty") { write_file(p + ".marks", ""); }
    check_full_load(p);
}

TEST_CASE("state marks: a marks file for another state is ignored") {
    TempDir d;
    std::string p = d.path + "/a.state", q = d.path + "/b.state";
    synced_state(p);
    SUBCASE("the state replaced by another account's (another generation)") {
        synced_state(q, 5);
        std::filesystem::copy_file(q, p, std::filesystem::copy_options::overwrite_existing);
        check_full_load(p, 38);
    }
    SUBCASE("the state deleted: a new, empty state") {
        std::filesystem::remove(p);
        StateJournal s(p);
        CHECK(s.records_loaded());
        CHECK(s.entries().empty());
        CHECK(s.mark("INBOX") == nullptr);
    }
    SUBCASE("the state rewritten (compaction): a new generation, even at the same size") {
        {
            StateJournal s(p);  // packed once, so the second rewrite below has the same size
            s.compact([](const std::string&) { return true; }, true);
            s.save_marks();
        }
        std::string before = read_file(p);
        {
            StateJournal s(p);
            s.compact([](const std::string&) { return true; }, true);
        }
        std::string after = read_file(p);
        CHECK(after.size() == before.size());
        CHECK(after.substr(0, after.find('\n')) != before.substr(0, before.find('\n')));
        check_full_load(p);
    }
    SUBCASE("a state of version 2 (no generation)") {
        std::string data = read_file(p);
        std::string v2 = "pullmail-state 2\n" + data.substr(data.find('\n') + 1);
        write_file(p, v2);
        check_full_load(p);
        // Read as it was, and rewritten once as version 4 with a generation.
        CHECK(read_file(p).rfind("pullmail-state 4 ", 0) == 0);
    }
}

TEST_CASE("state marks: a state restored from a backup is read whole") {
    TempDir d;
    std::string p = d.path + "/a.state";
    synced_state(p);
    std::string backup = read_file(p);
    {
        // A later run: three more messages, a new mark, a new marks file.
        StateJournal s(p);
        for (std::uint32_t uid = 31; uid <= 33; ++uid) s.record_seen(imap_key("INBOX", 42, uid), 9, "-");
        s.record_mark("INBOX", FolderMark{42, 34, 33});
        s.sync();
        s.save_marks();
    }
    SUBCASE("an older copy (same generation, smaller)") {
        write_file(p, backup);
        check_full_load(p);
        StateJournal s(p);
        CHECK(*s.mark("INBOX") == kInbox);  // the backup's own mark, not the marks file's
    }
    SUBCASE("the same generation and size, another tail") {
        // A copy that went another way after the backup, to the very size
        // the marks file was stamped with (the stamp's tail CRC tells them apart).
        std::string now = read_file(p);
        std::string other = now;
        auto at = other.rfind("imap:INBOX:42:33 9 ");
        REQUIRE(at != std::string::npos);
        auto eol = other.find('\n', at);
        std::string rec = other.substr(at - 2, eol - at + 2);  // "S imap:..."
        std::string changed = rec;
        changed[changed.find(" 9 ") + 1] = '8';
        std::size_t start = other.rfind('\n', at) + 1;
        other.replace(start, eol + 1 - start, line(changed));
        REQUIRE(other.size() == now.size());
        write_file(p, other);
        StateJournal s(p);
        CHECK(s.records_loaded());
        CHECK(s.find(imap_key("INBOX", 42, 33))->size == 8);
    }
}

TEST_CASE("state marks: not written while an intent is pending; then the intent is seen at the next load") {
    TempDir d;
    std::string p = d.path + "/a.state";
    synced_state(p);
    {
        StateJournal s(p);
        s.record_intent(imap_key("INBOX", 42, 31), "maildir new/1.M1P1Q1.host");
        s.sync();
        s.save_marks();  // refused: the intent is pending
    }
    StateJournal s(p);
    CHECK(s.records_loaded());
    REQUIRE(s.pending_intents().size() == 1);
}

TEST_CASE("state marks: a torn tail after the marks file means a full load with the warning") {
    TempDir d;
    std::string p = d.path + "/a.state";
    synced_state(p);
    write_file(p, read_file(p) + "0000 S imap:INBOX:42:3");
    StateJournal s(p);
    CHECK(s.records_loaded());
    CHECK_FALSE(s.load_warning().empty());
    CHECK(s.entries().size() == 33);
}

TEST_CASE("state marks: a read-only run uses the marks file and never writes one") {
    TempDir d;
    std::string p = d.path + "/a.state";
    synced_state(p);
    std::string marks = read_file(p + ".marks");
    {
        StateJournal s(p, true);
        CHECK_FALSE(s.records_loaded());
        CHECK(*s.mark("Lists/cpp") == kLists);
        CHECK(s.entries().size() == 33);
        s.save_marks();
    }
    CHECK(read_file(p + ".marks") == marks);
    std::filesystem::remove(p + ".marks");
    {
        StateJournal s(p, true);
        s.save_marks();
    }
    CHECK_FALSE(std::filesystem::exists(p + ".marks"));
}

TEST_CASE("state marks: no marks file without marks (POP3); a stale one is removed") {
    TempDir d;
    std::string p = d.path + "/a.state";
    synced_state(p);
    {
        StateJournal s(p);
        s.forget(imap_key("INBOX", 42, 1));
        s.forget(imap_key("Lists/cpp", 7, 1));  // both marks dropped
        s.sync();
        s.save_marks();
    }
    CHECK_FALSE(std::filesystem::exists(p + ".marks"));
    std::string q = d.path + "/pop.state";
    {
        StateJournal s(q);
        s.record_seen(pop3_key("u1"), 10, "-");
        s.record_pop3_synced();
        s.sync();
        s.save_marks();
    }
    CHECK_FALSE(std::filesystem::exists(q + ".marks"));
}

TEST_CASE("state marks: the format round-trips and rejects what it did not write") {
    StateMarks m{{"00112233445566778899aabbccddeeff", 12345, 0xdeadbeef}, {{"INBOX", 42}, {":pop3", 1}},
                 {{"INBOX", kInbox}}};
    auto back = parse_marks(format_marks(m));
    REQUIRE(back);
    CHECK(back->stamp == m.stamp);
    CHECK(back->uidvalidity == m.uidvalidity);
    CHECK(back->marks == m.marks);
    std::string text = format_marks(m);
    CHECK_FALSE(parse_marks(text + line("V Other 3")));  // something after the end
    CHECK_FALSE(parse_marks(text.substr(0, text.find('\n') + 1) + line("G x 1") + line("E 0")));
    CHECK_FALSE(parse_marks("pullmail-marks 1\n" + line("E 0")));  // no stamp
    CHECK_FALSE(parse_marks("pullmail-marks 1\n" + line("G g 1 0000000z") + line("E 0")));
}

TEST_CASE("state marks: a symbolic link in place of the marks file is never followed") {
    TempDir d;
    std::string p = d.path + "/a.state";
    synced_state(p);
    std::string victim = d.path + "/victim";
    write_file(victim, read_file(p + ".marks"));  // even a valid copy is not believed through a link
    std::filesystem::remove(p + ".marks");
    std::filesystem::create_symlink(victim, p + ".marks");
    {
        StateJournal s(p);
        CHECK(s.records_loaded());
        s.record_mark("INBOX", FolderMark{42, 32, 31});
        s.sync();
        s.save_marks();
    }
    CHECK_FALSE(std::filesystem::is_symlink(p + ".marks"));  // replaced by a file of its own
    CHECK(read_file(victim).find("M INBOX 42 31 30") != std::string::npos);  // untouched
    StateJournal s(p);
    CHECK_FALSE(s.records_loaded());
    CHECK(*s.mark("INBOX") == FolderMark{42, 32, 31});
}
