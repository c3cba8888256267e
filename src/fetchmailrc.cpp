#include "fetchmailrc.h"

#include <algorithm>
#include <map>

#include "error.h"

namespace pullmail {

namespace {

[[noreturn]] void fail(const std::string& source, int line, const std::string& msg) {
    throw Error(ErrorKind::Config, source + ":" + std::to_string(line) + ": " + msg);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_punct(char c) { return c == ',' || c == ':' || c == ';'; }

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The body of a quoted string from text[i] (after the opening quote) up to
// the closing `quote`; i ends after it. fetchmail's escapes().
std::string read_quoted(std::string_view text, std::size_t& i, char quote, int& line, const std::string& source) {
    int start_line = line;
    std::string out;
    while (i < text.size() && text[i] != quote) {
        char c = text[i++];
        if (c == '\n') ++line;
        if (c != '\\' || i >= text.size()) {
            out += c;
            continue;
        }
        char e = text[i++];
        switch (e) {
            case 'n': out += '\n'; break;
            case 't': out += '\t'; break;
            case 'r': out += '\r'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'v': out += '\v'; break;
            case 'e': out += '\x1b'; break;
            case 'x': {
                int v = 0, n = 0;
                while (n < 2 && i < text.size() && hex_value(text[i]) >= 0) v = v * 16 + hex_value(text[i++]), ++n;
                out += n ? static_cast<char>(v) : 'x';
                break;
            }
            default:
                if (e >= '0' && e <= '7') {
                    int v = e - '0', n = 1;
                    while (n < 3 && i < text.size() && text[i] >= '0' && text[i] <= '7') v = v * 8 + (text[i++] - '0'), ++n;
                    out += static_cast<char>(v);
                } else {
                    if (e == '\n') ++line;
                    out += e;  // \" \\ \' and anything else: the character itself
                }
        }
    }
    if (i >= text.size()) fail(source, start_line, "unterminated quoted string");
    ++i;
    return out;
}

enum class Arity { Flag, One, List, User };

// Every keyword fetchmail knows in an entry, with what follows it. Keywords
// end lists; a quoted string never is one.
const std::map<std::string, Arity, std::less<>>& keywords() {
    static const std::map<std::string, Arity, std::less<>> k = [] {
        std::map<std::string, Arity, std::less<>> m;
        for (const char* w : {"keep", "fetchall", "ssl", "sslcertck", "idle", "flush", "limitflush", "rewrite",
                              "stripcr", "forcecr", "pass8bits", "mimedecode", "dropstatus", "dropdelivered", "uidl",
                              "dns", "checkalias", "lmtp", "showdots", "bouncemail",
                              "spambounce", "softbounce", "syslog", "invisible", "nosyslog",
                              "nokeep", "nofetchall", "nossl", "nosslcertck", "noidle", "noflush",
                              "nolimitflush", "norewrite", "nostripcr", "noforcecr", "nopass8bits", "nomimedecode",
                              "nodropstatus", "nodropdelivered", "nouidl", "nodns", "nocheckalias", "noenvelope",
                              "nobouncemail", "nospambounce", "nosoftbounce", "notracepolls", "noshowdots"})
            m[w] = Arity::Flag;
        for (const char* w : {"via", "proto", "protocol", "port", "service", "auth", "authenticate", "timeout",
                              "principal", "esmtpname", "esmtppassword", "interface", "monitor", "plugin", "plugout",
                              "interval", "pass", "password", "sslproto", "sslcertfile", "sslcertpath",
                              "sslfingerprint", "sslkey", "sslcert", "sslcommonname", "mda", "bsmtp", "limit",
                              "fetchlimit", "fetchsizelimit", "fastuidl", "warnings", "batchlimit", "expunge",
                              "properties", "preconnect", "postconnect", "smtpname", "smtpaddress", "qvirtual", "user-agent",
                              "bad-header", "retrieve-error", "pidfile", "logfile", "postmaster", "idfile", "daemon",
                              "sslcertpath"})
            m[w] = Arity::One;
        m["tracepolls"] = Arity::Flag;
        for (const char* w : {"folder", "folders", "smtphost", "smtp", "smtphosts", "fetchdomains", "localdomains",
                              "aka", "antispam", "envelope", "is", "to"})
            m[w] = Arity::List;
        m["user"] = Arity::User;
        m["username"] = Arity::User;
        return m;
    }();
    return k;
}

bool is_noise(const RcToken& t) {
    if (t.quoted) return false;
    return t.text == "and" || t.text == "with" || t.text == "has" || t.text == "wants" || t.text == "options";
}

bool is_entry_start(const RcToken& t) {
    return !t.quoted && (t.text == "poll" || t.text == "skip" || t.text == "defaults" || t.text == "set" ||
                         t.text == "server");
}

// Whether t ends a list or cannot be an option's value.
bool is_keyword(const RcToken& t) {
    if (t.quoted) return false;
    return is_entry_start(t) || t.text == "no" || t.text == "here" || t.text == "there" ||
           keywords().count(t.text) != 0;
}

class Parser {
public:
    Parser(std::vector<RcToken> tokens, const std::string& source) : t_(std::move(tokens)), source_(source) {}

    Fetchmailrc parse() {
        Fetchmailrc rc;
        while (more()) {
            const RcToken& tok = next();
            if (!tok.quoted && tok.text == "set") {
                rc.globals.push_back(option(true));
            } else if (!tok.quoted && (tok.text == "poll" || tok.text == "skip" || tok.text == "server" ||
                                       tok.text == "defaults")) {
                rc.entries.push_back(entry(tok));
            } else {
                fail(source_, tok.line, "expected poll, skip, defaults or set, not '" + tok.text + "'");
            }
        }
        return rc;
    }

private:
    bool more() {
        while (i_ < t_.size() && is_noise(t_[i_])) ++i_;
        return i_ < t_.size();
    }
    const RcToken& next() { return t_[i_++]; }
    const RcToken& peek() const { return t_[i_]; }

    RcEntry entry(const RcToken& start) {
        RcEntry e;
        e.line = start.line;
        e.kind = start.text == "skip" ? RcEntry::Kind::Skip
                 : start.text == "defaults" ? RcEntry::Kind::Defaults
                                             : RcEntry::Kind::Poll;
        if (e.kind != RcEntry::Kind::Defaults) {
            if (!more() || is_keyword(peek())) fail(source_, start.line, start.text + " needs a server name");
            e.host = next().text;
        }
        while (more() && !is_entry_start(peek())) {
            const RcToken& tok = peek();
            if (!tok.quoted && (tok.text == "here" || tok.text == "there")) {  // noise after a mapping
                ++i_;
                continue;
            }
            if (!tok.quoted && (tok.text == "user" || tok.text == "username")) {
                ++i_;
                e.users.push_back(user(tok));
                continue;
            }
            RcOption o = option(false);
            if (e.users.empty()) {
                if (o.name == "is" || o.name == "to") {  // "poll host is me": the implicit user's local name
                    e.users.push_back(RcUser{});
                    e.users.back().line = o.line;
                    e.users.back().local = o.args;
                } else {
                    e.options.push_back(std::move(o));
                }
            } else {
                add_user_option(e.users.back(), std::move(o));
            }
        }
        return e;
    }

    RcUser user(const RcToken& start) {
        RcUser u;
        u.line = start.line;
        if (!more() || is_keyword(peek())) fail(source_, start.line, "user needs a name");
        std::string name = next().text;
        if (more() && !peek().quoted && peek().text == "here") {
            ++i_;
            u.local.push_back(name);
        } else {
            if (more() && !peek().quoted && peek().text == "there") ++i_;
            u.remote = name;
        }
        return u;
    }

    // "is NAME there" names the server login; "is NAMES [here]" the local ones.
    void add_user_option(RcUser& u, RcOption o) {
        if (o.name != "is" && o.name != "to") {
            u.options.push_back(std::move(o));
            return;
        }
        if (more() && !peek().quoted && peek().text == "there" && o.args.size() == 1) {
            ++i_;
            u.remote = o.args.front();
            return;
        }
        for (auto& a : o.args) u.local.push_back(a);
    }

    RcOption option(bool global) {
        if (!more()) fail(source_, t_.empty() ? 1 : t_.back().line, "an option is missing at the end");
        const RcToken& first = next();
        RcOption o;
        o.line = first.line;
        if (first.quoted) fail(source_, first.line, "expected an option, not a quoted string");  // never its text: it may be a password
        o.name = first.text;
        if (o.name == "no") {
            if (!more() || peek().quoted) fail(source_, first.line, "'no' must be followed by an option");
            o.name = "no" + next().text;
        }
        std::transform(o.name.begin(), o.name.end(), o.name.begin(), [](unsigned char c) { return std::tolower(c); });
        auto it = keywords().find(o.name);
        Arity arity = it == keywords().end() ? Arity::Flag : it->second;
        if (global && (o.name == "daemon" || o.name == "logfile" || o.name == "postmaster" || o.name == "idfile" ||
                       o.name == "pidfile"))
            arity = Arity::One;
        if (it == keywords().end() && !global) {
            // An option this parser does not know: keep it with the values
            // that follow up to the next keyword, for a comment.
            arity = Arity::List;
            o.name = "?" + o.name;
        }
        switch (arity) {
            case Arity::Flag:
            case Arity::User: break;
            case Arity::One:
                if (!more() || is_keyword(peek())) fail(source_, o.line, o.name + " needs a value");
                o.args.push_back(next().text);
                break;
            case Arity::List:
                while (more() && !is_keyword(peek())) o.args.push_back(next().text);
                if (o.args.empty() && o.name[0] != '?' && o.name != "envelope")
                    fail(source_, o.line, o.name + " needs at least one value");
                break;
        }
        return o;
    }

    std::vector<RcToken> t_;
    const std::string& source_;
    std::size_t i_ = 0;
};

}  // namespace

std::vector<RcToken> tokenize_fetchmailrc(std::string_view text, const std::string& source) {
    std::vector<RcToken> out;
    int line = 1;
    std::size_t i = 0;
    while (i < text.size()) {
        char c = text[i];
        if (c == '\n') {
            ++line;
            ++i;
        } else if (is_space(c) || is_punct(c)) {
            ++i;
        } else if (c == '#') {
            while (i < text.size() && text[i] != '\n') ++i;
        } else if (c == '"' || c == '\'') {
            ++i;
            RcToken t;
            t.line = line;
            t.quoted = true;
            t.text = read_quoted(text, i, c, line, source);
            out.push_back(std::move(t));
        } else {
            RcToken t;
            t.line = line;
            while (i < text.size() && !is_space(text[i]) && !is_punct(text[i]) && text[i] != '"' && text[i] != '\'')
                t.text += text[i++];
            out.push_back(std::move(t));
        }
    }
    return out;
}

Fetchmailrc parse_fetchmailrc(std::string_view text, const std::string& source) {
    return Parser(tokenize_fetchmailrc(text, source), source).parse();
}

}  // namespace pullmail
