// test_support.h — helpers shared by the unit tests.
#pragma once

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"

namespace pullmail::test {

// A fresh directory under /tmp, removed with everything in it at scope end.
struct TempDir {
    std::string path;
    TempDir() {
        char templ[] = "/tmp/pullmail-unit-XXXXXX";
        REQUIRE(::mkdtemp(templ) != nullptr);
        path = templ;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline void write_file(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
}

// Feeds `wire` to a codec's parser in pieces that end at `cuts`, then the
// rest. A protocol error ends the feed and is recorded in rec.events as
// "ERROR|<message>", so expected event streams can include it.
template <class Parser, class Recorder>
void feed_in_pieces(Parser& parser, std::string_view wire, const std::vector<std::size_t>& cuts, Recorder& rec) {
    std::size_t from = 0;
    try {
        for (std::size_t cut : cuts) {
            parser.feed(wire.substr(from, cut - from), rec);
            from = cut;
        }
        parser.feed(wire.substr(from), rec);
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Protocol);
        rec.events.push_back(std::string("ERROR|") + e.what());
    }
}

}  // namespace pullmail::test
