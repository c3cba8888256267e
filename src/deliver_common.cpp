// deliver_common.cpp — what all file delivery targets share: the factory,
// CRLF conversion, Maildir naming, and the file system helpers of
// deliver_impl.h.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <cstdlib>
#include <cstring>
#include <system_error>
#include <vector>

#include "deliver.h"
#include "deliver_impl.h"
#include "error.h"
#include "text_util.h"

namespace pullmail {

std::unique_ptr<Deliverer> make_file_deliverer(const DeliveryTarget& target, const DeliveryOptions& opts) {
    ignore_delivery_signals();
    switch (target.kind) {
        case DeliveryTarget::Kind::Maildir:
            return target.maildir_plus_plus ? detail::make_maildirpp_deliverer(target.path)
                                            : detail::make_maildir_deliverer(target.path);
        case DeliveryTarget::Kind::Mbox: return detail::make_mbox_deliverer(target.path, opts);
        case DeliveryTarget::Kind::Mda: return detail::make_mda_deliverer(target.command, opts);
        case DeliveryTarget::Kind::Imap:
        case DeliveryTarget::Kind::Relay: break;
    }
    throw Error(ErrorKind::Internal, "make_file_deliverer called for a network target");
}

void ignore_delivery_signals() {
    struct sigaction sa {};
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, nullptr);
    sigaction(SIGXFSZ, &sa, nullptr);
}

void CrlfToLf::convert(std::string_view in, std::string& out) {
    std::size_t i = 0;
    if (held_cr_ && !in.empty()) {
        held_cr_ = false;
        if (in[0] == '\n') {
            out += '\n';
            i = 1;
        } else {
            out += '\r';
        }
    }
    while (i < in.size()) {
        const void* cr = std::memchr(in.data() + i, '\r', in.size() - i);
        if (cr == nullptr) {
            out.append(in.data() + i, in.size() - i);
            return;
        }
        std::size_t at = static_cast<const char*>(cr) - in.data();
        out.append(in.data() + i, at - i);
        if (at + 1 == in.size()) {
            held_cr_ = true;
            return;
        }
        if (in[at + 1] == '\n') {
            out += '\n';
            i = at + 2;
        } else {
            out += '\r';
            i = at + 1;
        }
    }
}

void CrlfToLf::finish(std::string& out) {
    if (held_cr_) out += '\r';
    held_cr_ = false;
}

std::string maildir_unique_name(std::uint64_t sec, std::uint64_t usec, long pid, std::uint64_t counter,
                                std::string_view host) {
    std::string name = std::to_string(sec) + ".M" + std::to_string(usec) + "P" + std::to_string(pid) + "Q" +
                       std::to_string(counter) + ".";
    // '/' would make a path and ':' starts the info part of a Maildir name;
    // the convention writes them as octal escapes.
    for (char c : host) {
        if (c == '/')
            name += "\\057";
        else if (c == ':')
            name += "\\072";
        else
            name += c;
    }
    return name;
}

namespace detail {

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

void throw_local_io(const std::string& what, int err) {
    throw Error(ErrorKind::LocalIO, what + ": " + errno_text(err));
}

ssize_t pread_full(int fd, char* data, std::size_t len, off_t offset) {
    std::size_t done = 0;
    while (done < len) {
        ssize_t n = ::pread(fd, data + done, len - done, offset + static_cast<off_t>(done));
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (n == 0) break;
        done += static_cast<std::size_t>(n);
    }
    return static_cast<ssize_t>(done);
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
        EVP_MD_CTX_free(ctx_);
        throw Error(ErrorKind::Internal, "cannot initialise SHA-256 (OpenSSL)");
    }
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::update(std::string_view data) {
    if (EVP_DigestUpdate(ctx_, data.data(), data.size()) != 1)
        throw Error(ErrorKind::Internal, "SHA-256 update failed (OpenSSL)");
}

std::string Sha256::hex_digest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_, md, &len) != 1) throw Error(ErrorKind::Internal, "SHA-256 final failed (OpenSSL)");
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
        out += kHex[md[i] >> 4];
        out += kHex[md[i] & 15];
    }
    return out;
}

std::string_view intent_args(std::string_view intent, std::string_view kind, const std::string& target) {
    if (intent.size() > kind.size() && intent.substr(0, kind.size()) == kind && intent[kind.size()] == ' ')
        return intent.substr(kind.size() + 1);
    if (intent == kind) return {};
    throw Error(ErrorKind::LocalIO, "cannot tell whether an interrupted delivery reached " + target +
                                        ": its record '" + sanitize(intent, 120) +
                                        "' was written for a different delivery target");
}

UniqueFd open_anonymous_file(const std::vector<std::string>& dirs, const std::string& what) {
    int first_err = 0;
    for (const std::string& dir : dirs) {
        if (dir.empty()) continue;
        int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0) return UniqueFd(fd);
        std::string templ = dir + "/.pullmail-spool-XXXXXX";
        fd = ::mkostemp(templ.data(), O_CLOEXEC);
        if (fd >= 0) {
            ::unlink(templ.c_str());
            return UniqueFd(fd);
        }
        if (first_err == 0) first_err = errno;
    }
    throw_local_io("cannot create a temporary file for " + what, first_err);
}

void CrlfSpool::write(std::string_view chunk) {
    if (!header_.complete()) {
        header_lf_.clear();
        header_crlf_.convert(chunk, header_lf_);
        header_.feed(header_lf_);
    }
    out_.clear();
    append_crlf(chunk, last_cr_, out_);
    if (int err = write_all(fd_.get(), out_.data(), out_.size()))
        throw_local_io("cannot spool a message for " + what_, err);
    size_ += out_.size();
}

std::string temp_dir_from_env() {
    const char* t = std::getenv("TMPDIR");
    return t && *t ? t : "";
}

}  // namespace detail
}  // namespace pullmail
