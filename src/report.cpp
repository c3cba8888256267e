#include "report.h"

#include <nlohmann/json.hpp>

namespace pullmail {

namespace {

// ordered_json keeps the fields in the documented order (report.h). Text
// that is not valid UTF-8 (a server's words, an account name) is written
// with U+FFFD in place of the bad bytes, so the output is always JSON.
using Json = nlohmann::ordered_json;

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n"; }

}  // namespace

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
    Json accounts = Json::array();
    for (const auto& r : results) {
        Json errors = Json::array();
        for (const auto& e : r.errors)
            errors.push_back({{"kind", kind_name(e.kind())}, {"temporary", e.temporary()}, {"message", e.detail()}});
        accounts.push_back({{"name", r.name},
                            {"new", r.new_messages},
                            {"fetched", r.fetched()},
                            {"delivered", r.delivered},
                            {"already_present", r.already_present},
                            {"recognised", r.recognised},
                            {"skipped", r.skipped},
                            {"failed", r.failed},
                            {"bytes", r.bytes},
                            {"deleted", r.deleted},
                            {"exit_status", r.exit_status},
                            {"errors", std::move(errors)}});
    }
    return dump({{"accounts", std::move(accounts)}, {"exit_status", exit_status}});
}

std::string json_error_report(const std::string& message, int exit_status) {
    return dump({{"accounts", Json::array()}, {"error", message}, {"exit_status", exit_status}});
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
