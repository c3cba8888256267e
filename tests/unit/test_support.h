// test_support.h — helpers shared by the unit tests.
#pragma once

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

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

}  // namespace pullmail::test
