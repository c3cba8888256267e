#!/usr/bin/env python3
"""Writes the seed corpus tests/fuzz/corpus/<target>/seed-* (run from anywhere;
the files are in the tree, this only documents and regenerates them). Each
seed is a well-formed exchange or value; the fuzzer mutates from there."""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def pop3_multi(lines):
    out = "+OK\r\n"
    for l in lines:
        out += ("." + l if l.startswith(".") else l) + "\r\n"
    return out + ".\r\n"


MSG1 = ["From: a@example.org", "Subject: hi", "Date: Tue, 1 Jul 2003 10:52:37 +0200", "", "body", ".dot line", "From here"]
MSG2 = ["Message-ID: <x@y>", "", "short"]

# POP3 session: opts byte (bit 0 allow pipelining, bit 1 PIPELINING before
# login, bit 2 stop after two messages, bits 3.. chunking), then the server.
pop3 = (pop3_multi(["PIPELINING", "UIDL", "TOP"]) + pop3_multi(["1 uid-one", "2 uid-two", "3 uid-3"])
        + pop3_multi(["1 120", "2 30", "3 10"]) + pop3_multi(MSG1) + "-ERR no such message\r\n" + pop3_multi(MSG2)
        + pop3_multi(MSG1[:4]) + pop3_multi(MSG2[:1]) + "-ERR gone\r\n"
        + "+OK\r\n+OK\r\n-ERR locked\r\n+OK bye\r\n")
put("pop3_session", "pipelined", b"\x03" + pop3.encode())
put("pop3_session", "one-at-a-time-chunks", b"\x28" + pop3.encode())
put("pop3_session", "no-uidl", b"\x00" + (pop3_multi(["USER"]) + "-ERR no UIDL\r\n" + pop3_multi([])).encode())

# POP3 codec: multi-line mask, chunking, then greeting and eight replies.
codec = ("+OK POP3 ready\r\n" + pop3_multi(["CAPA", "SASL PLAIN"]) + "+OK 2 200\r\n" + pop3_multi(["1 a", "2 b"])
         + pop3_multi(["1 100 extra", "2  20 "]) + "-ERR no\r\n" + pop3_multi(["..", ".x", ""]) + "+OK\n"
         + "+OK\r\n.\r\n")
put("pop3_codec", "mixed", b"\xf5\x07" + codec.encode())
put("pop3_codec", "bare-lf", b"\xff\x00" + codec.replace("\r\n", "\n").encode())

# IMAP session: opts byte (bit 0 LIST "*", bit 1 folder "Lists/ü", bit 2
# EXAMINE; bits 3.. chunking), then the server from the first command on.
def imap_session(opts, folder_tag_base):
    t = folder_tag_base
    s = "* CAPABILITY IMAP4rev1 UIDPLUS LITERAL+\r\nP1 OK done\r\n* LIST (\\Noselect) \".\" \"\"\r\nP2 OK\r\n"
    if opts & 1:
        s += "* LIST () \".\" INBOX\r\n* LIST (\\HasNoChildren) \".\" \"Lists.&APw-\"\r\n* LIST () \".\" {5}\r\nA\r\nB\r\nP3 OK\r\n"
    body = "Subject: x\r\n\r\nhello\r\n"
    s += ("* 2 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 9] next\r\n"
          "* 1 FETCH (UID 3 RFC822.SIZE %d)\r\n* 2 FETCH (UID 8 RFC822.SIZE 4)\r\nP%d OK selected\r\nP%d OK listed\r\n"
          % (len(body), t, t + 1))
    s += ("* 1 FETCH (UID 3 RFC822.SIZE %d FLAGS (\\Seen $Label) INTERNALDATE \"01-Jan-2020 00:00:00 +0000\" BODY[] {%d}\r\n%s)\r\n"
          "* 2 FETCH (UID 8 BODY[] {4}\r\nA1 O)\r\n* 1 FETCH (FLAGS (\\Seen))\r\nP%d OK fetched\r\n" % (len(body), len(body), body, t + 2))
    s += ("* 1 FETCH (UID 3 BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)] {12}\r\nSubject: x\r\n)\r\n"
          "P%d OK\r\n" % (t + 3))
    s += "* 1 EXPUNGE\r\nP%d OK\r\n* 1 EXPUNGE\r\nP%d OK\r\nP%d OK bye\r\n" % (t + 4, t + 5, t + 6)
    return bytes([opts]) + s.encode()


