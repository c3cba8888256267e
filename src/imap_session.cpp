#include "imap_session.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <unordered_map>

#include "error.h"
#include "memory_limits.h"
#include "text_util.h"

namespace pullmail {

namespace {

// Literals bigger than this are only accepted when streamed (BODY[]).
constexpr std::size_t kMaxBufferedLiteral = 16 * 1024 * 1024;
// Longest UID set in one command; Dovecot accepts far longer lines, other
// servers cut at 8 KiB.
constexpr std::size_t kMaxUidSet = 4000;
// UID FETCH commands in flight at once.
constexpr std::size_t kFetchWindow = 8;

// Attributes of a FETCH response "* n FETCH (NAME value ...)". Works on a
// response cut before its end, too (the list is closed artificially).
struct FetchAttrs {
    std::uint32_t seq = 0;
    std::uint32_t uid = 0;
    std::uint64_t size = 0;
    bool has_size = false;
    std::vector<std::string> flags;
    std::string internal_date;
    bool has_body = false;
    std::string header_fields;  // BODY[HEADER.FIELDS ...] content
    bool has_header_fields = false;
};

std::optional<FetchAttrs> parse_fetch(std::string text, bool partial, const std::vector<std::string>* literals) {
    if (partial) {
        // Close open quotes are impossible here (a literal starts after a
        // space); close the parenthesised list(s).
        int depth = 0;
        bool inq = false;
        for (std::size_t i = 0; i < text.size(); ++i) {
            char c = text[i];
            if (inq) {
                if (c == '\\') ++i;
                else if (c == '"') inq = false;
            } else if (c == '"') inq = true;
            else if (c == '(') ++depth;
            else if (c == ')') --depth;
        }
        text += " NIL";
        while (depth-- > 0) text += ')';
    }
    auto vals = parse_imap_values(text, literals);
    if (!vals || vals->size() < 4 || !(*vals)[0].is_atom("*") || !(*vals)[2].is_atom("FETCH") ||
        (*vals)[3].type != ImapValue::Type::List)
        return std::nullopt;
    FetchAttrs a;
    a.seq = static_cast<std::uint32_t>((*vals)[1].number());
    const auto& items = (*vals)[3].items;
    for (std::size_t i = 0; i + 1 < items.size(); i += 2) {
        std::string name = ascii_upper(items[i].text);
        const ImapValue& v = items[i + 1];
        if (name == "UID") {
            a.uid = static_cast<std::uint32_t>(v.number());
        } else if (name == "RFC822.SIZE") {
            a.size = v.number();
            a.has_size = true;
        } else if (name == "FLAGS" && v.type == ImapValue::Type::List) {
            for (const auto& f : v.items) a.flags.push_back(f.text);
        } else if (name == "INTERNALDATE") {
            a.internal_date = v.text;
        } else if (name == "BODY[]" || name == "BODY[]<0>" || name == "RFC822") {
            a.has_body = true;
        } else if (name.rfind("BODY[HEADER.FIELDS", 0) == 0 || name == "BODY[HEADER]") {
            a.header_fields = v.text;
            a.has_header_fields = true;
        }
    }
    return a;
}

bool ends_with_body_item(std::string_view text) {
    while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
    std::string u = ascii_upper(text.substr(text.size() > 16 ? text.size() - 16 : 0));
    auto ends = [&](std::string_view s) { return u.size() >= s.size() && u.compare(u.size() - s.size(), s.size(), s) == 0; };
    return ends(" BODY[]") || ends("(BODY[]") || ends("BODY[]<0>") || ends(" RFC822") || ends("(RFC822");
}

// UID sets of at most kMaxUidSet bytes covering all of `uids`.
std::vector<std::string> uid_sets(std::vector<std::uint32_t> uids) {
    std::sort(uids.begin(), uids.end());
    uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
    std::vector<std::string> sets;
    for (std::size_t pos = 0; pos < uids.size();) {
        std::string set;
        std::size_t n = imap_uid_set(uids, pos, kMaxUidSet, set);
        if (n == 0) break;
        pos += n;
        sets.push_back(std::move(set));
    }
    return sets;
}

}  // namespace

// Turns parser events into complete responses; small literals are inlined as
// quoted strings, a BODY[] literal is streamed to the fetch in progress.
class ImapSession::Reader final : public ImapEvents {
public:
    ImapResponseParser parser;
    std::function<void(std::string&)> on_response;
    // Asked when a literal starts; true = stream it through stream_data.
    std::function<bool(const std::string& text_so_far, std::uint64_t size)> want_stream;
    std::function<void(std::string_view)> stream_data;
    std::function<void()> stream_end;

    // When non-zero, buffered literals keep at most this many bytes and the
    // rest is read and dropped (header fields for fingerprints).
    std::size_t literal_keep = 0;

    void on_text(std::string_view t) override {
        hold(t.size());
        text_.append(t);
    }
    void on_literal_begin(std::uint64_t size) override {
        streaming_ = want_stream && want_stream(text_, size);
        literal_.clear();
        if (streaming_) return;
        if (literal_keep) {
            left_to_keep_ = literal_keep;
            return;
        }
        if (size > kMaxBufferedLiteral)
            throw Error(ErrorKind::Protocol, "the server sent a " + std::to_string(size) +
                                                 "-byte literal where pullmail expected a short string");
        hold(static_cast<std::size_t>(size));  // refused before its bytes are read
        left_to_keep_ = static_cast<std::size_t>(size);
    }
    void on_literal_data(std::string_view chunk) override {
        if (streaming_) {
            stream_data(chunk);
            return;
        }
        std::size_t n = std::min(chunk.size(), left_to_keep_);
        if (literal_keep) hold(n);
        literal_.append(chunk.substr(0, n));
        left_to_keep_ -= n;
    }
    void on_literal_end() override {
        if (streaming_) {
            stream_end();
            text_ += "\"\"";
            streaming_ = false;
        } else {
            text_ += "{#" + std::to_string(literals_.size()) + "}";
            literals_.push_back(std::move(literal_));
            literal_.clear();
        }
    }
    void on_response_end() override {
        std::string t;
        t.swap(text_);
        bye_last = ascii_istarts_with(t, "* BYE ") || ascii_iequals(t, "* BYE");
        if (bye_last) bye = t;
        held_ = 0;
        if (on_response) on_response(t);
        literals_.clear();
    }
    // Literals of the response being handled, for parse_imap_values().
    const std::vector<std::string>* literals() const { return &literals_; }
    std::string bye;        // the last untagged BYE, if any
    bool bye_last = false;  // the last complete response was that BYE

private:
    // Counts bytes the response makes us hold (limits.h).
    void hold(std::size_t n) {
        held_ += n;
        if (held_ > limits::kMaxResponse)
            throw Error(ErrorKind::Protocol, "the server sent an IMAP response larger than " +
                                                 std::to_string(limits::kMaxResponse >> 20) +
                                                 " MiB outside a message body (pullmail's limit for one response)");
    }

