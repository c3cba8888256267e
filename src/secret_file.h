// secret_file.h — the permission rules for files that may hold a password
// (the config file, a password_file), as fetchmail and mpop have them.
//
// Such a file must belong to the user running pullmail (the real uid, root
// included: root running pullmail on a user's file is refused, as fetchmail
// refuses it; run pullmail as that user instead), and no one else may write
// it (whoever can write the config can make pullmail run commands as you).
// When it holds a password, no one else may read it either. A refusal is
// Error(Config), exit 78, naming the file and the exact command to run.
#pragma once

#include <string>

namespace pullmail {

// what: "config file" or "password_file", for the message. holds_password:
// the file contains a password (a password_file always does).
void check_secret_file(const std::string& path, const std::string& what, bool holds_password);

}  // namespace pullmail
