// fetchmailrc.h — reads a fetchmail run control file (~/.fetchmailrc, see
// fetchmail(1) "THE RUN CONTROL FILE"): bytes in, structure out, no files.
// Used by `pullmail import-fetchmailrc` (fetchmailrc_toml.h writes the
// pullmail configuration from it).
//
// What it understands, as fetchmail does: '#' comments; words and quoted
// strings ("..." or '...') with C escapes (\n \t \" \\ \xHH \NNN); the noise
// words and, with, has, wants, options and the punctuation , : ; anywhere;
// `set NAME [VALUE]` globals; `poll`/`skip`/`defaults` entries with their
// server options, then any number of `user NAME [here|there]` blocks with
// user options; `no X` as the negation "noX"; lists (folder, is/to,
// smtphost, aka, ...) that run until the next keyword. Options are kept as
// written, in order, so that the writer can carry over or comment each one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pullmail {

struct RcToken {
    std::string text;
    bool quoted = false;
    int line = 0;
};

// Splits the file into tokens (comments and punctuation dropped). Throws
// Error(Config) "SOURCE:LINE: ..." for an unterminated string.
std::vector<RcToken> tokenize_fetchmailrc(std::string_view text, const std::string& source);

struct RcOption {
    std::string name;               // lower case; "nokeep" for "no keep" and "nokeep"
    std::vector<std::string> args;  // its values, unquoted
    int line = 0;
};

struct RcUser {
    std::string remote;               // the server login; empty: not given (fetchmail uses the local login)
    std::vector<std::string> local;   // "is"/"to" names (or "user X here")
    std::vector<RcOption> options;    // user options in file order (without is/to)
    int line = 0;
};

struct RcEntry {
    enum class Kind { Poll, Skip, Defaults } kind = Kind::Poll;
    std::string host;                 // empty for defaults
    std::vector<RcOption> options;    // options before the first "user" (server options, and user options
                                      // fetchmail then applies to every user of the entry)
    std::vector<RcUser> users;        // empty: one user, the local login
    int line = 0;
};

struct Fetchmailrc {
    std::vector<RcOption> globals;    // set daemon 300 -> {"daemon", {"300"}}
    std::vector<RcEntry> entries;     // in file order, defaults entries included
};

// Throws Error(Config) "SOURCE:LINE: ..." for what fetchmail would refuse
// (an option missing its value, "user" without a name, options before the
// first entry).
Fetchmailrc parse_fetchmailrc(std::string_view text, const std::string& source);

}  // namespace pullmail
