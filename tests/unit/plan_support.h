// plan_support.h — listing entries for the planner's unit tests.
#pragma once

#include <cstdint>
#include <string>

#include "message_key.h"
#include "sync_plan.h"

namespace pullmail::test {

// Message n of a POP3 listing, as fetch_pop3 lists it: UIDL, key, size.
inline RemoteMessage pop3_listed(std::uint32_t n, const std::string& uidl, std::uint64_t size) {
    RemoteMessage m;
    m.number = n;
    m.uidl = uidl;
    m.key = pop3_key(uidl);
    m.size = size;
    return m;
}

}  // namespace pullmail::test
