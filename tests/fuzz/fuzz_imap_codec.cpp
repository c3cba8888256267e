// ImapResponseParser, parse_imap_values, parse_status_line and imap_astring.
// Input: byte 0 = chunking, byte 1 bit 0 = also treat the rest as a string
// for imap_astring; rest = server bytes. The parse fed in chunks must give
// exactly the responses of the parse of the whole input; each response is
// then parsed into values and a status line as ImapSession does, and a
// continuation request ("+ ...") must carry no literal.
#include "fuzz_support.h"
#include "imap_codec.h"

using namespace pullmail;

namespace {

// One response: its text with "{#N}" where literal N was, and the literals.
struct Response {
    std::string text;
    std::vector<std::string> literals;
    bool operator==(const Response&) const = default;
};

struct Log final : ImapEvents {
    std::vector<Response> done;
    Response cur;
    bool in_literal = false;
    std::uint64_t literal_size = 0;
    void on_text(std::string_view t) override {
        FUZZ_ASSERT(!in_literal);
        cur.text.append(t);
    }
    void on_literal_begin(std::uint64_t size) override {
        FUZZ_ASSERT(!in_literal);
        in_literal = true;
        literal_size = size;
        cur.literals.emplace_back();
    }
    void on_literal_data(std::string_view chunk) override {
        FUZZ_ASSERT(in_literal);
        cur.literals.back().append(chunk);
        FUZZ_ASSERT(cur.literals.back().size() <= literal_size);
    }
    void on_literal_end() override {
        FUZZ_ASSERT(in_literal && cur.literals.back().size() == literal_size);
        in_literal = false;
        cur.text += "{#" + std::to_string(cur.literals.size() - 1) + "}";
    }
    void on_response_end() override {
        FUZZ_ASSERT(!in_literal);
        done.push_back(std::move(cur));
        cur = Response{};
    }
};

struct Outcome {
    std::vector<Response> responses;
    bool error = false, idle = false;
};

Outcome parse(std::string_view bytes, fuzz::Chunker* chunks) {
    ImapResponseParser p;
    Log log;
    bool ok = fuzz::only_error([&] {
        if (!chunks) return p.feed(bytes, log);
        for (std::size_t pos = 0; pos < bytes.size();) {
            std::size_t n = chunks->next(bytes.size() - pos);
            p.feed(bytes.substr(pos, n), log);
            pos += n;
        }
    });
    return Outcome{std::move(log.done), !ok, ok && p.idle()};
}

void check_value(const ImapValue& v) {
    if (v.type == ImapValue::Type::Number) {
        std::uint64_t n = 0;
        FUZZ_ASSERT(fuzz::only_error([&] { n = v.number(); }));
        FUZZ_ASSERT(std::to_string(n) == v.text || v.text.find_first_not_of('0') != 0);
    } else {
        fuzz::only_error([&] { (void)v.number(); });
    }
    for (const auto& i : v.items) check_value(i);
}

void check_response(const Response& r) {
    FUZZ_ASSERT(r.text.find('\n') == std::string::npos);
    // A continuation request is free text: a "{n}" at its end is no literal.
    if (!r.text.empty() && r.text.front() == '+') FUZZ_ASSERT(r.literals.empty());
    if (auto vals = parse_imap_values(r.text, &r.literals))
        for (const auto& v : *vals) check_value(v);
    if (auto st = parse_status_line(r.text)) {
        FUZZ_ASSERT(!st->tag.empty());
        for (char c : st->status) FUZZ_ASSERT(c < 'a' || c > 'z');
    }
}

// An argument built for a command must read back as the same string.
void check_astring(std::string_view s, bool literal_plus) {
    auto arg = imap_astring(s, literal_plus);
    if (!arg) {
        FUZZ_ASSERT(!literal_plus);
        return;
    }
    if (arg->front() == '{') {
        // NUL goes here too: the contract leaves refusing it to callers.
        FUZZ_ASSERT(literal_plus);
        std::string head = "{" + std::to_string(s.size()) + "+}\r\n";
        FUZZ_ASSERT(*arg == head + std::string(s));
        return;
    }
    FUZZ_ASSERT(arg->find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
    if (s.find('[') != std::string_view::npos) return;  // our reader's section-atom rule; servers read it fine
    auto vals = parse_imap_values(*arg);
    FUZZ_ASSERT(vals && vals->size() == 1);
    const auto& v = vals->front();
    if (v.type == ImapValue::Type::Nil) {
        FUZZ_ASSERT(s.size() == 3 && (s[0] | 0x20) == 'n' && (s[1] | 0x20) == 'i' && (s[2] | 0x20) == 'l');
        return;
    }
    FUZZ_ASSERT(v.text == s);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    std::string_view bytes(reinterpret_cast<const char*>(data + 2), size - 2);
    Outcome whole = parse(bytes, nullptr);
    fuzz::Chunker chunks(data[0]);
    Outcome pieces = parse(bytes, &chunks);
    FUZZ_ASSERT(whole.error == pieces.error);
    if (!whole.error) {
        FUZZ_ASSERT(whole.responses == pieces.responses);
        FUZZ_ASSERT(whole.idle == pieces.idle);
    }
    for (const auto& r : whole.responses) check_response(r);
    if (data[1] & 1) {
        check_astring(bytes, false);
        check_astring(bytes, true);
    }
    return 0;
}
