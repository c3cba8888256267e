// The SMTP/LMTP codec (smtp_codec.h). Input: byte 0 = options (bit 0 LMTP,
// bit 1 BDAT, bit 2 RSET first, bits 3-4 recipients per message 0..3, bit 5
// pipelined), byte 1 = chunking, then the server's replies, then (after the
// first "\0\0", or the same bytes when there is none) a message.
//
// Checks: replies parsed in chunks = parsed whole; capabilities parse; the
// transaction bookkeeping only throws Error(Protocol) and calls a message
// delivered only when every reply that concerns it was positive and all of
// them came (a message is deleted on the strength of that); the envelope
// sender is "" or a plain address and MAIL/RCPT lines are one line each;
// dot-stuffing round-trips: what a receiver reads back (RFC 5321 4.5.2) is
// the message, and the end-of-data line appears only at the end.
#include <string>
#include <vector>

#include "error.h"
#include "fuzz_support.h"
#include "smtp_codec.h"
#include "text_util.h"

using namespace pullmail;

namespace {

struct Parsed {
    std::vector<SmtpReply> replies;
    bool error = false;
};

Parsed parse(std::string_view bytes, fuzz::Chunker* chunks) {
    Parsed p;
    SmtpReplyParser parser;
    p.error = !fuzz::only_error([&] {
        if (!chunks) return parser.feed(bytes, p.replies);
        for (std::size_t pos = 0; pos < bytes.size();) {
            std::size_t n = chunks->next(bytes.size() - pos);
            parser.feed(bytes.substr(pos, n), p.replies);
            pos += n;
        }
    });
    return p;
}

bool same(const std::vector<SmtpReply>& a, const std::vector<SmtpReply>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i].code != b[i].code || a[i].lines != b[i].lines) return false;
    return true;
}

bool positive(const SmtpReply& r) { return r.code >= 200 && r.code < 300; }

// One message at a time: every reply fed while a message is open is its
// own, so the harness knows what a Delivered outcome must rest on.
void one_at_a_time(const std::vector<SmtpReply>& replies, std::uint8_t opts) {
    const bool lmtp = opts & 1, bdat = opts & 2, rset = opts & 4;
    const std::size_t nrcpt = (opts >> 3) & 3;
    std::vector<std::string> rcpts;
    for (std::size_t i = 0; i < nrcpt; ++i) rcpts.push_back("r" + std::to_string(i) + "@example.org");
    SmtpTransactions tx(lmtp);
    std::size_t next = 0;
    for (int msg = 0; msg < 4 && next < replies.size(); ++msg) {
        tx.begin("m" + std::to_string(msg), rcpts, rset, bdat);
        bool sent = false, all_positive = true;
        std::size_t got = 0;
        std::vector<SmtpOutcome> done;
        while (done.empty() && next < replies.size()) {
            const SmtpReply& r = replies[next++];
            if (!fuzz::only_error([&] { tx.on_reply(r); })) return;
            const bool is_rset = rset && got == 0;
            const bool is_data = !bdat && got == (rset ? 1 : 0) + 1 + nrcpt;
            if (!is_rset) all_positive = all_positive && (is_data ? r.code == 354 : positive(r));
            ++got;
            if (!bdat && !sent && tx.data_decided() && tx.data_accepted()) {
                tx.data_sent();
                sent = true;
            }
            done = tx.take_finished();
        }
        if (done.empty()) return;  // the replies ran out
        FUZZ_ASSERT(done.size() == 1 && done[0].id == "m" + std::to_string(msg));
        FUZZ_ASSERT(tx.idle());
        if (done[0].result == SmtpOutcome::Result::Delivered) {
            FUZZ_ASSERT(all_positive);
            std::size_t finals = lmtp ? std::max<std::size_t>(nrcpt, 1) : 1;
            FUZZ_ASSERT(got == (rset ? 1 : 0) + 1 + nrcpt + (bdat ? 0 : 1) + finals);
        } else {
            FUZZ_ASSERT(!done[0].step.empty());
        }
    }
}