    std::string text_;
    std::string literal_;
    std::vector<std::string> literals_;
    std::size_t held_ = 0;          // text and buffered literal bytes of this response
    std::size_t left_to_keep_ = 0;  // of the buffered literal in progress
    bool streaming_ = false;
};

ImapSession::ImapSession(Channel& channel) : ch_(channel), reader_(std::make_unique<Reader>()) {}
ImapSession::~ImapSession() = default;

std::string ImapSession::next_tag() { return "P" + std::to_string(++tag_counter_); }

ImapStatusLine ImapSession::run(const std::string& command, const Untagged& untagged) {
    return run_all({command}, untagged).front();
}

std::vector<ImapStatusLine> ImapSession::run_all(const std::vector<std::string>& commands, const Untagged& untagged) {
    if (!untagged) return run_all_at(commands, nullptr);
    return run_all_at(commands, [&](const std::string& text, std::size_t) { untagged(text); });
}

std::vector<ImapStatusLine> ImapSession::run_all_at(const std::vector<std::string>& commands,
                                                    const UntaggedAt& untagged) {
    // IMAP lets a client send commands without waiting (RFC 3501 5.5); the
    // replies are matched by tag. Used where the commands do not depend on
    // each other's outcome, to save round trips.
    if (!abandoned_.empty()) throw Error(ErrorKind::Protocol, abandoned_);
    std::vector<std::string> tags;
    for (const auto& c : commands) {
        tags.push_back(next_tag());
        ch_.command(tags.back() + " " + c);
    }
    std::vector<std::optional<ImapStatusLine>> done(commands.size());
    std::size_t remaining = commands.size();
    std::size_t oldest = 0;  // the oldest command not answered yet
    reader_->want_stream = nullptr;
    reader_->on_response = [&](std::string& text) {
        ch_.trace_in(text.size() > 300 ? text.substr(0, 300) + "..." : text);
        if (text.rfind("* ", 0) == 0) {
            while (oldest + 1 < done.size() && done[oldest]) ++oldest;
            if (untagged) untagged(text, oldest);
            return;
        }
        auto st = parse_status_line(text);
        if (!st) throw Error(ErrorKind::Protocol, "the server sent a malformed reply").set_server_text(text);
        auto it = std::find(tags.begin(), tags.end(), st->tag);
        if (it == tags.end() || done[it - tags.begin()]) return;
        done[it - tags.begin()] = std::move(*st);
        --remaining;
    };
    pump([&] { return remaining == 0; });
    reader_->on_response = nullptr;
    std::vector<ImapStatusLine> out;
    for (auto& d : done) out.push_back(std::move(*d));
    return out;
}

void ImapSession::start() {
    auto st = run_all({"CAPABILITY", "LIST \"\" \"\""}, [&](const std::string& text) {
        auto vals = parse_imap_values(text, reader_->literals());
        if (!vals || vals->size() < 2) return;
        if ((*vals)[1].is_atom("CAPABILITY")) {
            for (std::size_t i = 2; i < vals->size(); ++i) caps_.insert(ascii_upper((*vals)[i].text));
        } else if ((*vals)[1].is_atom("LIST") && vals->size() >= 4) {
            const auto& d = (*vals)[3];
            if (d.type == ImapValue::Type::String && d.text.size() == 1) {
                delimiter_ = d.text[0];
                has_delimiter_ = true;
            } else if (d.type == ImapValue::Type::Nil) {
                has_delimiter_ = false;
            }
        }
    });
    if (st[0].status != "OK") throw Error(ErrorKind::Protocol, "the server refused CAPABILITY").set_server_text(st[0].text);
}

std::string ImapSession::server_name(const std::string& folder) const {
    if (ascii_upper(folder) == "INBOX") return "INBOX";
    std::string name;
    for (char c : folder) {
        if (c == '/') {
            if (!has_delimiter_)
                throw Error(ErrorKind::Config, "folder '" + folder + "': the server has no folder hierarchy");
            name += delimiter_;
        } else {
            if (has_delimiter_ && c == delimiter_ && delimiter_ != '/')
                throw Error(ErrorKind::Config, "folder '" + folder + "' contains '" + std::string(1, delimiter_) +
                                                   "', the server's hierarchy separator; write levels with '/'");
            name += c;
        }
    }
    // INBOX as the first level is case-insensitive too.
    std::string encoded = mutf7_encode(name);
    if (!prefix_.empty() && !ascii_istarts_with(encoded, prefix_)) encoded = prefix_ + encoded;
    return encoded;
}

void ImapSession::use_personal_namespace() {
    if (!has_capability("NAMESPACE")) return;
    std::string prefix;
    char delim = 0;
    auto st = run("NAMESPACE", [&](const std::string& text) {
        // * NAMESPACE (("INBOX." ".")) NIL NIL: the first personal one counts.
        auto vals = parse_imap_values(text, reader_->literals());
        if (!vals || vals->size() < 3 || !(*vals)[1].is_atom("NAMESPACE")) return;
        const auto& personal = (*vals)[2];
        if (personal.type != ImapValue::Type::List || personal.items.empty()) return;
        const auto& first = personal.items[0];
        if (first.type != ImapValue::Type::List || first.items.size() < 2) return;
        if (first.items[0].type == ImapValue::Type::String || first.items[0].type == ImapValue::Type::Atom)
            prefix = first.items[0].text;
        if (first.items[1].type == ImapValue::Type::String && first.items[1].text.size() == 1)
            delim = first.items[1].text[0];
    });
    if (st.status != "OK" || prefix.empty()) return;
    // A prefix is a folder name ending in the delimiter; anything else
    // (control characters, a prefix not ending so) is not trusted.
    if (!delim || prefix.back() != delim ||
        std::any_of(prefix.begin(), prefix.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; }))
        return;
    prefix_ = prefix;
    if (!has_delimiter_) {
        delimiter_ = delim;
        has_delimiter_ = true;
    }
}

