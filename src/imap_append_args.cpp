#include "imap_append_args.h"

#include "imap_codec.h"
#include "mail_date.h"
#include "text_util.h"

namespace pullmail {

namespace {

// ATOM-CHAR: any CHAR (0x01-0x7f) except atom-specials: ( ) { SP CTL % * " \ ]
bool atom_char(char c) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return false;
    switch (c) {
        case '(': case ')': case '{': case '%': case '*': case '"': case '\\': case ']':
            return false;
        default:
            return true;
    }
}

}  // namespace

std::optional<std::string> append_flag(std::string_view flag) {
    static const char* const system[] = {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"};
    if (!flag.empty() && flag[0] == '\\') {
        for (const char* s : system)
            if (ascii_iequals(flag, s)) return std::string(s);
        return std::nullopt;
    }
    if (flag.empty() || flag.size() > kMaxAppendKeyword) return std::nullopt;
    for (char c : flag)
        if (!atom_char(c)) return std::nullopt;
    return std::string(flag);
}

AppendArgs build_append_args(const std::vector<std::string>& flags, std::string_view internal_date) {
    AppendArgs a;
    std::vector<std::string> sent;
    std::string list;
    for (const auto& f : flags) {
        auto v = append_flag(f);
        if (!v) {
            a.dropped.push_back(f);
            continue;
        }
        bool dup = false;
        for (const auto& s : sent) dup = dup || ascii_iequals(s, *v);
        if (dup) continue;
        if (list.size() + 1 + v->size() + 2 > kMaxAppendFlagList) {
            a.dropped.push_back(f);
            continue;
        }
        if (!list.empty()) list += ' ';
        list += *v;
        sent.push_back(std::move(*v));
    }
    a.flags = "(" + list + ")";
    if (!internal_date.empty()) {
        if (auto d = parse_imap_date_time(internal_date))
            a.date = "\"" + format_imap_date_time(*d) + "\"";
        else
            a.dropped.emplace_back(internal_date);
    }
    return a;
}

std::optional<std::string> append_command(std::string_view mailbox, const AppendArgs& args, std::uint64_t size,
                                          bool literal_plus) {
    auto box = imap_astring(mailbox, false);
    if (!box) return std::nullopt;
    std::string cmd = "APPEND " + *box + " " + args.flags;
    if (!args.date.empty()) cmd += " " + args.date;
    cmd += " {" + std::to_string(size) + (literal_plus ? "+}" : "}");
    return cmd;
}

}  // namespace pullmail
