// ImapSession against a hostile server: the input's first byte chooses the
// options and chunking, the rest is everything the server sends after login.
// The client runs a whole fetch: CAPABILITY + LIST "" "", optionally
// LIST "" "*", EXAMINE/SELECT with the listing, UID FETCH of the bodies into
// a counting handler, header fields for fingerprints, and deletion.
#include <algorithm>

#include "fingerprint.h"
#include "fuzz_support.h"
#include "imap_session.h"

using namespace pullmail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t opts = data[0];
    std::string_view server(reinterpret_cast<const char*>(data + 1), size - 1);
    fuzz::ScriptedConnection conn(server, opts >> 3);
    Channel ch(conn, 1, "fuzz", nullptr, 0);
    ch.set_recv_buffer(4096);  // ScriptedConnection hands out one line (under 2 KiB) or at most 124 bytes a call
    ImapSession imap(ch);

    if (!fuzz::only_error([&] { imap.start(); })) return 0;
    if (opts & 1) {
        std::vector<std::string> folders;
        if (!fuzz::only_error([&] { folders = imap.list_all_folders(); })) return 0;
    }
    std::vector<RemoteMessage> list;
    // "Lists/ü" exercises the delimiter and modified UTF-7 on the way out.
    const std::string folder = (opts & 2) ? "Lists/\xc3\xbc" : "INBOX";
    ImapSession::FolderInfo info;
    if (!fuzz::only_error([&] { info = imap.select(folder, (opts & 4) != 0, &list); })) return 0;
    FUZZ_ASSERT(info.uidvalidity != 0);
    FUZZ_ASSERT(std::is_sorted(list.begin(), list.end(), [](auto& a, auto& b) { return a.uid < b.uid; }));
    if (list.size() > 64) list.resize(64);
    fuzz::CountingHandler handler;
    if (!fuzz::only_error([&] { imap.fetch(list, handler); })) return 0;
    FUZZ_ASSERT(handler.ended <= list.size());
    std::vector<std::uint32_t> uids;
    for (const auto& m : list) uids.push_back(m.uid);
    std::map<std::uint32_t, std::string> headers;
    if (!fuzz::only_error([&] { headers = imap.fetch_header_fields(uids, kFingerprintFields); })) return 0;
    ImapSession::DeleteResult del;
    if (!fuzz::only_error([&] { del = imap.delete_messages(uids); })) return 0;
    imap.logout(true);
    return 0;
}
