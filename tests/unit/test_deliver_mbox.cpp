// Unit tests for mbox delivery and mboxrd quoting: messages read back
// byte-exact, quoting split anywhere, recovery of every crash state, the
// fcntl lock, disk full.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <chrono>
#include <string>
#include <vector>

#include "deliver.h"
#include "error.h"
#include "test_support.h"

using namespace pullmail;
using namespace pullmail::test;
namespace fs = std::filesystem;

namespace {



std::uint64_t file_size(const std::string& path) { return fs::file_size(path); }

std::unique_ptr<Deliverer> mbox(const std::string& path, int lock_timeout = 60) {
    DeliveryTarget t;
    t.kind = DeliveryTarget::Kind::Mbox;
    t.path = path;
    DeliveryOptions opts;
    opts.mbox_lock_timeout_seconds = lock_timeout;
    return make_file_deliverer(t, opts);
}

// An independent mboxrd reader: a line starting with "From " starts a
// message; each message ends with a blank separator line, which is not part
// of it; ^>+From  lines lose one '>'.
struct Stored {
    std::string from_line;
    std::string body;
};

std::string test_unquote(const std::string& quoted) {
    std::string out;
    std::size_t pos = 0;
    while (pos < quoted.size()) {
        std::size_t nl = quoted.find('\n', pos);
        std::size_t end = nl == std::string::npos ? quoted.size() : nl + 1;
        std::string line = quoted.substr(pos, end - pos);
        std::size_t i = 0;
        while (i < line.size() && line[i] == '>') ++i;
        if (i > 0 && line.compare(i, 5, "From ") == 0) line.erase(0, 1);
        out += line;
        pos = end;
    }
    return out;
}

std::vector<Stored> parse_mbox(const std::string& text) {
    std::vector<Stored> out;
    std::size_t pos = 0;
    std::string current;
    bool in_message = false;
    auto finish = [&] {
        if (!in_message) return;
        // Every message is followed by a blank line.
        REQUIRE(!current.empty());
        REQUIRE(current.back() == '\n');
        REQUIRE((current.size() == 1 || current[current.size() - 2] == '\n'));
        current.pop_back();
        out.back().body = test_unquote(current);
        current.clear();
    };
    while (pos < text.size()) {
        std::size_t nl = text.find('\n', pos);
        REQUIRE(nl != std::string::npos);  // an mbox ends with a newline
        std::string line = text.substr(pos, nl + 1 - pos);
        if (line.rfind("From ", 0) == 0) {
            finish();
            out.push_back({line.substr(0, line.size() - 1), {}});
            in_message = true;
        } else {
            REQUIRE(in_message);
            current += line;
        }
        pos = nl + 1;
    }
    finish();
    return out;
}

std::string quote_whole(std::string_view in) {
    MboxrdQuoter q;
    std::string out;
    q.quote(in, out);
    q.finish(out);
    return out;
}

std::string deliver(Deliverer& d, const std::string& msg, std::mt19937& rng) {
    auto sink = d.begin(MessageMeta{});
    std::size_t i = 0;
    while (i < msg.size()) {
        std::size_t n = std::min<std::size_t>(std::uniform_int_distribution<std::size_t>(0, 70000)(rng), msg.size() - i);
        sink->write(std::string_view(msg).substr(i, n));
        i += n;
    }
    std::string intent = sink->prepare();
    sink->commit();
    return intent;
}

struct Intent {
    std::uint64_t offset, length;
    std::string digest;
};

Intent parse_intent(const std::string& intent) {
    std::istringstream in(intent);
    std::string kind;
    Intent out{};
    in >> kind >> out.offset >> out.length >> out.digest;
    REQUIRE(kind == "mbox");
    REQUIRE(out.digest.size() == 64);
    return out;
}

// What another process sees with F_GETLK on the whole file: F_UNLCK, F_WRLCK...
int lock_seen_by_other_process(const std::string& path) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int fd = ::open(path.c_str(), O_RDONLY);
        struct flock fl {};
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        if (fd < 0 || ::fcntl(fd, F_GETLK, &fl) != 0) ::_exit(100);
        ::_exit(fl.l_type);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
}

