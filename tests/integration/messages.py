"""Deterministic test mail for pullmail: ordinary messages and the strange
real-world ones that break mail fetchers.

Every message is a Message(name, data) with data the exact bytes to store on
the server. Every message carries a unique Message-ID <NAME@corpus.pullmail.test>
so delivered copies can be matched to their source whatever order or file
names the delivery used. The same seed gives the same bytes on every run.

    strange_corpus(include_huge=True)  the odd cases (see STRANGE below)
    ordinary_corpus(n, seed)           n plain messages of 1-20 KB
    huge_message(size)                 one message with a base64 attachment
"""

import base64
import random

DOMAIN = "corpus.pullmail.test"
HUGE_SIZE = 50 * 1024 * 1024
LONG_LINE_SIZE = 2 * 1024 * 1024

WORDS = ("mail fetch server client message header body line folder inbox deliver "
         "state keep delete retry socket certificate password account config "
         "maildir mbox pipeline latency archive quota filter thread reply forward "
         "the a of to and in is it for on with as at by from this that be are").split()


class Message:
    __slots__ = ("name", "data", "about")

    def __init__(self, name, data, about=""):
        self.name = name
        self.data = data
        self.about = about

    @property
    def message_id(self):
        return "<%s@%s>" % (self.name, DOMAIN)

    def __repr__(self):
        return "Message(%r, %d bytes)" % (self.name, len(self.data))


def _date(rng):
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    return "%s, %d %s %d %02d:%02d:%02d +0000" % (
        rng.choice(days), rng.randint(1, 28), rng.choice(months), rng.randint(2015, 2024),
        rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59))


def _headers(name, subject, rng, extra=()):
    lines = [
        "Return-Path: <sender@example.org>",
        "Message-ID: <%s@%s>" % (name, DOMAIN),
        "Date: %s" % _date(rng),
        "From: Sender %d <sender%d@example.org>" % (rng.randint(1, 99), rng.randint(1, 99)),
        "To: user1@localhost",
        "Subject: %s" % subject,
    ]
    lines += list(extra)
    return ("\n".join(lines) + "\n").encode("utf-8")


def _text(rng, size, width=72):
    out = []
    total = 0
    line = []
    while total < size:
        w = rng.choice(WORDS)
        if sum(len(x) + 1 for x in line) + len(w) > width:
            s = " ".join(line) + "\n"
            out.append(s)
            total += len(s)
            line = []
            if rng.random() < 0.12:
                out.append("\n")
                total += 1
        line.append(w)
    if line:
        out.append(" ".join(line) + "\n")
    return "".join(out).encode("ascii")


