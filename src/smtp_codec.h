// smtp_codec.h — the SMTP/LMTP client side as bytes in, replies out: reply
// parsing, EHLO/LHLO capabilities, command lines, the DATA dot-stuffing
// encoder, the envelope sender of a message, and the bookkeeping that pairs
// pipelined replies (RFC 2920) with the transactions that asked for them.
// No sockets here (deliver_smtp.cpp moves the bytes), so unit tests and
// fuzzers feed it directly.
//
// SMTP and LMTP differ in two places only: LHLO instead of EHLO, and after
// the data LMTP answers once per accepted recipient (RFC 2033 4.2), SMTP once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace pullmail {

struct SmtpReply {
    int code = 0;                    // 250, 354, 451, 550, ...
    std::vector<std::string> lines;  // the text after "ddd-" / "ddd ", one per line
    // "550 5.1.1 no such user" (all lines joined by " / "), raw: sanitise
    // before showing it.
    std::string text() const;
};

// Splits what the server sends into replies. A line that is not
// "ddd[ -]text", a multi-line reply whose codes change, a line longer than
// kMaxLine or a reply of more than kMaxLines lines throws Error(Protocol).
class SmtpReplyParser {
public:
    static constexpr std::size_t kMaxLine = 8192;
    static constexpr std::size_t kMaxLines = 256;  // an EHLO reply has a dozen
    // Appends the replies completed by `bytes` to `out`.
    void feed(std::string_view bytes, std::vector<SmtpReply>& out);

private:
    void line(std::string_view l, std::vector<SmtpReply>& out);
    std::string partial_;
    SmtpReply current_;
};

// What an EHLO/LHLO reply offers (keywords are case-insensitive).
struct SmtpCapabilities {
    bool pipelining = false;    // RFC 2920
    bool chunking = false;      // RFC 3030 BDAT
    bool eightbitmime = false;  // RFC 6152
    bool smtputf8 = false;      // RFC 6531
    bool size = false;          // RFC 1870
    std::uint64_t max_size = 0; // SIZE n; 0 = no limit announced
};
SmtpCapabilities parse_capabilities(const SmtpReply& ehlo);
// The capabilities in the lines libcurl read during its login (greeting,
// EHLO, STARTTLS, EHLO again, AUTH): the last 250 reply whose first line
// follows a non-250 line or starts the record.
SmtpCapabilities capabilities_from_login(const std::vector<std::string>& lines);

// The parameters of one MAIL FROM.
struct MailParams {
    bool body_8bit = false;   // BODY=8BITMIME
    bool smtputf8 = false;    // SMTPUTF8
    std::uint64_t size = 0;   // SIZE=n when nonzero
};
// "MAIL FROM:<sender> BODY=8BITMIME SMTPUTF8 SIZE=123\r\n"; sender "" is <>.
std::string smtp_mail_from(std::string_view sender, const MailParams& params);
std::string smtp_rcpt_to(std::string_view recipient);
std::string smtp_bdat(std::uint64_t size, bool last);

// A mail address we can put between < > in MAIL/RCPT: no spaces, controls,
// '<', '>' or quotes-looking syntax we would have to re-encode.
bool plain_mail_address(std::string_view addr);

// The envelope sender of a message, from its header block (LF or CRLF):
// the Return-Path: address ("" for Return-Path: <>); else "" (the null
// sender) for a message that looks like a bounce (From: MAILER-DAEMON@ or
// postmaster@, or Content-Type: multipart/report; report-type=delivery-status);
// else the From: address; else "". Addresses that plain_mail_address()
// rejects are skipped.
std::string envelope_sender(std::string_view header_block);

// True when any byte is >= 0x80.
bool has_8bit(std::string_view bytes);

// Streaming dot-stuffing for DATA (RFC 5321 4.5.2): every line starting with
// '.' gets one more. Input must have CRLF line endings; chunk boundaries may
// fall anywhere. finish() ends the data with CRLF (added only when the
// message does not already end with one) and the terminating ".\r\n".
class DotStuffer {
public:
    void encode(std::string_view in, std::string& out);
    void finish(std::string& out);

private:
    bool line_start_ = true;
    bool after_cr_ = false;
    bool empty_ = true;
};

// How one message's transaction ended.
struct SmtpOutcome {
    enum class Result { Delivered, Temporary, Permanent } result = Result::Delivered;
    std::string id;
    std::string step;         // "RCPT TO:<x>", "MAIL FROM", "DATA", "end of data" — where it failed
    std::string server_text;  // the server's words (raw), for failed ones
    // The recipients that got the message (RCPT accepted and the final reply
    // 2xx: with LMTP each accepted recipient's own reply, with SMTP the one
    // reply for all): every recipient when Delivered, possibly some when not.
    std::vector<std::string> delivered_to;
};

// Pairs replies with what was sent, in order, for pipelined transactions.
// For each message the deliverer calls begin(); sends (or queues) what it
// registered; and feeds every reply to on_reply(). With DATA it waits
// until data_decided(), then calls data_sent() and sends the body.
class SmtpTransactions {
public:
    explicit SmtpTransactions(bool lmtp) : lmtp_(lmtp) {}
    // A transaction: optional RSET first, MAIL, one RCPT per recipient, then
    // BDAT (one reply, or one per accepted recipient with LMTP) or DATA
    // (354, then data_sent() adds the end-of-data replies, before the body
    // goes out: the server may answer it before the sender returns).
    void begin(std::string id, const std::vector<std::string>& recipients, bool rset, bool bdat);
    // Throws Error(Protocol) for a reply nobody waits for.
    void on_reply(const SmtpReply& r);
    // DATA of the newest transaction answered: true when 354 came (send the
    // body, then data_sent()); false when refused (its outcome is final).
    bool data_decided() const;
    bool data_accepted() const { return data_accepted_; }
    void data_sent();
    // Replies still owed.
    bool idle() const { return steps_.empty(); }
    std::size_t owed() const { return steps_.size(); }
    std::vector<SmtpOutcome> take_finished();

private:
    enum class Step { Rset, Mail, Rcpt, Data, Final };
    struct Pending {
        Step step;
        std::size_t txn;           // index into txns_
        std::string rcpt;          // for Rcpt
    };
    struct Txn {
        SmtpOutcome outcome;
        std::size_t accepted = 0;  // RCPTs answered 2xx
        std::vector<std::string> accepted_rcpts;  // in order: LMTP's final replies follow it
        std::size_t finals_seen = 0;
        std::size_t finals_left = 0;
        bool failed = false;
        bool done = false;
    };
    void fail(Txn& t, std::string step, const SmtpReply& r);
    static std::string recipient_of_final(const Txn& t);  // whom the next LMTP final reply is for

    bool lmtp_;
    std::deque<Pending> steps_;
    std::deque<Txn> txns_;       // index = txn - base_
    std::size_t base_ = 0;
    bool data_pending_ = false;  // DATA of the newest transaction not yet answered
    bool data_accepted_ = false;
};

}  // namespace pullmail
