// imap_uid_set. Input: byte 0..1 = max_len, byte 2 = start, rest = UIDs
// (4 bytes each, sorted and made unique here as callers do). The set must be
// within max_len, consume only when it can, and name exactly the UIDs it
// claims to cover: sorted_uids[start .. start+n).
#include <algorithm>
#include <cstring>

#include "fuzz_support.h"
#include "imap_codec.h"

using namespace pullmail;

namespace {

// Expands "1:5,7" into its UIDs; nullopt when malformed.
std::optional<std::vector<std::uint32_t>> expand(const std::string& set) {
    std::vector<std::uint32_t> out;
    std::size_t pos = 0;
    auto number = [&](std::uint32_t& v) {
        std::size_t start = pos;
        std::uint64_t n = 0;
        while (pos < set.size() && set[pos] >= '0' && set[pos] <= '9') {
            n = n * 10 + static_cast<std::uint64_t>(set[pos++] - '0');
            if (n > UINT32_MAX) return false;
        }
        if (pos == start || set[start] == '0') return false;  // nz-number: no 0, no leading zeros
        v = static_cast<std::uint32_t>(n);
        return true;
    };
    for (;;) {
        std::uint32_t a = 0, b = 0;
        if (!number(a)) return std::nullopt;
        b = a;
        if (pos < set.size() && set[pos] == ':') {
            ++pos;
            if (!number(b) || b <= a) return std::nullopt;  // ours are ascending, and a:a would be waste
        }
        if (!out.empty() && a <= out.back()) return std::nullopt;
        if (b - a > 1000000) return std::nullopt;  // far beyond what the input can hold
        for (std::uint64_t u = a; u <= b; ++u) out.push_back(static_cast<std::uint32_t>(u));
        if (pos == set.size()) return out;
        if (set[pos++] != ',') return std::nullopt;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    std::size_t max_len = (std::size_t(data[0]) << 8 | data[1]) % 5000;
    std::vector<std::uint32_t> uids;
    for (std::size_t i = 3; i + 4 <= size; i += 4) {
        std::uint32_t u;
        std::memcpy(&u, data + i, 4);
        // Small UIDs and runs are what real folders have; keep most inputs there.
        if (data[2] & 0x80) u %= 4096;
        if (u) uids.push_back(u);
    }
    std::sort(uids.begin(), uids.end());
    uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
    std::size_t start = uids.empty() ? 0 : (data[2] & 0x7f) % (uids.size() + 1);

    std::string out = "junk";
    std::size_t n = imap_uid_set(uids, start, max_len, out);
    FUZZ_ASSERT(n <= uids.size() - start);
    if (n == 0) {
        FUZZ_ASSERT(start == uids.size() || max_len < std::to_string(uids[start]).size());
        return 0;
    }
    FUZZ_ASSERT(out.size() <= max_len);
    auto covered = expand(out);
    FUZZ_ASSERT(covered);
    FUZZ_ASSERT(std::equal(covered->begin(), covered->end(), uids.begin() + static_cast<long>(start),
                           uids.begin() + static_cast<long>(start + n)) &&
                covered->size() == n);
    // The set stops early only when the next UID would not have fitted.
    if (start + n < uids.size()) FUZZ_ASSERT(out.size() + 1 + std::to_string(uids[start + n]).size() > max_len);
    return 0;
}
