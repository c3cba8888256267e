#include "smtp_codec.h"

#include <algorithm>

#include "error.h"
#include "text_util.h"

namespace pullmail {

std::string SmtpReply::text() const {
    std::string s = std::to_string(code);
    for (std::size_t i = 0; i < lines.size(); ++i) s += (i ? " / " : " ") + lines[i];
    return s;
}

void SmtpReplyParser::feed(std::string_view bytes, std::vector<SmtpReply>& out) {
    while (!bytes.empty()) {
        auto nl = bytes.find('\n');
        if (nl == std::string_view::npos) {
            partial_.append(bytes);
            if (partial_.size() > kMaxLine)
                throw_protocol_error("the SMTP/LMTP server sent a reply line longer than " +
                                     std::to_string(kMaxLine) + " bytes");
            return;
        }
        partial_.append(bytes.substr(0, nl));
        bytes.remove_prefix(nl + 1);
        if (partial_.size() > kMaxLine)
            throw_protocol_error("the SMTP/LMTP server sent a reply line longer than " + std::to_string(kMaxLine) +
                                 " bytes");
        if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
        std::string l = std::move(partial_);
        partial_.clear();
        line(l, out);
    }
}

void SmtpReplyParser::line(std::string_view l, std::vector<SmtpReply>& out) {
    bool shape = l.size() >= 3 && std::all_of(l.begin(), l.begin() + 3, [](char c) { return c >= '0' && c <= '9'; }) &&
                 l[0] >= '2' && l[0] <= '5' && (l.size() == 3 || l[3] == ' ' || l[3] == '-');
    if (!shape) throw_protocol_error("the SMTP/LMTP server sent a line that is not a reply", l);
    int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
    if (!current_.lines.empty() && current_.code != code)
        throw_protocol_error("the SMTP/LMTP server changed the reply code within a multi-line reply", l);
    current_.code = code;
    if (current_.lines.size() >= kMaxLines)
        throw_protocol_error("the SMTP/LMTP server sent a reply of more than " + std::to_string(kMaxLines) + " lines");
    current_.lines.emplace_back(l.size() > 4 ? l.substr(4) : std::string_view());
    if (l.size() == 3 || l[3] == ' ') {
        out.push_back(std::move(current_));
        current_ = SmtpReply();
    }
}

SmtpCapabilities parse_capabilities(const SmtpReply& ehlo) {
    SmtpCapabilities c;
    for (std::size_t i = 1; i < ehlo.lines.size(); ++i) {  // the first line is the server's name
        std::string l = ascii_upper(ehlo.lines[i]);
        std::string_view kw = l;
        std::string_view arg;
        if (auto sp = kw.find(' '); sp != std::string_view::npos) {
            arg = kw.substr(sp + 1);
            kw = kw.substr(0, sp);
        }
        if (kw == "PIPELINING") c.pipelining = true;
        if (kw == "CHUNKING") c.chunking = true;
        if (kw == "8BITMIME") c.eightbitmime = true;
        if (kw == "SMTPUTF8") c.smtputf8 = true;
        if (kw == "SIZE") {
            c.size = true;
            std::uint64_t n = 0;
            bool digits = !arg.empty() && arg.size() < 19;
            for (char ch : arg) {
                if (ch < '0' || ch > '9') digits = false;
                else n = n * 10 + static_cast<std::uint64_t>(ch - '0');
            }
            c.max_size = digits ? n : 0;
        }
    }
    return c;
}

SmtpCapabilities capabilities_from_login(const std::vector<std::string>& lines) {
    // libcurl's record holds every server line of its login; the last EHLO
    // reply is the last run of 250 lines (AUTH ends with 235, STARTTLS with 220).
    SmtpReply last, cur;
    bool in_run = false;
    for (const auto& l : lines) {
        bool is250 = l.size() >= 3 && l.compare(0, 3, "250") == 0 && (l.size() == 3 || l[3] == '-' || l[3] == ' ');
        if (!is250) {
            in_run = false;
            continue;
        }
        if (!in_run) cur = SmtpReply{250, {}};
        in_run = l.size() >= 4 && l[3] == '-';
        cur.lines.push_back(l.size() > 4 ? l.substr(4) : std::string());
        if (!in_run) last = cur;
    }
    return parse_capabilities(last);
}

std::string smtp_mail_from(std::string_view sender, const MailParams& params) {
    std::string s = "MAIL FROM:<" + std::string(sender) + ">";
    if (params.body_8bit) s += " BODY=8BITMIME";
    if (params.smtputf8) s += " SMTPUTF8";
    if (params.size) s += " SIZE=" + std::to_string(params.size);
    return s + "\r\n";
}

std::string smtp_rcpt_to(std::string_view recipient) { return "RCPT TO:<" + std::string(recipient) + ">\r\n"; }

std::string smtp_bdat(std::uint64_t size, bool last) {
    return "BDAT " + std::to_string(size) + (last ? " LAST\r\n" : "\r\n");
}

bool plain_mail_address(std::string_view a) {
    if (a.empty() || a.size() > 320) return false;
    return std::none_of(a.begin(), a.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u == 0x7f || c == '<' || c == '>' || c == '(' || c == ')' || c == ',' || c == ';' ||
               c == '"' || c == '\\';
    });
}

