// Pop3Session against a hostile server: the input's first byte chooses the
// options and chunking, the rest is everything the server sends after login.
// The client runs a whole fetch: CAPA/UIDL/LIST, RETR of what was listed,
// TOP for fingerprints, DELE + QUIT.
#include <algorithm>

#include "fuzz_support.h"
#include "pop3_session.h"

using namespace pullmail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t opts = data[0];
    std::string_view server(reinterpret_cast<const char*>(data + 1), size - 1);
    fuzz::ScriptedConnection conn(server, opts >> 3);
    Channel ch(conn, 1, "fuzz", nullptr, 0);
    ch.set_recv_buffer(4096);  // ScriptedConnection hands out one line (under 2 KiB) or at most 124 bytes a call
    Pop3Session pop(ch, (opts & 1) != 0);
    std::vector<std::string> login_lines{"+OK ready"};
    if (opts & 2) login_lines.push_back("PIPELINING");

    std::vector<RemoteMessage> list;
    if (!fuzz::only_error([&] { list = pop.start_and_list(login_lines); })) return 0;
    // More messages than the input could answer only make the run longer.
    if (list.size() > 64) list.resize(64);
    fuzz::CountingHandler handler((opts & 4) ? 2 : SIZE_MAX);
    if (!fuzz::only_error([&] { pop.retrieve(list, handler); })) return 0;
    FUZZ_ASSERT(handler.ended + handler.failures <= list.size());
    FUZZ_ASSERT(handler.begun >= handler.ended);
    std::vector<std::uint32_t> numbers;
    for (const auto& m : list) numbers.push_back(m.number);
    std::map<std::uint32_t, std::string> headers;
    if (!fuzz::only_error([&] { headers = pop.headers(numbers); })) return 0;
    for (const auto& [n, h] : headers) FUZZ_ASSERT(std::find(numbers.begin(), numbers.end(), n) != numbers.end());
    Pop3Session::QuitResult q;
    if (!fuzz::only_error([&] { q = pop.delete_and_quit(numbers); })) return 0;
    FUZZ_ASSERT(q.marked <= numbers.size());
    return 0;
}
