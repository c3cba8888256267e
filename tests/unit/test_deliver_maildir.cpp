// Unit tests for Maildir delivery: exact bytes, no leftovers, recovery of
// every crash state, disk full.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <chrono>
#include <vector>

#include "deliver.h"
#include "deliver_impl.h"
#include "error.h"
#include "test_support.h"

using namespace pullmail;
using namespace pullmail::test;
namespace fs = std::filesystem;

namespace {



std::vector<std::string> list_dir(const std::string& path) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(path, ec)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

std::unique_ptr<Deliverer> maildir(const std::string& path) {
    DeliveryTarget t;
    t.kind = DeliveryTarget::Kind::Maildir;
    t.path = path;
    return make_file_deliverer(t, DeliveryOptions{});
}

// Writes `msg` in chunks of random sizes (including empty ones).
void write_chunked(DeliverySink& sink, const std::string& msg, std::mt19937& rng) {
    std::size_t i = 0;
    while (i < msg.size()) {
        std::size_t n = std::uniform_int_distribution<std::size_t>(0, 100000)(rng);
        n = std::min(n, msg.size() - i);
        sink.write(std::string_view(msg).substr(i, n));
        i += n;
    }
}

std::string name_of(const std::string& intent) {
    REQUIRE(intent.rfind("maildir ", 0) == 0);
    return intent.substr(8);
}

mode_t mode_of(const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("Maildir delivery creates the Maildir and stores the exact bytes in new/") {
    TempDir tmp;
    std::string root = tmp.path + "/a/b/Mail";
    auto d = maildir(root);
    CHECK(d->describe() == "maildir:" + root);

    std::mt19937 rng(42);
    std::vector<std::string> msgs = {"Subject: hi\n\nhello\n", "", "no newline at end", std::string(1 << 20, 'x')};
    std::string binary;
    for (int i = 0; i < 5000; ++i) binary += static_cast<char>(rng());
    msgs.push_back(binary);

    std::set<std::string> names;
    for (const auto& msg : msgs) {
        auto sink = d->begin(MessageMeta{});
        write_chunked(*sink, msg, rng);
        std::string intent = sink->prepare();
        CHECK(intent.find('\n') == std::string::npos);
        std::string name = name_of(intent);
        d->sync_prepared();
        // Prepared: durable in tmp/, not yet visible in new/.
        CHECK(read_file(root + "/tmp/" + name) == msg);
        CHECK_FALSE(fs::exists(root + "/new/" + name));
        sink->commit();
        d->sync_committed();
        CHECK(read_file(root + "/new/" + name) == msg);
        CHECK(mode_of(root + "/new/" + name) == 0600);
        names.insert(name);
    }
    CHECK(names.size() == msgs.size());
    CHECK(list_dir(root + "/tmp").empty());
    CHECK(list_dir(root + "/new").size() == msgs.size());
    CHECK(list_dir(root + "/cur").empty());
    for (const char* sub : {"", "/tmp", "/new", "/cur"}) CHECK(mode_of(root + sub) == 0700);
    CHECK(mode_of(tmp.path + "/a") == 0700);
}

TEST_CASE("Maildir abort leaves nothing behind, at every stage") {
    TempDir tmp;
    auto d = maildir(tmp.path + "/md");
    {
        auto sink = d->begin(MessageMeta{});
        sink->abort();
        sink->abort();  // idempotent
    }
    {
        auto sink = d->begin(MessageMeta{});
        sink->write(std::string(200000, 'y'));
        sink->abort();
    }
    {
        auto sink = d->begin(MessageMeta{});
        sink->write("Subject: x\n\n");
        sink->prepare();
        sink->abort();
    }
    {
        auto sink = d->begin(MessageMeta{});
        sink->write("dropped without abort");
    }  // the destructor aborts
    CHECK(list_dir(tmp.path + "/md/tmp").empty());
    CHECK(list_dir(tmp.path + "/md/new").empty());
    CHECK(list_dir(tmp.path + "/md/cur").empty());
}

TEST_CASE("Maildir commit never replaces an existing file") {
    TempDir tmp;
    std::string root = tmp.path + "/md";
    auto d = maildir(root);
    auto sink = d->begin(MessageMeta{});
    sink->write("new message\n");
    std::string name = name_of(sink->prepare());
    { std::ofstream(root + "/new/" + name) << "older message\n"; }
    CHECK_THROWS_AS(sink->commit(), Error);
    sink->abort();
    CHECK(read_file(root + "/new/" + name) == "older message\n");
    CHECK(list_dir(root + "/tmp").empty());
}

TEST_CASE("Maildir recover tells every crash state apart") {
    TempDir tmp;
    std::string root = tmp.path + "/md";
    auto d = maildir(root);
    auto prepared = [&](const std::string& body) {
        auto sink = d->begin(MessageMeta{});
        sink->write(body);
        std::string intent = sink->prepare();
        return std::make_pair(std::move(sink), intent);
    };

    SUBCASE("crash after prepare: only in tmp/") {
        auto [sink, intent] = prepared("m1\n");
        // Simulate the crash: the sink is gone without abort().
        std::string name = name_of(intent);
        std::string copy = root + "/keep";
        fs::copy_file(root + "/tmp/" + name, copy);
        sink.reset();  // its destructor removes the tmp file: put it back
        fs::rename(copy, root + "/tmp/" + name);
        CHECK(d->recover(intent) == Deliverer::Recovery::NotDelivered);
        CHECK(list_dir(root + "/tmp").empty());
        CHECK(list_dir(root + "/new").empty());
    }
    SUBCASE("committed: in new/") {
        auto [sink, intent] = prepared("m2\n");
        sink->commit();
        CHECK(d->recover(intent) == Deliverer::Recovery::Delivered);
        CHECK(read_file(root + "/new/" + name_of(intent)) == "m2\n");
    }
    SUBCASE("moved to cur/ by a mail reader, with flags") {
        auto [sink, intent] = prepared("m4\n");
        sink->commit();
        std::string name = name_of(intent);
        fs::rename(root + "/new/" + name, root + "/cur/" + name + ":2,S");
        CHECK(d->recover(intent) == Deliverer::Recovery::Delivered);
    }
    SUBCASE("moved to cur/ without info") {
        auto [sink, intent] = prepared("m5\n");
        sink->commit();
        std::string name = name_of(intent);
        fs::rename(root + "/new/" + name, root + "/cur/" + name);
        CHECK(d->recover(intent) == Deliverer::Recovery::Delivered);
    }
    SUBCASE("nothing there") {
        CHECK(d->recover("maildir 1700000000.M1P2Q3.nowhere") == Deliverer::Recovery::NotDelivered);
        // A name that merely starts with ours is somebody else's message.
        { std::ofstream(root + "/cur/1700000000.M1P2Q3.nowhere2:2,S") << "x"; }
        CHECK(d->recover("maildir 1700000000.M1P2Q3.nowhere") == Deliverer::Recovery::NotDelivered);
    }
    SUBCASE("the whole Maildir is gone") {
        auto d2 = maildir(tmp.path + "/never-created");
        CHECK(d2->recover("maildir 1.M1P1Q1.h") == Deliverer::Recovery::NotDelivered);
    }
    SUBCASE("malformed records") {
        CHECK_THROWS_AS(d->recover("maildir ../../etc/passwd"), Error);
        CHECK_THROWS_AS(d->recover("maildir "), Error);
        CHECK_THROWS_AS(d->recover("maildir"), Error);
        CHECK_THROWS_AS(d->recover("mbox 0 10 00"), Error);
    }
}

TEST_CASE("Maildir recover after a crash between link and unlink") {
    TempDir tmp;
    std::string root = tmp.path + "/md";
    auto d = maildir(root);
    auto sink = d->begin(MessageMeta{});
    sink->write("m\n");
    std::string intent = sink->prepare();
    std::string name = name_of(intent);
    std::string copy = root + "/keep";
    fs::copy_file(root + "/tmp/" + name, copy);
    sink.reset();
    fs::rename(copy, root + "/tmp/" + name);
    REQUIRE(::link((root + "/tmp/" + name).c_str(), (root + "/new/" + name).c_str()) == 0);
    CHECK(d->recover(intent) == Deliverer::Recovery::Delivered);
    CHECK(list_dir(root + "/tmp").empty());
    CHECK(read_file(root + "/new/" + name) == "m\n");
}

TEST_CASE("Maildir disk full (EFBIG): clean LocalIO error, nothing left behind") {
    TempDir tmp;
    std::string root = tmp.path + "/md";
    // In a child, so the file size limit does not touch the test runner.
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // The runner ignores SIGXFSZ (ignore_delivery_signals), so writes
        // past the limit fail with EFBIG instead of killing the process.
        ::signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl {100000, 100000};
        ::setrlimit(RLIMIT_FSIZE, &rl);
        int code = 10;
        try {
            auto d = maildir(root);
            auto sink = d->begin(MessageMeta{});
            try {
                for (int i = 0; i < 10; ++i) sink->write(std::string(30000, 'z'));
                sink->prepare();
                sink->commit();
                code = 1;  // must not succeed
            } catch (const Error& e) {
                std::string what = e.what();
                code = e.kind() == ErrorKind::LocalIO && what.find("cannot write to Maildir " + root) == 0 &&
                               what.find("File too large") != std::string::npos
                           ? 0
                           : 2;
                sink->abort();
            }
        } catch (...) {
            code = 3;
        }
        ::_exit(code);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(list_dir(root + "/tmp").empty());
    CHECK(list_dir(root + "/new").empty());
}

TEST_CASE("Maildir that cannot be created is a LocalIO error") {
    TempDir tmp;
    { std::ofstream(tmp.path + "/file") << "x"; }
    auto d = maildir(tmp.path + "/file/md");
    try {
        d->begin(MessageMeta{});
        FAIL("no exception");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::LocalIO);
        CHECK(std::string(e.what()).find("cannot create Maildir") != std::string::npos);
        CHECK(std::string(e.what()).find("Not a directory") != std::string::npos);
    }
}

TEST_CASE("Maildir exactly once across SIGKILL at random moments") {
    // The model of the runner: journal the intent after prepare(), then
    // commit(); after a crash, recover() and deliver again if NotDelivered.
    TempDir tmp;
    std::string root = tmp.path + "/md", journal = tmp.path + "/journal";
    std::mt19937 rng(77);
    std::multiset<std::string> expected;
    for (int round = 0; round < 20; ++round) {
        const std::string msg = "Subject: round " + std::to_string(round) + "\n\n" +
                                std::string(std::uniform_int_distribution<int>(0, 1 << 20)(rng), 'k');
        ::unlink(journal.c_str());
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            try {
                auto d = maildir(root);
                auto sink = d->begin(MessageMeta{});
                for (std::size_t i = 0; i < msg.size(); i += 65536) sink->write(std::string_view(msg).substr(i, 65536));
                std::string intent = sink->prepare();
                { std::ofstream(journal + ".new") << intent; }
                ::rename((journal + ".new").c_str(), journal.c_str());
                sink->commit();
            } catch (...) {
                ::_exit(1);
            }
            ::_exit(0);
        }
        std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 15000)(rng)));
        ::kill(pid, SIGKILL);
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        REQUIRE((WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0)));
        auto d = maildir(root);
        bool delivered = false;
        if (fs::exists(journal)) delivered = d->recover(read_file(journal)) == Deliverer::Recovery::Delivered;
        if (!delivered) {
            auto sink = d->begin(MessageMeta{});
            sink->write(msg);
            sink->prepare();
            sink->commit();
        }
        expected.insert(msg);
    }
    std::multiset<std::string> stored;
    for (const auto& name : list_dir(root + "/new")) stored.insert(read_file(root + "/new/" + name));
    CHECK(stored == expected);
    // A crash before prepare() may leave a file in tmp/ that no record names;
    // mail readers remove such files after 36 hours, as the convention says.
}