std::string ImapSession::mailbox_arg(const std::string& folder) const {
    // Modified UTF-7 leaves only ASCII; the config refuses control
    // characters. Anything still unquotable is refused rather than sent.
    auto arg = imap_astring(server_name(folder), false);
    if (!arg) throw Error(ErrorKind::Config, "folder '" + folder + "' cannot be written as an IMAP mailbox name");
    return *arg;
}

namespace {

// "\\Trash" -> "trash" when it is one of RFC 6154's attributes (and
// Gmail's \\Important), else "".
std::string special_use_name(const ImapValue& flag) {
    static const char* kSpecial[] = {"all", "archive", "drafts", "flagged", "junk", "sent", "trash", "important"};
    if (flag.type != ImapValue::Type::Atom || flag.text.size() < 2 || flag.text[0] != '\\') return {};
    std::string name = ascii_lower(flag.text.substr(1));
    for (const char* k : kSpecial)
        if (name == k) return name;
    return {};
}

// "* STATUS name (MESSAGES n UIDNEXT n UIDVALIDITY n)": the server's name
// and the values, when all three are there.
std::optional<std::pair<std::string, ImapSession::FolderInfo>> status_reply(const std::vector<ImapValue>& vals) {
    if (vals.size() != 4 || !vals[1].is_atom("STATUS") || vals[3].type != ImapValue::Type::List) return std::nullopt;
    ImapSession::FolderInfo info;
    int n = 0;
    const auto& kv = vals[3].items;
    for (std::size_t i = 0; i + 1 < kv.size(); i += 2) {
        if (kv[i + 1].type != ImapValue::Type::Number || kv[i + 1].number() > 0xffffffffu) continue;
        auto v = static_cast<std::uint32_t>(kv[i + 1].number());
        if (kv[i].is_atom("MESSAGES")) info.exists = v, ++n;
        else if (kv[i].is_atom("UIDNEXT")) info.uidnext = v, ++n;
        else if (kv[i].is_atom("UIDVALIDITY")) info.uidvalidity = v, ++n;
    }
    if (n != 3) return std::nullopt;
    std::string name = vals[2].text;
    if (ascii_upper(name) == "INBOX") name = "INBOX";
    return std::make_pair(name, info);
}

}  // namespace

std::vector<ImapSession::ListedFolder> ImapSession::list_folders(std::map<std::string, FolderInfo>* statuses) {
    std::vector<ListedFolder> out;
    std::string cmd = "LIST \"\" \"*\"";
    std::vector<std::string> returns;
    if (has_capability("SPECIAL-USE")) returns.push_back("SPECIAL-USE");
    bool with_status = statuses && has_capability("LIST-STATUS");
    if (with_status) returns.push_back("STATUS (MESSAGES UIDNEXT UIDVALIDITY)");
    for (std::size_t i = 0; i < returns.size(); ++i) cmd += (i ? " " : " RETURN (") + returns[i];
    if (!returns.empty()) cmd += ")";
    std::map<std::string, FolderInfo> by_server_name;  // STATUS replies, resolved once the names are known
    std::map<std::string, std::string> folder_of;       // server name -> folder
    auto done = run(cmd, [&](const std::string& text) {
        auto vals = parse_imap_values(text, reader_->literals());
        if (with_status && vals) {
            if (auto st = status_reply(*vals)) {
                by_server_name[st->first] = st->second;
                return;
            }
        }
        if (!vals || vals->size() < 5 || !(*vals)[1].is_atom("LIST") || (*vals)[2].type != ImapValue::Type::List)
            return;
        ListedFolder f;
        for (const auto& flag : (*vals)[2].items) {
            if (flag.is_atom("\\NOSELECT") || flag.is_atom("\\NONEXISTENT")) return;
            if (auto s = special_use_name(flag); !s.empty()) f.special.push_back(s);
        }
        const auto& d = (*vals)[3];
        char delim = d.type == ImapValue::Type::String && d.text.size() == 1 ? d.text[0] : 0;
        auto decoded = mutf7_decode((*vals)[4].text);
        f.name = decoded ? *decoded : (*vals)[4].text;
        if (delim && delim != '/')
            for (auto& c : f.name)
                if (c == delim) c = '/';
        if (out.size() >= limits::kMaxListing)
            throw Error(ErrorKind::Protocol, "the server lists more than " + std::to_string(limits::kMaxListing) +
                                                 " folders (pullmail's limit for one listing)");
        if (with_status) folder_of[ascii_upper((*vals)[4].text) == "INBOX" ? "INBOX" : (*vals)[4].text] = f.name;
        out.push_back(std::move(f));
    });
    if (done.status != "OK") throw Error(ErrorKind::Protocol, "the server refused LIST").set_server_text(done.text);
    for (const auto& [name, info] : by_server_name)
        if (auto it = folder_of.find(name); it != folder_of.end()) (*statuses)[it->second] = info;
    std::sort(out.begin(), out.end(), [](const ListedFolder& a, const ListedFolder& b) { return a.name < b.name; });
    return out;
}

std::vector<std::string> ImapSession::list_all_folders() { return list_all_folders({}); }

std::vector<std::string> ImapSession::list_all_folders(const std::vector<std::string>& skip,
                                                       std::map<std::string, FolderInfo>* statuses) {
    std::vector<std::string> out;
    for (auto& f : list_folders(statuses)) {
        bool skipped = std::any_of(f.special.begin(), f.special.end(), [&](const std::string& s) {
            return std::find(skip.begin(), skip.end(), s) != skip.end();
        });
        if (!skipped) out.push_back(std::move(f.name));
    }
    return out;
}

