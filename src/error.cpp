#include "error.h"

#include <sysexits.h>

#include <algorithm>

namespace pullmail {

Error::Error(ErrorKind kind, std::string message, bool temporary)
    : std::runtime_error(std::move(message)), kind_(kind), temporary_(temporary) {}

Error& Error::set_account(std::string name) {
    account_ = std::move(name);
    return *this;
}

Error& Error::set_server_text(std::string_view text) {
    server_text_ = sanitize(text);
    return *this;
}

std::string Error::detail() const {
    // Messages quote folder names, paths and other text from outside.
    std::string out = sanitize(what(), std::string::npos);
    if (!server_text_.empty()) out += " (server said: " + server_text_ + ")";
    return out;
}

void throw_protocol_error(const std::string& message, std::string_view server_text) {
    Error e(ErrorKind::Protocol, message);
    if (!server_text.empty()) e.set_server_text(server_text);
    throw e;
}

int exit_status(ErrorKind kind, bool temporary) {
    if (temporary) return EX_TEMPFAIL;
    switch (kind) {
        case ErrorKind::Usage: return EX_USAGE;
        case ErrorKind::Config: return EX_CONFIG;
        case ErrorKind::Unreachable: return EX_UNAVAILABLE;
        case ErrorKind::Tls: return EX_PROTOCOL;
        case ErrorKind::Auth: return EX_NOPERM;
        case ErrorKind::Protocol: return EX_PROTOCOL;
        case ErrorKind::Delivery: return EX_CANTCREAT;
        case ErrorKind::LocalIO: return EX_IOERR;
        case ErrorKind::State: return EX_DATAERR;
        case ErrorKind::Temporary: return EX_TEMPFAIL;
        case ErrorKind::Internal: return EX_SOFTWARE;
    }
    return EX_SOFTWARE;
}

int exit_status(const Error& e) { return exit_status(e.kind(), e.temporary()); }

namespace {
// Higher rank = more in need of a human. Temporary failures rank lowest of the
// errors because the next run may clear them on its own.
int rank(int status) {
    switch (status) {
        case 0: return 0;
        case EX_TEMPFAIL: return 1;
        case EX_UNAVAILABLE: return 2;
        case EX_PROTOCOL: return 3;
        case EX_CANTCREAT: return 4;
        case EX_IOERR: return 5;
        case EX_DATAERR: return 6;
        case EX_NOPERM: return 7;
        case EX_SOFTWARE: return 8;
        case EX_CONFIG: return 9;
        case EX_USAGE: return 10;
        default: return 5;
    }
}
}  // namespace

int worse_status(int a, int b) { return rank(b) > rank(a) ? b : a; }

const char* kind_name(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::Usage: return "usage";
        case ErrorKind::Config: return "config";
        case ErrorKind::Unreachable: return "unreachable";
        case ErrorKind::Tls: return "tls";
        case ErrorKind::Auth: return "auth";
        case ErrorKind::Protocol: return "protocol";
        case ErrorKind::Delivery: return "delivery";
        case ErrorKind::LocalIO: return "local-io";
        case ErrorKind::State: return "state";
        case ErrorKind::Temporary: return "temporary";
        case ErrorKind::Internal: return "internal";
    }
    return "internal";
}

}  // namespace pullmail
