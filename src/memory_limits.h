// memory_limits.h — how much a server may make pullmail hold in memory.
//
// Message bodies are streamed to the delivery and never count against these;
// everything else a server sends (listings, responses, header replies for
// fingerprints) is held while it is parsed, so it is bounded here, generously
// for real mailboxes. Beyond a limit the account stops with Error(Protocol)
// naming the limit (nothing is deleted); header replies are cut instead.
// Documented in man/pullmail.1 (RELIABILITY).
#pragma once

#include <cstddef>

namespace pullmail::limits {

// Messages in one listing: a POP3 mailbox (UIDL, LIST) or an IMAP folder.
inline constexpr std::size_t kMaxListing = 2'000'000;
// Bytes of one POP3 listing reply (UIDL or LIST) or CAPA.
inline constexpr std::size_t kMaxListingBytes = 64u << 20;
// Bytes of one IMAP response held at once outside a streamed BODY[]
// literal: its text and its other literals together.
inline constexpr std::size_t kMaxResponse = 32u << 20;
// Header bytes kept per message for fingerprints (POP3 TOP n 0, IMAP
// HEADER.FIELDS); the rest of the reply is read and discarded.
inline constexpr std::size_t kMaxHeaderKept = 256u << 10;
// Header bytes kept for all the messages of one listing.
inline constexpr std::size_t kMaxHeadersTotal = 128u << 20;

}  // namespace pullmail::limits
