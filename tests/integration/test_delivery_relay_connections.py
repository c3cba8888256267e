#!/usr/bin/env python3
"""Several connections to an SMTP/LMTP delivery target (deliver = { url =
..., connections = n }, issue 16): consecutive messages go to the
connections in turn.

- Dovecot's LMTP (one lmtp process per connection) with connections = 3:
  the log shows three lmtp processes delivering, every message stored
  byte for byte once (after Dovecot's trace fields), a second run delivers
  nothing.
- A server that refuses connections beyond the first (421 at the greeting,
  as Postfix's per-client connection limit does): the run warns once, goes
  on over the connection it has, delivers everything, exits 0.
"""

import re

import util
from fakes.fakesmtp import FakeSmtp
from messages import ordinary_corpus, strange_corpus
from test_delivery_lmtp import split_trace
from test_delivery_smtp import wire


class RelayConnections(util.IntegrationCase):

    DOVECOT = {"lmtp": True}

    def test_lmtp_three_connections(self):
        user, pw = self.new_user()
        rcpt, _ = self.new_user("r")
        corpus = strange_corpus(include_huge=False) + ordinary_corpus(60, seed=161)
        self.d.add_messages(user, [m.data for m in corpus])
        expected = util.expected_from_served(self.d.messages(user), final_newline=True)
        mark = self.d.log_mark()
        self.config({"lmtp": self.account(user, pw, "pop3s", recipient=rcpt,
                                          deliver={"url": "lmtp:" + self.d.lmtp_socket, "connections": 3})})
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "lmtp")["fetched"], len(corpus), r.describe())
        stored = [split_trace(body)[1] for body in self.d.maildir_contents(rcpt)]
        util.compare_messages(stored, expected, "POP3S -> LMTP over 3 connections")
        # Dovecot logs each delivery as lmtp(<user>)<pid><session>: saved mail to INBOX
        pids = set(re.findall(r"lmtp\(%s\)<(\d+)><[^>]*>: (?:Info: )?msgid=.*saved mail to INBOX" % re.escape(rcpt),
                              self.d.log_since(mark)))
        self.assertEqual(len(pids), 3, "deliveries by lmtp processes %s, not 3" % sorted(pids))
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "lmtp")["fetched"], 0, r.describe())
        self.assertEqual(len(self.d.maildir_files(rcpt)), len(corpus))
        self.note("%d messages byte for byte over 3 LMTP connections (3 lmtp processes); rerun: nothing"
                  % len(corpus))

    def test_refused_extra_connection(self):
        user, pw = self.new_user()
        corpus = ordinary_corpus(12, seed=162)
        self.d.add_messages(user, [m.data for m in corpus])
        served = [m[1] for m in self.d.messages(user)]
        with FakeSmtp(max_sessions=1) as s:
            self.config({"smtp": self.account(user, pw, "pop3s", recipient="me@example.org",
                                              deliver={"url": "smtp://127.0.0.1:%d" % s.port, "connections": 2})})
            r = self.run_config(expect=0)
            self.assertGreaterEqual(s.refused_sessions, 1, "the fake never refused a connection")
            self.assertEqual(s.peak_sessions, 1)
            warnings = [l for l in r.err.splitlines() if "refused connection 2 of 2" in l]
            self.assertEqual(len(warnings), 1, r.describe())
            self.assertIn("smtp", warnings[0])  # names the account
            got = [data for _, _, data in s.messages]
            util.compare_messages(got, [wire(m) for m in served],
                                  "SMTP with one connection of two")
        self.note("second connection refused (421): warned once, %d messages over the first" % len(corpus))


if __name__ == "__main__":
    util.main()
