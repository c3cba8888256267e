// state_snapshot.h — the seen entries of a rewritten state file, packed.
//
// A rewrite (StateJournal::compact) writes the seen entries not as one S
// record each but as Z records of up to about 64 KiB of entries:
//   Z <count> <raw bytes> <payload>
// <payload> is the entries in the binary form below, compressed with
// zlib's deflate, with every 0x01 byte written as 0x01 0x01 and every '\n'
// as 0x01 0x02, so that a Z record is one line like any other and carries
// the line checksum of state_marks.h. Why: a kept mailbox's state is read
// on every poll; as text it was about 85 bytes a message (5 times mpop's
// file), packed it is about 20, and it loads faster (no checksum and no
// number parsing per message).
//
// An entry (all numbers LEB128 varints):
//   <shared> <rest> <rest bytes>   the key: <shared> bytes of the previous
//                                  key of the record, then <rest> bytes
//   <flags>                        one byte: bits 0-1 Delivered, bit 2
//                                  keep_on_server, bit 3 the fingerprint is
//                                  16 raw bytes (32 lower-case hex digits),
//                                  bit 4 it is text (<len> <bytes>), neither
//                                  for "-"; bit 5 a <where> follows
//   [fingerprint] <size> <time>    <time>: the record time less the previous
//                                  entry's, zigzag-encoded
//   [<len> <where bytes>]          as the S record's <where> field
// The codec takes and gives bytes only: the journal does the files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "state_store.h"

namespace pullmail {

// Packs entries into Z records.
class SnapshotWriter {
public:
    // The raw size at which a record is full (before compression).
    static constexpr std::size_t kBlockBytes = 64 * 1024;

    void add(std::string_view key, const SeenView& v);
    bool full() const { return raw_.size() >= kBlockBytes; }
    bool empty() const { return count_ == 0; }
    // The Z record of the entries added since the last take (without the
    // line checksum); the writer starts a new record after it.
    std::string take();

private:
    std::string raw_;
    std::string prev_key_;
    std::int64_t prev_time_ = 0;
    std::size_t count_ = 0;
};

// The entries of a Z record's fields (what follows "Z "), handed to f in
// order: f(key, info, fingerprint, where_field, fp_raw), each a view valid
// during the call; with fp_raw the fingerprint is the 16 bytes of one of 32
// lower-case hex digits (SeenStore takes them so), else its text. False, with no entry after the damage handed out, for a
// record that does not decode exactly (its checksum was valid, so a bug or
// tampering): the journal then treats it as a damaged line.
using SnapshotEntryFn = std::function<void(std::string_view key, const SeenInfo&, std::string_view fp,
                                           std::string_view where, bool fp_raw)>;
bool read_snapshot(std::string_view fields, const SnapshotEntryFn& f);

}  // namespace pullmail
