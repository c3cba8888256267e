// crc32 (text_util.h): the table-driven version folds eight bytes a step;
// it must equal the bitwise definition at every length and alignment.
#include <doctest/doctest.h>

#include <string>

#include "text_util.h"

using namespace pullmail;

namespace {
std::uint32_t bitwise_crc32(std::string_view s) {
    std::uint32_t c = 0xFFFFFFFFu;
    for (unsigned char b : s) {
        c ^= b;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}
}  // namespace

TEST_CASE("crc32: equals the bitwise CRC-32 at every length and offset") {
    std::string data;
    for (int i = 0; i < 300; ++i) data += static_cast<char>((i * 131 + 7) & 0xFF);
    for (std::size_t off = 0; off < 9; ++off)
        for (std::size_t len = 0; off + len <= data.size(); ++len) {
            std::string_view v(data.data() + off, len);
            REQUIRE(crc32(v) == bitwise_crc32(v));
        }
    CHECK(crc32("123456789") == 0xCBF43926u);
}
