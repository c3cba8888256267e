#!/usr/bin/env python3
"""IMAP folders: INBOX, a hierarchical folder written "Lists/cpp" (Dovecot's
Maildir++ name "Lists.cpp", '.' delimiter), a non-ASCII one "Entwürfe"
(modified UTF-7 "Entw&APw-rfe" on the wire) and "R&D" ('&' escaped as "&-")
are fetched byte for byte; a folder not configured is left alone; flags do
not change; a second run fetches nothing. Also --folder on the command line."""

import util
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


if __name__ == "__main__":
    util.main()
