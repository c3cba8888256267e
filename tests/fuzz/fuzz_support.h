// fuzz_support.h — pieces shared by the libFuzzer targets (tests/fuzz/README.md).
//
// A finding is anything that reaches libFuzzer as a crash: a sanitizer
// report, an exception other than pullmail::Error escaping the code under
// test (FUZZ_CHECK_ONLY_ERROR), or a broken invariant (FUZZ_ASSERT).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"
#include "retrieval.h"
#include "transport.h"

namespace pullmail::fuzz {

[[noreturn]] inline void fail(const char* what, const char* file, int line) {
    std::fprintf(stderr, "fuzz invariant broken: %s (%s:%d)\n", what, file, line);
    std::abort();
}
#define FUZZ_ASSERT(cond) ((cond) ? (void)0 : ::pullmail::fuzz::fail(#cond, __FILE__, __LINE__))

// Runs fn; pullmail::Error is an expected outcome of hostile input (returns
// false), any other exception is a finding (abort, so libFuzzer saves the input).
template <class Fn>
bool only_error(Fn&& fn) {
    try {
        fn();
        return true;
    } catch (const Error&) {
        return false;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz: exception other than pullmail::Error escaped: %s\n", e.what());
        std::abort();
    } catch (...) {
        std::fprintf(stderr, "fuzz: non-std exception escaped\n");
        std::abort();
    }
}

// Chunk sizes for feeding a byte stream in pieces: mode 0 = one byte at a
// time, else pseudo-random sizes 1..(mode * 4) from a fixed sequence, so a
// crash reproduces from the input alone.
class Chunker {
public:
    explicit Chunker(std::uint8_t mode) : max_(mode == 0 ? 1 : std::size_t(mode) * 4), state_(mode * 2654435761u + 1) {}
    std::size_t next(std::size_t left) {
        state_ = state_ * 1103515245u + 12345u;
        std::size_t n = 1 + (state_ >> 16) % max_;
        return n < left ? n : left;
    }

private:
    std::size_t max_;
    std::uint32_t state_;
};

// A connection whose server side is the fuzz input: every byte the client
// sends is accepted (and counted), the input is handed out in chunks, and its
// end is the server closing the connection. A real server answers only what
// was asked; this one may run ahead, which is legal for a hostile server and
// what the sessions must survive.
// chunk_mode 0 hands out one line (up to and including its LF) a call: each
// command's pump then stops right after its reply, as with one byte a call,
// so the exchange goes deep, at a fraction of the calls. Mode 1 is one byte
// a call; higher modes are Chunker sizes.
class ScriptedConnection final : public Connection {
public:
    ScriptedConnection(std::string_view server_bytes, std::uint8_t chunk_mode)
        : in_(server_bytes), lines_(chunk_mode == 0), chunks_(chunk_mode == 1 ? 0 : chunk_mode) {}
    std::size_t try_send(std::string_view data) override {
        sent_ += data.size();
        return data.size();
    }
    std::size_t try_recv(char* buf, std::size_t n, bool& eof) override {
        if (pos_ == in_.size()) {
            eof = true;
            return 0;
        }
        // Every other call returns nothing, as a socket often does.
        if ((pulse_ ^= 1) != 0) return 0;
        std::size_t k;
        if (lines_) {
            std::size_t nl = in_.find('\n', pos_);
            k = (nl == std::string_view::npos ? in_.size() : nl + 1) - pos_;
        } else {
            k = chunks_.next(in_.size() - pos_);
        }
        if (k > n) k = n;
        in_.copy(buf, k, pos_);
        pos_ += k;
        return k;
    }
    bool wait(bool, bool, int) override { return true; }
    std::size_t sent() const { return sent_; }

private:
    std::string_view in_;
    std::size_t pos_ = 0;
    std::size_t sent_ = 0;
    bool lines_;
    Chunker chunks_;
    unsigned pulse_ = 0;
};

// Counts what a session hands out and checks the MessageHandler contract:
// data only inside a begin/end pair, every begin closed by end or failed.
class CountingHandler final : public MessageHandler {
public:
    explicit CountingHandler(std::size_t stop_after = SIZE_MAX) : stop_after_(stop_after) {}
    void begin(const RemoteMessage&) override {
        FUZZ_ASSERT(!open_);
        open_ = true;
        ++begun;
    }
    void data(std::string_view chunk) override {
        FUZZ_ASSERT(open_);
        bytes += chunk.size();
    }
    void end(const RemoteMessage&) override {
        FUZZ_ASSERT(open_);
        open_ = false;
        ++ended;
    }
    void failed(const RemoteMessage&, std::string_view) override {
        open_ = false;
        ++failures;
    }
    bool stop_requested() const override { return ended + failures >= stop_after_; }

    std::size_t begun = 0, ended = 0, failures = 0;
    std::uint64_t bytes = 0;

private:
    std::size_t stop_after_;
    bool open_ = false;
};

}  // namespace pullmail::fuzz
