#include "report.h"

#include <cstdio>

namespace pullmail {

std::string json_escape(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out;
}

std::string summary_line(const AccountResult& r, const std::string& target, bool keep) {
    std::string line = std::to_string(r.new_messages) + " new message(s): " + std::to_string(r.delivered) +
                       " delivered";
    if (r.already_present) line += ", " + std::to_string(r.already_present) + " already present";
    if (r.failed) line += ", " + std::to_string(r.failed) + " failed";
    if (r.skipped) line += ", " + std::to_string(r.skipped) + " skipped";
    line += "; " + std::to_string(r.bytes) + " bytes to " + target;
    if (!keep) line += ", " + std::to_string(r.deleted) + " deleted on the server";
    return line;
}

std::string json_report(const std::vector<AccountResult>& results, int exit_status) {
    std::string out = "{\"accounts\":[";
    bool first = true;
    for (const auto& r : results) {
        if (!first) out += ",";
        first = false;
        out += "{\"name\":\"" + json_escape(r.name) + "\",\"new\":" + std::to_string(r.new_messages) +
               ",\"fetched\":" + std::to_string(r.fetched()) + ",\"delivered\":" + std::to_string(r.delivered) +
               ",\"already_present\":" + std::to_string(r.already_present) +
               ",\"recognised\":" + std::to_string(r.recognised) + ",\"skipped\":" + std::to_string(r.skipped) +
               ",\"failed\":" + std::to_string(r.failed) + ",\"bytes\":" + std::to_string(r.bytes) +
               ",\"deleted\":" + std::to_string(r.deleted) + ",\"exit_status\":" + std::to_string(r.exit_status) +
               ",\"errors\":[";
        bool ef = true;
        for (const auto& e : r.errors) {
            if (!ef) out += ",";
            ef = false;
            out += "{\"kind\":\"" + std::string(kind_name(e.kind())) +
                   "\",\"temporary\":" + (e.temporary() ? "true" : "false") + ",\"message\":\"" +
                   json_escape(e.detail()) + "\"}";
        }
        out += "]}";
    }
    out += "],\"exit_status\":" + std::to_string(exit_status) + "}\n";
    return out;
}

int run_exit_status(const std::vector<AccountResult>& results, bool check) {
    int status = 0;
    std::size_t new_mail = 0;
    for (const auto& r : results) {
        status = worse_status(status, r.exit_status);
        new_mail += r.new_messages;
    }
    if (check && status == 0) return new_mail > 0 ? 0 : 1;
    return status;
}

}  // namespace pullmail
