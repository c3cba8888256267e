// fetchmailrc_toml.h — the pullmail configuration equivalent to a parsed
// fetchmailrc (fetchmailrc.h), as TOML text, for `pullmail import-fetchmailrc`.
//
// One account per user of every poll and skip entry (skip: enabled = false),
// with the options of earlier `defaults` entries and of its poll entry
// folded in. Every fetchmail option is either carried over to its pullmail
// key or left as a comment "# fetchmail: OPTION ... -- why" at the account
// (or at the top, for globals), so nothing is dropped silently. Equivalents
// of fetchmail's defaults are written out where pullmail's differ: fetchmail
// deletes what it delivered (keep = false), forwards by SMTP to the local
// MTA (deliver = "mda:/usr/sbin/sendmail -i -- LOCALUSER"), and uses
// STARTTLS when offered (pullmail: pop3:// / imap:// require it).
#pragma once

#include <string>

#include "fetchmailrc.h"

namespace pullmail {

// `source` names the file in the header comment; `login` is the local user
// name (fetchmail's default for the server login and the local recipient).
std::string fetchmailrc_to_toml(const Fetchmailrc& rc, const std::string& source, const std::string& login);

// A TOML basic string: "..." with \" \\ and control characters escaped.
std::string toml_quote(const std::string& s);

}  // namespace pullmail
