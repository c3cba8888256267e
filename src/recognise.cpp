// recognise.cpp — recognising already delivered messages by fingerprint.
#include <unordered_map>

#include "account_run.h"
#include "fingerprint.h"

namespace pullmail {

bool has_foreign_fingerprints(const AccountRun& run, const std::function<bool(const std::string&)>& is_current) {
    for (const auto& [key, e] : run.state.entries())
        if (e.fingerprint != "-" && !is_current(key)) return true;
    return false;
}

std::size_t recognise_delivered(AccountRun& run, std::vector<RemoteMessage>& candidates,
                                const std::map<std::uint32_t, std::string>& headers,
                                std::uint32_t (*id_of)(const RemoteMessage&),
                                const std::function<bool(const std::string&)>& is_current) {
    // Each old entry stands for one message: two identical old copies may
    // stand for two new ones, and a matched entry is retired (forgotten) so
    // that it cannot vouch for another message in a later run.
    std::unordered_map<std::string, std::vector<std::string>> known;
    for (const auto& [key, e] : run.state.entries())
        if (e.fingerprint != "-" && !is_current(key)) known[e.fingerprint].push_back(key);
    bool record = !run.opts.check && !run.opts.dry_run;
    std::size_t recognised = 0;
    std::vector<RemoteMessage> rest;
    for (auto& m : candidates) {
        auto h = headers.find(id_of(m));
        std::string fp = h == headers.end() ? "-" : header_fingerprint(h->second);
        bool match = false;
        if (run.opts.adopt) {
            match = true;
        } else if (fp != "-") {
            auto k = known.find(fp);
            if (k != known.end() && !k->second.empty()) {
                if (record) run.state.forget(k->second.back());
                k->second.pop_back();
                match = true;
            }
        }
        if (match) {
            if (record) run.state.record_seen(m.key, m.size, fp);
            ++recognised;
        } else {
            rest.push_back(std::move(m));
        }
    }
    candidates = std::move(rest);
    return recognised;
}

}  // namespace pullmail