const std::vector<std::string>& tricky_messages() {
    static const std::vector<std::string> msgs = [] {
        std::vector<std::string> m = {
            "From: a@example.org\nSubject: quoting\n\nFrom x\n>From x\n>>From x\nFrom\nFromage\n From x\n>From\nfrom x\n",
            "Subject: header block then From_ line\n\nFrom the start of the body\n",
            "From the very first line\nSubject: x\n\nbody\n",
            "Subject: no final newline (documented: gets one)\n\nlast line",
            "",
            "Subject: empty body\n\n",
            "\n",
            "Subject: blank lines at the end\n\nx\n\n\n",
            "Subject: blank line then From\n\n\nFrom a\n\nFrom b\n\n",
            "Subject: CR kept\r\n\r\nbody\r\n\rFrom x\n",
            ">From \n>>>>>>From >From \nFrom From \n",
        };
        std::string eight_bit = "Subject: 8-bit\n\n";
        for (int i = 0; i < 256; ++i) eight_bit += static_cast<char>(i);
        eight_bit += "\n\xe4\xf6\xfc From \xff\nFrom \x80\n";
        m.push_back(eight_bit);
        m.push_back("Subject: long line\n\n" + std::string(2 << 20, 'L') + "\n");
        m.push_back(">>From " + std::string(2 << 20, '>'));
        return m;
    }();
    return msgs;
}

// The sender of a From_ line "From <sender> Thu Nov 23 17:59:02 2023" (date
// in asctime() layout); empty when the line has another shape.
std::string from_line_sender(const std::string& line) {
    static const std::string kDays = "Sun Mon Tue Wed Thu Fri Sat ";
    static const std::string kMonths = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec ";
    const std::string shape = "Aaa Aaa _9 99:99:99 9999";
    if (line.rfind("From ", 0) != 0 || line.size() < 5 + 2 + shape.size()) return {};
    std::string sender = line.substr(5, line.size() - 5 - shape.size() - 1);
    std::string date = line.substr(line.size() - shape.size());
    if (sender.empty() || sender.find_first_of(" \t") != std::string::npos || line[line.size() - shape.size() - 1] != ' ')
        return {};
    for (std::size_t i = 0; i < shape.size(); ++i) {
        char c = date[i];
        bool ok = shape[i] == '9' ? (c >= '0' && c <= '9')
                  : shape[i] == '_' ? (c == ' ' || (c >= '1' && c <= '3'))
                  : shape[i] == 'A' || shape[i] == 'a' ? std::isalpha(static_cast<unsigned char>(c)) != 0
                                                        : c == shape[i];
        if (!ok) return {};
    }
    if (kDays.find(date.substr(0, 4)) % 4 != 0 || kMonths.find(date.substr(4, 4)) % 4 != 0) return {};
    return sender;
}

}  // namespace

TEST_CASE("MboxrdQuoter quotes ^>*From lines") {
    CHECK(quote_whole("From x\n") == ">From x\n");
    CHECK(quote_whole(">From x\n") == ">>From x\n");
    CHECK(quote_whole(">>From x") == ">>>From x");
    CHECK(quote_whole("From \n") == ">From \n");
    CHECK(quote_whole("From") == "From");
    CHECK(quote_whole("From\nFrom") == "From\nFrom");
    CHECK(quote_whole("Fromage\n") == "Fromage\n");
    CHECK(quote_whole(" From x\n") == " From x\n");
    CHECK(quote_whole("a From x\nFrom y") == "a From x\n>From y");
    CHECK(quote_whole(">>>") == ">>>");
    CHECK(quote_whole(">>>\n>F\n") == ">>>\n>F\n");
    CHECK(quote_whole("> From x\n") == "> From x\n");
    CHECK(quote_whole("x\n\nFrom a\nFrom b\n") == "x\n\n>From a\n>From b\n");
    CHECK(quote_whole("") == "");
}

TEST_CASE("mboxrd_unquote reverses quoting") {
    CHECK(mboxrd_unquote(">From x\n>>From y\nFrom\n>F\n") == "From x\n>From y\nFrom\n>F\n");
    CHECK(mboxrd_unquote(">From ") == "From ");
    CHECK(mboxrd_unquote("") == "");
}

