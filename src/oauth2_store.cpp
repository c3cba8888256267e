#include "oauth2_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <nlohmann/json.hpp>

#include "error.h"
#include "fs_util.h"
#include "secret_file.h"
#include "secrets.h"

namespace pullmail {

bool load_grant(const std::string& path, StoredGrant& out) {
    std::string data;
    try {
        if (!read_file_if_exists(path, data, false)) return false;
    } catch (const Error& e) {
        throw Error(ErrorKind::LocalIO, std::string("cannot read the OAuth2 token file: ") + e.what());
    }
    // The rules of the config file (secret_file.h): ours, and no one
    // else may read or write it; exit 78 with the command to run.
    try {
        check_secret_file(path, "the OAuth2 token file", true);
    } catch (...) {
        wipe(data);
        throw;
    }
    nlohmann::json j = nlohmann::json::parse(data, nullptr, false);
    wipe(data);
    auto bad = [&] {
        return Error(ErrorKind::State, "the OAuth2 token file " + path +
                                           " is damaged; sign in again with pullmail auth (it is rewritten)");
    };
    if (!j.is_object() || !j.contains("refresh_token") || !j["refresh_token"].is_string()) throw bad();
    out.refresh_token = j["refresh_token"].get<std::string>();
    if (out.refresh_token.empty()) throw bad();
    if (j.contains("access_token") && j["access_token"].is_string()) out.access_token = j["access_token"];
    if (j.contains("expires_at") && j["expires_at"].is_number_integer()) out.expires_at = j["expires_at"];
    return true;
}

void save_grant(const std::string& path, const StoredGrant& grant) {
    std::string dir = path.substr(0, path.find_last_of('/'));
    if (!dir.empty() && dir != path) make_dirs(dir, 0700);
    nlohmann::json j = {{"refresh_token", grant.refresh_token},
                        {"access_token", grant.access_token},
                        {"expires_at", grant.expires_at}};
    std::string data = j.dump() + "\n";
    write_file_atomic(path, data, 0600);
    wipe(data);
}

GrantLock::GrantLock(const std::string& path, int timeout_seconds) {
    std::string dir = path.substr(0, path.find_last_of('/'));
    if (!dir.empty() && dir != path) make_dirs(dir, 0700);
    std::string lock = path + ".lock";
    fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd_ < 0)
        throw Error(ErrorKind::LocalIO, "cannot open the OAuth2 lock file " + lock + ": " + std::strerror(errno));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(std::max(1, timeout_seconds));
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        if ((err != EWOULDBLOCK && err != EINTR) || std::chrono::steady_clock::now() >= deadline) {
            ::close(fd_);
            if (err != EWOULDBLOCK && err != EINTR)
                throw Error(ErrorKind::LocalIO, "cannot lock " + lock + ": " + std::strerror(err));
            throw Error(ErrorKind::Temporary, "the OAuth2 token file " + path + " is being refreshed by another "
                                              "pullmail for too long; trying again later", true);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

GrantLock::~GrantLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace pullmail
