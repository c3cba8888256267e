#!/usr/bin/env python3
"""deliver = "maildir++:PATH": every IMAP folder of folders = ["*"] into its
own Maildir of a Maildir++ tree. INBOX is PATH itself, "Lists/cpp" is
PATH/.Lists.cpp, the parent "Lists" PATH/.Lists, non-ASCII and '&' names in
modified UTF-7 (".Entw&APw-rfe", ".R&-D"); every subfolder holds a
"maildirfolder" file. Checked byte for byte per folder, exactly once across
reruns and after a kill in the middle; and the tree pullmail wrote, handed to
Dovecot as a user's mail directory, is served by Dovecot as the same folders
with the same messages (so Dovecot's own Maildir++ reading agrees)."""

import os
import shutil

import util
from messages import ordinary_corpus, strange_corpus

# Dovecot name ('.' delimiter) -> directory in the Maildir++ tree
FOLDERS = {
    "INBOX": "",
    "Lists": ".Lists",
    "Lists.cpp": ".Lists.cpp",
    "Entwürfe": ".Entw&APw-rfe",
    "R&D": ".R&-D",
}


class MaildirPlusPlus(util.IntegrationCase):

    def _fill(self, user, seed):
        for i, dov in enumerate(FOLDERS):
            if dov != "INBOX":
                self.d.create_folder(user, dov)
            for m in ordinary_corpus(2, seed=seed + i, prefix="pp%d" % i) + strange_corpus(False)[i:i + 1]:
                data = m.data.replace(b"@corpus.pullmail.test>", b".pp%d@corpus.pullmail.test>" % i, 1)
                self.d.add_message(user, data, folder=dov)

    def _expected(self, user):
        return {dov: util.expected_from_served(self.d.messages(user, dov)) for dov in FOLDERS}

    def _check_tree(self, root, expected, what):
        for dov, sub in FOLDERS.items():
            path = os.path.join(root, sub) if sub else root
            self.assertDelivered(util.maildir_messages(path), expected[dov], "%s: folder %s in %s" % (what, dov, sub or "."))
            self.assertEqual(os.path.exists(os.path.join(path, "maildirfolder")), bool(sub),
                             "maildirfolder marker of %s" % (sub or "the top"))
        dirs = sorted(n for n in os.listdir(root) if n.startswith("."))
        self.assertEqual(dirs, sorted(s for s in FOLDERS.values() if s), "subfolders of the tree")

    def test_tree_exactly_once(self):
        user, pw = self.new_user()
        self._fill(user, 700)
        expected = self._expected(user)
        root = self.path("Mail")
        self.config({"pp": self.account(user, pw, "imaps", deliver="maildir++:" + root, folders=["*"])})
        r = self.run_config("--json", expect=0)
        total = sum(len(v) for v in expected.values())
        self.assertEqual(self.json_account(r, "pp")["fetched"], total, r.describe())
        self._check_tree(root, expected, "first run")
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "pp")["fetched"], 0, r.describe())
        self._check_tree(root, expected, "second run")
        self.note("second run fetched 0")
        self.d.add_message(user, b"Message-ID: <late.pp@corpus.pullmail.test>\nSubject: late\n\nlate\n",
                           folder="Lists.cpp")
        expected = self._expected(user)
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "pp")["fetched"], 1, r.describe())
        self._check_tree(root, expected, "third run, one new message in Lists/cpp")

        # The same tree served by Dovecot as another user's mail: the same folders and messages.
        reader, _ = self.new_user("reader")
        dest = self.d.user_root(reader)
        shutil.rmtree(dest)
        shutil.copytree(root, dest)
        for d, _, files in os.walk(dest):
            os.chown(d, self.d.uid, self.d.gid)
            for f in files:
                os.chown(os.path.join(d, f), self.d.uid, self.d.gid)
        for dov in FOLDERS:
            got = sorted(util.lf(m[1]) for m in self.d.messages(reader, dov))
            want = sorted(util.lf(m[1]) for m in self.d.messages(user, dov))
            self.assertEqual(got, want, "Dovecot serving pullmail's tree: folder %s differs" % dov)
        self.note("Dovecot reads the Maildir++ tree as the same %d folders" % len(FOLDERS))

    def test_killed_then_rerun(self):
        for kill_at in (30, 70):
            user, pw = self.new_user()
            self._fill(user, 800 + kill_at)
            expected = self._expected(user)
            root = self.path("Mail-%d" % kill_at)
            util.write_config(self.config_path, {"pp": self.account(
                user, pw, "imaps", deliver="maildir++:" + root, folders=["*"], keep=False)},
                state_dir=self.path("state-%d" % kill_at))
            r = self.run_config(env={"PULLMAIL_TEST_KILL_AFTER": str(kill_at)})
            self.assertEqual(r.rc, -9, "not killed at step %d:\n%s" % (kill_at, r.describe()))
            self.run_config(expect=0)
            self._check_tree(root, expected, "killed at step %d, then rerun" % kill_at)
            for dov in FOLDERS:
                self.assertEqual(self.d.count(user, dov), 0, "%s not emptied" % dov)


if __name__ == "__main__":
    util.main()