TEST_CASE("MboxrdQuoter gives the same result at every split point") {
    const std::string in =
        "From a\n>From b\n>>From c\nFrom\n>Fro\nFro m\n>>>\nFrom x From y\n\nFrom \n>From";
    const std::string want = quote_whole(in);
    CHECK(want == ">From a\n>>From b\n>>>From c\nFrom\n>Fro\nFro m\n>>>\n>From x From y\n\n>From \n>From");
    for (std::size_t i = 0; i <= in.size(); ++i) {
        for (std::size_t j = i; j <= in.size(); ++j) {
            MboxrdQuoter q;
            std::string out;
            q.quote(std::string_view(in).substr(0, i), out);
            q.quote(std::string_view(in).substr(i, j - i), out);
            q.quote(std::string_view(in).substr(j), out);
            q.finish(out);
            CHECK_MESSAGE(out == want, "split at " << i << "," << j);
        }
    }
    MboxrdQuoter q;
    std::string out;
    for (char c : in) q.quote(std::string_view(&c, 1), out);
    q.finish(out);
    CHECK(out == want);
}

TEST_CASE("mboxrd round trip on random input (seeded)") {
    std::mt19937 rng(20240607);
    const std::string alphabet = ">>>>From\n\n x\r";
    for (int round = 0; round < 3000; ++round) {
        std::string in;
        std::size_t len = std::uniform_int_distribution<std::size_t>(0, 200)(rng);
        for (std::size_t i = 0; i < len; ++i) {
            if (rng() % 8 == 0)
                in += "From ";
            else
                in += alphabet[rng() % alphabet.size()];
        }
        std::string whole = quote_whole(in);
        REQUIRE(mboxrd_unquote(whole) == in);
        // No line of the output can be taken for a From_ line.
        CHECK(whole.rfind("From ", 0) != 0);
        CHECK(whole.find("\nFrom ") == std::string::npos);
        // Random chunking gives the same bytes.
        MboxrdQuoter q;
        std::string chunked;
        std::size_t i = 0;
        while (i < in.size()) {
            std::size_t n = std::min<std::size_t>(rng() % 7, in.size() - i);
            q.quote(std::string_view(in).substr(i, n), chunked);
            i += n;
        }
        q.finish(chunked);
        REQUIRE(chunked == whole);
    }
}