std::map<std::string, ImapSession::FolderInfo> ImapSession::status(const std::vector<std::string>& folders) {
    std::map<std::string, FolderInfo> out;
    std::map<std::string, std::string> by_name;  // server name -> folder
    std::vector<std::string> cmds;
    for (const auto& f : folders) {
        try {
            std::string arg = mailbox_arg(f);
            by_name[server_name(f)] = f;
            cmds.push_back("STATUS " + arg + " (MESSAGES UIDNEXT UIDVALIDITY)");
        } catch (const Error&) {
            // A name the server cannot take: open() says so.
        }
    }
    if (cmds.empty()) return out;
    run_all(cmds, [&](const std::string& text) {
        auto vals = parse_imap_values(text, reader_->literals());
        if (!vals) return;
        auto st = status_reply(*vals);
        if (!st) return;
        if (auto it = by_name.find(st->first); it != by_name.end()) out[it->second] = st->second;
    });
    return out;
}

ImapSession::FolderInfo ImapSession::select(const std::string& folder, bool read_only,
                                            std::vector<RemoteMessage>* listing) {
    auto got = select_many({folder}, read_only, listing != nullptr);
    if (got[0].error) throw *got[0].error;
    if (listing) *listing = std::move(got[0].listing);
    return got[0].info;
}

void ImapSession::note_selected(const std::string& folder, bool ok, bool read_only, std::uint32_t uidvalidity) {
    // A failed SELECT leaves no folder selected (RFC 3501 6.3.1).
    selected_ = ok ? folder : std::string();
    selected_read_only_ = read_only;
    if (ok) opened_validity_[folder] = uidvalidity;
}

namespace {

// The response-code and EXISTS replies of a SELECT/EXAMINE.
bool select_reply(const std::string& text, const std::vector<std::string>* literals, ImapSession::FolderInfo& info) {
    auto st = parse_status_line(text);
    if (st && st->status == "OK" && !st->code.empty()) {
        std::string code = ascii_upper(st->code);
        if (code.rfind("UIDVALIDITY ", 0) == 0)
            info.uidvalidity = static_cast<std::uint32_t>(std::strtoul(code.c_str() + 12, nullptr, 10));
        else if (code.rfind("UIDNEXT ", 0) == 0)
            info.uidnext = static_cast<std::uint32_t>(std::strtoul(code.c_str() + 8, nullptr, 10));
        return true;
    }
    auto vals = parse_imap_values(text, literals);
    if (vals && vals->size() == 3 && (*vals)[2].is_atom("EXISTS")) {
        info.exists = static_cast<std::uint32_t>((*vals)[1].number());
        return true;
    }
    return false;
}

}  // namespace

std::vector<ImapSession::Selected> ImapSession::select_many(const std::vector<std::string>& folders, bool read_only,
                                                            bool list) {
    // Compact while the listing arrives (a hostile one is refused at the
    // limit, before it costs much); RemoteMessages are built at the end.
    struct Listed {
        std::uint32_t seq, uid;
        std::uint64_t size;
    };
    std::vector<std::vector<Listed>> found(folders.size());
    std::vector<Selected> out(folders.size());
    const std::size_t per = list ? 2 : 1;  // commands per folder
    std::vector<std::string> cmds;
    for (std::size_t i = 0; i < folders.size(); ++i) {
        out[i].folder = folders[i];
        cmds.push_back(std::string(read_only ? "EXAMINE " : "SELECT ") + mailbox_arg(folders[i]));
        // The listing rides in the same flight: if the SELECT fails, no folder
        // is selected and the UID FETCH fails harmlessly (RFC 3501 6.3.1).
        if (list) cmds.push_back("UID FETCH 1:* (UID RFC822.SIZE)");
    }
    may_be_selected_ = true;
    auto done = run_all_at(cmds, [&](const std::string& text, std::size_t command) {
        // The folder of the oldest unanswered command; its SELECT's replies
        // and its listing's are told apart by their form.
        std::size_t i = command / per;
        if (select_reply(text, reader_->literals(), out[i].info) || !list) return;
        auto a = parse_fetch(text, false, reader_->literals());
        if (!a || !a->uid || !a->has_size) return;  // unsolicited flag updates and the like
        if (found[i].size() >= limits::kMaxListing)
            throw Error(ErrorKind::Protocol, "folder '" + folders[i] + "' lists more than " +
                                                 std::to_string(limits::kMaxListing) +
                                                 " messages (pullmail's limit for one listing)");
        found[i].push_back({a->seq, a->uid, a->size});
    });
    for (std::size_t i = 0; i < folders.size(); ++i) {
        Selected& sel = out[i];
        const std::string& folder = folders[i];
        const auto& st = done[i * per];
        note_selected(folder, st.status == "OK", read_only, sel.info.uidvalidity);
        if (st.status != "OK") {
            sel.error = Error(ErrorKind::Protocol, "cannot open folder '" + folder + "'")
                            .set_server_text(st.text)
                            .set_folder_scoped();
            continue;
        }
        if (sel.info.uidvalidity == 0) {
            sel.error = Error(ErrorKind::Protocol, "the server gave no UIDVALIDITY for folder '" + folder +
                                                       "', so pullmail cannot tell new messages from old ones");
            continue;
        }
        if (!list) continue;
        if (done[i * per + 1].status != "OK") {
            sel.error =
                Error(ErrorKind::Protocol, "cannot list folder '" + folder + "'").set_server_text(done[i * per + 1].text);
            continue;
        }
        auto& f = found[i];
        std::sort(f.begin(), f.end(), [](const auto& a, const auto& b) { return a.uid < b.uid; });
        f.erase(std::unique(f.begin(), f.end(), [](const auto& a, const auto& b) { return a.uid == b.uid; }), f.end());
        sel.listing.reserve(f.size());
        RemoteMessage in_folder;  // the folder name, once for the listing
        in_folder.set_folder(folder);
        for (const auto& l : f) {
            RemoteMessage m;
            m.number = l.seq;
            m.uid = l.uid;
            m.size = l.size;
            m.share_details(in_folder);
            sel.listing.push_back(std::move(m));
        }
        std::vector<Listed>().swap(f);
    }
    return out;
}

void ImapSession::reselect(const std::string& folder, bool read_only) {
    if (selected_ == folder && (read_only || !selected_read_only_)) return;
    std::optional<std::uint32_t> known;
    if (auto it = opened_validity_.find(folder); it != opened_validity_.end()) known = it->second;
    FolderInfo info;
    may_be_selected_ = true;
    auto st = run(std::string(read_only ? "EXAMINE " : "SELECT ") + mailbox_arg(folder),
                  [&](const std::string& text) { select_reply(text, reader_->literals(), info); });
    if (st.status == "OK" && known && *known != info.uidvalidity) {
        selected_.clear();  // nothing more goes to it
        throw Error(ErrorKind::Protocol, "folder '" + folder + "' changed its UIDVALIDITY during the session; "
                                         "nothing more was done in it (the next run recognises its messages)");
    }
    note_selected(folder, st.status == "OK", read_only, info.uidvalidity);
    if (st.status != "OK")
        throw Error(ErrorKind::Protocol, "cannot open folder '" + folder + "' again").set_server_text(st.text);
}

