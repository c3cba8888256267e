#include "secrets.h"

#include <openssl/crypto.h>
#include <sys/prctl.h>
#include <sys/resource.h>

namespace pullmail {

bool is_secret_variable(std::string_view entry) {
    std::string_view name = entry.substr(0, entry.find('='));
    return name.substr(0, 9) == "PULLMAIL_" && name.find("PASSWORD") != std::string_view::npos;
}

bool harden_process() noexcept {
    bool ok = ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0;
    struct rlimit none = {0, 0};
    ok = ::setrlimit(RLIMIT_CORE, &none) == 0 && ok;
    return ok;
}

void wipe_bytes(void* data, std::size_t len) noexcept {
    if (data && len) OPENSSL_cleanse(data, len);
}

void wipe(std::string& secret) noexcept {
    // The whole buffer: a shorter value may have replaced a longer one.
    wipe_bytes(secret.data(), secret.capacity());
    secret.clear();
}

}  // namespace pullmail
