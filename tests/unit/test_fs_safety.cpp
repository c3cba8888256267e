// Unit tests for the file-safety rules (issue 15, item 6) and for the text
// that reaches the terminal (item 10): directories others can write are
// refused, files pullmail opens there are never followed through symlinks,
// temporaries are created exclusively, and every log line and error text is
// free of control characters and invalid UTF-8.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>

#include "deliver.h"
#include "error.h"
#include "fs_util.h"
#include "log.h"
#include "state_journal.h"
#include "test_support.h"

using namespace pullmail;
using namespace pullmail::test;
namespace fs = std::filesystem;

namespace {

// The contents a file must keep when pullmail is tricked into it.
const std::string kVictim = "pullmail-state 1\nprecious bytes that belong to someone else\n";

std::string make_victim(const TempDir& d) {
    std::string victim = d.path + "/victim";
    write_file(victim, kVictim);
    return victim;
}

// The message of the Error that f throws (fails the test if none is thrown).
template <class F>
Error thrown_by(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e;
    }
    FAIL("no error was thrown");
    return Error(ErrorKind::Internal, "unreachable");
}

bool has_control_bytes(std::string_view s) {
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f) return true;
    return false;
}

// Everything a Logger writes for one call, captured from fd 2.
template <class F>
std::string captured_stderr(F&& f) {
    TempDir d;
    std::string path = d.path + "/stderr";
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    int saved = ::dup(2);
    ::dup2(fd, 2);
    ::close(fd);
    f();
    ::dup2(saved, 2);
    ::close(saved);
    return read_file(path);
}

std::unique_ptr<Deliverer> file_target(DeliveryTarget::Kind kind, const std::string& path) {
    DeliveryTarget t;
    t.kind = kind;
    t.path = path;
    return make_file_deliverer(t, DeliveryOptions{});
}

void deliver_one(Deliverer& d, const std::string& msg) {
    auto sink = d.begin(MessageMeta{});
    sink->write(msg);
    sink->prepare();
    d.sync_prepared();
    sink->commit();
    d.sync_committed();
}

const std::string kMessage = "From: a@example.org\nSubject: hi\n\nbody\n";

}  // namespace

// ---- state directory ---------------------------------------------------------

TEST_CASE("safety: a state directory others can write is refused with the chmod to run") {
    TempDir d;
    std::string dir = d.path + "/state";
    fs::create_directory(dir);
    for (mode_t mode : {0777, 0770, 0702, 01777}) {
        CAPTURE(mode);
        REQUIRE(::chmod(dir.c_str(), mode) == 0);
        Error e = thrown_by([&] { StateJournal s(dir + "/acct.state"); });
        CHECK(e.kind() == ErrorKind::LocalIO);
        std::string msg = e.what();
        CHECK(msg.find(dir) != std::string::npos);
        CHECK(msg.find("chmod go-w " + dir) != std::string::npos);
        CHECK(msg.find('\n') == std::string::npos);
        CHECK_FALSE(fs::exists(dir + "/acct.state"));
    }
    REQUIRE(::chmod(dir.c_str(), 0700) == 0);
    CHECK_NOTHROW(StateJournal(dir + "/acct.state"));
    REQUIRE(::chmod(dir.c_str(), 0755) == 0);  // readable by others is fine
    CHECK_NOTHROW(StateJournal(dir + "/acct.state"));
}

TEST_CASE("safety: a state directory owned by another user is refused") {
    if (::geteuid() != 0) return;  // only root can give a directory away
    TempDir d;
    std::string dir = d.path + "/state";
    fs::create_directory(dir);
    REQUIRE(::chown(dir.c_str(), 4242, 4242) == 0);
    Error e = thrown_by([&] { StateJournal s(dir + "/acct.state"); });
    CHECK(e.kind() == ErrorKind::LocalIO);
    CHECK(std::string(e.what()).find(dir) != std::string::npos);
    CHECK(std::string(e.what()).find("4242") != std::string::npos);
    CHECK_FALSE(fs::exists(dir + "/acct.state"));
}

