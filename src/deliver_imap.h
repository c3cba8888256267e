// deliver_imap.h — an IMAP server as the delivery target (migrations):
// APPEND byte-exact (CRLF), INTERNALDATE and flags from the source, the
// target folder created when missing, LITERAL+ pipelining, and duplicate
// avoidance by header fingerprint (fingerprint.h): before the first append
// into a folder, pullmail learns what the folder already holds (headers
// only) and skips messages it already has — whoever put them there.
#pragma once

#include <memory>

#include "config.h"
#include "deliver.h"

namespace pullmail {

class Logger;

struct ImapTargetOptions {
    std::string account;
    int verbosity = 1;
    Logger* log = nullptr;
    int connect_timeout = 30;
    int timeout = 60;
    std::string spool_dir = "/tmp";  // where messages are spooled before APPEND
};

// The target folder for a source folder: the source INBOX (or a POP3
// source) goes to the target path itself; any other source folder F goes to
// "<target path>/F", or to F at the top level when the target path is INBOX.
std::string imap_target_folder(const std::string& target_path, const std::string& source_folder);

std::unique_ptr<Deliverer> make_imap_deliverer(const Endpoint& target, const ImapTargetOptions& opts);

}  // namespace pullmail