TEST_CASE("mbox delivery: messages read back byte-exact") {
    TempDir tmp;
    std::string path = tmp.path + "/sub/dir/mbox";
    auto d = mbox(path);
    CHECK(d->describe() == "mbox:" + path);
    CHECK_FALSE(d->at_least_once());
    std::mt19937 rng(7);
    const auto& msgs = tricky_messages();
    std::uint64_t expected_offset = 0;
    for (const auto& m : msgs) {
        Intent in = parse_intent(deliver(*d, m, rng));
        CHECK(in.offset == expected_offset);
        expected_offset += in.length;
        CHECK(file_size(path) == expected_offset);
    }
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(::stat((tmp.path + "/sub").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    // No temporary files next to the mbox.
    CHECK(std::distance(fs::directory_iterator(tmp.path + "/sub/dir"), fs::directory_iterator()) == 1);

    auto stored = parse_mbox(read_file(path));
    REQUIRE(stored.size() == msgs.size());
    for (std::size_t i = 0; i < msgs.size(); ++i) {
        std::string want = msgs[i];
        if (!want.empty() && want.back() != '\n') want += '\n';
        CHECK_MESSAGE(stored[i].body == want, "message " << i);
        CHECK(from_line_sender(stored[i].from_line) == "MAILER-DAEMON");
    }
}

TEST_CASE("mbox From_ line takes the sender from Return-Path") {
    TempDir tmp;
    std::string path = tmp.path + "/mbox";
    auto d = mbox(path);
    std::mt19937 rng(1);
    deliver(*d, "Return-Path: <alice@example.org>\nSubject: a\n\nx\n", rng);
    deliver(*d, "Received: by x\nreturn-path:\n  <bob@example.org>\n\nx\n", rng);
    deliver(*d, "Return-Path: <>\n\nbounce\n", rng);
    deliver(*d, "Subject: s\n\nReturn-Path: <not@header.example>\n", rng);
    deliver(*d, "Return-Path: <a b\x01@example.org>\n\n", rng);
    auto stored = parse_mbox(read_file(path));
    REQUIRE(stored.size() == 5);
    // (the test's own checker)
    CHECK(from_line_sender("From a@b Thu Nov  2 17:59:02 2023") == "a@b");
    CHECK(from_line_sender("From a@b Thu Nov 23 17:59:02") == "");
    CHECK(from_line_sender("From a b Thu Nov 23 17:59:02 2023") == "");
    CHECK(from_line_sender("From a@b Thx Nov 23 17:59:02 2023") == "");
    std::vector<std::string> senders;
    for (const auto& s : stored) senders.push_back(from_line_sender(s.from_line));
    CHECK(senders[0] == "alice@example.org");
    CHECK(senders[1] == "bob@example.org");
    CHECK(senders[2] == "MAILER-DAEMON");
    CHECK(senders[3] == "MAILER-DAEMON");
    CHECK(senders[4] == "ab@example.org");
}

TEST_CASE("mbox delivery after foreign content without a final blank line") {
    TempDir tmp;
    std::string path = tmp.path + "/mbox";
    std::mt19937 rng(3);
    for (const char* existing : {"From a Thu Jan  1 00:00:00 1970\nbody", "From a Thu Jan  1 00:00:00 1970\nbody\n"}) {
        write_file(path, existing);
        auto d = mbox(path);
        Intent in = parse_intent(deliver(*d, "Subject: new\n\nhello\n", rng));
        CHECK(in.offset == std::string(existing).size());
        auto stored = parse_mbox(read_file(path));
        REQUIRE(stored.size() == 2);
        CHECK(stored[0].body == "body\n");
        CHECK(stored[1].body == "Subject: new\n\nhello\n");
        CHECK(d->recover("mbox " + std::to_string(in.offset) + " " + std::to_string(in.length) + " " + in.digest) ==
              Deliverer::Recovery::Delivered);
    }
}

TEST_CASE("mbox abort and failures leave the file unchanged") {
    TempDir tmp;
    std::string path = tmp.path + "/mbox";
    auto d = mbox(path);
    std::mt19937 rng(5);
    deliver(*d, "Subject: first\n\n1\n", rng);
    const std::string before = read_file(path);
    {
        auto sink = d->begin(MessageMeta{});
        sink->write("Subject: aborted while writing\n\n");
        sink->abort();
    }
    {
        auto sink = d->begin(MessageMeta{});
        sink->write("Subject: aborted after prepare\n\n");
        sink->prepare();
        CHECK(lock_seen_by_other_process(path) == F_WRLCK);
        sink->abort();
        CHECK(lock_seen_by_other_process(path) == F_UNLCK);
    }
    {
        auto sink = d->begin(MessageMeta{});
        sink->write("Subject: dropped\n\n");
        sink->prepare();
    }  // destructor aborts and unlocks
    CHECK(lock_seen_by_other_process(path) == F_UNLCK);
    CHECK(read_file(path) == before);
    CHECK(std::distance(fs::directory_iterator(tmp.path), fs::directory_iterator()) == 1);
}

TEST_CASE("mbox fcntl lock is held from prepare to commit") {
    TempDir tmp;
    std::string path = tmp.path + "/mbox";
    auto d = mbox(path);
    auto sink = d->begin(MessageMeta{});
    sink->write("Subject: locked\n\nbody\n");
    std::string intent = sink->prepare();
    CHECK(lock_seen_by_other_process(path) == F_WRLCK);

    // Another deliverer of this process (another account, another thread)
    // is excluded too: the lock belongs to the open file, not the process.
    auto other = mbox(path, 1);
    auto sink2 = other->begin(MessageMeta{});
    sink2->write("Subject: second\n\n");
    try {
        sink2->prepare();
        FAIL("no exception");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::LocalIO);
        CHECK(e.temporary());
        CHECK(std::string(e.what()).find("locked") != std::string::npos);
    }
    sink2->abort();
    CHECK(lock_seen_by_other_process(path) == F_WRLCK);  // closing other descriptors kept our lock

    sink->commit();
    CHECK(lock_seen_by_other_process(path) == F_UNLCK);
    CHECK(parse_mbox(read_file(path)).size() == 1);
}

TEST_CASE("mbox recover") {
    TempDir tmp;
    std::string path = tmp.path + "/mbox";
    auto d = mbox(path);
    std::mt19937 rng(11);
    deliver(*d, "Subject: earlier\n\nx\n", rng);
    const std::string msg = "Subject: the one\n\nFrom here\n" + std::string(5000, 'b') + "\n";
    const std::string intent = deliver(*d, msg, rng);
    const Intent in = parse_intent(intent);
    const std::string complete = read_file(path);
    REQUIRE(complete.size() == in.offset + in.length);

    SUBCASE("complete -> Delivered, even with more mail after it") {
        CHECK(d->recover(intent) == Deliverer::Recovery::Delivered);
        deliver(*d, "Subject: later\n\ny\n", rng);
        CHECK(d->recover(intent) == Deliverer::Recovery::Delivered);
        CHECK(parse_mbox(read_file(path)).size() == 3);
    }
    SUBCASE("partial tail -> truncated, NotDelivered") {
        for (std::uint64_t keep : {std::uint64_t{1}, std::uint64_t{5}, in.length / 2, in.length - 1}) {
            write_file(path, complete.substr(0, in.offset + keep));
            CHECK(d->recover(intent) == Deliverer::Recovery::NotDelivered);
            CHECK(read_file(path) == complete.substr(0, in.offset));
        }
    }
    SUBCASE("a size that reached the disk before the data (zeros) -> truncated") {
        write_file(path, complete.substr(0, in.offset) + std::string(100, '\0'));
        CHECK(d->recover(intent) == Deliverer::Recovery::NotDelivered);
        CHECK(file_size(path) == in.offset);
    }
    SUBCASE("nothing written -> NotDelivered") {
        write_file(path, complete.substr(0, in.offset));
        CHECK(d->recover(intent) == Deliverer::Recovery::NotDelivered);
        CHECK(file_size(path) == in.offset);
    }
    SUBCASE("file shrank or vanished -> NotDelivered, untouched") {
        write_file(path, complete.substr(0, 10));
        CHECK(d->recover(intent) == Deliverer::Recovery::NotDelivered);
        CHECK(read_file(path) == complete.substr(0, 10));
        fs::remove(path);
        CHECK(d->recover(intent) == Deliverer::Recovery::NotDelivered);
        CHECK_FALSE(fs::exists(path));
    }
    SUBCASE("partial message followed by other mail -> damaged, untouched") {
        write_file(path, complete.substr(0, in.offset + 100));
        auto other = mbox(path);
        deliver(*other, "Subject: appended by someone else\n\n" + std::string(10000, 'c') + "\n", rng);
        const std::string damaged = read_file(path);
        try {
            d->recover(intent);
            FAIL("no exception");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::LocalIO);
            CHECK(std::string(e.what()).find("mbox " + path + " has a damaged message at byte offset " +
                                             std::to_string(in.offset)) == 0);
        }
        CHECK(read_file(path) == damaged);
    }
    SUBCASE("rewritten by a mail reader, other text at the offset -> error, not truncation") {
        std::string rewritten = complete.substr(0, in.offset) + "Subject: someone's real mail\n";
        write_file(path, rewritten);
        CHECK_THROWS_AS(d->recover(intent), Error);
        CHECK(read_file(path) == rewritten);
    }
    SUBCASE("full length but damaged bytes -> our partial write, truncated") {
        std::string changed = complete;
        changed[in.offset + in.length / 2] ^= 1;
        write_file(path, changed);
        // Starts like our message, so taken for a partial write of it.
        CHECK(d->recover(intent) == Deliverer::Recovery::NotDelivered);
        CHECK(file_size(path) == in.offset);
    }
    SUBCASE("malformed records") {
        const std::string zeros(64, '0');
        for (const std::string& bad : {std::string("mbox"), std::string("mbox 1 2"), std::string("mbox x 2 "),
                                       std::string("mbox 1 2 abc"), "mbox -1 2 " + zeros, "mbox 1 0 " + zeros,
                                       "mbox 1 2 " + zeros + " extra"}) {
            CHECK_THROWS_AS(d->recover(bad), Error);
        }
        CHECK(read_file(path) == complete);
    }
}

