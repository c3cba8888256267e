#!/usr/bin/env python3
"""POP3S -> LMTP into the tests' own Dovecot (dovecot-lmtpd on a Unix socket
in its private run directory), read back from the recipient's Maildir.

Dovecot's LMTP adds trace header fields at the top of every message it
stores: Return-Path: (the envelope sender), Delivered-To: (the recipient)
and Received: (several lines). The check is strict about everything else: a
stored message must be exactly <those added fields> + <the message as POP3
served it> (CRLF -> LF, as Dovecot stores Maildir files), and the added
prefix may hold those three fields only.

Also: the envelope sender (Return-Path:, <> for a bounce, else From:),
a second run delivers nothing, several recipients, and SIGKILL at random
steps loses nothing (at-least-once: duplicates are counted, losses fail).
"""

import os
import random
import re

import util
from fakes import faultlib
from messages import huge_message, ordinary_corpus, strange_corpus

TRACE_FIELDS = (b"return-path", b"delivered-to", b"received")


def split_trace(stored):
    """(trace prefix, rest) of a message Dovecot's LMTP stored: the leading
    header fields it adds, one field (with its continuation lines) at a time."""
    pos = 0
    fields = []
    while True:
        m = re.match(rb"([A-Za-z-]+):[^\n]*\n(?:[ \t][^\n]*\n)*", stored[pos:])
        if not m or m.group(1).lower() not in TRACE_FIELDS:
            break
        name = m.group(1).lower()
        if name in [f for f, _ in fields] and name != b"received":
            break
        fields.append((name, m.group(0)))
        pos += m.end()
        if name == b"received":  # Dovecot's Received: is the last field it adds
            break
    return fields, stored[pos:]