bool has_8bit(std::string_view bytes) {
    return std::any_of(bytes.begin(), bytes.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

namespace {

std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return std::string(s);
}

// The address of an address field: inside the first <...>, else the first
// word with an '@' (comments and display names aside). False when there is
// none we could use; "<>" gives true and "".
bool field_address(std::string_view value, std::string& out) {
    auto lt = value.find('<');
    if (lt != std::string_view::npos) {
        auto gt = value.find('>', lt);
        if (gt == std::string_view::npos) return false;
        out = trim(value.substr(lt + 1, gt - lt - 1));
        return out.empty() || plain_mail_address(out);
    }
    std::size_t i = 0;
    while (i < value.size()) {
        while (i < value.size() && (value[i] == ' ' || value[i] == '\t' || value[i] == ',')) ++i;
        std::size_t j = i;
        while (j < value.size() && value[j] != ' ' && value[j] != '\t' && value[j] != ',') ++j;
        std::string_view w = value.substr(i, j - i);
        if (w.find('@') != std::string_view::npos && plain_mail_address(w)) {
            out = std::string(w);
            return true;
        }
        i = j;
    }
    return false;
}

}  // namespace

std::string envelope_sender(std::string_view header_block) {
    std::string return_path, from, content_type;
    bool have_rp = false, have_from = false;
    for_each_header_field(header_block, [&](const std::string& name, const std::string& value) {
        if (name == "return-path" && !have_rp) have_rp = field_address(value, return_path);
        if (name == "from" && !have_from) have_from = field_address(value, from);
        if (name == "content-type" && content_type.empty()) content_type = ascii_lower(value);
    });
    if (have_rp) return return_path;
    auto at = from.find('@');
    std::string local = ascii_lower(from.substr(0, at == std::string::npos ? 0 : at));
    bool report = content_type.find("multipart/report") != std::string::npos &&
                  content_type.find("delivery-status") != std::string::npos;
    if (local == "mailer-daemon" || local == "postmaster" || report) return "";
    return have_from ? from : "";
}

void DotStuffer::encode(std::string_view in, std::string& out) {
    if (!in.empty()) empty_ = false;
    std::size_t from = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
        char c = in[i];
        if (line_start_ && c == '.') {
            out.append(in.data() + from, i - from);
            out += '.';
            from = i;
        }
        line_start_ = after_cr_ && c == '\n';
        after_cr_ = c == '\r';
    }
    out.append(in.data() + from, in.size() - from);
}

void DotStuffer::finish(std::string& out) {
    if (!empty_ && !line_start_) out += "\r\n";
    out += ".\r\n";
    line_start_ = true;
    after_cr_ = false;
    empty_ = true;
}