TEST_CASE("mbox disk full while spooling: LocalIO error, mbox unchanged") {
    TempDir tmp;
    std::string path = tmp.path + "/mbox";
    std::mt19937 rng(13);
    deliver(*mbox(path), "Subject: existing\n\nx\n", rng);
    const std::string before = read_file(path);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::signal(SIGXFSZ, SIG_IGN);  // as the runner does (ignore_delivery_signals)
        struct rlimit rl {100000, 100000};
        ::setrlimit(RLIMIT_FSIZE, &rl);
        int code = 10;
        try {
            auto d = mbox(path);
            auto sink = d->begin(MessageMeta{});
            try {
                for (int i = 0; i < 10; ++i) sink->write(std::string(30000, 'z') + "\n");
                sink->prepare();
                sink->commit();
                code = 1;
            } catch (const Error& e) {
                std::string what = e.what();
                code = e.kind() == ErrorKind::LocalIO && what.find("cannot write to mbox " + path) == 0 &&
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
    CHECK(read_file(path) == before);
    CHECK(std::distance(fs::directory_iterator(tmp.path), fs::directory_iterator()) == 1);
}

TEST_CASE("mbox disk full while appending: partial append removed, mbox unchanged") {
    TempDir tmp;
    std::string path = tmp.path + "/mbox";
    std::mt19937 rng(17);
    auto d0 = mbox(path);
    for (int i = 0; i < 3; ++i) deliver(*d0, "Subject: existing\n\n" + std::string(50000, 'e') + "\n", rng);
    const std::string before = read_file(path);
    REQUIRE(before.size() > 150000);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::signal(SIGXFSZ, SIG_IGN);
        // The spooled copy (100 kB) fits, the mbox cannot grow by 100 kB.
        struct rlimit rl {200000, 200000};
        ::setrlimit(RLIMIT_FSIZE, &rl);
        int code = 10;
        try {
            auto d = mbox(path);
            auto sink = d->begin(MessageMeta{});
            try {
                sink->write("Subject: big\n\n" + std::string(100000, 'n') + "\n");
                std::string intent = sink->prepare();
                code = 4;
                sink->commit();
                code = 1;
            } catch (const Error& e) {
                std::string what = e.what();
                if (code == 4)
                    code = e.kind() == ErrorKind::LocalIO && what.find("cannot write to mbox " + path) == 0 &&
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
    CHECK(read_file(path) == before);
    CHECK(lock_seen_by_other_process(path) == F_UNLCK);
}

TEST_CASE("mbox in a directory that cannot be created is a LocalIO error") {
    TempDir tmp;
    write_file(tmp.path + "/file", "x");
    auto d = mbox(tmp.path + "/file/sub/mbox");
    try {
        d->begin(MessageMeta{});
        FAIL("no exception");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::LocalIO);
        CHECK(std::string(e.what()).find("Not a directory") != std::string::npos);
    }
}

TEST_CASE("mbox exactly once across SIGKILL at random moments") {
    // The model of the runner: journal the intent after prepare(), then
    // commit(); after a crash, recover() and deliver again if NotDelivered.
    TempDir tmp;
    std::string path = tmp.path + "/mbox", journal = tmp.path + "/journal";
    std::mt19937 rng(99);
    std::vector<std::string> expected;
    for (int round = 0; round < 20; ++round) {
        const std::string msg = "Subject: round " + std::to_string(round) + "\n\nFrom x\n" +
                                std::string(std::uniform_int_distribution<int>(0, 1 << 20)(rng), 'k') + "\n";
        ::unlink(journal.c_str());
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            try {
                auto d = mbox(path);
                auto sink = d->begin(MessageMeta{});
                for (std::size_t i = 0; i < msg.size(); i += 65536) sink->write(std::string_view(msg).substr(i, 65536));
                std::string intent = sink->prepare();
                write_file(journal + ".new", intent);
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
        auto d = mbox(path);
        bool delivered = false;
        if (fs::exists(journal)) delivered = d->recover(read_file(journal)) == Deliverer::Recovery::Delivered;
        if (!delivered) deliver(*d, msg, rng);
        expected.push_back(msg);
    }
    auto stored = parse_mbox(read_file(path));
    REQUIRE(stored.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) CHECK(stored[i].body == expected[i]);
}
