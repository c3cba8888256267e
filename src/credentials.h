// credentials.h — where an account's password comes from: the configuration
// itself, a file, an environment variable, or a command's output.
#pragma once

#include <string>

#include "config.h"

namespace pullmail {

// Fetches the password from its source (literal, command, file, environment).
// Throws Error(Config) naming the source (never the secret) on failure.
std::string resolve_password(const PasswordSource& src, const std::string& account);

}  // namespace pullmail
