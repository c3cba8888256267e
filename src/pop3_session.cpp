#include "pop3_session.h"

#include <algorithm>
#include <map>

#include "error.h"
#include "memory_limits.h"
#include "pop3_codec.h"
#include "text_util.h"

namespace pullmail {

namespace {


struct CollectEvents : Pop3Events {
    std::vector<bool>* ok = nullptr;
    std::vector<std::string>* status = nullptr;
    std::vector<std::string>* data = nullptr;
    std::size_t done = 0;
    Channel* ch = nullptr;
    Pop3Session::ReplyLimits lim;
    std::size_t lines = 0;    // of the reply in progress
    void on_status(bool good, std::string_view text) override {
        ok->push_back(good);
        status->emplace_back(text);
        data->emplace_back();
        lines = 0;
        ch->trace_in(std::string(good ? "+OK " : "-ERR ") + std::string(text));
    }
    void on_data(std::string_view chunk) override {
        auto& d = data->back();
        lines += static_cast<std::size_t>(std::count(chunk.begin(), chunk.end(), '\n'));
        if (lines > lim.max_lines)
            throw Error(ErrorKind::Protocol, "the server lists more than " + std::to_string(lim.max_lines) +
                                                 " messages (pullmail's limit for one listing)");
        if (d.size() >= lim.keep) return;  // cut, not an error
        if (chunk.size() > lim.keep - d.size()) chunk = chunk.substr(0, lim.keep - d.size());
        if (d.size() + chunk.size() > lim.max_bytes)
            throw Error(ErrorKind::Protocol, "the server sent a listing larger than " +
                                                 std::to_string(lim.max_bytes >> 20) +
                                                 " MiB (pullmail's limit for one listing)");
        d.append(chunk);
    }
    void on_reply_end() override { ++done; }
};

}  // namespace

Pop3Session::ReplyLimits::ReplyLimits() : max_bytes(limits::kMaxListingBytes), max_lines(limits::kMaxListing) {}

Pop3Session::Pop3Session(Channel& channel, bool allow_pipelining)
    : ch_(channel), allow_pipelining_(allow_pipelining) {}

std::vector<Pop3Session::Reply> Pop3Session::transact(const std::vector<std::pair<std::string, bool>>& commands,
                                                       std::size_t max_window, const ReplyLimits& lim) {
    Pop3ReplyParser parser;
    std::vector<bool> ok;
    std::vector<std::string> status, data;
    CollectEvents ev;
    ev.ok = &ok;
    ev.status = &status;
    ev.data = &data;
    ev.ch = &ch_;
    ev.lim = lim;
    std::size_t sent = 0;
    auto send_more = [&] {
        std::size_t window = pipelining_ ? max_window : 1;
        while (sent < commands.size() && sent - ev.done < window) {
            ch_.command(commands[sent].first);
            parser.expect(commands[sent].second);
            ++sent;
        }
    };
    send_more();
    ch_.pump(
        [&](std::string_view bytes) {
            parser.feed(bytes, ev);
            send_more();
        },
        [&] { return ev.done == commands.size(); });
    std::vector<Reply> out(commands.size());
    for (std::size_t i = 0; i < commands.size(); ++i) out[i] = Reply{ok[i], status[i], std::move(data[i])};
    return out;
}

void Pop3Session::start() {
    auto r = transact({{"CAPA", true}});
    if (r[0].ok) {
        for (auto& c : parse_capa_lines(r[0].data)) caps_.insert(c);
    }
    pipelining_ = allow_pipelining_ && caps_.count("PIPELINING");
    enable_utf8();
}

void Pop3Session::enable_utf8() {
    // RFC 6856: without UTF8 a server may downgrade or wrap messages whose
    // headers carry raw 8-bit bytes (Courier puts them in a "cannot display
    // Unicode" container). Refused (some servers take it only before
    // login), the session goes on as before.
    if (utf8_ || !caps_.count("UTF8")) return;
    utf8_ = transact({{"UTF8", false}})[0].ok;
}

std::vector<RemoteMessage> Pop3Session::list() {
    auto r = transact({{"UIDL", true}, {"LIST", true}});
    return listing(r[0], r[1]);
}

std::vector<RemoteMessage> Pop3Session::start_and_list(const std::vector<std::string>& login_lines) {
    bool announced = std::any_of(login_lines.begin(), login_lines.end(), [](std::string_view l) {
        while (!l.empty() && (l.back() == ' ' || l.back() == '\t')) l.remove_suffix(1);
        return ascii_iequals(l, "PIPELINING");
    });
    if (!allow_pipelining_ || !announced) {
        start();
        return list();
    }
    pipelining_ = true;
    auto r = transact({{"CAPA", true}, {"UIDL", true}, {"LIST", true}});
    if (r[0].ok) {
        for (auto& c : parse_capa_lines(r[0].data)) caps_.insert(c);
        pipelining_ = caps_.count("PIPELINING") != 0;  // what it says now counts for the rest
    }
    auto out = listing(r[1], r[2]);
    enable_utf8();
    return out;
}

std::vector<RemoteMessage> Pop3Session::listing(const Reply& uidl, const Reply& list) {
    if (!uidl.ok)
        throw Error(ErrorKind::Protocol,
                    "the server does not support UIDL, which pullmail needs to tell new messages from old ones")
            .set_server_text(uidl.status);
    if (!list.ok) throw Error(ErrorKind::Protocol, "the server refused LIST").set_server_text(list.status);
    // Sorted pairs, not a map: a million-message listing must stay small.
    std::vector<std::pair<std::uint32_t, std::uint64_t>> sizes;
    for (auto line : split_lines(list.data)) {
        auto e = parse_list_line(line);
        if (!e) throw Error(ErrorKind::Protocol, "the server sent a malformed LIST line").set_server_text(line);
        sizes.emplace_back(e->number, e->size);
    }
    std::stable_sort(sizes.begin(), sizes.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    auto size_of = [&](std::uint32_t n) -> std::uint64_t {
        // The last of several lines for one number wins, as with a map.
        auto it = std::upper_bound(sizes.begin(), sizes.end(), n, [](std::uint32_t v, const auto& p) { return v < p.first; });
        return it != sizes.begin() && std::prev(it)->first == n ? std::prev(it)->second : 0;
    };
    auto uidl_lines = split_lines(uidl.data);
    std::vector<RemoteMessage> out;
    out.reserve(uidl_lines.size());
    for (auto line : uidl_lines) {
        auto e = parse_uidl_line(line);
        if (!e) throw Error(ErrorKind::Protocol, "the server sent a malformed UIDL line").set_server_text(line);
        RemoteMessage m;
        m.number = e->number;
        m.uidl = e->uid;
        m.size = size_of(e->number);
        out.push_back(std::move(m));
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.number < b.number; });
    return out;
}

void Pop3Session::retrieve(const std::vector<RemoteMessage>& msgs, MessageHandler& handler) {
    if (msgs.empty()) return;
    struct RetrEvents : Pop3Events {
        const std::vector<RemoteMessage>* msgs;
        MessageHandler* h;
        Channel* ch;
        std::size_t index = 0;  // reply being parsed
        bool ok = false;
        void on_status(bool good, std::string_view text) override {
            ok = good;
            const auto& m = (*msgs)[index];
            ch->trace_in(std::string(good ? "+OK " : "-ERR ") + std::string(text));
            if (good)
                h->begin(m);
            else
                h->failed(m, text);
        }
        void on_data(std::string_view chunk) override { h->data(chunk); }
        void on_reply_end() override {
            if (ok) h->end((*msgs)[index]);
            ++index;
        }
    } ev;
    ev.msgs = &msgs;
    ev.h = &handler;
    ev.ch = &ch_;
    Pop3ReplyParser parser;
    std::size_t sent = 0;
    auto send_more = [&] {
        std::size_t window = pipelining_ ? kPipelineWindow : 1;
        while (sent < msgs.size() && sent - ev.index < window && !handler.stop_requested()) {
            ch_.command("RETR " + std::to_string(msgs[sent].number));
            parser.expect(true);
            ++sent;
        }
    };
    send_more();
    ch_.pump(
        [&](std::string_view bytes) {
            parser.feed(bytes, ev);
            send_more();
        },
        [&] { return ev.index == sent && (sent == msgs.size() || handler.stop_requested()); });
}

std::map<std::uint32_t, std::string> Pop3Session::headers(const std::vector<std::uint32_t>& numbers) {
    std::map<std::uint32_t, std::string> out;
    // Each header kept up to kMaxHeaderKept (the rest is read and dropped),
    // in slices, so the replies held at once stay small; all of them
    // together up to kMaxHeadersTotal.
    ReplyLimits lim;
    lim.keep = limits::kMaxHeaderKept;
    lim.max_bytes = limits::kMaxHeaderKept;
    lim.max_lines = static_cast<std::size_t>(-1);
    constexpr std::size_t kSlice = kPipelineWindow;
    std::size_t total = 0;
    for (std::size_t pos = 0; pos < numbers.size(); pos += kSlice) {
        std::vector<std::pair<std::string, bool>> cmds;
        std::size_t end = std::min(numbers.size(), pos + kSlice);
        for (std::size_t i = pos; i < end; ++i) cmds.emplace_back("TOP " + std::to_string(numbers[i]) + " 0", true);
        auto r = transact(cmds, kPipelineWindow, lim);
        for (std::size_t i = pos; i < end; ++i) {
            if (!r[i - pos].ok) continue;
            total += r[i - pos].data.size();
            if (total > limits::kMaxHeadersTotal)
                throw Error(ErrorKind::Protocol, "the server's header replies exceed " +
                                                     std::to_string(limits::kMaxHeadersTotal >> 20) +
                                                     " MiB in total (pullmail's limit for one listing)");
            out[numbers[i]] = std::move(r[i - pos].data);
        }
    }
    return out;
}

Pop3Session::QuitResult Pop3Session::delete_and_quit(const std::vector<std::uint32_t>& numbers) {
    std::vector<std::pair<std::string, bool>> cmds;
    for (auto n : numbers) cmds.emplace_back("DELE " + std::to_string(n), false);
    cmds.emplace_back("QUIT", false);
    // Every DELE and the QUIT in one flight: their replies are a few bytes
    // each, so the server can never block on them, and deleting costs one
    // round trip however many messages there are.
    auto r = transact(cmds, cmds.size());
    QuitResult q;
    for (std::size_t i = 0; i + 1 < r.size(); ++i) {
        if (r[i].ok)
            ++q.marked;
        else if (q.server_text.empty())
            q.server_text = r[i].status;
    }
    q.committed = r.back().ok;
    if (!q.committed) q.server_text = r.back().status;
    return q;
}

void Pop3Session::quit(bool wait_for_reply) noexcept {
    try {
        if (wait_for_reply) {
            transact({{"QUIT", false}});
        } else {
            ch_.command("QUIT");
            ch_.flush();
        }
    } catch (...) {
    }
}

}  // namespace pullmail