put("imap_session", "inbox", imap_session(0x00, 3))
put("imap_session", "list-utf7-examine", imap_session(0x07, 4))
put("imap_session", "chunks", imap_session(0x30, 3))

# IMAP codec: chunking, astring flag, then responses.
imap = ("* OK [CAPABILITY IMAP4rev1] ready\r\n* 1 FETCH (UID 5 BODY[] {5}\r\nab\r\nc FLAGS (\\Seen))\r\n"
        "* LIST (\\HasChildren) \"/\" \"a \\\"q\\\" \\\\ b\"\r\n* 2 FETCH (BODY[HEADER.FIELDS (A B)] ~{3+}\r\nx\r\n)\r\n"
        "+ \r\n+\r\nA1 NO [ALERT] no {x}\r\n* SEARCH 1 2 18446744073709551615 18446744073709551616\r\n"
        "* 3 FETCH (X {0}\r\n NIL \"{3}\")\nP1 OK done\r\n")
put("imap_codec", "responses", b"\x05\x00" + imap.encode())
put("imap_codec", "astring", b"\x00\x01" + "Sent \"Items\"\\x".encode())
put("imap_codec", "astring-8bit", b"\x00\x01" + "Entw\u00fcrfe\r\n".encode())

put("mutf7", "ascii", "INBOX/Sent & Drafts")
put("mutf7", "encoded", "Entw&APw-rfe-&ZeVnLIqe-")
put("mutf7", "surrogates", "&2D3eAA-")
put("mutf7", "utf8", "Entw\u00fcrfe \U0001F600 \u65e5\u672c")

def uids(max_len, start, values):
    return struct.pack(">H", max_len) + bytes([start]) + b"".join(struct.pack("<I", v) for v in values)


put("uid_set", "runs", uids(4000, 0x80, [1, 2, 3, 5, 7, 8, 9, 4000, 4001]))
put("uid_set", "short", uids(7, 0x01, [9, 10, 11, 12, 13, 99999, 100000]))
put("uid_set", "max", uids(30, 0x00, [4294967294, 4294967295, 1]))

put("config", "full", """[defaults]
keep = true
timeout = 30

[accounts.home]
url = "pop3s://pop.example.org"
user = "me@example.org"
password_command = "pass show mail/home"
deliver = "maildir:~/Mail/inbox"
keep = false

[accounts.work]
url = "imaps://imap.example.com:993"
user = "jdoe"
password_file = "~/.config/pullmail/work.password"
folders = ["INBOX", "Lists/cpp"]
deliver = "mbox:~/Mail/work.mbox"
connections = 2

[accounts.alice]
url = "pop3s://pop.old-isp.example"
user = "alice"
password = "x"
deliver = { url = "imaps://imap.new.example/INBOX", user = "a@new.example", password_command = "pass new/alice" }
""")
put("config", "mda", '[accounts.m]\nurl = "imap://h"\nuser = "u"\npassword = "p"\ndeliver = "mda:procmail -d %T"\nenabled = false\n')

put("headers", "message", b"\x03" + ("Received: from x by y; Tue, 1 Jul 2003 10:52:37 +0200\r\n"
                                     "Date: 2 Jul 2003 01:02 GMT (comment)\r\nFrom: A <a@b>\r\nSubject: one\r\n two\r\n"
                                     "Message-ID: <id@h>\r\n\r\nFrom the body\n>From quoted\n>>From  x\nFrom").encode())
put("headers", "date", b"\x00Tue, 1 Jul 03 10:52:37 EDT")
put("headers", "lf", b"\x11Subject: s\n\nFrom \n\r\n\r")


def crc_line(rec):
    import zlib
    return "%08x %s\n" % (zlib.crc32(rec.encode()) & 0xffffffff, rec)