// The message a FETCH response starts streaming: the one asked for when its
// UID is known before the body, with the flags and date given so far.
RemoteMessage ImapSession::starting_message(const std::string& text,
                                            const std::unordered_map<std::uint32_t, const RemoteMessage*>& wanted,
                                            const std::string& folder, std::uint64_t literal_size) {
    RemoteMessage current;
    if (auto a = parse_fetch(text, true, reader_->literals())) {
        current.number = a->seq;
        current.uid = a->uid;
        auto it = wanted.find(a->uid);
        if (it != wanted.end()) current = *it->second;
        current.set_flags(a->flags);
        current.set_internal_date(a->internal_date);
    }
    if (current.folder().empty()) current.set_folder(folder);
    if (!current.size) current.size = literal_size;
    return current;
}

namespace {

// One folder's run of messages in a fetch() of several folders.
struct FetchRun {
    std::string folder;
    std::unordered_map<std::uint32_t, const RemoteMessage*> wanted;
    std::vector<std::uint32_t> uids;
    std::uint64_t bytes = 0;
    bool bad = false;  // not (or no longer) the folder the UIDs are of: its bodies are dropped
};

// A command of a fetch(): the SELECT of a run, or one UID FETCH of its UIDs.
struct FetchOp {
    std::size_t run = 0;
    bool select = false;
    std::string set;
    std::uint64_t bytes = 0;  // about what its bodies weigh (the window)
};

std::vector<FetchRun> fetch_runs(const std::vector<RemoteMessage>& msgs) {
    std::vector<FetchRun> runs;
    for (const auto& m : msgs) {
        if (runs.empty() || runs.back().folder != m.folder()) runs.push_back(FetchRun{m.folder(), {}, {}, 0, false});
        runs.back().wanted[m.uid] = &m;
        runs.back().uids.push_back(m.uid);
        runs.back().bytes += m.size;
    }
    return runs;
}

// Bodies in flight: kFetchWindow commands, or more while they announce
// less than this (many small folders go out in one flight).
constexpr std::uint64_t kFetchWindowBytes = 4u << 20;
constexpr std::size_t kMaxInFlight = 512;

}  // namespace

// One fetch() of several folders' bodies: SELECTs and UID FETCHes in one
// pipeline (each folder's SELECT behind the previous folder's FETCH), the
// replies matched to the command they answer. The reader's callbacks point
// into this object only while it lives.
class ImapSession::FetchPipeline {
public:
    FetchPipeline(ImapSession& s, const std::vector<RemoteMessage>& msgs, MessageHandler& handler);
    ~FetchPipeline();
    // Streams every body to the handler; throws the first failure.
    void run();

private:
    struct InFlight {
        std::string tag;
        std::size_t op;
    };
    void send_more();
    // The run the oldest unanswered command is of: untagged replies are its.
    FetchRun* head_run() { return outstanding_.empty() ? nullptr : &runs_[ops_[outstanding_.front().op].run]; }
    bool head_selects() const { return !outstanding_.empty() && ops_[outstanding_.front().op].select; }
    bool want_stream(const std::string& text, std::uint64_t size);
    void on_untagged(const std::string& text);
    void on_tagged(const std::string& text);
    void select_done(const FetchOp& op, const ImapStatusLine& st);

    ImapSession& s_;
    MessageHandler& handler_;
    const bool read_only_;
    std::vector<FetchRun> runs_;
    std::vector<FetchOp> ops_;
    std::set<std::pair<std::size_t, std::uint32_t>> received_;
    std::deque<InFlight> outstanding_;  // in the order sent, which is the order answered
    std::size_t next_op_ = 0, fetches_ = 0;
    std::uint64_t in_flight_bytes_ = 0;
    std::optional<Error> failure_;
    bool in_message_ = false, dropping_ = false;
    RemoteMessage current_;
    FolderInfo reselected_;  // what the SELECT in progress reports
};

ImapSession::FetchPipeline::FetchPipeline(ImapSession& s, const std::vector<RemoteMessage>& msgs,
                                          MessageHandler& handler)
    : s_(s), handler_(handler), read_only_(s.selected_read_only_), runs_(fetch_runs(msgs)) {
    for (std::size_t r = 0; r < runs_.size(); ++r) {
        if (r > 0 || runs_[r].folder != s_.selected_) ops_.push_back({r, true, {}, 0});
        auto sets = uid_sets(runs_[r].uids);
        for (auto& set : sets) ops_.push_back({r, false, std::move(set), runs_[r].bytes / sets.size()});
    }
}

ImapSession::FetchPipeline::~FetchPipeline() {
    // After a failure the session may still read (LOGOUT): the rest of a
    // body in progress is dropped, nothing calls into this object.
    s_.reader_->want_stream = nullptr;
    s_.reader_->stream_data = [](std::string_view) {};
    s_.reader_->stream_end = [] {};
    s_.reader_->on_response = nullptr;
}

void ImapSession::FetchPipeline::send_more() {
    while (next_op_ < ops_.size() && !failure_ && !handler_.stop_requested() && outstanding_.size() < kMaxInFlight &&
           (fetches_ < kFetchWindow || in_flight_bytes_ + ops_[next_op_].bytes <= kFetchWindowBytes)) {
        const FetchOp& op = ops_[next_op_];
        std::string tag = s_.next_tag();
        if (op.select) {
            s_.ch_.command(tag + (read_only_ ? " EXAMINE " : " SELECT ") + s_.mailbox_arg(runs_[op.run].folder));
        } else {
            s_.ch_.command(tag + " UID FETCH " + op.set + " (UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[])");
            ++fetches_;
            in_flight_bytes_ += op.bytes;
        }
        outstanding_.push_back({tag, next_op_++});
    }
}