TEST_CASE("Maildir group commit: a batch of prepared sinks, one sync each way") {
    TempDir tmp;
    std::string root = tmp.path + "/md";
    auto d = maildir(root);
    REQUIRE(d->max_batch() >= 1);
    std::vector<std::unique_ptr<DeliverySink>> sinks;
    std::vector<std::string> names;
    for (std::size_t i = 0; i < d->max_batch(); ++i) {
        sinks.push_back(d->begin(MessageMeta{}));
        sinks.back()->write("message " + std::to_string(i) + "\n");
        names.push_back(name_of(sinks.back()->prepare()));
    }
    // One of the batch fails before commit: it must vanish, the others not.
    sinks[1]->abort();
    d->sync_prepared();
    for (std::size_t i = 0; i < sinks.size(); ++i) {
        if (i != 1) sinks[i]->commit();
    }
    d->sync_committed();
    d->sync_committed();  // nothing pending: no-op
    CHECK(list_dir(root + "/tmp").empty());
    CHECK(list_dir(root + "/new").size() == sinks.size() - 1);
    for (std::size_t i = 0; i < sinks.size(); ++i) {
        if (i != 1) CHECK(read_file(root + "/new/" + names[i]) == "message " + std::to_string(i) + "\n");
    }
    CHECK_FALSE(fs::exists(root + "/new/" + names[1]));
}

TEST_CASE("Maildir removes tmp/ orphans of dead pullmail processes on this host only") {
    TempDir tmp;
    std::string root = tmp.path + "/md";
    maildir(root)->begin(MessageMeta{})->abort();  // creates the Maildir
    // A pid that is surely gone: a child we started and reaped.
    pid_t dead = ::fork();
    REQUIRE(dead >= 0);
    if (dead == 0) ::_exit(0);
    REQUIRE(::waitpid(dead, nullptr, 0) == dead);
    std::string host = detail::maildir_host_part();
    std::string orphan = maildir_unique_name(1700000000, 1, dead, 1, host);
    std::string alive = maildir_unique_name(1700000000, 2, ::getppid(), 1, host);
    std::string other_host = maildir_unique_name(1700000000, 3, dead, 1, host + "x");
    std::string foreign = "1700000000.12345_1.somehost";
    for (const auto& n : {orphan, alive, other_host, foreign}) std::ofstream(root + "/tmp/" + n) << "x";
    maildir(root)->begin(MessageMeta{})->abort();  // a new deliverer checks once
    CHECK(list_dir(root + "/tmp") == std::vector<std::string>{foreign, alive, other_host});
}
