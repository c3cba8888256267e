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
    const std::vector<Pop3Session::LineSink>* sinks = nullptr;  // by command; none or empty: collect
    std::size_t done = 0;
    Channel* ch = nullptr;
    Pop3Session::ReplyLimits lim;
    std::size_t lines = 0;    // of the reply in progress
    std::size_t bytes = 0;    // of the reply in progress, when it goes to a sink
    std::string partial;      // a line cut by the end of a chunk, for a sink
    const Pop3Session::LineSink* sink() const {
        std::size_t i = data->size() - 1;
        return i < sinks->size() && (*sinks)[i] ? &(*sinks)[i] : nullptr;
    }
    void on_status(bool good, std::string_view text) override {
        ok->push_back(good);
        status->emplace_back(text);
        data->emplace_back();
        lines = bytes = 0;
        partial.clear();
        ch->trace_in(std::string(good ? "+OK " : "-ERR ") + std::string(text));
    }
    void on_data(std::string_view chunk) override {
        auto& d = data->back();
        lines += static_cast<std::size_t>(std::count(chunk.begin(), chunk.end(), '\n'));
        if (lines > lim.max_lines)
            throw Error(ErrorKind::Protocol, "the server lists more than " + std::to_string(lim.max_lines) +
                                                 " messages (pullmail's limit for one listing)");
        if (const auto* s = sink()) {
            bytes += chunk.size();
            if (bytes > lim.max_bytes) too_large();
            feed_lines(chunk, *s);
            return;
        }
        if (d.size() >= lim.keep) return;  // cut, not an error
        if (chunk.size() > lim.keep - d.size()) chunk = chunk.substr(0, lim.keep - d.size());
        if (d.size() + chunk.size() > lim.max_bytes) too_large();
        d.append(chunk);
    }
    void on_reply_end() override {
        if (const auto* s = sink(); s && !partial.empty()) emit(partial, *s);  // a last line without its end
        partial.clear();
        ++done;
    }

    [[noreturn]] void too_large() const {
        throw Error(ErrorKind::Protocol, "the server sent a listing larger than " + std::to_string(lim.max_bytes >> 20) +
                                             " MiB (pullmail's limit for one listing)");
    }
    // The lines as split_lines() would cut the whole payload.
    void feed_lines(std::string_view chunk, const Pop3Session::LineSink& s) {
        while (!chunk.empty()) {
            auto lf = chunk.find('\n');
            if (lf == std::string_view::npos) {
                partial.append(chunk);
                return;
            }
            std::string_view line = chunk.substr(0, lf);
            chunk.remove_prefix(lf + 1);
            if (partial.empty()) {
                emit(line, s);
            } else {
                partial.append(line);
                emit(partial, s);
                partial.clear();
            }
        }
    }
    static void emit(std::string_view line, const Pop3Session::LineSink& s) {
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        s(line);
    }
};

// Builds the listing from UIDL and LIST lines as they arrive, in a compact
// form (16 bytes a message and its UIDL's bytes in one buffer), so that the
// listing is never held as text nor grown as RemoteMessages: those are made
// once, at their final count. UIDL comes first (replies are parsed in
// order), so by the first LIST line every message is known and sorted by
// number; a size goes straight to its message (the last of several lines
// for one number wins, as with a map; a message LIST does not mention has
// size 0).
class ListingBuilder {
public:
    std::vector<Pop3Session::LineSink> sinks(std::size_t uidl_index) {
        std::vector<Pop3Session::LineSink> s(uidl_index + 2);
        s[uidl_index] = [this](std::string_view l) { uidl_line(l); };
        s[uidl_index + 1] = [this](std::string_view l) { list_line(l); };
        return s;
    }
    std::vector<RemoteMessage> take() {
        sort();
        std::vector<RemoteMessage> out(entries_.size());
        for (std::size_t i = 0; i < entries_.size(); ++i) {
            const Entry& e = entries_[i];
            out[i].number = e.number;
            out[i].size = e.size;
            // Room for the sync layer's key prefix (message_key.h): the key
            // is then made in this buffer, one allocation a message.
            out[i].uidl.reserve(e.length + 8);
            out[i].uidl.assign(uidls_, e.offset, e.length);
        }
        entries_ = {};
        uidls_ = {};
        return out;
    }

private:
    struct Entry {
        std::uint32_t number;
        std::uint32_t offset;  // into uidls_ (at most 64 MiB: limits::kMaxListingBytes)
        std::uint64_t size : 56;
        std::uint64_t length : 8;  // a UIDL is at most 70 bytes
    };
    void sort() {
        if (sorted_) return;
        std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) { return a.number < b.number; });
        sorted_ = true;
    }
    void uidl_line(std::string_view line) {
        auto e = parse_uidl_line(line);
        if (!e) throw Error(ErrorKind::Protocol, "the server sent a malformed UIDL line").set_server_text(line);
        entries_.push_back(Entry{e->number, static_cast<std::uint32_t>(uidls_.size()), 0, e->uid.size()});
        uidls_ += e->uid;
    }
    void list_line(std::string_view line) {
        auto e = parse_list_line(line);
        if (!e) throw Error(ErrorKind::Protocol, "the server sent a malformed LIST line").set_server_text(line);
        sort();
        auto less = [](const Entry& x, std::uint32_t n) { return x.number < n; };
        for (auto it = std::lower_bound(entries_.begin(), entries_.end(), e->number, less);
             it != entries_.end() && it->number == e->number; ++it)
            it->size = std::min<std::uint64_t>(e->size, (std::uint64_t{1} << 56) - 1);
    }
    std::vector<Entry> entries_;
    std::string uidls_;
    bool sorted_ = false;
};

}  // namespace

Pop3Session::ReplyLimits::ReplyLimits() : max_bytes(limits::kMaxListingBytes), max_lines(limits::kMaxListing) {}

Pop3Session::Pop3Session(Channel& channel, bool allow_pipelining)
    : ch_(channel), allow_pipelining_(allow_pipelining) {}

std::vector<Pop3Session::Reply> Pop3Session::transact(const std::vector<std::pair<std::string, bool>>& commands,
                                                       std::size_t max_window, const ReplyLimits& lim,
                                                       const std::vector<LineSink>& sinks) {
    Pop3ReplyParser parser;
    std::vector<bool> ok;
    std::vector<std::string> status, data;
    CollectEvents ev;
    ev.ok = &ok;
    ev.status = &status;
    ev.data = &data;
    ev.sinks = &sinks;
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
    ListingBuilder b;
    auto r = transact({{"UIDL", true}, {"LIST", true}}, kPipelineWindow, ReplyLimits(), b.sinks(0));
    check_listing(r[0], r[1]);
    return b.take();
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
    ListingBuilder b;
    auto r = transact({{"CAPA", true}, {"UIDL", true}, {"LIST", true}}, kPipelineWindow, ReplyLimits(), b.sinks(1));
    if (r[0].ok) {
        for (auto& c : parse_capa_lines(r[0].data)) caps_.insert(c);
        pipelining_ = caps_.count("PIPELINING") != 0;  // what it says now counts for the rest
    }
    check_listing(r[1], r[2]);
    enable_utf8();
    return b.take();
}

void Pop3Session::check_listing(const Reply& uidl, const Reply& list) {
    if (!uidl.ok)
        throw Error(ErrorKind::Protocol,
                    "the server does not support UIDL, which pullmail needs to tell new messages from old ones")
            .set_server_text(uidl.status);
    if (!list.ok) throw Error(ErrorKind::Protocol, "the server refused LIST").set_server_text(list.status);
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
