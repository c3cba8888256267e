#include "pop3_session.h"

#include <algorithm>
#include <map>

#include "error.h"
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
    void on_status(bool good, std::string_view text) override {
        ok->push_back(good);
        status->emplace_back(text);
        data->emplace_back();
        ch->trace_in(std::string(good ? "+OK " : "-ERR ") + std::string(text));
    }
    void on_data(std::string_view chunk) override {
        auto& d = data->back();
        if (d.size() + chunk.size() > 64 * 1024 * 1024)
            throw Error(ErrorKind::Protocol, "the server sent a listing larger than 64 MiB");
        d.append(chunk);
    }
    void on_reply_end() override { ++done; }
};

}  // namespace

Pop3Session::Pop3Session(Channel& channel, bool allow_pipelining)
    : ch_(channel), allow_pipelining_(allow_pipelining) {}

std::vector<Pop3Session::Reply> Pop3Session::transact(const std::vector<std::pair<std::string, bool>>& commands,
                                                       std::size_t max_window) {
    Pop3ReplyParser parser;
    std::vector<bool> ok;
    std::vector<std::string> status, data;
    CollectEvents ev;
    ev.ok = &ok;
    ev.status = &status;
    ev.data = &data;
    ev.ch = &ch_;
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
    return listing(r[1], r[2]);
}

std::vector<RemoteMessage> Pop3Session::listing(const Reply& uidl, const Reply& list) {
    if (!uidl.ok)
        throw Error(ErrorKind::Protocol,
                    "the server does not support UIDL, which pullmail needs to tell new messages from old ones")
            .set_server_text(uidl.status);
    if (!list.ok) throw Error(ErrorKind::Protocol, "the server refused LIST").set_server_text(list.status);
    std::map<std::uint32_t, std::uint64_t> sizes;
    for (auto line : split_lines(list.data)) {
        auto e = parse_list_line(line);
        if (!e) throw Error(ErrorKind::Protocol, "the server sent a malformed LIST line").set_server_text(line);
        sizes[e->number] = e->size;
    }
    std::vector<RemoteMessage> out;
    for (auto line : split_lines(uidl.data)) {
        auto e = parse_uidl_line(line);
        if (!e) throw Error(ErrorKind::Protocol, "the server sent a malformed UIDL line").set_server_text(line);
        RemoteMessage m;
        m.number = e->number;
        m.uidl = e->uid;
        auto it = sizes.find(e->number);
        m.size = it == sizes.end() ? 0 : it->second;
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
    // In slices, so the replies held at once stay small.
    for (std::size_t pos = 0; pos < numbers.size(); pos += 500) {
        std::vector<std::pair<std::string, bool>> cmds;
        std::size_t end = std::min(numbers.size(), pos + 500);
        for (std::size_t i = pos; i < end; ++i) cmds.emplace_back("TOP " + std::to_string(numbers[i]) + " 0", true);
        auto r = transact(cmds);
        for (std::size_t i = pos; i < end; ++i)
            if (r[i - pos].ok) out[numbers[i]] = std::move(r[i - pos].data);
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
