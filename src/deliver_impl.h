// deliver_impl.h — private helpers shared by deliver_maildir, deliver_mbox and
// deliver_mda. Not part of the engine's interface: only deliver_*.cpp include it.
//
// The low-level helpers return an errno value (0 = success) instead of
// throwing, so that each caller can word the error for its own target
// ("cannot write to Maildir /x: No space left on device").
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "deliver.h"
#include "error.h"
#include "fingerprint.h"
#include "fs_util.h"

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace pullmail::detail {

// Size of the write buffers of the file sinks: large enough that syscalls do
// not dominate, small enough that a big message is never held in memory.
inline constexpr std::size_t kIoBufferSize = 64 * 1024;

using pullmail::UniqueFd;  // fs_util.h

// "No space left on device" for ENOSPC; thread-safe.
std::string errno_text(int err);

// Throws Error(LocalIO, what + ": " + errno_text(err)).
[[noreturn]] void throw_local_io(const std::string& what, int err);

// dir_name, try_make_dirs, try_fsync_dir, write_all, pwrite_all: fs_util.h.
// pread() until `len` bytes are read or end of file. Returns the count, or
// -1 with errno set.
ssize_t pread_full(int fd, char* data, std::size_t len, off_t offset);

// An unlinked file to spool a message in: O_TMPFILE in the first of `dirs`
// where the file system supports it, else mkstemp()+unlink() there; the next
// directory when neither works. Memory stays flat whatever the message size.
// Throws Error(LocalIO) naming `what` when no directory takes it.
UniqueFd open_anonymous_file(const std::vector<std::string>& dirs, const std::string& what);
// $TMPDIR, or "" when unset.
std::string temp_dir_from_env();

// A message spooled for a network target (IMAP APPEND, SMTP/LMTP): the
// server's bytes in wire form in an unlinked file (a bare LF becomes CRLF;
// a CRLF split across chunks stays one), and the header block in LF form,
// which the target reads before sending (fingerprint, date, envelope).
// Memory stays flat whatever the message size.
class CrlfSpool {
public:
    // `what` names the target in errors ("the IMAP target").
    CrlfSpool(UniqueFd fd, std::string what) : fd_(std::move(fd)), what_(std::move(what)) {}
    // Throws Error(LocalIO) when the spool file cannot be written.
    void write(std::string_view chunk);
    const HeaderCapture& header() const { return header_; }
    int fd() const { return fd_.get(); }
    std::uint64_t size() const { return size_; }  // bytes in the file
    void close() noexcept { fd_.reset(); }

private:
    UniqueFd fd_;
    std::string what_;
    std::uint64_t size_ = 0;
    HeaderCapture header_;
    CrlfToLf header_crlf_;
    std::string header_lf_;
    bool last_cr_ = false;
    std::string out_;
};

// Incremental SHA-256 (OpenSSL libcrypto), hex output.
class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(std::string_view data);
    std::string hex_digest();  // final; the object is done afterwards

private:
    EVP_MD_CTX* ctx_;
};

// Splits an intent "<kind> <rest>" and checks the kind; throws
// Error(LocalIO) naming `target` when the intent belongs to another kind of
// target (the configuration changed between the crash and this run).
std::string_view intent_args(std::string_view intent, std::string_view kind, const std::string& target);

// A fresh Maildir file name for this process: time, pid, a per-process
// atomic counter and the host name (thread-safe).
std::string next_maildir_name();
std::string maildir_host_part();

std::unique_ptr<Deliverer> make_maildir_deliverer(const std::string& path);
std::unique_ptr<Deliverer> make_maildirpp_deliverer(const std::string& path);
std::unique_ptr<Deliverer> make_mbox_deliverer(const std::string& path, const DeliveryOptions& opts);
std::unique_ptr<Deliverer> make_mda_deliverer(const std::string& command, const DeliveryOptions& opts);

}  // namespace pullmail::detail