void SmtpTransactions::begin(std::string id, const std::vector<std::string>& recipients, bool rset, bool bdat) {
    std::size_t t = base_ + txns_.size();
    Txn txn;
    txn.outcome.id = std::move(id);
    txns_.push_back(std::move(txn));
    if (rset) steps_.push_back({Step::Rset, t, {}});
    steps_.push_back({Step::Mail, t, {}});
    for (const auto& r : recipients) steps_.push_back({Step::Rcpt, t, r});
    if (bdat) {
        steps_.push_back({Step::Final, t, {}});
    } else {
        steps_.push_back({Step::Data, t, {}});
        data_pending_ = true;
        data_accepted_ = false;
    }
}

bool SmtpTransactions::data_decided() const { return !data_pending_; }

void SmtpTransactions::data_sent() { steps_.push_back({Step::Final, base_ + txns_.size() - 1, {}}); }

void SmtpTransactions::fail(Txn& t, std::string step, const SmtpReply& r) {
    auto result = r.code >= 500 ? SmtpOutcome::Result::Permanent : SmtpOutcome::Result::Temporary;
    // The first permanent refusal says most; a temporary one only until then.
    if (t.failed && !(t.outcome.result == SmtpOutcome::Result::Temporary && result == SmtpOutcome::Result::Permanent))
        return;
    t.failed = true;
    t.outcome.result = result;
    t.outcome.step = std::move(step);
    t.outcome.server_text = r.text();
}

std::string SmtpTransactions::recipient_of_final(const Txn& t) {
    return t.finals_seen < t.accepted_rcpts.size() ? t.accepted_rcpts[t.finals_seen] : std::string();
}

void SmtpTransactions::on_reply(const SmtpReply& r) {
    if (steps_.empty()) throw_protocol_error("the SMTP/LMTP server sent a reply nobody asked for", r.text());
    Pending& p = steps_.front();
    Txn& t = txns_[p.txn - base_];
    bool ok = r.code >= 200 && r.code < 300;
    switch (p.step) {
        case Step::Rset:
            break;  // only makes the transaction independent of the one before
        case Step::Mail:
            if (!ok) fail(t, "MAIL FROM", r);
            break;
        case Step::Rcpt:
            if (ok) {
                ++t.accepted;
                t.accepted_rcpts.push_back(p.rcpt);
            } else
                fail(t, "RCPT TO:<" + p.rcpt + ">", r);
            break;
        case Step::Data:
            data_pending_ = false;
            data_accepted_ = r.code == 354;
            if (!data_accepted_) {
                fail(t, "DATA", r);
                t.done = true;
            }
            break;
        case Step::Final:
            if (t.finals_left == 0) t.finals_left = lmtp_ ? std::max<std::size_t>(t.accepted, 1) : 1;
            if (!ok) {
                fail(t, lmtp_ && t.accepted > 1 ? "end of data (<" + recipient_of_final(t) + ">)" : "end of data", r);
            } else if (lmtp_) {
                if (t.finals_seen < t.accepted_rcpts.size()) t.outcome.delivered_to.push_back(t.accepted_rcpts[t.finals_seen]);
            } else {
                t.outcome.delivered_to = t.accepted_rcpts;
            }
            ++t.finals_seen;
            if (--t.finals_left > 0) return;  // LMTP: more per-recipient replies to come
            t.done = true;
            break;
    }
    steps_.pop_front();
}

std::vector<SmtpOutcome> SmtpTransactions::take_finished() {
    std::vector<SmtpOutcome> out;
    while (!txns_.empty() && txns_.front().done) {
        Txn& t = txns_.front();
        if (!t.failed) t.outcome.result = SmtpOutcome::Result::Delivered;
        out.push_back(std::move(t.outcome));
        txns_.pop_front();
        ++base_;
    }
    return out;
}

}  // namespace pullmail
