// transport.h — the byte pipe under the protocol sessions.
//
// libcurl does what it is good at — connect, TLS or STARTTLS, certificate and
// host verification, SASL login — with CURLOPT_CONNECT_ONLY, and then hands
// the authenticated connection over. From there our own codecs speak POP3 and
// IMAP through curl_easy_send/curl_easy_recv, which lets us pipeline, use
// BODY.PEEK and parse literals safely (see ../shared/notes/libcurl-7.88.md for
// why the URL-driven operations of 7.88.1 cannot be used).
//
// Connection is abstract so that sessions can be tested over an in-memory
// fake. Channel adds the output queue, timeouts and protocol tracing that both
// sessions need.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"

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
};

struct ConnectOptions {
    std::string account;
    int connect_timeout = 30;  // seconds for connect + TLS + login
    int verbosity = 0;         // >= 3 traces the login exchange with credentials masked
    Logger* log = nullptr;
};

// Connects and logs in with libcurl; throws Error(Unreachable/Tls/Auth/...)
// with a message a user can act on. The password is passed to libcurl only.
std::unique_ptr<Connection> connect_and_login(const Endpoint& ep, const std::string& password,
                                              const ConnectOptions& opts);

// A client line of the login exchange as it may be shown at -vv: commands
// that carry secrets (PASS, LOGIN, AUTH data, SASL continuations) keep only
// their command word; anything not known to be harmless is masked whole.
std::string mask_credentials(std::string_view client_line);

// Command output queue + incoming byte pump over a Connection.
class Channel {
public:
    Channel(Connection& conn, int timeout_seconds, std::string account, Logger* log, int verbosity);

    // Queues bytes to send. They go out during pump().
    void queue(std::string_view bytes);
    // Queues a command line (CRLF appended) and traces it at -vv.
    // `trace` overrides what is shown (for commands carrying secrets).
    void command(std::string_view line, std::string_view trace = {});
    bool has_output() const { return out_pos_ < out_.size(); }
    // Sends queued output and reads input, handing every received chunk to
    // `sink`, until done() returns true. Throws Error(Temporary) when nothing
    // moves for the timeout, or the server closes the connection.
    void pump(const std::function<void(std::string_view)>& sink, const std::function<bool()>& done);
    // Sends all queued output (reading and discarding nothing).
    void flush();
    // Trace a server line at -vv.
    void trace_in(std::string_view line);
    std::uint64_t bytes_in() const { return bytes_in_; }

private:
    Connection& conn_;
    int timeout_ms_;
    std::string account_;
    Logger* log_;
    int verbosity_;
    std::string out_;
    std::size_t out_pos_ = 0;
    std::uint64_t bytes_in_ = 0;
    std::vector<char> buf_;
};

}  // namespace pullmail