TEST_CASE("safety: a state file that is a symlink is refused and its target untouched") {
    TempDir d;
    std::string victim = make_victim(d);
    std::string dir = d.path + "/state";
    fs::create_directory(dir);
    fs::create_symlink(victim, dir + "/acct.state");
    try {
        StateJournal s(dir + "/acct.state");
        s.record_seen(pop3_key("x"), 1, "-");
        s.sync();
        s.compact([](const std::string&) { return true; }, true);
        FAIL("a symlinked state file was used");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::LocalIO);
        CHECK(std::string(e.what()).find(dir + "/acct.state") != std::string::npos);
    }
    CHECK(read_file(victim) == kVictim);
    CHECK(fs::is_symlink(dir + "/acct.state"));
}

TEST_CASE("safety: a symlink planted at the old temporary name is never followed") {
    TempDir d;
    std::string victim = make_victim(d);
    std::string dir = d.path + "/state";
    fs::create_directory(dir);
    std::string p = dir + "/acct.state";
    // The name the rewrite used to use: <state>.tmp.<pid>, opened with O_TRUNC.
    fs::create_symlink(victim, p + ".tmp." + std::to_string(::getpid()));
    {
        StateJournal s(p);  // a new state: written through the atomic rewrite
        s.record_seen(pop3_key("x"), 1, "-");
        s.compact([](const std::string&) { return true; }, true);
    }
    CHECK(read_file(victim) == kVictim);
    StateJournal again(p);
    CHECK(again.seen(pop3_key("x")));
    // The temporary never stays behind under any name.
    for (const auto& ent : fs::directory_iterator(dir)) {
        std::string name = ent.path().filename().string();
        CHECK_MESSAGE((name == "acct.state" || name == "acct.state.tmp." + std::to_string(::getpid())), name);
    }
}

// ---- Maildir and mbox directories ----------------------------------------------

TEST_CASE("safety: an mbox that is a symlink is refused and its target untouched") {
    TempDir d;
    std::string victim = make_victim(d);
    std::string dir = d.path + "/mail";
    fs::create_directory(dir);
    fs::create_symlink(victim, dir + "/inbox");
    auto t = file_target(DeliveryTarget::Kind::Mbox, dir + "/inbox");
    Error e = thrown_by([&] { deliver_one(*t, kMessage); });
    CHECK(e.kind() == ErrorKind::LocalIO);
    CHECK(std::string(e.what()).find(dir + "/inbox") != std::string::npos);
    CHECK(read_file(victim) == kVictim);
}

TEST_CASE("safety: an mbox in a directory others can write (no sticky bit) is refused") {
    TempDir d;
    std::string dir = d.path + "/mail";
    fs::create_directory(dir);
    REQUIRE(::chmod(dir.c_str(), 0777) == 0);
    auto t = file_target(DeliveryTarget::Kind::Mbox, dir + "/inbox");
    Error e = thrown_by([&] { deliver_one(*t, kMessage); });
    CHECK(e.kind() == ErrorKind::LocalIO);
    CHECK(std::string(e.what()).find("chmod go-w " + dir) != std::string::npos);
    CHECK_FALSE(fs::exists(dir + "/inbox"));
    // A sticky directory (like /tmp) protects the entries of their owners.
    REQUIRE(::chmod(dir.c_str(), 01777) == 0);
    auto sticky = file_target(DeliveryTarget::Kind::Mbox, dir + "/inbox");
    CHECK_NOTHROW(deliver_one(*sticky, kMessage));
}

TEST_CASE("safety: a Maildir others can write is refused; a private one works") {
    TempDir d;
    std::string root = d.path + "/Maildir";
    for (const char* sub : {"", "/tmp", "/new", "/cur"}) fs::create_directory(root + sub);
    for (const char* sub : {"", "/tmp", "/new"}) {
        CAPTURE(sub);
        std::string dir = root + sub;
        REQUIRE(::chmod(dir.c_str(), 0777) == 0);
        auto t = file_target(DeliveryTarget::Kind::Maildir, root);
        Error e = thrown_by([&] { deliver_one(*t, kMessage); });
        CHECK(e.kind() == ErrorKind::LocalIO);
        CHECK(std::string(e.what()).find("chmod go-w " + dir) != std::string::npos);
        REQUIRE(::chmod(dir.c_str(), 0700) == 0);
    }
    CHECK(fs::is_empty(root + "/new"));
    CHECK(fs::is_empty(root + "/tmp"));
    auto t = file_target(DeliveryTarget::Kind::Maildir, root);
    CHECK_NOTHROW(deliver_one(*t, kMessage));
}

