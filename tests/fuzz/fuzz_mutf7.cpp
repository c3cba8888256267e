// Modified UTF-7 (RFC 3501 5.1.3) both ways. The input is tried as a
// server's mailbox name (decode) and as a configured folder name (encode).
// decode: whatever it accepts re-encodes to plain printable ASCII that
// decodes to the same name. encode: only pullmail::Error(Config) for
// invalid UTF-8; otherwise printable ASCII that decodes to the input.
#include "fuzz_support.h"
#include "imap_codec.h"

using namespace pullmail;

namespace {

bool printable_ascii(std::string_view s) {
    for (char c : s)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) return false;
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);

    if (auto decoded = mutf7_decode(in)) {
        std::string again;
        FUZZ_ASSERT(fuzz::only_error([&] { again = mutf7_encode(*decoded); }));
        FUZZ_ASSERT(printable_ascii(again));
        auto back = mutf7_decode(again);
        FUZZ_ASSERT(back && *back == *decoded);
        // Without base64 runs the name stands for itself.
        if (in.find('&') == std::string_view::npos) FUZZ_ASSERT(*decoded == in);
    }

    std::string encoded;
    bool ok = true;
    try {
        encoded = mutf7_encode(in);
    } catch (const Error& e) {
        FUZZ_ASSERT(e.kind() == ErrorKind::Config);
        ok = false;
    }
    if (ok) {
        FUZZ_ASSERT(printable_ascii(encoded));
        auto back = mutf7_decode(encoded);
        FUZZ_ASSERT(back && *back == in);
    }
    return 0;
}
