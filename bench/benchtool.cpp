// benchtool.cpp — small native helpers for bench/run (compiled by it with g++).
//
//   benchtool run RESULT UID GID -- ARGV...
//       fork, drop to UID/GID, exec ARGV, wait4; write
//       "wall_s user_s sys_s maxrss_kb status" to RESULT. Launching through this
//       small process keeps the child's ru_maxrss honest: Linux carries the
//       high-water RSS of the forking process across exec, so a child forked
//       straight from the Python driver would report the driver's memory.
//   benchtool pop3read HOST PORT CAFILE USER PASS
//       the "floor" reader: POP3 over implicit TLS (certificate verified for
//       "localhost"), USER/PASS/STAT, then every RETR in one pipelined write;
//       counts messages and bytes and throws them away. Prints "N BYTES".
//   benchtool write DIR SIZES
//       the "floor" writer: for each size in the file SIZES (one a line) write a
//       file of that size to DIR/tmp, fsync it, rename it into DIR/new, fsync
//       DIR/new. Prints the number of files.
//   benchtool mda MAILDIR
//       a minimal Maildir MDA for fetchmail: stdin -> tmp/, fsync, rename to
//       new/ (what a typical MDA does; no directory fsync).
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

static void die(const char* what) {
    fprintf(stderr, "benchtool: %s: %s\n", what, strerror(errno));
    exit(2);
}

static double now() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmd_run(int argc, char** argv) {
    // argv: RESULT UID GID -- CMD...
    if (argc < 5 || strcmp(argv[3], "--") != 0) {
        fprintf(stderr, "usage: benchtool run RESULT UID GID -- ARGV...\n");
        return 64;
    }
    const char* result = argv[0];
    uid_t uid = (uid_t)atol(argv[1]);
    gid_t gid = (gid_t)atol(argv[2]);
    double t0 = now();
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);  // main() ignores it; the tool gets the usual default
        if (getuid() != uid || getgid() != gid) {
            if (setgroups(0, nullptr) != 0) die("setgroups");
            if (setgid(gid) != 0) die("setgid");
            if (setuid(uid) != 0) die("setuid");
        }
        execvp(argv[4], argv + 4);
        fprintf(stderr, "benchtool: exec %s: %s\n", argv[4], strerror(errno));
        _exit(127);
    }
    int status = 0;
    rusage ru{};
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) die("wait4");
    }
    double wall = now() - t0;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    FILE* f = fopen(result, "w");
    if (!f) die("open result");
    fprintf(f, "%.6f %.6f %.6f %ld %d\n", wall, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
            ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss, code);
    fclose(f);
    return 0;
}

// ---- floor reader -------------------------------------------------------------

struct Tls {
    SSL* ssl = nullptr;
    std::string pending;  // bytes read but not consumed by read_line

    void write_all(const std::string& s) {
        size_t off = 0;
        while (off < s.size()) {
            int n = SSL_write(ssl, s.data() + off, (int)(s.size() - off));
            if (n <= 0) {
                ERR_print_errors_fp(stderr);
                fprintf(stderr, "benchtool: SSL_write failed\n");
                exit(2);
            }
            off += (size_t)n;
        }
    }
    int read_some(char* buf, int len) {
        int n = SSL_read(ssl, buf, len);
        if (n <= 0) {
            ERR_print_errors_fp(stderr);
            fprintf(stderr, "benchtool: connection closed early\n");
            exit(2);
        }
        return n;
    }
    std::string read_line() {
        for (;;) {
            size_t p = pending.find("\r\n");
            if (p != std::string::npos) {
                std::string line = pending.substr(0, p);
                pending.erase(0, p + 2);
                return line;
            }
            char buf[4096];
            int n = read_some(buf, sizeof buf);
            pending.append(buf, (size_t)n);
        }
    }
    std::string expect_ok(const char* what) {
        std::string line = read_line();
        if (line.compare(0, 3, "+OK") != 0) {
            fprintf(stderr, "benchtool: %s: %s\n", what, line.c_str());
            exit(2);
        }
        return line;
    }
};

