#include "mail_date.h"

#include <cctype>
#include <cstdio>
#include <vector>

#include "text_util.h"

namespace pullmail {

namespace {

std::vector<std::string> tokens(std::string_view s) {
    std::vector<std::string> out;
    std::string cur;
    int comment = 0;
    for (char c : s) {
        if (c == '(') {
            ++comment;
            continue;
        }
        if (c == ')' && comment > 0) {
            --comment;
            continue;
        }
        if (comment) continue;
        if (c == ' ' || c == '\t' || c == ',' || c == '\r' || c == '\n') {
            if (!cur.empty()) out.push_back(cur), cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) out.push_back(cur);
    return out;
}

int month_index(const std::string& m) {
    static const char* names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
    if (m.size() < 3) return -1;
    std::string l;
    for (int i = 0; i < 3; ++i) l += static_cast<char>(std::tolower(static_cast<unsigned char>(m[i])));
    for (int i = 0; i < 12; ++i)
        if (l == names[i]) return i;
    return -1;
}

bool all_digits(const std::string& s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    return true;
}

}  // namespace

std::optional<std::string> rfc5322_to_imap_date(std::string_view date) {
    auto t = tokens(date);
    std::size_t i = 0;
    if (i < t.size() && !all_digits(t[i])) ++i;  // weekday
    if (i + 3 >= t.size() || !all_digits(t[i])) return std::nullopt;  // day month year time
    int day = std::stoi(t[i]);
    int mon = month_index(t[i + 1]);
    if (mon < 0 || !all_digits(t[i + 2])) return std::nullopt;
    int year = std::stoi(t[i + 2]);
    if (t[i + 2].size() <= 2) year += year < 50 ? 2000 : 1900;
    else if (t[i + 2].size() == 3) year += 1900;
    int hh = 0, mm = 0, ss = 0;
    if (std::sscanf(t[i + 3].c_str(), "%d:%d:%d", &hh, &mm, &ss) < 2) return std::nullopt;
    if (day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 || year < 1900 || year > 9999) return std::nullopt;
    std::string zone = "+0000";
    if (i + 4 < t.size()) {
        const std::string& z = t[i + 4];
        if ((z[0] == '+' || z[0] == '-') && z.size() == 5 && all_digits(z.substr(1))) {
            zone = z;
        } else {
            static const struct {
                const char* name;
                const char* off;
            } zones[] = {{"UT", "+0000"},  {"GMT", "+0000"}, {"UTC", "+0000"}, {"Z", "+0000"},
                         {"EST", "-0500"}, {"EDT", "-0400"}, {"CST", "-0600"}, {"CDT", "-0500"},
                         {"MST", "-0700"}, {"MDT", "-0600"}, {"PST", "-0800"}, {"PDT", "-0700"}};
            std::string up = ascii_upper(z);
            for (const auto& e : zones)
                if (up == e.name) zone = e.off;
        }
    }
    static const char* mnames[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char buf[64];
    std::snprintf(buf, sizeof buf, "%02d-%s-%04d %02d:%02d:%02d %s", day, mnames[mon], year, hh, mm, ss, zone.c_str());
    return std::string(buf);
}

std::string arrival_date_from_header(std::string_view block) {
    std::string received, date;
    bool have_received = false;
    for_each_header_field(block, [&](const std::string& name, const std::string& value) {
        if (name == "received" && !have_received) {
            have_received = true;  // the topmost one: added by the last hop, the mailbox's server
            received = value;
        } else if (name == "date" && date.empty()) {
            date = value;
        }
    });
    if (have_received) {
        auto semi = received.rfind(';');
        if (semi != std::string::npos)
            if (auto d = rfc5322_to_imap_date(received.substr(semi + 1))) return *d;
    }
    if (auto d = rfc5322_to_imap_date(date)) return *d;
    return {};
}

}  // namespace pullmail
