#!/usr/bin/env python3
"""pullmail --daemon --shard K/N against a real Dovecot: two daemons, shards
1/2 and 2/2 of one configuration of six IMAP accounts, run side by side.
Each account is served by exactly one of them (only that one logs in and
watches it), both shards are used, and mail that was waiting and mail
appended while both run is delivered, byte for byte and once, each account's
into its own Maildir."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import messages  # noqa: E402
from daemonproc import DaemonProcess, wait_delivered  # noqa: E402
from util import EX_OK, IntegrationCase, compare_messages, expected_from_served, main, maildir_messages  # noqa: E402

HOUR = 3600
NAMES = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]


class DaemonShardTest(IntegrationCase):

    def served(self, proc):
        """The accounts whose watcher a daemon started (its "push:" lines)."""
        return {m.group(1) for m in re.finditer(r"^.*?\b(%s)\b.*push: (?:NOTIFY|IDLE) on" % "|".join(NAMES),
                                                proc.err, re.M)}

    def test_two_shards_split_the_accounts(self):
        corpus = [m.data for m in messages.ordinary_corpus(2 * len(NAMES), seed=231)]
        accounts, users = {}, {}
        for i, name in enumerate(NAMES):
            user, pw = self.new_user()
            users[name] = user
            self.d.add_message(user, corpus[2 * i])  # waiting before the daemons start
            accounts[name] = self.account(user, pw, proto="imaps", deliver="maildir:" + self.path("Maildir-" + name),
                                          poll_interval=HOUR)
        self.config(accounts)
        args = ["--daemon", "-f", self.config_path]
        with DaemonProcess(args + ["--shard", "1/2"], self.home) as d1, \
                DaemonProcess(args + ["--shard", "2/2"], self.home) as d2:
            procs = (d1, d2)
            for name in NAMES:
                wait_delivered(procs, self.path("Maildir-" + name), 1, 30)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(self.served(d1)) + len(self.served(d2)) < len(NAMES):
                time.sleep(0.05)
            one, two = self.served(d1), self.served(d2)
            self.assertEqual(one | two, set(NAMES), "%s\n----\n%s" % (d1.err[-4000:], d2.err[-4000:]))
            self.assertFalse(one & two, "accounts served by both shards: %s" % sorted(one & two))
            self.assertTrue(one and two, "one shard served every account: %s / %s" % (sorted(one), sorted(two)))
            for name in NAMES:  # pushed while both run
                c = self.d.imap(users[name])
                try:
                    self.assertEqual(c.append("INBOX", None, None, corpus[2 * NAMES.index(name) + 1])[0], "OK")
                finally:
                    c.logout()
            for name in NAMES:
                wait_delivered(procs, self.path("Maildir-" + name), 2, 15)
            # Neither logged in to an account of the other shard.
            for proc, others in ((d1, two), (d2, one)):
                for name in others:
                    self.assertNotIn(name, proc.err, "a daemon named an account of the other shard:\n" + proc.err[-4000:])
            self.assertEqual(d1.stop(), EX_OK, d1.err)
            self.assertEqual(d2.stop(), EX_OK, d2.err)
        for name in NAMES:
            compare_messages(maildir_messages(self.path("Maildir-" + name)),
                             expected_from_served(self.d.messages(users[name])), "account " + name)
        self.note("--shard 1/2 served %s, --shard 2/2 served %s; every message once, byte for byte, in its account's "
                  "Maildir" % (sorted(one), sorted(two)))


if __name__ == "__main__":
    main()
