// The IDLE/NOTIFY decoder (imap_idle.h): what a server sends while a
// watcher idles. Input: byte 0 = chunking, then the server's bytes.
//
// Checks: the events decoded from the input fed in chunks are exactly those
// of the whole input, and the same error (for input that ends in an error:
// the first events of a byte-at-a-time decode, see below); only Error(Protocol) escapes;
// every event is consistent with its kind (a tag and status for Tagged, a
// number for Exists/Expunge/Fetch unless VANISHED, a mailbox only for
// Status), only Exists and Status wake a watcher, and each complete response
// decoded on its own gives the same event.
#include "error.h"
#include "fuzz_support.h"
#include "imap_idle.h"

using namespace pullmail;

namespace {

struct Decoded {
    std::vector<IdleEvent> events;
    bool error = false;
};

Decoded decode(std::string_view bytes, fuzz::Chunker* chunks) {
    Decoded d;
    IdleDecoder dec;
    auto take = [&](std::vector<IdleEvent> ev) {
        for (auto& e : ev) d.events.push_back(std::move(e));
    };
    d.error = !fuzz::only_error([&] {
        if (!chunks) return take(dec.feed(bytes));
        for (std::size_t pos = 0; pos < bytes.size();) {
            std::size_t n = chunks->next(bytes.size() - pos);
            take(dec.feed(bytes.substr(pos, n)));
            pos += n;
        }
    });
    return d;
}

bool same(const IdleEvent& a, const IdleEvent& b) {
    return a.kind == b.kind && a.number == b.number && a.tag == b.tag && a.status == b.status &&
           a.mailbox == b.mailbox && a.text == b.text;
}

void check_event(const IdleEvent& e) {
    using K = IdleEvent::Kind;
    FUZZ_ASSERT(e.wakes() == (e.kind == K::Exists || e.kind == K::Status));
    if (e.kind == K::Tagged) FUZZ_ASSERT(!e.tag.empty());  // status "" for "A1 FOO": the watcher reports "?"
    if (e.kind == K::Bye) FUZZ_ASSERT(e.status == "BYE");
    if (e.kind != K::Status) FUZZ_ASSERT(e.mailbox.empty());
    if (e.kind == K::Continuation) FUZZ_ASSERT(e.text.starts_with("+"));
    if (e.kind == K::Exists || e.kind == K::Fetch || e.kind == K::Status) FUZZ_ASSERT(e.text.starts_with("* "));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
    Decoded whole = decode(bytes, nullptr);
    fuzz::Chunker chunks(data[0]);
    Decoded pieces = decode(bytes, &chunks);
    FUZZ_ASSERT(whole.error == pieces.error);
    if (whole.error) {
        // feed() returns its events or throws: the events of the call that
        // throws are lost with it (the watcher then drops the connection
        // and catches up after reconnecting). So the whole input gives none,
        // and the chunks those of the calls before the failing one. Compare
        // those with a byte-at-a-time decode, which loses none before the
        // error: they must be its first events.
        fuzz::Chunker bytewise(0);
        whole = decode(bytes, &bytewise);
        FUZZ_ASSERT(whole.error);
        FUZZ_ASSERT(pieces.events.size() <= whole.events.size());
    } else {
        FUZZ_ASSERT(whole.events.size() == pieces.events.size());
    }
    for (std::size_t i = 0; i < whole.events.size(); ++i) {
        if (i < pieces.events.size()) FUZZ_ASSERT(same(whole.events[i], pieces.events[i]));
        check_event(whole.events[i]);
    }
    // A response without literals, classified alone, is the same event.
    for (const auto& e : whole.events)
        if (e.text.find("{#") == std::string::npos) FUZZ_ASSERT(same(classify_idle_response(e.text, {}), e));
    std::vector<std::string> boxes{"INBOX", "\"Lists/a b\""};
    FUZZ_ASSERT(notify_set_command(boxes).starts_with("NOTIFY SET (mailboxes (INBOX \"Lists/a b\")"));
    return 0;
}
