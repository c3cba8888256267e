#!/usr/bin/env python3
"""POP3S -> SMTP into a real server: a private Exim 4.96 (tests/integration/
exim.py) on loopback, read back from its Maildir.

Exim adds two trace fields at the top of each stored message:
`Return-path: <envelope sender>` and one `Received:` field (with its
continuation lines). The check is strict about everything else: a stored
message must be exactly those two fields + the message as POP3 served it
(CRLF -> LF, as Exim stores Maildir files), with the three changes Exim's
own header parsing makes (exim.as_stored: an empty line inserted where the
header section has a line that is not a field, or at the end when it has no
empty line; a bare CR turned into a line end). test_delivery_smtp.py checks
against a fake server that the bytes on the wire are exactly the served ones.

Also: a second run delivers nothing; 8-bit header fields with SMTPUTF8 on
offer (Exim logs the message as received with utf8local-esmtp) and without
(sent unchanged, with a warning). STARTTLS and AUTH stay with the fake
server (test_delivery_smtp.py): Exim's TLS does not work over the pipes of
its -bs mode, see exim.py.
"""

import exim
import util
from messages import ordinary_corpus, strange_corpus


class SmtpExim(util.IntegrationCase):

    def smtp_account(self, user, pw, x, **extra):
        return self.account(user, pw, "pop3s", deliver="smtp://127.0.0.1:%d" % x.port,
                            recipient="me@example.org", **extra)

    def mailbox(self, messages):
        user, pw = self.new_user()
        self.d.add_messages(user, messages)
        return user, pw, util.expected_from_served(self.d.messages(user), final_newline=True)

    def assertStoredExactly(self, x, expected, what):
        rest = []
        for s in x.stored():
            trace, body = exim.split_trace(s)
            self.assertTrue(trace, "%s: no Return-path:/Received: prefix from Exim: %r" % (what, s[:300]))
            rest.append(body)
        util.compare_messages(rest, [exim.as_stored(e) for e in expected], what)
        self.note("%s: %d messages byte for byte after Exim's Return-path/Received" % (what, len(expected)))

    def test_corpus_rerun(self):
        corpus = strange_corpus(include_huge=False) + ordinary_corpus(20, seed=161)
        user, pw, expected = self.mailbox([m.data for m in corpus])
        with exim.Exim() as x:
            self.config({"smtp": self.smtp_account(user, pw, x)})
            r = self.run_config("--json", expect=0)
            j = self.json_account(r, "smtp")
            self.assertEqual(j["fetched"], len(corpus), r.describe())
            self.assertEqual(j["errors"], [])
            self.assertStoredExactly(x, expected, "POP3S -> Exim SMTP")
            self.assertEqual(len(x.received()), len(corpus), x.log())

            r = self.run_config("--json", expect=0)
            self.assertEqual(self.json_account(r, "smtp")["fetched"], 0, r.describe())
            self.assertEqual(len(x.received()), len(corpus), "the second run sent mail again")
            self.assertEqual(len(x.stored()), len(corpus))
        self.note("second run: nothing sent, Exim's Maildir unchanged")

    def test_envelope_sender(self):
        msgs = [b"Return-Path: <list-bounces@lists.example>\nFrom: Ann <ann@example.org>\n"
                b"Message-ID: <rp@t>\nSubject: a\n\nbody\n",
                b"From: Mail Delivery System <MAILER-DAEMON@mx.example>\nMessage-ID: <bounce@t>\n"
                b"Subject: Undelivered\n\nsorry\n",
                b"From: \"Bob B.\" <bob@example.net>\nMessage-ID: <from@t>\nSubject: c\n\n.\n..dots\n.\n"]
        user, pw, expected = self.mailbox(msgs)
        want = {"<rp@t>": b"<list-bounces@lists.example>", "<bounce@t>": b"<>", "<from@t>": b"<bob@example.net>"}
        with exim.Exim() as x:
            self.config({"smtp": self.smtp_account(user, pw, x)})
            self.run_config(expect=0)
            self.assertStoredExactly(x, expected, "envelope test")
            for s in x.stored():
                trace, body = exim.split_trace(s)
                self.assertTrue(trace.startswith(b"Return-path: " + want[util.message_id(body)] + b"\n"), trace)
        self.note("Exim's Return-path: is the envelope sender: Return-Path:, <> for a bounce, else From:")

    def test_8bit_headers_with_and_without_smtputf8(self):
        msg = "From: Jörg <joerg@example.net>\r\nMessage-ID: <utf8@t>\r\nSubject: Grüße\r\n\r\nBody ü\r\n"
        for offered in (True, False):
            user, pw, expected = self.mailbox([msg.encode("utf-8")])
            with exim.Exim(smtputf8=offered) as x:
                self.config({"smtp": self.smtp_account(user, pw, x)})
                # Own state per mailbox: two users made in the same second
                # get the same UIDVALIDITY, hence the same POP3 UIDLs.
                r = self.run_config("--state-dir", self.path("state-%s" % offered), expect=0)
                self.assertStoredExactly(x, expected, "8-bit headers, SMTPUTF8 offered=%s" % offered)
                protos = [p for _, p in x.received()]
                self.assertEqual(protos, ["utf8esmtp" if offered else "esmtp"], x.log())
                self.assertEqual("SMTPUTF8" in r.err, not offered, r.err)
        self.note("8-bit header: SMTPUTF8 used when Exim offers it, sent unchanged with a warning when not")


if __name__ == "__main__":
    util.main()