TEST_CASE("fs_util: check_dir_safe follows the rules of each kind of directory") {
    TempDir d;
    std::string dir = d.path + "/d";
    fs::create_directory(dir);
    struct Row {
        mode_t mode;
        bool private_ok, delivery_ok, spool_ok;
    };
    const Row rows[] = {
        {0700, true, true, true},   {0755, true, true, true},    {0775, false, false, true},
        {02775, false, false, true}, {0777, false, false, false}, {01777, false, true, true},
        {0757, false, false, false}, {01770, false, true, true},
    };
    for (const Row& r : rows) {
        CAPTURE(r.mode);
        REQUIRE(::chmod(dir.c_str(), r.mode) == 0);
        auto ok = [&](DirTrust t) {
            try {
                check_dir_safe(dir, t, "test directory");
                return true;
            } catch (const Error& e) {
                CHECK(e.kind() == ErrorKind::LocalIO);
                CHECK(std::string(e.what()).rfind("test directory " + dir + " ", 0) == 0);
                CHECK(std::string(e.what()).find("chmod go-w " + dir) != std::string::npos);
                return false;
            }
        };
        CHECK(ok(DirTrust::Private) == r.private_ok);
        CHECK(ok(DirTrust::Delivery) == r.delivery_ok);
        // The spool exception is for root's directories (we are root in CI).
        if (::geteuid() == 0) CHECK(ok(DirTrust::MailSpool) == r.spool_ok);
    }
    // A path with a space is quoted in the suggested command.
    std::string spaced = d.path + "/my mail";
    fs::create_directory(spaced);
    REQUIRE(::chmod(spaced.c_str(), 0777) == 0);
    Error e = thrown_by([&] { check_dir_safe(spaced, DirTrust::Delivery, "Maildir"); });
    CHECK(std::string(e.what()).find("chmod go-w '" + spaced + "'") != std::string::npos);
    CHECK_THROWS_AS(check_dir_safe(d.path + "/missing", DirTrust::Private, "x"), Error);
}