def ordinary_corpus(n, seed=1, min_size=1024, max_size=20 * 1024, prefix="ordinary"):
    """n ordinary messages of min_size..max_size bytes, some multipart."""
    rng = random.Random("ordinary-%s" % seed)
    out = []
    for i in range(n):
        name = "%s-%d-%04d" % (prefix, seed, i)
        size = rng.randint(min_size, max_size)
        if rng.random() < 0.25:
            boundary = "=_b%08x" % rng.getrandbits(32)
            head = _headers(name, "Report %d with attachment" % i, rng, [
                "MIME-Version: 1.0",
                'Content-Type: multipart/mixed; boundary="%s"' % boundary])
            text = _text(rng, size // 2)
            blob = base64.encodebytes(rng.randbytes(max(size // 3, 16)))
            body = (b"\nThis is a multi-part message in MIME format.\n\n--" + boundary.encode() +
                    b"\nContent-Type: text/plain; charset=us-ascii\n\n" + text +
                    b"\n--" + boundary.encode() +
                    b"\nContent-Type: application/octet-stream\n"
                    b"Content-Transfer-Encoding: base64\n"
                    b'Content-Disposition: attachment; filename="data.bin"\n\n' + blob +
                    b"\n--" + boundary.encode() + b"--\n")
        else:
            head = _headers(name, "Note %d about %s" % (i, rng.choice(WORDS)), rng,
                            ["MIME-Version: 1.0", "Content-Type: text/plain; charset=us-ascii"])
            body = b"\n" + _text(rng, size)
        out.append(Message(name, head + body, "ordinary"))
    return out


def huge_message(size=HUGE_SIZE, seed=7, name="huge-attachment"):
    """A message of about `size` bytes: a short text part plus one base64
    attachment (76-character lines)."""
    rng = random.Random("huge-%s" % seed)
    raw_len = (size - 2048) * 57 // 77  # base64: 57 raw bytes -> 76 chars + LF
    blob = base64.encodebytes(rng.randbytes(raw_len))
    boundary = b"=_huge_boundary_0001"
    head = _headers(name, "Big attachment (%d MB)" % (size // (1024 * 1024)), rng, [
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="%s"' % boundary.decode()])
    body = (b"\n--" + boundary + b"\nContent-Type: text/plain\n\nSee the attachment.\n\n--" +
            boundary + b"\nContent-Type: application/octet-stream\n"
            b"Content-Transfer-Encoding: base64\n"
            b'Content-Disposition: attachment; filename="big.bin"\n\n' + blob +
            b"\n--" + boundary + b"--\n")
    return Message(name, head + body, "50 MB base64 attachment")


def strange_corpus(include_huge=True, seed=3):
    """The odd messages, in a fixed order. include_huge adds the 50 MB one."""
    rng = random.Random("strange-%s" % seed)
    out = []

    def add(name, data, about):
        out.append(Message(name, data, about))

    # An mbox separator left at the top of the message by some broken MTA.
    add("from-first-line",
        b"From sender@example.org Mon Jan  1 00:00:00 2024\n" +
        _headers("from-first-line", "From line before the headers", rng) +
        b"\nbody after a header block that started with a From line\n",
        "'From ' line before the headers")

    # The header block is followed by a "From " line (no blank line between).
    add("from-after-headers",
        _headers("from-after-headers", "From line after the headers", rng) +
        b"From sender@example.org Tue Feb  2 02:02:02 2021\n"
        b"\nbody\n",
        "'From ' line ends the header block")

    # Body lines that mbox quoting must get right.
    add("from-lines-in-body",
        _headers("from-lines-in-body", "From lines in the body", rng) +
        b"\nFrom the start of the body\n"
        b"From here on it gets strange\n"
        b">From already quoted once\n"
        b">>From quoted twice\n"
        b">>>>>From quoted five times\n"
        b"From\n"
        b"From:not a separator\n"
        b" From with a leading space\n"
        b">From\n"
        b"> From with space after >\n"
        b"\n"
        b"From sender@example.org Sat Jan  1 00:00:00 2000\n"
        b"last line\n"
        b"From ",
        "body lines starting with 'From ' and '>From '; ends with a bare 'From '")

    # Lines POP3 byte-stuffs and a naive parser takes for the end of data.
    add("dot-lines",
        _headers("dot-lines", "Dots", rng) +
        b"\nbefore\n"
        b".\n"
        b"..\n"
        b"...\n"
        b"..leading two dots\n"
        b".leading one dot\n"
        b". \n"
        b".\r\n"
        b"after\n"
        b".\n",
        "lines holding only '.', lines starting with '..'; ends with '.'")

    # Lines that look like IMAP protocol to a careless client.
    add("protocol-lookalikes",
        _headers("protocol-lookalikes", "Looks like IMAP", rng) +
        b"\nA001 OK FETCH completed\n"
        b"A005 OK LOGIN completed\n"
        b"* 1 FETCH (FLAGS (\\Seen))\n"
        b"* BYE server shutting down\n"
        b"+OK 2 messages\n"
        b"-ERR no such message\n"
        b"{12}\n"
        b")\n",
        "body lines looking like IMAP/POP3 responses and literals")

    # Mixed line endings as some Windows tools produce them.
    add("mixed-crlf-lf",
        b"Message-ID: <mixed-crlf-lf@" + DOMAIN.encode() + b">\r\n"
        b"Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
        b"From: Windows <win@example.org>\r\n"
        b"Subject: Mixed line endings\n"
        b"\r\n"
        b"crlf line\r\n"
        b"lf line\n"
        b"crlf again\r\n"
        b"\n"
        b"\r\n"
        b"a lone CR\rinside a line\n"
        b"last\r\n",
        "mixed CRLF / LF, a lone CR inside a line")

    # 8-bit bytes, also in headers, as found in old and broken mail.
    add("latin1-8bit",
        b"Message-ID: <latin1-8bit@" + DOMAIN.encode() + b">\n"
        b"Date: Tue, 2 Jan 2024 10:00:00 +0100\n"
        b"From: J\xfcrgen M\xfcller <juergen@example.org>\n"
        b"Subject: Gr\xfc\xdfe aus K\xf6ln \xa9 \xbd\n"
        b"Content-Type: text/plain; charset=iso-8859-1\n"
        b"Content-Transfer-Encoding: 8bit\n"
        b"\n"
        b"Sch\xf6ne Gr\xfc\xdfe, \xe7a va? \xa4\xb5\xff\n"
        b"\xff\xfe\x80\x81\x9f high bytes and C1 controls\n",
        "latin-1 8-bit bytes in headers and body")
    add("utf8-raw",
        "Message-ID: <utf8-raw@%s>\n"
        "Date: Wed, 3 Jan 2024 11:00:00 +0100\n"
        "From: Zoë Ñandú <zoe@example.org>\n"
        "To: Jürgen <user1@localhost>\n"
        "Subject: Ünïcödé 日本語 😀 raw UTF-8 header\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "\n"
        "Grüße — こんにちは — Привет — 😀\n"
        "Entwürfe\n".replace("%s", DOMAIN).encode("utf-8"),
        "raw UTF-8 in headers and body")

    # A 2 MB line without a single line break.
    line = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(4096))
    long_line = (line * (LONG_LINE_SIZE // len(line) + 1))[:LONG_LINE_SIZE]
    add("long-line-2mb",
        _headers("long-line-2mb", "One 2 MB line", rng) + b"\n" + long_line + b"\nend\n",
        "a single 2 MB line")

    # A header line of 10 KB, unfolded.
    add("long-header",
        _headers("long-header", "Long header line", rng,
                 ["X-Long: " + "x" * 10000, "References: " + " ".join(
                     "<ref%d@example.org>" % i for i in range(300))]) +
        b"\nshort body\n",
        "10 KB unfolded header line and a very long References")

    add("no-final-newline",
        _headers("no-final-newline", "No final newline", rng) +
        b"\nfirst line\nthe last line has no newline",
        "message not ending in a newline")

    add("headers-only",
        _headers("headers-only", "Only headers, no blank line", rng),
        "headers only, no blank line, no body")

    add("headers-blank",
        _headers("headers-blank", "Headers and a blank line", rng) + b"\n",
        "headers followed by the blank line and nothing else")

    add("trailing-blank-lines",
        _headers("trailing-blank-lines", "Blank lines at the end", rng) +
        b"\nbody\n\n\n\n\n",
        "several blank lines at the end")

    add("crlf-only",
        (_headers("crlf-only", "Pure CRLF message", rng) + b"\nline one\nline two\n")
        .replace(b"\n", b"\r\n"),
        "CRLF line endings throughout")

    if include_huge:
        out.append(huge_message())
    return out


def names(corpus):
    return [m.name for m in corpus]


if __name__ == "__main__":
    for m in strange_corpus(include_huge=True) + ordinary_corpus(5):
        print("%-22s %10d bytes  %s" % (m.name, len(m.data), m.about))
