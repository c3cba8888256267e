// oauth2_store.h — the file that keeps an account's OAuth2 grant between
// runs: <state_dir>/<account>.oauth2, JSON, mode 0600.
//
// It holds the refresh token (the long-lived secret `pullmail auth` earned)
// and the last access token with its expiry, so that runs within the token's
// lifetime do not ask the token endpoint again. Written only by atomic
// replace (temp file + fsync + rename, fs_util.h); read with O_NOFOLLOW, so a
// symbolic link planted in its place is refused, never followed.
#pragma once

#include <cstdint>
#include <string>

namespace pullmail {

struct StoredGrant {
    std::string refresh_token;
    std::string access_token;   // may be empty
    std::int64_t expires_at = 0;  // Unix seconds; 0 = unknown (treated as expired)
};

// False when there is no file. A damaged file (not our JSON, no refresh
// token) is Error(State), one not ours or readable by others Error(Config)
// (check_secret_file); both name the
// path and what to do; never its contents.
bool load_grant(const std::string& path, StoredGrant& out);

// Creates the directory (0700) when missing and replaces the file (0600).
void save_grant(const std::string& path, const StoredGrant& grant);

// An exclusive flock(2) on "<path>.lock" (created 0600 beside the grant
// file), held for the object's lifetime. Load, refresh and save run under
// it, so that concurrent refreshes (daemon watchers, a sync, `pullmail
// auth`) never post the same refresh token twice: a provider that rotates
// refresh tokens and detects reuse would revoke the grant. Waits at most
// timeout_seconds, then Error(Temporary).
class GrantLock {
public:
    GrantLock(const std::string& path, int timeout_seconds);
    ~GrantLock();
    GrantLock(const GrantLock&) = delete;
    GrantLock& operator=(const GrantLock&) = delete;

private:
    int fd_ = -1;
};

}  // namespace pullmail
