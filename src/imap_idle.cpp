#include "imap_idle.h"

#include <algorithm>

#include "error.h"
#include "text_util.h"

namespace pullmail {

namespace {

// Responses of a watcher are short (EXISTS, STATUS): literals are mailbox
// names at most. Anything larger is not what an idling server sends; the
// limit holds for all literals of one response together.
constexpr std::uint64_t kMaxIdleLiteral = 64 * 1024;

}  // namespace

class IdleDecoder::Collector final : public ImapEvents {
public:
    Collector(IdleDecoder& d, std::vector<IdleEvent>& out) : d_(d), out_(out) {}
    void on_text(std::string_view t) override {
        if (d_.text_.size() + t.size() > 64 * 1024) throw_protocol_error("the server sent an over-long response while idling");
        d_.text_.append(t);
    }
    void on_literal_begin(std::uint64_t size) override {
        if (size > kMaxIdleLiteral - std::min(d_.literal_total_, kMaxIdleLiteral))
            throw_protocol_error("the server sent a large literal while idling");
        d_.literal_total_ += size;
        d_.literal_.clear();
    }
    void on_literal_data(std::string_view chunk) override { d_.literal_.append(chunk); }
    void on_literal_end() override {
        d_.text_ += "{#" + std::to_string(d_.literals_.size()) + "}";
        d_.literals_.push_back(std::move(d_.literal_));
        d_.literal_.clear();
    }
    void on_response_end() override {
        out_.push_back(classify_idle_response(d_.text_, d_.literals_));
        d_.text_.clear();
        d_.literals_.clear();
        d_.literal_total_ = 0;
    }

private:
    IdleDecoder& d_;
    std::vector<IdleEvent>& out_;
};

std::vector<IdleEvent> IdleDecoder::feed(std::string_view bytes) {
    std::vector<IdleEvent> out;
    Collector c(*this, out);
    parser_.feed(bytes, c);
    return out;
}

IdleEvent classify_idle_response(const std::string& text, const std::vector<std::string>& literals) {
    IdleEvent ev;
    ev.text = text;
    if (text.rfind("+", 0) == 0) {
        ev.kind = IdleEvent::Kind::Continuation;
        return ev;
    }
    if (text.rfind("* ", 0) != 0) {
        auto st = parse_status_line(text);
        if (st) {
            ev.kind = IdleEvent::Kind::Tagged;
            ev.tag = st->tag;
            ev.status = st->status;
        }
        return ev;
    }
    auto st = parse_status_line(text);
    if (st && st->status == "BYE") {
        ev.kind = IdleEvent::Kind::Bye;
        ev.status = "BYE";
        return ev;
    }
    auto vals = parse_imap_values(text, &literals);
    if (!vals || vals->size() < 3) return ev;
    const auto& v = *vals;
    if (v[1].type == ImapValue::Type::Number) {
        std::uint64_t n = v[1].number();
        ev.number = n > 0xffffffffu ? 0xffffffffu : static_cast<std::uint32_t>(n);
        if (v[2].is_atom("EXISTS")) ev.kind = IdleEvent::Kind::Exists;
        else if (v[2].is_atom("EXPUNGE")) ev.kind = IdleEvent::Kind::Expunge;
        else if (v[2].is_atom("FETCH")) ev.kind = IdleEvent::Kind::Fetch;
        return ev;
    }
    if (v[1].is_atom("VANISHED")) {
        ev.kind = IdleEvent::Kind::Expunge;
    } else if (v[1].is_atom("STATUS") && (v[2].type == ImapValue::Type::String || v[2].type == ImapValue::Type::Atom)) {
        ev.kind = IdleEvent::Kind::Status;
        ev.mailbox = v[2].text;
    }
    return ev;
}

std::string notify_set_command(const std::vector<std::string>& mailbox_args) {
    std::string cmd = "NOTIFY SET (mailboxes (";
    for (std::size_t i = 0; i < mailbox_args.size(); ++i) cmd += (i ? " " : "") + mailbox_args[i];
    cmd += ") (MessageNew MessageExpunge))";
    return cmd;
}

}  // namespace pullmail
