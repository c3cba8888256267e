// The state journal loader. The input becomes a state file in a private
// temporary directory (on /dev/shm when there is one: the loader fsyncs),
// which StateJournal loads. Byte 0 bit 0 = write the input as it is; otherwise
// the file is "pullmail-state 1" and each input line gets its correct
// checksum (so the fuzzer reaches the record parser), except lines starting
// with '#', written without it and unchecked.
// Only pullmail::Error may escape. When the file loads, rewriting it
// (compact with rewrite) and loading again must give the same entries and
// intents; appending a record and loading again must add just that record.
// A file that does not load must load after StateJournal::repair().
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "fuzz_support.h"
#include "state_journal.h"

using namespace pullmail;

namespace {

const std::string& scratch_dir() {
    // Never destroyed: the atexit handler below runs after static destructors.
    static const std::string* dir = [] {
        std::string base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : std::filesystem::temp_directory_path().string();
        auto* d = new std::string(base + "/pullmail-fuzz-state.XXXXXX");
        if (!::mkdtemp(d->data())) std::abort();
        // Removed at exit; a crash leaves it behind (it is small).
        std::atexit([] {
            std::error_code ec;
            std::filesystem::remove_all(*dir, ec);
        });
        return d;
    }();
    return *dir;
}

std::string file_text(std::string_view in, bool raw) {
    if (raw) return std::string(in);
    std::string out = "pullmail-state 1\n";
    for (std::size_t pos = 0; pos < in.size();) {
        auto nl = in.find('\n', pos);
        bool complete = nl != std::string_view::npos;
        std::string_view line = in.substr(pos, (complete ? nl : in.size()) - pos);
        pos = complete ? nl + 1 : in.size();
        if (!line.empty() && line[0] == '#') {
            out.append(line.substr(1));
        } else {
            char crc[9];
            std::snprintf(crc, sizeof crc, "%08x", crc32(line));
            out += std::string(crc) + " " + std::string(line);
        }
        if (complete) out += '\n';
    }
    return out;
}

struct Snapshot {
    std::map<std::string, std::tuple<std::uint64_t, std::string, std::string>> seen;
    std::map<std::string, std::string> intents;
    bool operator==(const Snapshot&) const = default;
};

Snapshot snapshot(const StateJournal& s) {
    Snapshot out;
    for (const auto& [k, e] : s.entries()) out.seen[k] = {e.size, e.fingerprint, e.where};
    for (const auto& i : s.pending_intents()) out.intents[i.key] = i.intent;
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
    const std::string dir = scratch_dir() + "/s";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directory(dir);
    const std::string path = dir + "/acct.state";
    {
        std::ofstream f(path, std::ios::binary);
        f << file_text(in, data[0] & 1);
    }

    Snapshot first;
    bool loaded = fuzz::only_error([&] {
        StateJournal s(path);
        first = snapshot(s);
    });
    if (!loaded) {
        FUZZ_ASSERT(fuzz::only_error([&] { StateJournal::repair(path); }));
        FUZZ_ASSERT(fuzz::only_error([&] { StateJournal s(path); }));
        return 0;
    }
    // A file that loaded once keeps loading: any Error from here is a finding.
    FUZZ_ASSERT(fuzz::only_error([&] {
        StateJournal s(path);
        FUZZ_ASSERT(snapshot(s) == first);
        s.compact([](const std::string&) { return true; }, true);
        FUZZ_ASSERT(snapshot(s) == first);
    }));
    FUZZ_ASSERT(fuzz::only_error([&] {
        StateJournal s(path);
        FUZZ_ASSERT(snapshot(s) == first);
        s.record_seen("pop3:fuzz-new", 42, "-");
        s.sync();
    }));
    FUZZ_ASSERT(fuzz::only_error([&] {
        StateJournal s(path);
        Snapshot expect = first;
        expect.seen["pop3:fuzz-new"] = {42, "-", ""};
        expect.intents.erase("pop3:fuzz-new");
        FUZZ_ASSERT(snapshot(s) == expect);
    }));
    return 0;
}