static int cmd_pop3read(int argc, char** argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: benchtool pop3read HOST PORT CAFILE USER PASS\n");
        return 64;
    }
    const char* host = argv[0];
    const char* port = argv[1];
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, port, &hints, &res) != 0)
        die("getaddrinfo");
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) die("connect");
    freeaddrinfo(res);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || SSL_CTX_load_verify_locations(ctx, argv[2], nullptr) != 1) {
        ERR_print_errors_fp(stderr);
        return 2;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    Tls t;
    t.ssl = SSL_new(ctx);
    SSL_set_fd(t.ssl, fd);
    SSL_set_tlsext_host_name(t.ssl, host);
    SSL_set1_host(t.ssl, host);
    if (SSL_connect(t.ssl) != 1) {
        ERR_print_errors_fp(stderr);
        return 2;
    }
    t.expect_ok("greeting");
    t.write_all(std::string("USER ") + argv[3] + "\r\nPASS " + argv[4] + "\r\nSTAT\r\n");
    t.expect_ok("USER");
    t.expect_ok("PASS");
    std::string stat = t.expect_ok("STAT");
    long count = atol(stat.c_str() + 4);
    std::string cmds;
    cmds.reserve((size_t)count * 12 + 8);
    for (long i = 1; i <= count; ++i) cmds += "RETR " + std::to_string(i) + "\r\n";
    cmds += "QUIT\r\n";
    t.write_all(cmds);

    // Count "\r\n.\r\n" terminators (a body line "." is dot-stuffed, so the
    // sequence only ends a response); the first one may straddle reads.
    long seen = 0;
    unsigned long long bytes = t.pending.size();
    std::string window = t.pending;
    t.pending.clear();
    static char buf[1 << 17];
    const char* term = "\r\n.\r\n";
    std::string tail;  // last 4 bytes of the previous chunk
    auto scan = [&](const char* data, size_t n) {
        std::string joined = tail + std::string(data, n < 4 ? n : 4);
        for (size_t p = 0; (p = joined.find(term, p)) != std::string::npos; ++p)
            if (p < tail.size()) ++seen;  // match that starts in the old tail
        const char* s = data;
        const char* end = data + n;
        while ((s = (const char*)memmem(s, end - s, term, 5)) != nullptr) {
            ++seen;
            s += 3;  // the ".\r\n" cannot start another terminator's "\r\n."
        }
        if (n >= 4) {
            tail.assign(end - 4, 4);
        } else {
            std::string t2 = tail + std::string(data, n);
            tail = t2.substr(t2.size() > 4 ? t2.size() - 4 : 0);
        }
    };
    if (!window.empty()) scan(window.data(), window.size());
    while (seen < count) {
        int n = t.read_some(buf, sizeof buf);
        bytes += (unsigned long long)n;
        scan(buf, (size_t)n);
    }
    printf("%ld %llu\n", seen, bytes);
    SSL_shutdown(t.ssl);
    close(fd);
    return 0;
}

// ---- floor writer -------------------------------------------------------------

static void write_all_fd(int fd, const char* p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        p += w;
        n -= (size_t)w;
    }
}

static int cmd_write(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: benchtool write DIR SIZES\n");
        return 64;
    }
    std::string dir = argv[0];
    FILE* f = fopen(argv[1], "r");
    if (!f) die("open sizes");
    std::vector<size_t> sizes;
    unsigned long v;
    while (fscanf(f, "%lu", &v) == 1) sizes.push_back(v);
    fclose(f);
    size_t maxsize = 0;
    for (size_t s : sizes) maxsize = s > maxsize ? s : maxsize;
    std::string data(maxsize, 'x');
    for (size_t i = 76; i < data.size(); i += 77) data[i] = '\n';
    int newfd = open((dir + "/new").c_str(), O_RDONLY | O_DIRECTORY);
    if (newfd < 0) die("open new/");
    for (size_t i = 0; i < sizes.size(); ++i) {
        std::string name = std::to_string(i) + ".floor";
        std::string tmp = dir + "/tmp/" + name;
        int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) die("open tmp file");
        write_all_fd(fd, data.data(), sizes[i]);
        if (fsync(fd) != 0) die("fsync");
        close(fd);
        if (rename(tmp.c_str(), (dir + "/new/" + name).c_str()) != 0) die("rename");
        if (fsync(newfd) != 0) die("fsync new/");
    }
    printf("%zu\n", sizes.size());
    return 0;
}

// ---- minimal MDA --------------------------------------------------------------

static int cmd_mda(int argc, char** argv) {
    if (argc != 1) {
        fprintf(stderr, "usage: benchtool mda MAILDIR\n");
        return 64;
    }
    static unsigned seq = 0;
    timeval tv;
    gettimeofday(&tv, nullptr);
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    char name[512];
    snprintf(name, sizeof name, "%ld.M%06ldP%dQ%u.%s", (long)tv.tv_sec, (long)tv.tv_usec, (int)getpid(),
             ++seq, host);
    std::string dir = argv[0];
    std::string tmp = dir + "/tmp/" + name;
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) die("open tmp file");
    static char buf[1 << 16];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("read stdin");
        }
        if (n == 0) break;
        write_all_fd(fd, buf, (size_t)n);
    }
    if (fsync(fd) != 0) die("fsync");
    close(fd);
    if (rename(tmp.c_str(), (dir + "/new/" + name).c_str()) != 0) die("rename");
    return 0;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: benchtool run|pop3read|write|mda ...\n");
        return 64;
    }
    signal(SIGPIPE, SIG_IGN);
    std::string mode = argv[1];
    if (mode == "run") return cmd_run(argc - 2, argv + 2);
    if (mode == "pop3read") return cmd_pop3read(argc - 2, argv + 2);
    if (mode == "write") return cmd_write(argc - 2, argv + 2);
    if (mode == "mda") return cmd_mda(argc - 2, argv + 2);
    fprintf(stderr, "benchtool: unknown mode %s\n", mode.c_str());
    return 64;
}
