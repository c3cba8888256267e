// The fetchmailrc reader and importer (fetchmailrc.h, fetchmailrc_toml.h):
// a run control file in, pullmail TOML out, read back.
//
// Checks: tokenizing and parsing end in a result or Error(Config); the
// import of a file that parses is valid TOML, or Error(Config) when a value
// it would write is not UTF-8 (TOML cannot carry other bytes; text that
// only reaches a comment is escaped there), with exactly one account per
// user of every poll/skip entry, in order, each with the server login the
// rc file named, and nothing but poll_interval (an integer) in [defaults]:
// option text that reaches a comment or a value cannot add keys or tables.
// The config loader then ends in a Config or Error(Config).
#include <set>

#include <toml++/toml.h>

#include "config.h"
#include "fetchmailrc.h"
#include "fetchmailrc_toml.h"
#include "fuzz_support.h"
#include "text_util.h"

using namespace pullmail;

namespace {

// The server logins the importer must write, one per account, in order.
std::vector<std::string> expected_logins(const Fetchmailrc& rc, const std::string& login) {
    std::vector<std::string> out;
    for (const auto& e : rc.entries) {
        if (e.kind == RcEntry::Kind::Defaults) continue;
        if (e.users.empty()) out.push_back(login);
        for (const auto& u : e.users)
            out.push_back(u.remote.empty() ? (u.local.size() == 1 ? u.local[0] : login) : u.remote);
    }
    return out;
}

void check_toml(const std::string& out, const Fetchmailrc& rc) {
    toml::table t;
    try {
        t = toml::parse(std::string_view(out), std::string_view("imported.toml"));
    } catch (const toml::parse_error& e) {
        std::fprintf(stderr, "fuzz: the import is not TOML: %s\n%s\n", e.what(), out.c_str());
        std::abort();
    }
    for (auto&& [k, v] : t) FUZZ_ASSERT(k == "defaults" || k == "accounts");
    if (const toml::table* d = t["defaults"].as_table()) {
        for (auto&& [k, v] : *d) FUZZ_ASSERT(k == "poll_interval" && v.is_integer());
    }
    std::vector<std::string> logins = expected_logins(rc, "me");
    const toml::table* accounts = t["accounts"].as_table();
    FUZZ_ASSERT(logins.empty() == (accounts == nullptr));
    if (!accounts) return;
    FUZZ_ASSERT(accounts->size() == logins.size());
    // toml++ keeps a table's keys sorted: match the logins as multisets.
    std::multiset<std::string> want(logins.begin(), logins.end()), got;
    for (auto&& [name, acc] : *accounts) {
        const toml::table* a = acc.as_table();
        FUZZ_ASSERT(a != nullptr);
        auto user = (*a)["user"].value<std::string>();
        FUZZ_ASSERT(user.has_value());
        got.insert(*user);
    }
    FUZZ_ASSERT(want == got);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    std::vector<RcToken> tokens;
    if (!fuzz::only_error([&] { tokens = tokenize_fetchmailrc(text, "rc"); })) return 0;
    Fetchmailrc rc;
    try {
        rc = parse_fetchmailrc(text, "rc");
    } catch (const Error& e) {
        FUZZ_ASSERT(e.kind() == ErrorKind::Config);
        return 0;
    }
    // Every value the importer writes is made of tokens: it may refuse one
    // that is not UTF-8 (raw bytes or an escape such as \301; TOML cannot
    // hold it), with Error(Config), and nothing else.
    bool tokens_utf8 = true;
    for (const auto& t : tokens) tokens_utf8 = tokens_utf8 && valid_utf8(t.text);
    std::string out;
    bool imported = fuzz::only_error([&] {
        try {
            out = fetchmailrc_to_toml(rc, "rc", "me");
        } catch (const Error& e) {
            FUZZ_ASSERT(e.kind() == ErrorKind::Config);
            throw;
        }
    });
    if (!imported) {
        FUZZ_ASSERT(!tokens_utf8);
        return 0;
    }
    check_toml(out, rc);
    ConfigEnv env;
    env.vars["HOME"] = "/nonexistent/home";
    try {
        Config c = parse_config(out, "imported.toml", env);
        FUZZ_ASSERT(c.accounts.size() == expected_logins(rc, "me").size());
    } catch (const Error& e) {
        FUZZ_ASSERT(e.kind() == ErrorKind::Config);
    }
    return 0;
}
