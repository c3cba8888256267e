#!/usr/bin/env python3
"""IMAP folders: INBOX, a hierarchical folder written "Lists/cpp" (Dovecot's
Maildir++ name "Lists.cpp", '.' delimiter), a non-ASCII one "Entwürfe"
(modified UTF-7 "Entw&APw-rfe" on the wire) and "R&D" ('&' escaped as "&-")
are fetched byte for byte; a folder not configured is left alone; flags do
not change; a second run fetches nothing. Also --folder on the command line.

connections = 3: the folders of one account are shared out over three IMAP
connections at once (three logins, each message fetched by exactly one of
them), with the same result byte for byte, deletions in every folder, and
nothing lost or duplicated when the process is killed in the middle."""

import os

import util
from util import Dovecot
from messages import ordinary_corpus, strange_corpus

FOLDERS = {  # config name -> Dovecot name
    "INBOX": "INBOX",
    "Lists/cpp": "Lists.cpp",
    "Entwürfe": "Entwürfe",
    "R&D": "R&D",
}


class Folders(util.IntegrationCase):

    def _fill(self, user):
        expected = []
        for i, (cfg, dov) in enumerate(FOLDERS.items()):
            if dov != "INBOX":
                self.d.create_folder(user, dov)
            for m in ordinary_corpus(3, seed=110 + i, prefix="f%d" % i) + strange_corpus(False)[i * 2:i * 2 + 2]:
                # the same strange message in two folders would share a
                # Message-ID; give each copy its own
                data = m.data.replace(b"@corpus.pullmail.test>", b".f%d@corpus.pullmail.test>" % i, 1)
                self.d.add_message(user, data, folder=dov)
            expected += util.expected_from_served(self.d.messages(user, dov))
        self.d.create_folder(user, "Other")
        self.d.add_message(user, b"Message-ID: <other@corpus.pullmail.test>\nSubject: not fetched\n\nx\n",
                           folder="Other")
        self.d.add_message(user, b"Message-ID: <parent@corpus.pullmail.test>\nSubject: not fetched\n\nx\n",
                           folder="Lists")
        return expected

    def test_folders_config(self):
        user, pw = self.new_user()
        expected = self._fill(user)
        folders = {dov: self.d.flags(user, dov) for dov in list(FOLDERS.values()) + ["Other", "Lists"]}
        maildir = self.path("Maildir")
        self.config({"folders": self.account(user, pw, "imaps", deliver="maildir:" + maildir,
                                             folders=list(FOLDERS))})
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "folders")["fetched"], len(expected), r.describe())
        self.assertDelivered(util.maildir_messages(maildir), expected, "folders %s" % list(FOLDERS))
        for dov, flags in folders.items():
            self.assertEqual(self.d.flags(user, dov), flags, "folder %s changed" % dov)
        self.note("Other and Lists (not configured) not fetched; no flags changed")
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "folders")["fetched"], 0)
        self.assertEqual(util.count_maildir(maildir), len(expected))
        self.note("second run fetched 0")

    def test_folders_oneoff(self):
        user, pw = self.new_user()
        self._fill(user)
        want = ["Lists/cpp", "Entwürfe"]
        expected = []
        for f in want:
            expected += util.expected_from_served(self.d.messages(user, FOLDERS[f]))
        maildir = self.path("Maildir")
        args = ["--url", self.url("imaps"), "--user", user, "--deliver", "maildir:" + maildir,
                "--ca-file", self.d.ca_file, "--state-dir", self.state_dir]
        for f in want:
            args += ["--folder", f]
        self.pullmail(*args, password=pw, expect=0)
        self.assertDelivered(util.maildir_messages(maildir), expected, "one-off --folder %s" % want)

    def test_folder_keep_false(self):
        user, pw = self.new_user()
        self._fill(user)
        maildir = self.path("Maildir")
        self.config({"fk": self.account(user, pw, "imaps", deliver="maildir:" + maildir, keep=False,
                                        folders=["Lists/cpp", "Entwürfe"])})
        inbox = self.d.messages(user)
        rnd = self.d.messages(user, "R&D")
        self.run_config(expect=0)
        self.assertEqual(self.d.count(user, "Lists.cpp"), 0)
        self.assertEqual(self.d.count(user, "Entwürfe"), 0)
        self.assertEqual(self.d.messages(user), inbox, "INBOX changed")
        self.assertEqual(self.d.messages(user, "R&D"), rnd, "R&D changed")
        self.note("keep = false emptied Lists/cpp and Entwürfe only")

    PARALLEL = ["INBOX", "Big", "A", "B", "C", "D", "E", "F"]

    def _fill_parallel(self, user, seed):
        """Folders for the connections = 3 tests; the first folders are the
        larger ones, so the other connections log in while the first works."""
        for i, folder in enumerate(self.PARALLEL):
            if folder != "INBOX":
                self.d.create_folder(user, folder)
            n = 100 if i < 2 else 8
            for m in ordinary_corpus(n, seed=seed + i, prefix="par%d" % i):
                self.d.add_message(user, m.data, folder=folder)
        expected = []
        for folder in self.PARALLEL:
            expected += util.expected_from_served(self.d.messages(user, folder))
        return expected

    def test_parallel_connections(self):
        user, pw = self.new_user()
        expected = self._fill_parallel(user, 300)
        maildir = self.path("Maildir")
        self.config({"par": self.account(user, pw, "imaps", deliver="maildir:" + maildir, keep=False,
                                         folders=self.PARALLEL, connections=3)})
        mark = self.d.log_mark()
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "par")["fetched"], len(expected))
        self.assertEqual(self.json_account(r, "par")["deleted"], len(expected))
        self.assertDelivered(util.maildir_messages(maildir), expected, "8 folders over 3 connections")
        log = self.d.settled_log(mark, user)
        logins = Dovecot.logins(log, user=user, protocol="imap")
        self.assertEqual(len(logins), 3, "expected 3 IMAP logins, got %r" % logins)
        stats = [st for _, _, st in Dovecot.logout_stats(log, user=user, protocol="imap")]
        self.assertEqual(len(stats), 3, stats)
        bodies = [st.get("body_count", 0) for st in stats]
        self.assertEqual(sum(bodies), len(expected), "each message fetched once: %r" % bodies)
        self.assertGreaterEqual(sum(1 for b in bodies if b), 2, "folders not shared out: %r" % bodies)
        for folder in self.PARALLEL:
            self.assertEqual(self.d.count(user, folder), 0, "%s not emptied" % folder)
        self.note("3 logins, bodies fetched per connection %r, all 8 folders emptied" % bodies)

        # New mail in two folders: the next run fetches exactly that.
        more = []
        for folder, seed in (("C", 400), ("INBOX", 401)):
            for m in ordinary_corpus(3, seed=seed, prefix="late%d" % seed):
                self.d.add_message(user, m.data, folder=folder)
            more += util.expected_from_served(self.d.messages(user, folder))
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "par")["fetched"], len(more))
        self.assertDelivered(util.maildir_messages(maildir), expected + more, "after the second run")

    def test_parallel_connections_killed(self):
        """SIGKILL at chosen steps of a connections = 3 run, then a normal
        run: every message exactly once, every folder emptied."""
        for kill_at in (40, 95, 160):
            user, pw = self.new_user()
            expected = self._fill_parallel(user, 500 + kill_at)
            maildir = self.path("Maildir-%d" % kill_at)
            state = self.path("state-%d" % kill_at)
            util.write_config(self.config_path, {"park": self.account(
                user, pw, "imaps", deliver="maildir:" + maildir, keep=False, folders=self.PARALLEL,
                connections=3)}, state_dir=state)
            r = self.run_config(env={"PULLMAIL_TEST_KILL_AFTER": str(kill_at)})
            self.assertEqual(r.rc, -9, "not killed at step %d:\n%s" % (kill_at, r.describe()))
            self.run_config(expect=0)
            self.assertDelivered(util.maildir_messages(maildir), expected, "killed at step %d, then rerun" % kill_at)
            for folder in self.PARALLEL:
                self.assertEqual(self.d.count(user, folder), 0, "%s not emptied" % folder)
            self.assertEqual(os.listdir(os.path.join(maildir, "tmp")), [], "tmp/ left behind")


if __name__ == "__main__":
    util.main()