// Everything pipelined (BDAT, so no 354 to wait for): only the contracts.
void pipelined(const std::vector<SmtpReply>& replies, std::uint8_t opts) {
    SmtpTransactions tx(opts & 1);
    std::vector<std::string> rcpts{"a@example.org", "b@example.org"};
    for (int msg = 0; msg < 3; ++msg) tx.begin("m" + std::to_string(msg), rcpts, msg > 0, true);
    std::size_t finished = 0;
    for (const auto& r : replies) {
        if (!fuzz::only_error([&] { tx.on_reply(r); })) return;
        for (const auto& o : tx.take_finished()) {
            FUZZ_ASSERT(o.id == "m" + std::to_string(finished));
            ++finished;
        }
    }
    FUZZ_ASSERT(finished <= 3);
    if (finished == 3) FUZZ_ASSERT(tx.idle());
}

void check_dot_stuffing(std::string_view message, std::uint8_t chunk_mode) {
    std::string wire;
    bool last_cr = false;
    append_crlf(message, last_cr, wire);
    std::string out;
    DotStuffer ds;
    fuzz::Chunker chunks(chunk_mode);
    for (std::size_t pos = 0; pos < wire.size();) {
        std::size_t n = chunks.next(wire.size() - pos);
        ds.encode(std::string_view(wire).substr(pos, n), out);
        pos += n;
    }
    ds.finish(out);
    // The receiver: lines up to the first ".", one leading dot removed.
    std::string back;
    std::size_t pos = 0;
    bool ended = false;
    while (pos < out.size()) {
        std::size_t eol = out.find("\r\n", pos);
        FUZZ_ASSERT(eol != std::string::npos);  // the data ends with CRLF
        std::string_view line = std::string_view(out).substr(pos, eol - pos);
        pos = eol + 2;
        if (line == ".") {
            ended = true;
            break;
        }
        if (!line.empty() && line[0] == '.') line.remove_prefix(1);
        back.append(line);
        back += "\r\n";
    }
    FUZZ_ASSERT(ended && pos == out.size());
    std::string expect = wire;
    if (!expect.empty() && !expect.ends_with("\r\n")) expect += "\r\n";
    FUZZ_ASSERT(back == expect);
}

void check_envelope(std::string_view message) {
    std::string sender = envelope_sender(message);
    FUZZ_ASSERT(sender.empty() || plain_mail_address(sender));
    MailParams p;
    p.body_8bit = has_8bit(message);
    p.size = message.size();
    std::string mail = smtp_mail_from(sender, p);
    FUZZ_ASSERT(mail.find_first_of("\r\n") == mail.size() - 2);
    if (!sender.empty()) {
        std::string rcpt = smtp_rcpt_to(sender);
        FUZZ_ASSERT(rcpt.find_first_of("\r\n") == rcpt.size() - 2);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::uint8_t opts = data[0];
    std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);
    std::string_view server = rest, message = rest;
    if (auto cut = rest.find(std::string_view("\0\0", 2)); cut != std::string_view::npos) {
        server = rest.substr(0, cut);
        message = rest.substr(cut + 2);
    }

    Parsed whole = parse(server, nullptr);
    fuzz::Chunker chunks(data[1]);
    Parsed pieces = parse(server, &chunks);
    FUZZ_ASSERT(whole.error == pieces.error);
    if (!whole.error) FUZZ_ASSERT(same(whole.replies, pieces.replies));
    std::vector<std::string> login_lines;
    for (const auto& r : whole.replies) {
        FUZZ_ASSERT(r.code >= 200 && r.code <= 599 && !r.lines.empty());
        for (const auto& l : r.lines) {
            FUZZ_ASSERT(l.find('\n') == std::string::npos);
            login_lines.push_back(std::to_string(r.code) + " " + l);
        }
        SmtpCapabilities c = parse_capabilities(r);
        if (!c.size) FUZZ_ASSERT(c.max_size == 0);
        FUZZ_ASSERT(!r.text().empty());
    }
    (void)capabilities_from_login(login_lines);

    if (opts & 0x20)
        pipelined(whole.replies, opts);
    else
        one_at_a_time(whole.replies, opts);
    check_dot_stuffing(message, data[1]);
    check_envelope(message);
    return 0;
}