# Seen state: byte 0 bit 0 = raw file, else lines get checksums ('#' = raw).
put("state_journal", "records", b"\x00" + ("V INBOX 7\nS pop3:a 120 0123456789abcdef0123456789abcdef\n"
                                        "S imap:INBOX:7:3 10 - appenduid:9:4\nI pop3:b maildir new/x\nR pop3:b\n"
                                        "F pop3:a\nI pop3:c mbox 0 100\nS pop3:d\n#garbage\nS pop3:e 1 -").encode())
put("state_journal", "raw", b"\x01pullmail-state 1\n" + crc_line("S pop3:a 5 -").encode() + b"0000 torn")
put("state_journal", "torn", b"\x00S pop3:a 5 -\nS pop3:b 6 -\nS pop3:c")


# A Z record (src/state_snapshot.h): entries (key, size, fingerprint, where,
# flags, time), packed and deflated, 0x01 and LF escaped.
def z_record(entries):
    def varint(n):
        out = b""
        while n >= 0x80:
            out += bytes([n & 0x7F | 0x80])
            n >>= 7
        return out + bytes([n])
    raw, prev, t0 = b"", b"", 0
    for key, size, fp, where, flags, t in entries:
        shared = 0
        while shared < min(len(key), len(prev)) and key[shared] == prev[shared]:
            shared += 1
        raw += varint(shared) + varint(len(key) - shared) + key[shared:]
        if len(fp) == 32:
            flags |= 0x08
        elif fp != b"-":
            flags |= 0x10
        if where:
            flags |= 0x20
        raw += bytes([flags])
        raw += bytes.fromhex(fp.decode()) if len(fp) == 32 else (varint(len(fp)) + fp if fp != b"-" else b"")
        d = t - t0
        raw += varint(size) + varint(d << 1 if d >= 0 else (-d << 1) - 1)
        raw += varint(len(where)) + where if where else b""
        prev, t0 = key, t
    z = zlib.compress(raw).replace(b"\x01", b"\x01\x01").replace(b"\n", b"\x01\x02")
    return b"Z %d %d " % (len(entries), len(raw)) + z


PACKED = [(b"pop3:0000000157a4c2b1", 1200, b"0123456789abcdef0123456789abcdef", b"", 0, 1764690000),
          (b"pop3:0000000257a4c2b1", 90, b"-", b"", 4, 1764690000),
          (b"imap:INBOX:7:3", 10, b"fp", b"appenduid:9:4", 1, 1764690001),
          (b"imap:INBOX:7:4", 11, b"-", b"rcpt:a@b,c", 3, 1764600000)]
put("state_journal", "packed", b"\x00V INBOX 7\n" + z_record(PACKED) + b"\nI pop3:b maildir new/x\nF pop3:0000000257a4c2b1\n")
put("state_journal", "packed-raw", b"\x01pullmail-state 4 0123456789abcdef0123456789abcdef\n"
    + b"%08x %s\n" % (zlib.crc32(z_record(PACKED[:2])), z_record(PACKED[:2])) + crc_line("S pop3:x 5 - - - 7").encode())

# SASL: options (bit 0 IMAP, bits 1-3 method: 0 auto 1 user 2 apop 3 plain
# 4 login 5 cram-md5 6 xoauth2 7 oauthbearer, bit 4 TLS, bit 5 token, bits
# 6-7 secret), number of pre-login lines, then lines.
def sasl(opts, offer, dialogue):
    return bytes([opts, len(offer)]) + "\r\n".join(offer + dialogue).encode() + b"\r\n"


POP3_OFFER = ["+OK ready <1896.697170952@dbc.mtview.ca.us>", "+OK Capability list follows", "USER",
              "SASL PLAIN LOGIN CRAM-MD5 XOAUTH2 OAUTHBEARER", "."]
IMAP_OFFER = ["* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN AUTH=LOGIN AUTH=CRAM-MD5] hi",
              "* CAPABILITY IMAP4rev1 AUTH=XOAUTH2 AUTH=OAUTHBEARER AUTH=LOGIN AUTH=CRAM-MD5", "A1 OK"]
