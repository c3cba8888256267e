// Unit tests for the process runner (MDA, password_command), the password
// sources and the secret hygiene: timeouts that end the whole process group,
// no secret variables and no descriptors of ours in children, a process that
// cannot dump core.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "credentials.h"
#include "error.h"
#include "process_runner.h"
#include "secrets.h"
#include "test_support.h"

using namespace pullmail;
using namespace pullmail::test;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

ProcessResult run(const std::string& command, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    ProcessSpec spec;
    spec.command = command;
    spec.capture_stdout = true;
    spec.timeout = timeout;
    return run_process(spec);
}

Error password_error(const PasswordSource& src, int timeout_s = 5) {
    try {
        resolve_password(src, "acct", timeout_s);
    } catch (const Error& e) {
        return e;
    }
    FAIL("resolve_password did not fail");
    return Error(ErrorKind::Internal, "unreachable");
}

}  // namespace

TEST_CASE("runner: stdout and the first bytes of stderr, exit status") {
    ProcessResult r = run("echo out; echo err >&2; exit 3");
    CHECK(r.spawn_error == 0);
    CHECK_FALSE(r.timed_out);
    CHECK_FALSE(r.exited_ok());
    CHECK(WEXITSTATUS(r.status) == 3);
    CHECK(r.out == "out\n");
    CHECK(r.err == "err\n");
    CHECK(r.describe(std::chrono::seconds(1)) == "exit status 3");
    ProcessSpec spec;
    spec.command = "head -c 5000 /dev/zero >&2";
    spec.stderr_limit = 10;
    r = run_process(spec);
    CHECK(r.exited_ok());
    CHECK(r.err.size() == 10);
    CHECK(r.out.empty());  // not captured: /dev/null
    CHECK(first_line_of("\n \nsecond \033[1mline\nthird\n") == "second \\x1b[1mline");
}

TEST_CASE("runner: a timeout ends the whole process group, also a child that ignores SIGTERM") {
    TempDir tmp;
    std::string marker = tmp.path + "/marker";
    auto start = Clock::now();
    ProcessResult r = run("(trap '' TERM; sleep 1.2; touch '" + marker + "') & sleep 30", std::chrono::milliseconds(500));
    double took = seconds_since(start);
    CHECK(r.timed_out);
    CHECK_FALSE(r.exited_ok());
    CHECK(took >= 0.45);
    CHECK(took < 2.5);
    CHECK(r.describe(std::chrono::milliseconds(500)) == "timed out after 500 ms");
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
    CHECK_FALSE(fs::exists(marker));
}

TEST_CASE("runner: a background child holding stdout does not hold us") {
    auto start = Clock::now();
    ProcessResult r = run("sleep 3 & echo pw");
    CHECK(seconds_since(start) < 2);
    CHECK(r.exited_ok());
    CHECK(r.out == "pw\n");
}

TEST_CASE("runner: reading a regular-file stdin is progress, output is not") {
    TempDir tmp;
    std::string path = tmp.path + "/in";
    write_file(path, std::string(2000, 'x'));
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    ProcessSpec spec;
    // 2000 bytes, 100 at a time, 0.2 s apart: 4 s in all, never 1 s without reading.
    spec.command = "while dd bs=100 count=1 status=none | grep -q x; do sleep 0.2; done";
    spec.stdin_fd = fd;
    spec.timeout = std::chrono::seconds(1);
    ProcessResult r = run_process(spec);
    CHECK_FALSE(r.timed_out);
    CHECK(r.exited_ok());
    ::close(fd);
    auto start = Clock::now();
    r = run("yes", std::chrono::milliseconds(500));
    CHECK(r.timed_out);
    CHECK(seconds_since(start) < 2.5);
}

