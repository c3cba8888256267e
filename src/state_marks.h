// state_marks.h — the marks file beside a state file (<state>.marks): the
// folder marks and UIDVALIDITYs of the state, readable without its records,
// so that a poll whose folders are all unchanged (sync_plan.h,
// folder_unchanged) never reads the records: its cost does not grow with
// the number of kept messages.
//
// Format (text; every line after the header "<crc32 hex> <record>", as in
// the state file):
//   pullmail-marks 1
//   G <generation> <bytes> <tail crc32 hex>
//                         the state file this file stands for: the
//                         generation in its header, its size, the CRC-32 of
//                         its last kTailBytes bytes (or all, when smaller)
//   V <folder> <uidvalidity>
//   M <folder> <uidvalidity> <uidnext> <exists>
//                         as the V and M records of the state file
//   E <n>                 the end: n V and M lines came before it
//
// The contract (state_journal.h): the file is written only after the
// records it vouches for are durable, only when the state holds no pending
// intent, and atomically (tmp + fsync + rename). It is believed only when
// its stamp equals the state file's (same generation, size and tail): the
// state file only ever grows by appends and is otherwise rewritten whole
// under a new random generation, so an equal stamp means the same records.
// Anything else (missing, damaged, another version, another state file, a
// state restored from a backup, appended since) means a full load.
// A believed marks file can only make pullmail skip a folder whose STATUS
// equals its mark; nothing is fetched, recorded or deleted without the
// records loaded.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pullmail {

// An IMAP folder as a complete sync left it: every message it held was
// recorded (sync_plan.h, folder_unchanged). Also what STATUS reports.
struct FolderMark {
    std::uint32_t uidvalidity = 0;
    std::uint32_t uidnext = 0;
    std::uint32_t exists = 0;
    bool operator==(const FolderMark&) const = default;
};

// Which state file, in which state: see the contract above.
struct StateStamp {
    std::string generation;
    std::uint64_t bytes = 0;
    std::uint32_t tail_crc = 0;
    bool operator==(const StateStamp&) const = default;
};

// How many bytes at the end of the state file the stamp's CRC covers.
constexpr std::uint64_t kTailBytes = 4096;

struct StateMarks {
    StateStamp stamp;
    std::map<std::string, std::uint32_t> uidvalidity;  // encoded folder -> UIDVALIDITY
    std::map<std::string, FolderMark> marks;           // encoded folder -> mark
};

std::string format_marks(const StateMarks& m);
// nullopt for anything but a complete, valid file of this version.
std::optional<StateMarks> parse_marks(std::string_view text);

// The tail CRC of the file open as `fd` whose size is `bytes`; nullopt
// when it cannot be read.
std::optional<std::uint32_t> tail_crc(int fd, std::uint64_t bytes);

// The record lines of the state and marks files: "<crc32 hex> <record>\n";
// verify_line returns the record of a line (without its '\n') when its
// checksum is valid.
std::string checked_line(const std::string& record);
std::optional<std::string_view> verify_line(std::string_view line);

// A new random generation (32 hex digits) for a state file written whole.
std::string new_generation();

}  // namespace pullmail