bool ImapSession::FetchPipeline::want_stream(const std::string& text, std::uint64_t size) {
    if (text.rfind("* ", 0) != 0 || !ends_with_body_item(text) || head_selects()) return false;
    // One body per FETCH response: a second would start a message while
    // the handler still has this one open.
    if (in_message_ || dropping_) throw_protocol_error("the server sent two message bodies in one FETCH response");
    FetchRun* run = head_run();
    if (!run || run->bad) {
        dropping_ = true;
        return true;
    }
    current_ = s_.starting_message(text, run->wanted, run->folder, size);
    handler_.begin(current_);
    in_message_ = true;
    return true;
}

void ImapSession::FetchPipeline::on_untagged(const std::string& text) {
    if (head_selects()) {
        select_reply(text, s_.reader_->literals(), reselected_);
        return;
    }
    if (dropping_) {
        dropping_ = false;
        return;
    }
    if (!in_message_) return;  // unsolicited FETCH (flags), EXISTS, EXPUNGE, ...
    in_message_ = false;
    FetchRun* run = head_run();
    auto a = parse_fetch(text, false, s_.reader_->literals());
    auto it = a && run ? run->wanted.find(a->uid) : std::unordered_map<std::uint32_t, const RemoteMessage*>::iterator();
    std::size_t r = run ? static_cast<std::size_t>(run - runs_.data()) : 0;
    if (!a || !run || it == run->wanted.end() || received_.count({r, a->uid})) {
        handler_.failed(current_, "FETCH response without a UID pullmail asked for");
        return;
    }
    RemoteMessage m = *it->second;
    m.set_flags(a->flags);
    m.set_internal_date(a->internal_date);
    received_.insert({r, a->uid});
    handler_.end(m);
}

void ImapSession::FetchPipeline::on_tagged(const std::string& text) {
    s_.ch_.trace_in(text.size() > 300 ? text.substr(0, 300) + "..." : text);
    auto st = parse_status_line(text);
    if (!st) return;
    auto it = std::find_if(outstanding_.begin(), outstanding_.end(), [&](const InFlight& f) { return f.tag == st->tag; });
    if (it == outstanding_.end()) return;
    const FetchOp& op = ops_[it->op];
    outstanding_.erase(it);
    if (op.select) {
        select_done(op, *st);
    } else {
        --fetches_;
        in_flight_bytes_ -= op.bytes;
        if (st->status != "OK" && !failure_)
            failure_ = Error(ErrorKind::Protocol, "the server refused to hand out messages").set_server_text(st->text);
    }
    send_more();
}

// A folder opened again mid-pipeline must be the one its UIDs are of.
void ImapSession::FetchPipeline::select_done(const FetchOp& op, const ImapStatusLine& st) {
    FetchRun& run = runs_[op.run];
    auto known = s_.opened_validity_.find(run.folder);
    bool same = st.status == "OK" && (known == s_.opened_validity_.end() || known->second == reselected_.uidvalidity);
    if (!same && !failure_)
        failure_ = st.status != "OK"
                       ? Error(ErrorKind::Protocol, "cannot open folder '" + run.folder + "' again").set_server_text(st.text)
                       : Error(ErrorKind::Protocol, "folder '" + run.folder +
                                                        "' changed its UIDVALIDITY during the session; its "
                                                        "messages were not taken (the next run recognises them)");
    run.bad = !same;
    if (same) s_.note_selected(run.folder, true, read_only_, reselected_.uidvalidity);
    else s_.selected_.clear();
    reselected_ = FolderInfo{};
}

void ImapSession::FetchPipeline::run() {
    auto& reader = *s_.reader_;
    reader.want_stream = [this](const std::string& text, std::uint64_t size) { return want_stream(text, size); };
    reader.stream_data = [this](std::string_view chunk) {
        if (!dropping_) handler_.data(chunk);
    };
    reader.stream_end = [] {};
    reader.on_response = [this](std::string& text) {
        if (text.rfind("* ", 0) == 0) on_untagged(text);
        else on_tagged(text);
    };
    send_more();
    s_.pump([&] { return outstanding_.empty() && (next_op_ == ops_.size() || failure_ || handler_.stop_requested()); });
    if (!handler_.stop_requested() && !failure_) {
        for (std::size_t r = 0; r < runs_.size(); ++r)
            for (auto uid : runs_[r].uids)
                if (!received_.count({r, uid}))
                    handler_.failed(*runs_[r].wanted[uid], "the message was not returned (expunged meanwhile?)");
    }
    if (failure_) throw *failure_;
}

void ImapSession::fetch(const std::vector<RemoteMessage>& msgs, MessageHandler& handler) {
    if (msgs.empty()) return;
    FetchPipeline(*this, msgs, handler).run();
}

std::map<std::uint32_t, std::string> ImapSession::fetch_header_fields(const std::vector<std::uint32_t>& uids_in,
                                                                      const std::string& fields,
                                                                      std::map<std::uint32_t, std::string>* internal_dates) {
    std::map<std::uint32_t, std::string> out;
    std::size_t total = 0;
    struct KeepReset {
        Reader& r;
        ~KeepReset() { r.literal_keep = 0; }
    } reset{*reader_};
    reader_->literal_keep = limits::kMaxHeaderKept;
    for (const auto& set : uid_sets(uids_in)) {
        std::string item = fields.empty() ? "BODY.PEEK[HEADER]" : "BODY.PEEK[HEADER.FIELDS (" + fields + ")]";
        auto done = run("UID FETCH " + set + (internal_dates ? " (UID INTERNALDATE " : " (UID ") + item + ")",
                        [&](const std::string& text) {
                            auto a = parse_fetch(text, false, reader_->literals());
                            if (!a || !a->uid || !a->has_header_fields) return;
                            total += a->header_fields.size();
                            if (total > limits::kMaxHeadersTotal)
                                throw Error(ErrorKind::Protocol,
                                            "the server's header replies exceed " +
                                                std::to_string(limits::kMaxHeadersTotal >> 20) +
                                                " MiB in total (pullmail's limit for one listing)");
                            if (internal_dates && !a->internal_date.empty())
                                (*internal_dates)[a->uid] = a->internal_date;
                            out[a->uid] = std::move(a->header_fields);
                        });
        if (done.status != "OK")
            throw Error(ErrorKind::Protocol, "the server refused to hand out message headers").set_server_text(done.text);
    }
    return out;
}

