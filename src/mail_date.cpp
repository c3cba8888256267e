#include "mail_date.h"

#include <charconv>
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

const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// 1..12 for a month name (its first three letters, any case), else 0.
int month_number(std::string_view m) {
    if (m.size() < 3) return 0;
    for (int i = 0; i < 12; ++i)
        if (ascii_iequals(m.substr(0, 3), kMonths[i])) return i + 1;
    return 0;
}

// A number of min..max ASCII digits and nothing else (no sign, no space).
// Never throws: from_chars on at most 4 digits cannot overflow.
std::optional<int> digits(std::string_view s, std::size_t min, std::size_t max) {
    if (s.size() < min || s.size() > max) return std::nullopt;
    for (char c : s)
        if (c < '0' || c > '9') return std::nullopt;
    int v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

// "+hhmm" / "-hhmm" (hh 00-99, mm 00-59) as minutes east of UTC.
std::optional<int> numeric_zone(std::string_view z) {
    if (z.size() != 5 || (z[0] != '+' && z[0] != '-')) return std::nullopt;
    auto hh = digits(z.substr(1, 2), 2, 2), mm = digits(z.substr(3, 2), 2, 2);
    if (!hh || !mm || *mm > 59) return std::nullopt;
    int minutes = *hh * 60 + *mm;
    return z[0] == '-' ? -minutes : minutes;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int year, int month) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && leap(year) ? 29 : days[month - 1];
}

// "hh:mm" or "hh:mm:ss", one or two digits each.
bool parse_time(std::string_view t, DateTime& d) {
    int* fields[] = {&d.hour, &d.minute, &d.second};
    d.second = 0;
    std::size_t n = 0;
    while (n < 3) {
        auto colon = t.find(':');
        auto v = digits(t.substr(0, colon), 1, 2);
        if (!v) return false;
        *fields[n++] = *v;
        if (colon == std::string_view::npos) break;
        t.remove_prefix(colon + 1);
        if (n == 3) return false;  // a fourth field
    }
    return n >= 2;
}

// The zone of an RFC 5322 date: numeric, or an obsolete name; anything
// else counts as UTC ("-0000": the zone is unknown, RFC 5322 3.3).
int zone_of(std::string_view z) {
    if (auto n = numeric_zone(z)) return *n;
    static const struct {
        const char* name;
        int minutes;
    } zones[] = {{"UT", 0},         {"GMT", 0},        {"UTC", 0},        {"Z", 0},
                 {"EST", -5 * 60},  {"EDT", -4 * 60},  {"CST", -6 * 60},  {"CDT", -5 * 60},
                 {"MST", -7 * 60},  {"MDT", -6 * 60},  {"PST", -8 * 60},  {"PDT", -7 * 60}};
    for (const auto& e : zones)
        if (ascii_iequals(z, e.name)) return e.minutes;
    return 0;
}

}  // namespace

bool valid_date_time(const DateTime& d) {
    constexpr int kMaxZone = 99 * 60 + 59;
    return d.year >= 1900 && d.year <= 9999 && d.month >= 1 && d.month <= 12 && d.day >= 1 &&
           d.day <= days_in_month(d.year, d.month) && d.hour >= 0 && d.hour <= 23 && d.minute >= 0 &&
           d.minute <= 59 && d.second >= 0 && d.second <= 60 && d.zone_minutes >= -kMaxZone &&
           d.zone_minutes <= kMaxZone;
}

std::optional<DateTime> parse_imap_date_time(std::string_view s) {
    // date-day-fixed "-" date-month "-" date-year SP time SP zone
    if (!s.empty() && s[0] == ' ') s.remove_prefix(1);  // " 1-Jul-2003"
    DateTime d;
    auto dash = s.find('-');
    auto day = digits(s.substr(0, dash), 1, 2);
    if (!day || dash == std::string_view::npos) return std::nullopt;
    s.remove_prefix(dash + 1);
    if (s.size() != 4 + 4 + 1 + 8 + 1 + 5 || s[3] != '-' || s[8] != ' ' || s[17] != ' ' || s[11] != ':' ||
        s[14] != ':')
        return std::nullopt;
    d.day = *day;
    d.month = month_number(s.substr(0, 3));
    auto year = digits(s.substr(4, 4), 4, 4);
    auto hh = digits(s.substr(9, 2), 2, 2), mm = digits(s.substr(12, 2), 2, 2), ss = digits(s.substr(15, 2), 2, 2);
    auto zone = numeric_zone(s.substr(18));
    if (!year || !hh || !mm || !ss || !zone) return std::nullopt;
    d.year = *year;
    d.hour = *hh;
    d.minute = *mm;
    d.second = *ss;
    d.zone_minutes = *zone;
    if (!valid_date_time(d)) return std::nullopt;
    return d;
}

std::string format_imap_date_time(const DateTime& d) {
    int z = d.zone_minutes < 0 ? -d.zone_minutes : d.zone_minutes;
    char buf[40];
    std::snprintf(buf, sizeof buf, "%02d-%s-%04d %02d:%02d:%02d %c%02d%02d", d.day, kMonths[d.month - 1], d.year,
                  d.hour, d.minute, d.second, d.zone_minutes < 0 ? '-' : '+', z / 60, z % 60);
    return buf;
}

std::optional<std::string> rfc5322_to_imap_date(std::string_view date) {
    auto t = tokens(date);
    std::size_t i = 0;
    if (i < t.size() && !digits(t[i], 1, 2)) ++i;  // weekday
    if (i + 3 >= t.size()) return std::nullopt;     // day month year time [zone]
    DateTime d;
    auto day = digits(t[i], 1, 2);
    auto year = digits(t[i + 2], 2, 4);
    d.month = month_number(t[i + 1]);
    if (!day || !year || !d.month || t[i + 1].size() > 9 || !parse_time(t[i + 3], d)) return std::nullopt;
    d.day = *day;
    d.year = *year;
    if (t[i + 2].size() == 2) d.year += d.year < 50 ? 2000 : 1900;  // obs-year
    else if (t[i + 2].size() == 3) d.year += 1900;
    d.zone_minutes = i + 4 < t.size() ? zone_of(t[i + 4]) : 0;
    if (!valid_date_time(d)) return std::nullopt;
    return format_imap_date_time(d);
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