TEST_CASE("fs_util: open_no_follow opens regular files only, never through a symlink, never blocking") {
    TempDir d;
    std::string victim = make_victim(d);
    std::string link = d.path + "/link";
    fs::create_symlink(victim, link);
    errno = 0;
    CHECK(open_no_follow(link, O_RDWR | O_CREAT, 0600) == -1);
    CHECK(errno == ELOOP);
    CHECK(open_error_text(ELOOP).find("symbolic link") != std::string::npos);
    std::string fifo = d.path + "/fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    CHECK(open_no_follow(fifo, O_WRONLY) == -1);  // no reader: would block without O_NONBLOCK
    CHECK(errno == EINVAL);
    CHECK(open_no_follow(d.path, O_RDONLY) == -1);
    int fd = open_no_follow(victim, O_WRONLY | O_APPEND);
    REQUIRE(fd >= 0);
    CHECK((::fcntl(fd, F_GETFL) & (O_NONBLOCK | O_APPEND)) == O_APPEND);
    CHECK((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    ::close(fd);
    CHECK(read_file(victim) == kVictim);
    std::string out;
    CHECK_THROWS_AS(read_file_if_exists(link, out, false), Error);
    CHECK(read_file_if_exists(link, out));  // following stays the default (config, password files)
    CHECK(out == kVictim);
}

TEST_CASE("fs_util: write_file_atomic keeps the requested mode and leaves no temporary") {
    TempDir d;
    std::string p = d.path + "/f";
    write_file_atomic(p, "one", 0644);
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0644);
    write_file_atomic(p, "two", 0600);
    REQUIRE(::stat(p.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(read_file(p) == "two");
    CHECK(std::distance(fs::directory_iterator(d.path), fs::directory_iterator()) == 1);
}

// ---- text that reaches the terminal ---------------------------------------------

TEST_CASE("sanitize: control characters are escaped, valid UTF-8 kept, invalid UTF-8 replaced") {
    CHECK(sanitize("plain text") == "plain text");
    CHECK(sanitize("Entw\xc3\xbcrfe/\xe6\x97\xa5\xe6\x9c\xac") == "Entw\xc3\xbcrfe/\xe6\x97\xa5\xe6\x9c\xac");
    CHECK(sanitize("\x1b[31mRED\x1b[0m") == "\\x1b[31mRED\\x1b[0m");
    CHECK(sanitize("a\r\nb") == "a\\r\\nb");
    CHECK(sanitize("tab\there") == "tab\\there");
    CHECK(sanitize(std::string_view("nul\0x", 5)) == "nul\\x00x");
    CHECK(sanitize("del\x7f") == "del\\x7f");
    CHECK(sanitize("bad \xff\xfe utf8") == "bad \\xff\\xfe utf8");
    CHECK(sanitize("cut \xc3") == "cut \\xc3");             // truncated sequence
    CHECK(sanitize("over \xc0\xaf") == "over \\xc0\\xaf");  // overlong '/'
    CHECK(sanitize("sur \xed\xa0\x80") == "sur \\xed\\xa0\\x80");  // UTF-16 surrogate
    CHECK(sanitize("c1 \xc2\x9b" "31m") == "c1 \\u009b31m");     // 8-bit CSI
    CHECK(sanitize("bidi \xe2\x80\xae") == "bidi \\u202e");       // right-to-left override
    // The output is already safe: sanitising twice changes nothing.
    std::string once = sanitize("\x1b]0;title\x07 \xff \xc2\x85");
    CHECK(sanitize(once) == once);
    CHECK_FALSE(has_control_bytes(once));
    // Cutting never splits an escape or a UTF-8 sequence.
    std::string cut = sanitize(std::string(10, '\x1b'), 7);
    CHECK(cut == "\\x1b...");
    CHECK(sanitize("\xc3\xa9\xc3\xa9\xc3\xa9", 3) == "\xc3\xa9...");
}

TEST_CASE("errors: detail() is safe to print whatever the message holds") {
    Error e(ErrorKind::Protocol, "cannot open folder '\x1b[31mRED\x1b[0m\r\nX'");
    e.set_server_text("NO [\x1b[2J] no such \xff folder");
    e.set_account("home");
    for (const std::string& s : {e.detail()}) {
        CAPTURE(s);
        CHECK_FALSE(has_control_bytes(s));
        CHECK(s.find("\\x1b[31mRED") != std::string::npos);
        CHECK(s.find("\\xff") != std::string::npos);
    }
    Error accents(ErrorKind::Protocol, "cannot open folder 'Entw\xc3\xbcrfe'");
    CHECK(accents.detail() == "cannot open folder 'Entw\xc3\xbcrfe'");
}

TEST_CASE("log: every line written is one safe line, whatever the account name or message") {
    Logger log(3);
    std::string out = captured_stderr([&] {
        log.error("ho\x1bme", "cannot open folder '\x1b[31mRED\x1b[0m'");
        log.warn("home", "line one\r\nline two");
        log.info("home", "folder 'Entw\xc3\xbcrfe' \xff");
        log.detail("home", "fetched from 'A\rB'");
        log.trace("home", "S: * 1 FETCH \x1b[0m");
    });
    CHECK_FALSE(out.find('\x1b') != std::string::npos);
    CHECK_FALSE(out.find('\r') != std::string::npos);
    CHECK(out.find("\xff") == std::string::npos);
    std::size_t lines = 0;
    for (std::size_t pos = 0; pos < out.size();) {
        auto nl = out.find('\n', pos);
        REQUIRE(nl != std::string::npos);
        std::string line = out.substr(pos, nl - pos);
        CHECK_MESSAGE(line.rfind("pullmail: ", 0) == 0, line);
        CHECK_FALSE(has_control_bytes(line));
        ++lines;
        pos = nl + 1;
    }
    CHECK(lines == 5);
    CHECK(out.find("Entw\xc3\xbcrfe") != std::string::npos);
    CHECK(out.find("line one\\r\\nline two") != std::string::npos);
}