namespace {

// An untagged expunge report: "* N EXPUNGE", or "* N EXPUNGED" as GNU
// Mailutils' imap4d writes it.
bool is_expunge_report(const std::vector<ImapValue>& vals) {
    return vals.size() == 3 && ((vals)[2].is_atom("EXPUNGE") || vals[2].is_atom("EXPUNGED"));
}

}  // namespace

ImapSession::DeleteResult ImapSession::delete_messages(const std::vector<std::uint32_t>& uids_in) {
    DeleteResult r;
    std::vector<std::uint32_t> uids = uids_in;
    std::sort(uids.begin(), uids.end());
    bool uidplus = has_capability("UIDPLUS");
    auto count_expunge = [&](const std::string& text) {
        auto vals = parse_imap_values(text, reader_->literals());
        if (vals && is_expunge_report(*vals)) ++r.expunged;
    };
    // STORE and UID EXPUNGE go out together: UID EXPUNGE removes only the
    // listed UIDs that carry \Deleted, so it is safe even if a STORE failed.
    std::vector<std::string> sets = uid_sets(uids);
    std::vector<std::string> cmds;
    for (const auto& set : sets) cmds.push_back("UID STORE " + set + " +FLAGS.SILENT (\\Deleted)");
    if (uidplus)
        for (const auto& set : sets) cmds.push_back("UID EXPUNGE " + set);
    auto st = run_all(cmds, count_expunge);
    for (std::size_t i = 0; i < st.size(); ++i) {
        if (st[i].status == "OK") continue;
        throw Error(ErrorKind::Protocol, i < sets.size() ? "the server refused to flag delivered messages as deleted"
                                                         : "the server refused UID EXPUNGE")
            .set_server_text(st[i].text);
    }
    if (uidplus) {
        r.removed = no_longer_listed(uids, sets);
        return r;
    }
    // Without UIDPLUS, EXPUNGE removes every \Deleted message: do it only
    // when no other message carries the flag.
    std::set<std::uint32_t> ours(uids.begin(), uids.end());
    bool others = false;
    auto search = run("UID SEARCH DELETED", [&](const std::string& text) {
        auto vals = parse_imap_values(text, reader_->literals());
        if (vals && vals->size() >= 2 && (*vals)[1].is_atom("SEARCH"))
            for (std::size_t i = 2; i < vals->size(); ++i)
                if (!ours.count(static_cast<std::uint32_t>((*vals)[i].number()))) others = true;
    });
    if (search.status != "OK" || others) {
        r.expunge_skipped = true;
        return r;
    }
    auto ex = run("EXPUNGE", count_expunge);
    if (ex.status != "OK") throw Error(ErrorKind::Protocol, "the server refused EXPUNGE").set_server_text(ex.text);
    r.removed = no_longer_listed(uids, sets);
    return r;
}

std::vector<std::uint32_t> ImapSession::no_longer_listed(const std::vector<std::uint32_t>& uids,
                                                   const std::vector<std::string>& sets) {
    // Expunge reports are counted, but they name sequence numbers and not
    // every server words them alike: what was removed is what the folder
    // no longer lists. A server that refuses the search is taken at its
    // word (the expunge succeeded).
    std::set<std::uint32_t> listed;
    std::vector<std::string> cmds;
    for (const auto& set : sets) cmds.push_back("UID SEARCH UID " + set);
    auto st = run_all(cmds, [&](const std::string& text) {
        auto vals = parse_imap_values(text, reader_->literals());
        if (vals && vals->size() >= 2 && (*vals)[1].is_atom("SEARCH"))
            for (std::size_t i = 2; i < vals->size(); ++i) listed.insert(static_cast<std::uint32_t>((*vals)[i].number()));
    });
    for (const auto& s : st)
        if (s.status != "OK") return uids;
    std::vector<std::uint32_t> out;
    for (auto u : uids)
        if (!listed.count(u)) out.push_back(u);
    return out;
}

ImapSession::DeleteResult ImapSession::move_to_trash(const std::vector<std::uint32_t>& uids_in,
                                                     const std::string& trash) {
    std::vector<std::uint32_t> uids = uids_in;
    std::sort(uids.begin(), uids.end());
    std::vector<std::string> sets = uid_sets(uids);
    std::string dest = mailbox_arg(trash);
    bool move = has_capability("MOVE");
    std::vector<std::string> cmds;
    for (const auto& set : sets) cmds.push_back((move ? "UID MOVE " : "UID COPY ") + set + " " + dest);
    DeleteResult r;
    auto st = run_all(cmds, [&](const std::string& text) {
        auto vals = parse_imap_values(text, reader_->literals());
        if (vals && is_expunge_report(*vals)) ++r.expunged;
    });
    for (const auto& s : st)
        if (s.status != "OK")
            throw Error(ErrorKind::Protocol, std::string("the server refused to ") + (move ? "move" : "copy") +
                                                 " delivered messages to the trash folder '" + trash + "'")
                .set_server_text(s.text);
    if (!move) return delete_messages(uids);  // the copies are in the trash: now the originals go
    r.removed = no_longer_listed(uids, sets);
    return r;
}

ImapSession::FolderInfo ImapSession::open_or_create(const std::string& folder, std::vector<RemoteMessage>* listing) {
    try {
        return select(folder, true, listing);
    } catch (const Error&) {
        auto st = run("CREATE " + mailbox_arg(folder), nullptr);
        if (st.status != "OK")
            throw Error(ErrorKind::Delivery, "cannot create folder '" + folder + "' on the target server")
                .set_server_text(st.text);
        return select(folder, true, listing);
    }
}

void ImapSession::pump(const std::function<bool()>& done) {
    try {
        ch_.pump([&](std::string_view b) { reader_->parser.feed(b, *reader_); }, done);
    } catch (const Error& e) {
        // A connection closed (or gone quiet) after a BYE, or garbage right
        // after it: the server said why it is leaving (shutdown, idle
        // timeout, too many connections), so say that.
        bool after_bye = e.kind() == ErrorKind::Temporary || (e.kind() == ErrorKind::Protocol && reader_->bye_last);
        if (reader_->bye.empty() || !after_bye) throw;
        auto st = parse_status_line(reader_->bye);
        std::string why = st && !st->text.empty() ? (st->code.empty() ? "" : "[" + st->code + "] ") + st->text
                                                  : reader_->bye;
        throw Error(ErrorKind::Temporary, "the server ended the session (BYE)", true).set_server_text(why);
    }
}

