// Unit tests for MDA delivery: exit statuses, stderr in the error message,
// timeouts that kill the whole process group, MDAs that read only part of
// their input, what the MDA inherits.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "deliver.h"
#include "error.h"
#include "test_support.h"

using namespace pullmail;
using namespace pullmail::test;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {



std::unique_ptr<Deliverer> mda(const std::string& command, int timeout = 30) {
    DeliveryTarget t;
    t.kind = DeliveryTarget::Kind::Mda;
    t.command = command;
    DeliveryOptions opts;
    opts.mda_timeout_seconds = timeout;
    return make_file_deliverer(t, opts);
}

// Delivers `msg` in 64 kB chunks; returns the intent or rethrows.
std::string deliver(Deliverer& d, const std::string& msg) {
    auto sink = d.begin(MessageMeta{});
    try {
        for (std::size_t i = 0; i < msg.size(); i += 65536) sink->write(std::string_view(msg).substr(i, 65536));
        std::string intent = sink->prepare();
        sink->commit();
        return intent;
    } catch (...) {
        sink->abort();
        throw;
    }
}

Error deliver_error(Deliverer& d, const std::string& msg) {
    try {
        deliver(d, msg);
    } catch (const Error& e) {
        return e;
    }
    FAIL("delivery did not fail");
    return Error(ErrorKind::Internal, "unreachable");
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

TEST_CASE("MDA exit 0: delivered, the exact bytes on its stdin") {
    TempDir tmp;
    std::string out = tmp.path + "/out";
    auto d = mda("cat > '" + out + "'");
    CHECK(d->describe() == "mda:cat > '" + out + "'");
    CHECK(d->at_least_once());
    std::string msg = "Subject: hi\n\nFrom x\n";
    for (int i = 0; i < 300000; ++i) msg += static_cast<char>(i * 7);
    CHECK(deliver(*d, msg) == "mda");
    CHECK(read_file(out) == msg);
    CHECK(d->recover("mda") == Deliverer::Recovery::Delivered);
    CHECK_THROWS_AS(d->recover("maildir x"), Error);
    // Empty message.
    CHECK(deliver(*d, "") == "mda");
    CHECK(read_file(out).empty());
}

TEST_CASE("MDA exit 75 is a temporary error: try later, stop delivering") {
    auto d = mda("cat >/dev/null; echo 'quota exceeded, later' >&2; exit 75");
    Error e = deliver_error(*d, "Subject: x\n\nbody\n");
    CHECK(e.kind() == ErrorKind::Temporary);
    CHECK(e.temporary());
    CHECK(std::string(e.what()).find("try again later (exit 75)") != std::string::npos);
    CHECK(std::string(e.what()).find("quota exceeded, later") != std::string::npos);
}

TEST_CASE("MDA exit 1 is a permanent error with the first line of its stderr") {
    auto d = mda("cat >/dev/null; printf '\\n  \\nmailbox \\033[31mfull\\nsecond line\\n' >&2; exit 1");
    Error e = deliver_error(*d, "Subject: x\n\nbody\n");
    CHECK(e.kind() == ErrorKind::Delivery);
    CHECK_FALSE(e.temporary());
    std::string what = e.what();
    // The command is quoted first, then what it said, sanitised.
    std::string tail = "failed with exit status 1: mailbox \\x1b[31mfull";
    REQUIRE(what.size() > tail.size());
    CHECK(what.substr(what.size() - tail.size()) == tail);
    CHECK(what.find('\033') == std::string::npos);
}

TEST_CASE("MDA that does not read its stdin and fails") {
    // Exits before reading: our writes hit EPIPE, which must not kill us
    // (SIGPIPE ignored) nor hide the exit status.
    auto d = mda("echo 'no such user' >&2; exit 67");
    Error e = deliver_error(*d, std::string(1 << 20, 'x'));
    CHECK(std::string(e.what()).find("exit status 67: no such user") != std::string::npos);
}

TEST_CASE("MDA killed by a signal") {
    auto d = mda("kill -TERM $$");
    Error e = deliver_error(*d, "x\n");
    CHECK(e.kind() == ErrorKind::Delivery);
    CHECK(std::string(e.what()).find("killed by signal 15") != std::string::npos);
}

TEST_CASE("MDA that reads only part of a 1 MB message: its decision") {
    TempDir tmp;
    std::string out = tmp.path + "/out";
    auto d = mda("head -c 10 > '" + out + "'", 10);
    auto start = Clock::now();
    CHECK(deliver(*d, std::string(1 << 20, 'p')) == "mda");
    CHECK(seconds_since(start) < 5);
    CHECK(read_file(out) == std::string(10, 'p'));
}

TEST_CASE("MDA writing much to stderr while we write its stdin does not deadlock") {
    auto d = mda("head -c 1000000 /dev/zero >&2; cat >/dev/null; exit 1", 10);
    auto start = Clock::now();
    Error e = deliver_error(*d, std::string(1 << 20, 'q'));
    CHECK(seconds_since(start) < 5);
    CHECK(std::string(e.what()).find("exit status 1") != std::string::npos);
}

TEST_CASE("MDA that sleeps past its timeout is killed with its children") {
    TempDir tmp;
    std::string marker = tmp.path + "/marker";
    // The background subshell would create the marker after 1.5 s unless the
    // whole process group is killed.
    auto d = mda("cat >/dev/null; (sleep 1.5; touch '" + marker + "') & sleep 30", 1);
    auto start = Clock::now();
    Error e = deliver_error(*d, "Subject: slow\n\n");
    double took = seconds_since(start);
    CHECK(took >= 0.9);
    CHECK(took < 2.5);
    CHECK(e.kind() == ErrorKind::Delivery);
    CHECK(std::string(e.what()).find("timed out after 1 s") != std::string::npos);
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    CHECK_FALSE(fs::exists(marker));
}

TEST_CASE("MDA that never reads its stdin times out while we write") {
    auto d = mda("sleep 30", 1);
    auto start = Clock::now();
    Error e = deliver_error(*d, std::string(1 << 20, 'r'));
    CHECK(seconds_since(start) < 2.5);
    CHECK(std::string(e.what()).find("timed out after 1 s") != std::string::npos);
}

TEST_CASE("The MDA starts only once the message is whole; abort before that starts none") {
    TempDir tmp;
    std::string started = tmp.path + "/started", out = tmp.path + "/out";
    auto d = mda("touch '" + started + "'; cat > '" + out + "'");
    auto sink = d->begin(MessageMeta{});
    std::string msg = "Subject: big\n\n";
    for (int i = 0; i < 40; ++i) {
        std::string chunk(65536, static_cast<char>('a' + i % 26));
        sink->write(chunk);
        msg += chunk;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK_FALSE(fs::exists(started));  // nothing runs while the message arrives
    sink->abort();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK_FALSE(fs::exists(started));
    // The same, to the end: the MDA reads the whole spool.
    CHECK(deliver(*d, msg) == "mda");
    CHECK(fs::exists(started));
    CHECK(read_file(out) == msg);
}

TEST_CASE("MDA gets our environment without secrets, no other descriptors, default SIGPIPE") {
    TempDir tmp;
    std::string out = tmp.path + "/out";
    ::setenv("PULLMAIL_TEST_VAR", "from-parent", 1);
    ::setenv("PULLMAIL_PASSWORD", "s3cret-in-env", 1);
    int leaked = ::open("/dev/null", O_RDONLY);  // without O_CLOEXEC
    REQUIRE(leaked >= 3);
    auto d = mda("cat >/dev/null; { printf '%s|%s\\n' \"$PULLMAIL_TEST_VAR\" \"${PULLMAIL_PASSWORD-unset}\"; ls /proc/$$/fd; "
                 "grep SigIgn /proc/$$/status; } > '" + out + "'");
    CHECK(deliver(*d, "x\n") == "mda");
    ::close(leaked);
    ::unsetenv("PULLMAIL_TEST_VAR");
    ::unsetenv("PULLMAIL_PASSWORD");
    std::istringstream lines(read_file(out));
    std::string line;
    std::getline(lines, line);
    CHECK(line == "from-parent|unset");  // our environment, without its secrets
    std::vector<int> fds;
    while (std::getline(lines, line) && line.rfind("SigIgn", 0) != 0) fds.push_back(std::stoi(line));
    // 0, 1, 2 and whatever the shell opened for the redirection (the output
    // file, maybe a saved copy of stdout): but not our descriptor.
    CHECK(std::find(fds.begin(), fds.end(), leaked) == fds.end());
    // SIGPIPE (bit 13) is not ignored in the MDA although it is in pullmail.
    REQUIRE(line.rfind("SigIgn:", 0) == 0);
    unsigned long long ignored = std::stoull(line.substr(7), nullptr, 16);
    CHECK((ignored & (1ULL << (SIGPIPE - 1))) == 0);
    CHECK((ignored & (1ULL << (SIGXFSZ - 1))) == 0);
}
