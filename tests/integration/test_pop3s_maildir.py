#!/usr/bin/env python3
"""POP3S -> Maildir: the whole strange corpus (50 MB attachment included)
byte for byte, keep leaves the mail on the server, a second run fetches
nothing, --all fetches everything again."""

import os
import zlib

import util
from messages import ordinary_corpus, strange_corpus
from util import Dovecot


class Pop3sMaildir(util.IntegrationCase):

    def test_corpus_keep_rerun_all(self):
        user, pw = self.new_user()
        corpus = strange_corpus(include_huge=True) + ordinary_corpus(20, seed=11)
        for m in corpus:
            self.d.add_message(user, m.data)
        served = self.d.messages(user)
        self.assertEqual(len(served), len(corpus))
        expected = util.expected_from_served(served, final_newline=True)
        maildir = self.path("Maildir")
        self.config({"pop": self.account(user, pw, "pop3s", deliver="maildir:" + maildir)})

        mark = self.d.log_mark()
        r = self.run_config("--json", expect=0)
        log = self.d.settled_log(mark, user)
        self.assertDelivered(util.maildir_messages(maildir), expected, "POP3S -> Maildir")
        j = self.json_account(r, "pop")
        self.assertEqual(j["fetched"], len(corpus), r.describe())
        self.assertEqual(j["deleted"], 0)
        self.assertEqual(j["errors"], [])
        self.assertEqual(r.json()["exit_status"], 0)
        self.note("--json: fetched=%d deleted=0 errors=[] exit_status=0" % len(corpus))

        # keep (the default): everything is still on the server
        self.assertEqual(self.d.count(user), len(corpus))
        logins = Dovecot.logins(log, user=user, protocol="pop3")
        self.assertTrue(logins and all("TLS" in l[2] for l in logins), logins)
        stats = Dovecot.logout_stats(log, user=user, protocol="pop3")
        self.assertTrue(stats, "no POP3 logout line in the Dovecot log:\n" + log[-3000:])
        self.assertEqual(sum(s["retr"][0] for _, _, s in stats), len(corpus), stats)
        self.assertEqual(sum(s["del"][0] for _, _, s in stats), 0, stats)
        self.note("keep: %d messages still on the server; Dovecot counted %d RETR, 0 DELE, login over TLS"
                  % (len(corpus), len(corpus)))
        self.assertTrue(os.path.isfile(os.path.join(self.state_dir, "pop.state")),
                        "no state file %s/pop.state" % self.state_dir)
        self.note("state file %s exists" % "pop.state")

        # a second run fetches nothing and downloads nothing
        mark = self.d.log_mark()
        r = self.run_config("--json", expect=0)
        stats = Dovecot.logout_stats(self.d.settled_log(mark, user), user=user, protocol="pop3")
        self.assertEqual(self.json_account(r, "pop")["fetched"], 0, r.describe())
        self.assertEqual(util.count_maildir(maildir), len(corpus))
        self.assertEqual(sum(s["retr"][0] for _, _, s in stats), 0, stats)
        self.note("second run: fetched 0, no RETR, Maildir unchanged")

        # --all fetches everything again
        r = self.run_config("--all", "--json", expect=0)
        self.assertEqual(self.json_account(r, "pop")["fetched"], len(corpus), r.describe())
        self.assertDelivered(util.maildir_messages(maildir), expected * 2, "POP3S -> Maildir after --all")
        self.assertEqual(self.d.count(user), len(corpus))

    def test_kept_mailbox_state_is_packed(self):
        """A first fetch of a kept mailbox leaves a packed state file (Z
        records, about 20 bytes a message): read back here independently of
        pullmail, it names every message once; later runs fetch only what
        is new, and their records are appended after the packed ones."""
        user, pw = self.new_user()
        first = ordinary_corpus(600, seed=41, prefix="pk")
        self.d.add_messages(user, [m.data for m in first])
        maildir = self.path("Maildir")
        self.config({"pk": self.account(user, pw, "pop3s", deliver="maildir:" + maildir)})
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "pk")["fetched"], 600, r.describe())
        path = os.path.join(self.state_dir, "pk.state")
        with open(path, "rb") as f:
            data = f.read()
        self.assertTrue(data.startswith(b"pullmail-state 4 "), data[:40])
        raw_lines = data.split(b"\n")
        self.assertEqual([l for l in raw_lines if l[9:11] == b"S "], [], "seen records left as text")
        packed = [l for l in raw_lines if l[9:11] == b"Z "]
        self.assertTrue(packed, "no packed record")
        for l in packed:  # each carries its line checksum like any record
            self.assertEqual(int(l[:8], 16), zlib.crc32(l[9:]) & 0xFFFFFFFF)
        seen = [l.split(b" ") for l in util.state_lines(data) if l[9:11] == b"S "]
        keys = [w[2] for w in seen]
        self.assertEqual(len(keys), 600)
        self.assertEqual(len(set(keys)), 600, "a message recorded twice")
        self.assertTrue(all(k.startswith(b"pop3:") for k in keys), keys[:3])
        self.assertEqual(sorted(int(w[3]) for w in seen),
                         sorted(len(d.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")) for _, d, _ in
                                self.d.messages(user)), "sizes differ from what the server holds")
        self.assertLess(len(data), 600 * 30, "state of %d bytes for 600 messages" % len(data))
        self.note("first fetch of 600 kept messages: state %d bytes (%.1f a message), %d packed records"
                  % (len(data), len(data) / 600, len(packed)))

        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "pk")["fetched"], 0, r.describe())
        with open(path, "rb") as f:
            self.assertEqual(f.read(), data, "a poll with nothing new changed the state file")
        more = ordinary_corpus(3, seed=42, prefix="pm")
        self.d.add_messages(user, [m.data for m in more])
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "pk")["fetched"], 3, r.describe())
        with open(path, "rb") as f:
            after = f.read()
        self.assertTrue(after.startswith(data), "the packed records were rewritten for 3 new messages")
        self.assertEqual(len({l.split(b" ")[2] for l in util.state_lines(after) if l[9:11] == b"S "}), 603)
        expected = util.expected_from_served(self.d.messages(user), final_newline=True)
        self.assertDelivered(util.maildir_messages(maildir), expected, "POP3S -> Maildir, packed state")
        self.note("poll: state unchanged; 3 new: fetched 3, appended as text, 603 messages byte for byte")


if __name__ == "__main__":
    util.main()