void ImapSession::send_all() {
    pump([&] { return !abandoned_.empty() || !ch_.has_output(); });
}

void ImapSession::abandon(const std::string& why) {
    if (abandoned_.empty()) abandoned_ = why;
}

void ImapSession::on_append_response(std::string& text) {
    ch_.trace_in(text.size() > 300 ? text.substr(0, 300) + "..." : text);
    // Past that point the server may be answering the message's lines, whose
    // tags anyone can write ("P7 NOOP" -> "P7 OK"): nothing it says counts.
    if (!abandoned_.empty()) return;
    if (text.rfind("+", 0) == 0) {
        continuation_ = true;
        return;
    }
    auto st = parse_status_line(text);
    if (!st || st->tag == "*") return;
    auto it = std::find_if(appends_.begin(), appends_.end(), [&](const auto& p) { return p.tag == st->tag; });
    if (it == appends_.end()) return;
    AppendResult r;
    r.id = it->id;
    r.ok = st->status == "OK";
    bool sent = it->sent || (it->queued_all && !ch_.has_output());
    if (!sent || st->status == "BAD") {
        // It may not have read the literal: what follows could be taken for
        // commands (see append()).
        r.ok = false;
        r.abandoned = true;
        abandon(std::string("the server answered the APPEND of message ") + it->id +
                (sent ? " with BAD" : " before it had the message") +
                ", so it might take the message's lines for commands; pullmail abandoned the connection");
    }
    if (r.ok) {
        std::string code = ascii_upper(st->code);
        if (code.rfind("APPENDUID ", 0) == 0) {
            char* end = nullptr;
            r.uidvalidity = static_cast<std::uint32_t>(std::strtoul(code.c_str() + 10, &end, 10));
            r.uid = static_cast<std::uint32_t>(std::strtoul(end, nullptr, 10));
        }
    } else {
        r.server_text = sanitize(st->status + " " + (st->code.empty() ? st->text : "[" + st->code + "] " + st->text));
    }
    append_results_.push_back(std::move(r));
    appends_.erase(it);
}

void ImapSession::append(const std::string& folder, const AppendArgs& args, int fd, std::uint64_t size,
                         std::string id) {
    if (!abandoned_.empty()) {
        AppendResult r;
        r.id = std::move(id);
        r.abandoned = true;
        append_results_.push_back(std::move(r));
        return;
    }
    bool literal_plus = has_capability("LITERAL+");
    auto cmd = append_command(server_name(folder), args, size, literal_plus);
    if (!cmd) throw Error(ErrorKind::Config, "folder '" + folder + "' cannot be written as an IMAP mailbox name");
    std::string tag = next_tag();
    appends_.push_back({tag, id});
    reader_->want_stream = nullptr;
    reader_->on_response = [this](std::string& t) { on_append_response(t); };
    ch_.command(tag + " " + *cmd);
    try {
        send_literal(tag, fd, size, literal_plus);
    } catch (...) {
        // A literal cut short would swallow whatever is sent next.
        abandon("pullmail could not send message " + id + " whole, so the server would take what follows for "
                "part of it; pullmail abandoned the connection");
        throw;
    }
    if (!literal_plus) wait_appends();  // one at a time without LITERAL+
}

void ImapSession::send_literal(const std::string& tag, int fd, std::uint64_t size, bool literal_plus) {
    auto mine = [&]() -> PendingAppend* {
        for (auto& p : appends_)
            if (p.tag == tag) return &p;
        return nullptr;  // answered already
    };
    if (!literal_plus) {
        continuation_ = false;
        pump([&] { return continuation_ || !mine(); });
        if (!continuation_) return;  // answered instead of "+": abandoned, see on_append_response
    }
    // Stream the literal from the spool, reading responses meanwhile so a
    // server that answers early never deadlocks us (and is caught early).
    std::vector<char> buf(256 * 1024);
    std::uint64_t off = 0;
    while (off < size && abandoned_.empty()) {
        ssize_t n = ::pread(fd, buf.data(), std::min<std::uint64_t>(buf.size(), size - off), static_cast<off_t>(off));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            throw Error(ErrorKind::LocalIO, std::string("cannot read the spooled message: ") +
                                                (n < 0 ? std::strerror(errno) : "unexpected end of file"));
        ch_.queue(std::string_view(buf.data(), static_cast<std::size_t>(n)));
        off += static_cast<std::uint64_t>(n);
        send_all();
    }
    if (!abandoned_.empty()) return;
    ch_.queue("\r\n");
    if (auto* p = mine()) p->queued_all = true;
    send_all();
    if (auto* p = mine()) p->sent = abandoned_.empty();
}

void ImapSession::wait_appends() {
    reader_->on_response = [this](std::string& t) { on_append_response(t); };
    if (abandoned_.empty()) pump([&] { return appends_.empty() || !abandoned_.empty(); });
    reader_->on_response = nullptr;
    if (abandoned_.empty()) return;
    for (auto& p : appends_) {  // unanswered on an abandoned connection: unknown
        AppendResult r;
        r.id = std::move(p.id);
        r.abandoned = true;
        append_results_.push_back(std::move(r));
    }
    appends_.clear();
}

std::vector<ImapSession::AppendResult> ImapSession::finish_appends() {
    wait_appends();
    std::vector<AppendResult> out;
    out.swap(append_results_);
    return out;
}

bool ImapSession::unselect() {
    if (!may_be_selected_) return true;
    if (!has_capability("UNSELECT") && !has_capability("IMAP4rev2")) return false;
    if (run("UNSELECT", nullptr).status != "OK") return false;
    may_be_selected_ = false;
    selected_.clear();  // reselect() must send a SELECT again
    return true;
}

bool ImapSession::noop() { return run("NOOP", nullptr).status == "OK"; }

void ImapSession::logout(bool wait_for_reply) noexcept {
    if (!abandoned_.empty()) return;  // not one more byte on it
    try {
        if (wait_for_reply) {
            run("LOGOUT", nullptr);
        } else {
            ch_.command(next_tag() + " LOGOUT");
            ch_.flush();
        }
    } catch (...) {
    }
}

}  // namespace pullmail