put("sasl", "pop3-user", sasl(0x12, POP3_OFFER, ["+OK send PASS", "+OK logged in"]))
put("sasl", "pop3-apop", sasl(0x04, POP3_OFFER, ["-ERR wrong"]))
put("sasl", "pop3-auto-tls", sasl(0x10, POP3_OFFER, ["+ ", "+OK"]))
put("sasl", "pop3-login", sasl(0x58, POP3_OFFER, ["+ VXNlcm5hbWU6", "+ UGFzc3dvcmQ6", "+OK"]))
put("sasl", "pop3-cram", sasl(0x0a, POP3_OFFER, ["+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+", "+OK"]))
put("sasl", "imap-login-literal", sasl(0x93, IMAP_OFFER, ["+ go on", "* CAPABILITY IMAP4rev1", "A OK done"]))
put("sasl", "imap-xoauth2-error", sasl(0x3d, IMAP_OFFER, ["+ eyJzdGF0dXMiOiI0MDEifQ==", "A NO [AUTHENTICATIONFAILED] no"]))
put("sasl", "imap-oauthbearer", sasl(0xff, IMAP_OFFER, ["+ ", "A OK"]))

# SMTP codec: options (bit 0 LMTP, bit 1 BDAT, bit 2 RSET, bits 3-4
# recipients, bit 5 pipelined), chunking, replies, "\0\0", a message.
MSG = ("Return-Path: <bounce@example.org>\r\nFrom: A <a@example.org>\r\nSubject: x\r\n\r\n"
       ".leading dot\r\n..two\r\n.\r\nlast line without CRLF.")
SMTP_TXN = "250 ok\r\n250 2.1.5 rcpt\r\n250 rcpt\r\n354 go ahead\r\n250 2.0.0 queued\r\n"
put("smtp_codec", "smtp-data", b"\x14\x05" + ("250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n"
                                               + SMTP_TXN * 2).encode() + b"\0\0" + MSG.encode())
put("smtp_codec", "lmtp-rset", b"\x15\x00" + ("250 reset\r\n" + SMTP_TXN + "250 one\r\n452 4.2.2 full\r\n").encode()
    + b"\0\0" + b"From: MAILER-DAEMON@example.org\n\n.\n")
put("smtp_codec", "bdat-pipelined", b"\x23\x02" + ("250 ok\r\n250 a\r\n550 5.1.1 no b\r\n250 stored\r\n" * 3).encode()
    + b"\0\0" + b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\n")
put("smtp_codec", "errors", b"\x08\x01" + "421-4.3.0 bye\r\n421 closing\r\n500\r\n2x0 no\r\n".encode())

# fetchmailrc: a run control file.
put("fetchmailrc", "household", """# comment
set daemon 300
set postmaster "me"
defaults proto pop3 keep
poll pop.example.org with proto pop3 port 995 and options ssl sslcertck:
    user "alice" there with password "s3cr\\"et\\\\x" is alice here,
    user 'bob' there has pass "tab\\there" is "robert" here nokeep fetchall;
poll imap.example.com protocol IMAP via 192.0.2.7
    user "carol@example.com" is carol here password "p w" ssl sslcertfile "/etc/ssl/ca.pem"
    folder INBOX "Lists.cpp" limit 2000000 fetchlimit 50 idle mda "/usr/bin/procmail -d %T"
skip old.example.net user x is * here
""")
put("fetchmailrc", "escapes", "poll h.example user \"a\\x41\\101\\n\" pass 'x' timeout 30 auth cram-md5 no keep sslproto ''\n")

# IMAP IDLE: chunking, then what the server sends while idling.
put("imap_idle", "events", b"\x03" + ("+ idling\r\n* 3 EXISTS\r\n* 2 EXPUNGE\r\n* 1 FETCH (FLAGS (\\Seen))\r\n"
                                      "* OK still here\r\n* STATUS \"Lists/a\" (MESSAGES 3 UIDNEXT 9)\r\n"
                                      "* STATUS {5}\r\nInbox (UIDNEXT 4)\r\n* VANISHED (EARLIER) 1:3\r\n"
                                      "* BYE shutting down\r\nW1 OK IDLE done\r\n").encode())
put("imap_idle", "bytewise", b"\x00" + "* 4294967296 EXISTS\r\n* STATUS INBOX ()\r\nW2 NO [LIMIT] later\r\n".encode())
