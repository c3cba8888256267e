// Pop3ReplyParser and the POP3 line parsers. Input: byte 0 = which of up to
// eight awaited replies are multi-line, byte 1 = chunking, rest = server bytes.
// The parse fed in chunks must give exactly what the parse of the whole
// input gives (replies, status texts, payloads, the error), and listing lines
// must satisfy what the parsers promise.
#include "fuzz_support.h"
#include "pop3_codec.h"

using namespace pullmail;

namespace {

struct Reply {
    bool ok = false;
    std::string text, data;
    bool ended = false;
    bool operator==(const Reply&) const = default;
};

struct Log final : Pop3Events {
    std::vector<Reply> replies;
    void on_status(bool ok, std::string_view text) override {
        FUZZ_ASSERT(replies.empty() || replies.back().ended);
        FUZZ_ASSERT(text.find('\n') == std::string_view::npos);
        replies.push_back(Reply{ok, std::string(text), {}, false});
    }
    void on_data(std::string_view chunk) override {
        FUZZ_ASSERT(!replies.empty() && replies.back().ok && !replies.back().ended);
        replies.back().data.append(chunk);
    }
    void on_reply_end() override {
        FUZZ_ASSERT(!replies.empty() && !replies.back().ended);
        replies.back().ended = true;
    }
};

struct Outcome {
    std::vector<Reply> replies;
    bool error = false;
};

Outcome parse(std::uint8_t multiline, std::string_view bytes, fuzz::Chunker* chunks) {
    Pop3ReplyParser p;
    p.expect_greeting();
    for (int i = 0; i < 8; ++i) p.expect((multiline >> i) & 1);
    Log log;
    bool ok = fuzz::only_error([&] {
        if (!chunks) return p.feed(bytes, log);
        for (std::size_t pos = 0; pos < bytes.size();) {
            std::size_t n = chunks->next(bytes.size() - pos);
            p.feed(bytes.substr(pos, n), log);
            pos += n;
        }
    });
    if (ok) {
        std::size_t ended = 0;
        for (auto& r : log.replies) ended += r.ended;
        FUZZ_ASSERT(p.pending() == 9 - ended);
    }
    return Outcome{std::move(log.replies), !ok};
}

void check_lines(std::string_view payload) {
    for (auto line : split_lines(payload)) {
        FUZZ_ASSERT(line.find('\n') == std::string_view::npos);
        if (auto u = parse_uidl_line(line)) {
            FUZZ_ASSERT(u->number >= 1);
            FUZZ_ASSERT(!u->uid.empty() && u->uid.size() <= 70);
            for (char c : u->uid) FUZZ_ASSERT(c >= 0x21 && c <= 0x7e);
        }
        if (auto l = parse_list_line(line)) FUZZ_ASSERT(l->number >= 1);
    }
    for (const auto& cap : parse_capa_lines(payload)) FUZZ_ASSERT(!cap.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    std::string_view bytes(reinterpret_cast<const char*>(data + 2), size - 2);
    Outcome whole = parse(data[0], bytes, nullptr);
    fuzz::Chunker chunks(data[1]);
    Outcome pieces = parse(data[0], bytes, &chunks);
    FUZZ_ASSERT(whole.error == pieces.error);
    if (!whole.error) FUZZ_ASSERT(whole.replies == pieces.replies);
    for (const auto& r : whole.replies) check_lines(r.data);
    check_lines(bytes);
    return 0;
}