TEST_CASE("runner: no secret variables, no descriptors of ours, own process group") {
    ::setenv("PULLMAIL_PASSWORD", "s3cret-env", 1);
    ::setenv("PULLMAIL_DELIVER_PASSWORD", "t0p-env", 1);
    ::setenv("PULLMAIL_TEST_VAR", "visible", 1);
    int leaked = ::open("/dev/null", O_RDONLY);  // without O_CLOEXEC
    REQUIRE(leaked >= 3);
    ProcessResult r = run("env; echo fds $(ls /proc/$$/fd | tr '\\n' ' '); echo pgid $(ps -o pgid= -p $$) pid $$");
    ::close(leaked);
    ::unsetenv("PULLMAIL_PASSWORD");
    ::unsetenv("PULLMAIL_DELIVER_PASSWORD");
    ::unsetenv("PULLMAIL_TEST_VAR");
    CHECK(r.exited_ok());
    CHECK(r.out.find("PULLMAIL_TEST_VAR=visible") != std::string::npos);
    CHECK(r.out.find("PULLMAIL_PASSWORD") == std::string::npos);
    CHECK(r.out.find("PULLMAIL_DELIVER_PASSWORD") == std::string::npos);
    CHECK(r.out.find("s3cret-env") == std::string::npos);
    std::string fds = r.out.substr(r.out.find("fds "));
    CHECK(fds.find(" " + std::to_string(leaked) + " ") == std::string::npos);
    // The shell leads its own group: pgid == pid.
    auto pg = r.out.find("pgid ");
    REQUIRE(pg != std::string::npos);
    int pgid = 0, pid = 0;
    CHECK(std::sscanf(r.out.c_str() + pg, "pgid %d pid %d", &pgid, &pid) == 2);
    CHECK(pgid == pid);
    CHECK(pgid != ::getpgrp());
    CHECK(is_secret_variable("PULLMAIL_PASSWORD=x"));
    CHECK(is_secret_variable("PULLMAIL_DELIVER_PASSWORD"));
    CHECK_FALSE(is_secret_variable("PULLMAIL_TEST_KILL_AFTER=3"));
    CHECK_FALSE(is_secret_variable("PASSWORD=x"));
}

TEST_CASE("password_command: a timeout is a configuration error, its process group ended") {
    TempDir tmp;
    std::string marker = tmp.path + "/marker";
    auto start = Clock::now();
    Error e = password_error({PasswordSource::Kind::Command, "(sleep 3; touch '" + marker + "') & sleep 8; echo pw"}, 1);
    double took = seconds_since(start);
    CHECK(e.kind() == ErrorKind::Config);
    CHECK(std::string(e.what()).find("timed out after 1 s") != std::string::npos);
    CHECK(took < 2.5);
    CHECK(resolve_password({PasswordSource::Kind::Command, "echo 'pw word'; echo second"}, "acct", 5) == "pw word");
    e = password_error({PasswordSource::Kind::Command, "echo nope >&2; exit 2"});
    CHECK(std::string(e.what()) == "password_command 'echo nope >&2; exit 2' failed: exit status 2: nope");
    e = password_error({PasswordSource::Kind::Command, "true"});
    CHECK(std::string(e.what()).find("printed no password") != std::string::npos);
}

TEST_CASE("password_file: an empty file is a configuration error naming the file") {
    TempDir tmp;
    std::string path = tmp.path + "/pw";
    for (const char* content : {"", "\n", "\r\nsecond line\n"}) {
        write_file(path, content);
        ::chmod(path.c_str(), 0600);  // a password_file readable by others is refused first
        Error e = password_error({PasswordSource::Kind::File, path});
        CHECK(e.kind() == ErrorKind::Config);
        CHECK(std::string(e.what()) == "password_file " + path + " is empty (its first line is the password)");
    }
    write_file(path, "secret\nignored\n");
    CHECK(resolve_password({PasswordSource::Kind::File, path}, "acct", 5) == "secret");
}

TEST_CASE("password_file: readable or writable by others is refused with the chmod to run") {
    TempDir tmp;
    std::string path = tmp.path + "/pw";
    write_file(path, "secret\n");
    for (mode_t mode : {0640, 0604, 0620, 0602, 0644}) {
        ::chmod(path.c_str(), mode);
        Error e = password_error({PasswordSource::Kind::File, path});
        CHECK(e.kind() == ErrorKind::Config);
        CHECK(std::string(e.what()).find("run: chmod 600 " + path) != std::string::npos);
    }
    ::chmod(path.c_str(), 0600);
    CHECK(resolve_password({PasswordSource::Kind::File, path}, "acct", 5) == "secret");
    ::chmod(path.c_str(), 0400);
    CHECK(resolve_password({PasswordSource::Kind::File, path}, "acct", 5) == "secret");
}

TEST_CASE("wipe overwrites a secret's buffer") {
    std::string s(100, 'p');
    const char* data = s.data();
    wipe(s);
    CHECK(s.empty());
    CHECK(s.data() == data);  // same buffer, now zeroed
    CHECK(std::string(data, 100) == std::string(100, '\0'));
}

TEST_CASE("harden_process: not dumpable, no core files") {
    // Run in a child so the test binary itself stays as it was.
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        bool ok = harden_process();
        struct rlimit lim {};
        ::getrlimit(RLIMIT_CORE, &lim);
        _exit(ok && ::prctl(PR_GET_DUMPABLE) == 0 && lim.rlim_cur == 0 && lim.rlim_max == 0 ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
