#include "text_util.h"

namespace pullmail {

std::string ascii_upper(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return out;
}

std::string ascii_lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

namespace {
char upper_char(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }
}  // namespace

bool ascii_iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && ascii_istarts_with(a, b);
}

bool ascii_istarts_with(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
        if (upper_char(s[i]) != upper_char(prefix[i])) return false;
    return true;
}

void for_each_header_field(std::string_view block,
                           const std::function<void(const std::string& name, const std::string& value)>& fn) {
    std::string name, value;
    bool have = false;
    auto emit = [&] {
        if (have) fn(name, value);
        have = false;
    };
    std::size_t pos = 0;
    while (pos < block.size()) {
        auto nl = block.find('\n', pos);
        std::string_view line = block.substr(pos, nl == std::string_view::npos ? block.size() - pos : nl - pos);
        pos = nl == std::string_view::npos ? block.size() : nl + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) break;
        if (line[0] == ' ' || line[0] == '\t') {
            if (have) value += " " + std::string(line);
            continue;
        }
        emit();
        auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;  // not a field (e.g. a From_ line): skipped
        std::string_view n = line.substr(0, colon);
        while (!n.empty() && (n.back() == ' ' || n.back() == '\t')) n.remove_suffix(1);
        name = ascii_lower(n);
        value = std::string(line.substr(colon + 1));
        have = true;
    }
    emit();
}

}  // namespace pullmail
