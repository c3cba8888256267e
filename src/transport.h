// transport.h — the byte pipe under the protocol sessions.
//
// libcurl does what it is good at — connect, TLS or STARTTLS, certificate and
// host verification, SASL login — with CURLOPT_CONNECT_ONLY, and then hands
// the authenticated connection over. From there our own codecs speak POP3 and
// IMAP through curl_easy_send/curl_easy_recv, which lets us pipeline, use
// BODY.PEEK and parse literals safely: libcurl 7.88.1's URL-driven POP3/IMAP
// operations cannot pipeline, fetch IMAP mail only with BODY[] (setting \Seen),
// do not parse literals in custom requests, and send POP3 QUIT unreliably.
//
// Connection is abstract so that sessions can be tested over an in-memory
// fake. Channel adds the output queue, timeouts and protocol tracing that both
// sessions need.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "rate_guard.h"

namespace pullmail {

class Logger;

class Connection {
public:
    virtual ~Connection() = default;
    // Sends what can be sent without blocking; returns the number of bytes taken.
    virtual std::size_t try_send(std::string_view data) = 0;
    // Receives without blocking into buf. Returns the byte count; 0 means
    // nothing available right now. Sets eof when the peer closed.
    virtual std::size_t try_recv(char* buf, std::size_t n, bool& eof) = 0;
    // Blocks until the connection may be readable / writable or timeout_ms
    // passes. Returns false on timeout.
    virtual bool wait(bool for_read, bool for_write, int timeout_ms) = 0;
    // The server's lines during login (greeting, capabilities), as libcurl
    // read them; what the sessions may learn from without asking again.
    virtual std::vector<std::string> login_lines() const { return {}; }
    // The socket, for a caller that waits on it together with other
    // descriptors (the daemon's idle watchers); -1 when there is none. Data
    // may already be buffered in TLS: ask wait(true, false, 0) first.
    virtual int poll_fd() const { return -1; }
    // Whether the connection runs over TLS (implicit or after STARTTLS).
    virtual bool encrypted() const { return false; }
};

struct ConnectOptions {
    std::string account;
    int connect_timeout = 30;  // seconds for connect + TLS + login
    int verbosity = 0;         // >= 3 traces the login exchange with credentials masked
    Logger* log = nullptr;
};

struct LoginCredentials;

// Connects with libcurl (TCP, TLS or STARTTLS, certificate checks, greeting,
// capabilities; no user name is given to libcurl, so it stops there) and
// logs in with our own codec (login.h, sasl.h). Throws
// Error(Unreachable/Tls/Auth/Config/...) with a message a user can act on.
std::unique_ptr<Connection> connect_and_login(const Endpoint& ep, LoginCredentials& creds,
                                              const ConnectOptions& opts);
// The same with a password, or with an OAuth2 access token when ep.auth is
// "XOAUTH2" or "OAUTHBEARER".
std::unique_ptr<Connection> connect_and_login(const Endpoint& ep, const std::string& password,
                                              const ConnectOptions& opts);

// A client line of the login exchange as it may be shown at -vv: commands
// that carry secrets (PASS, LOGIN, AUTH data, SASL continuations) keep only
// their command word; anything not known to be harmless is masked whole.
std::string mask_credentials(std::string_view client_line);

// The process's stop request (set by SIGTERM/SIGINT, cli.cpp), or null.
// Every login and every Channel checks it at least every kStopPollMs: a
// login is abandoned at once; a Channel keeps working for kStopGraceMs of
// its own pumping after the request (so that a responsive server still gets
// the QUIT/LOGOUT and the deletions of what was delivered), then fails with
// Error(Temporary, "interrupted by a signal ..."), whatever the server does.
void set_stop_flag(const std::atomic<bool>* flag);
inline constexpr int kStopPollMs = 200;
inline constexpr int kStopGraceMs = 700;

// Command output queue + incoming byte pump over a Connection.
class Channel {
public:
    Channel(Connection& conn, int timeout_seconds, std::string account, Logger* log, int verbosity);

    // The minimum rate (bytes/s over window_s seconds of waiting) the server
    // must keep up once it has started answering (see rate_guard.h); the
    // window is at least the silence timeout. 0 = no minimum (the default).
    void set_min_rate(std::uint64_t bytes_per_second, int window_s);
    // The channel fails (Error(Temporary)) once `seconds` have passed from
    // now, whatever the server does; 0 = no deadline (the default).
    void set_deadline(int seconds);
    // The receive buffer's size, allocated at the first pump (default
    // kRecvBuffer). Code that makes many short-lived channels over small
    // reads (the fuzz targets) sets less, so each channel is not a fresh
    // 256 KiB allocation to zero-fill.
    static constexpr std::size_t kRecvBuffer = 256 * 1024;
    void set_recv_buffer(std::size_t bytes) { recv_size_ = bytes > 0 ? bytes : 1; }

    // Queues bytes to send. They go out during pump().
    void queue(std::string_view bytes);
    // Queues a command line (CRLF appended) and traces it at -vv.
    // `trace` overrides what is shown (for commands carrying secrets).
    void command(std::string_view line, std::string_view trace = {});
    bool has_output() const { return out_pos_ < out_.size(); }
    // Sends queued output and reads input, handing every received chunk to
    // `sink`, until done() returns true. Throws Error(Temporary) when nothing
    // moves for the timeout, when the server, once answering, falls below
    // the minimum rate, when it closes the connection, or on a stop request
    // (set_stop_flag).
    void pump(const std::function<void(std::string_view)>& sink, const std::function<bool()>& done);
    // Sends all queued output (reading and discarding nothing).
    void flush();
    // Trace a server line at -vv.
    void trace_in(std::string_view line);
    // Trace a client line at -vv, as given (the caller has masked secrets).
    void trace_out(std::string_view line);

private:
    using Clock = std::chrono::steady_clock;
    // Waits until the connection may move, in slices of kStopPollMs so that
    // stop requests and the rate are checked meanwhile.
    void wait_for_io(bool& answered, Clock::time_point& mark);
    // Charges the waiting time since `mark` and `bytes` to the rate guard
    // (once the server has answered) and restarts `mark`.
    void charge(bool answered, Clock::time_point& mark, std::uint64_t bytes);
    // Throws once run_timeout is reached, or once a stop request has been
    // pending for kStopGraceMs of pumping (counted from `last`, then reset).
    void check_stop(Clock::time_point& last);

    Connection& conn_;
    int timeout_ms_;
    RateGuard rate_{0, 1};
    int stop_spent_ms_ = 0;
    int deadline_s_ = 0;
    Clock::time_point deadline_{};
    std::string account_;
    Logger* log_;
    int verbosity_;
    std::string out_;
    std::size_t out_pos_ = 0;
    std::vector<char> buf_;
    std::size_t recv_size_ = kRecvBuffer;
};

}  // namespace pullmail