class LmtpDelivery(util.IntegrationCase):

    DOVECOT = {"lmtp": True}

    def lmtp_account(self, user, pw, rcpt, **extra):
        return self.account(user, pw, "pop3s", deliver="lmtp:" + self.d.lmtp_socket, recipient=rcpt, **extra)

    def assertStoredExactly(self, stored, expected, rcpt, what):
        """Each stored message = Dovecot's trace fields + an expected message."""
        rest = []
        for s in stored:
            fields, body = split_trace(s)
            names = [n for n, _ in fields]
            self.assertEqual(names, [b"return-path", b"delivered-to", b"received"],
                             "%s: unexpected trace prefix %r" % (what, s[:300]))
            self.assertEqual(fields[1][1], b"Delivered-To: %s\n" % rcpt.encode())
            rest.append(body)
        util.compare_messages(rest, expected, what)
        self.note("%s: %d messages byte for byte after Dovecot's Return-Path/Delivered-To/Received"
                  % (what, len(expected)))

    def test_corpus_rerun(self):
        user, pw = self.new_user()
        rcpt, _ = self.new_user("r")
        corpus = strange_corpus(include_huge=False) + ordinary_corpus(30, seed=16)
        self.d.add_messages(user, [m.data for m in corpus])
        expected = util.expected_from_served(self.d.messages(user), final_newline=True)
        self.config({"lmtp": self.lmtp_account(user, pw, rcpt)})
        r = self.run_config("--json", expect=0)
        j = self.json_account(r, "lmtp")
        self.assertEqual(j["fetched"], len(corpus), r.describe())
        self.assertEqual(j["errors"], [])
        self.assertStoredExactly(self.d.maildir_contents(rcpt), expected, rcpt, "POP3S -> LMTP")

        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "lmtp")["fetched"], 0, r.describe())
        self.assertEqual(len(self.d.maildir_contents(rcpt)), len(corpus))
        self.note("second run: fetched 0, the recipient's Maildir unchanged")

    def test_envelope_sender_and_recipients(self):
        user, pw = self.new_user()
        r1, _ = self.new_user("r")
        r2, _ = self.new_user("r")
        msgs = {
            "rp": b"Return-Path: <list-bounces@lists.example>\nFrom: Ann <ann@example.org>\n"
                  b"Message-ID: <rp@t>\nSubject: a\n\nbody\n",
            "bounce": b"From: Mail Delivery System <MAILER-DAEMON@mx.example>\nMessage-ID: <bounce@t>\n"
                      b"Subject: Undelivered\n\nsorry\n",
            "from": b"From: \"Bob B.\" <bob@example.net>\nMessage-ID: <from@t>\nSubject: c\n\n.\n..dots\n.\n",
        }
        self.d.add_messages(user, list(msgs.values()))
        self.config({"lmtp": self.lmtp_account(user, pw, [r1, r2])})
        self.run_config(expect=0)
        want = {b"<rp@t>": b"<list-bounces@lists.example>", b"<bounce@t>": b"<>", b"<from@t>": b"<bob@example.net>"}
        for rcpt in (r1, r2):
            stored = self.d.maildir_contents(rcpt)
            self.assertEqual(len(stored), 3, rcpt)
            for s in stored:
                fields, _ = split_trace(s)
                mid = util.message_id(s).encode()
                self.assertEqual(fields[0][1].strip(), b"Return-Path: " + want[mid], s[:200])
        self.note("envelope sender from Return-Path, <> for a bounce, else From; both recipients got all 3")

    def test_200mb_message_streams(self):
        """A 200 MB message goes through byte for byte with a small peak RSS
        (spooled to an unlinked file, sent in 256 KB chunks)."""
        user, pw = self.new_user()
        rcpt, _ = self.new_user("r")
        m = huge_message(size=200 * 1024 * 1024, name="lmtp-200mb")
        self.d.add_message(user, m.data)
        self.config({"lmtp": self.lmtp_account(user, pw, rcpt)})
        r, peak = faultlib.run_measured(["-f", self.config_path], env={"HOME": self.home})
        self.assertEqual(r.rc, 0, r.describe())
        stored = self.d.maildir_contents(rcpt)
        self.assertEqual(len(stored), 1)
        _, body = split_trace(stored[0])
        self.assertTrue(body == util.lf(m.data), "the 200 MB message differs after Dovecot's trace fields")
        self.assertLess(peak, 64, "peak RSS %.0f MB for a 200 MB message" % peak)
        self.note("200 MB message byte for byte, peak RSS %.0f MB" % peak)

    def test_kills_lose_nothing(self):
        rng = random.Random(16016)
        corpus = faultlib.small_corpus(30, seed=16, prefix="kill")
        user, pw = self.new_user("k")
        self.d.add_messages(user, [m.data for m in corpus])
        expected = util.expected_from_served(self.d.messages(user), final_newline=True)
        rcpt, _ = self.new_user("r")
        self.config({"lmtp": self.lmtp_account(user, pw, rcpt, keep=False)})
        r = self.run_config(env={"PULLMAIL_TEST_KILL_AFTER": "1000000000", "PULLMAIL_TEST_TRACE_STEPS": "1"},
                            expect=0)
        steps = len([l for l in r.err.splitlines() if l.startswith("step ")])
        self.assertGreater(steps, len(corpus))
        # the clean run delivered everything once: start again with a fresh pair
        tried = dup = 0
        for round_ in range(5):
            user, pw = self.new_user("k")
            self.d.add_messages(user, [m.data for m in corpus])
            rcpt, _ = self.new_user("r")
            state = self.path("state-%d" % round_)
            self.config({"lmtp": self.lmtp_account(user, pw, rcpt, keep=False)})
            for _ in range(2):  # 10 kills in all
                point = rng.randint(1, steps)
                tried += 1
                self.run_config("--state-dir", state, env={"PULLMAIL_TEST_KILL_AFTER": str(point)})
                on_server = faultlib.server_message_ids(self.d, user)
                _, got = zip(*[split_trace(s) for s in self.d.maildir_contents(rcpt)]) if self.d.maildir_contents(rcpt) else ((), ())
                lost = [e for e in expected if e not in got and util.message_id(e) not in on_server]
                self.assertEqual(lost, [], "kill at step %d: messages neither on the server nor delivered" % point)
            self.run_config("--state-dir", state, expect=0)
            got = [split_trace(s)[1] for s in self.d.maildir_contents(rcpt)]
            for e in expected:
                self.assertGreaterEqual(got.count(e), 1, "lost after kill + rerun: %s" % util.message_id(e))
            self.assertEqual([g for g in got if g not in expected], [], "damaged or unexpected messages")
            dup += len(got) - len(expected)
            self.assertEqual(faultlib.server_message_ids(self.d, user), set(), "server not emptied")
        self.note("%d random kill points: nothing lost, nothing damaged, %d duplicate(s) (at-least-once)"
                  % (tried, dup))


if __name__ == "__main__":
    util.main()
