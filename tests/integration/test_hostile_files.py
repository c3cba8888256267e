#!/usr/bin/env python3
"""Hostile local files and hostile server text (issue 15, items 6 and 10).

A state directory other users can write is refused before pullmail touches
anything in it: the symlinks another user planted there (the lock and the
state file pointing at files outside) are never followed, the files they
point at stay byte for byte as they were, nothing is fetched or deleted, and
the one error line names the account, the directory and the chmod to run.
Once the directory is private again, planted symlinks are still refused.

Folder names and server replies with terminal escape sequences and CR/LF
never reach stderr raw: no ESC or CR byte, every line a "pullmail: ..."
line, accented names kept."""

import os
import stat

import util
from fakes import faultlib
from fakes.fakeimap import FakeImap
from messages import ordinary_corpus

NOBODY = 65534
VICTIM = b"root's precious file: must never be truncated or replaced\n"


class HostileFiles(util.IntegrationCase):

    def _plant(self, state_dir, name, victim_name):
        """A symlink `name` in the state dir, owned by 'another user', to a
        file outside it; returns the file's path."""
        victim = self.path(victim_name)
        with open(victim, "wb") as f:
            f.write(VICTIM)
        link = os.path.join(state_dir, name)
        os.symlink(victim, link)
        if os.geteuid() == 0:
            os.lchown(link, NOBODY, NOBODY)
        return victim

    def _untouched(self, *victims):
        for v in victims:
            with open(v, "rb") as f:
                self.assertEqual(f.read(), VICTIM, "%s was written through a planted symlink" % v)

    def test_state_dir_others_can_write(self):
        user, pw = self.new_user()
        for m in ordinary_corpus(3, seed=61):
            self.d.add_message(user, m.data)
        os.makedirs(self.state_dir)
        os.chmod(self.state_dir, 0o777)
        lock_victim = self._plant(self.state_dir, "m.lock", "victim-lock")
        state_victim = self._plant(self.state_dir, "m.state", "victim-state")
        maildir = self.path("Maildir")
        self.config({"m": self.account(user, pw, deliver="maildir:" + maildir, keep=False)})

        r = self.run_config("--json", expect=util.EX_IOERR)
        lines = self.assertStderrNames(r, "m", r"state directory")
        self.assertTrue(any(self.state_dir in l and "chmod go-w " + self.state_dir in l for l in lines),
                        "the error does not name the directory and the chmod to run:\n" + r.describe())
        self.assertEqual(len(r.err.splitlines()), 1, r.describe())
        self.assertErrorKind(r, "m", "local-io")
        self._untouched(lock_victim, state_victim)
        self.assertTrue(os.path.islink(os.path.join(self.state_dir, "m.state")))
        self.assertEqual(util.count_maildir(maildir), 0)
        self.assertEqual(self.d.count(user), 3, "messages deleted on the server")
        self.note("mode-0777 state dir refused: %r" % lines[0])

        # Private again, but the planted symlinks are still there.
        os.chmod(self.state_dir, 0o700)
        r = self.run_config(expect=util.EX_IOERR)
        line = self.assertStderrNames(r, "m", r"symbolic link|symlink")[0]
        self._untouched(lock_victim, state_victim)
        self.assertEqual(self.d.count(user), 3)
        self.note("planted lock symlink refused: %r" % line)
        os.unlink(os.path.join(self.state_dir, "m.lock"))
        r = self.run_config(expect=util.EX_IOERR)
        line = self.assertStderrNames(r, "m", r"m\.state: .*(symbolic link|symlink)")[0]
        self._untouched(lock_victim, state_victim)
        self.note("planted state symlink refused: %r" % line)

        os.unlink(os.path.join(self.state_dir, "m.state"))
        self.run_config(expect=0)
        self.assertEqual(util.count_maildir(maildir), 3)
        self.assertEqual(self.d.count(user), 0)
        st = os.lstat(os.path.join(self.state_dir, "m.state"))
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self._untouched(lock_victim, state_victim)

    def test_mbox_symlink_and_open_maildir(self):
        user, pw = self.new_user()
        for m in ordinary_corpus(2, seed=62):
            self.d.add_message(user, m.data)
        mail = self.path("mail")
        os.makedirs(mail)
        victim = self._plant(mail, "inbox", "victim-mbox")
        self.config({"m": self.account(user, pw, deliver="mbox:" + os.path.join(mail, "inbox"), keep=False)})
        r = self.run_config(expect=util.EX_IOERR)
        self.assertStderrNames(r, "m", r"mbox .*inbox")
        self._untouched(victim)
        self.assertEqual(self.d.count(user), 2)

        maildir = self.path("Maildir")
        os.makedirs(maildir)
        os.chmod(maildir, 0o777)
        self.config({"m": self.account(user, pw, deliver="maildir:" + maildir, keep=False)})
        r = self.run_config(expect=util.EX_IOERR)
        self.assertStderrNames(r, "m", "chmod go-w " + maildir)
        self.assertEqual(self.d.count(user), 2)


class HostileServerText(util.IntegrationCase):
    """Fake IMAP server (it lists whatever folder names we give it)."""

    ESC_NAME = b"\x1b[31mRED\x1b[0m"
    CRLF_NAME = b"\x1b[33mSplit\r\npullmail: account 'x': FORGED"
    REFUSED = b"~\x1b[34mBLUE\x1b[0m"
    ACCENTS = "Entwürfe".encode()

    def test_folder_names_and_replies_reach_stderr_escaped(self):
        msgs = [m.data.replace(b"\n", b"\r\n") for m in ordinary_corpus(2, seed=63)]
        srv = FakeImap(msgs)
        srv.folders = [self.ESC_NAME, self.CRLF_NAME, self.REFUSED, self.ACCENTS]
        srv.select_no = {b"BLUE": b"[\x1b]0;owned\x07] no such folder \x1b[2J\xff"}
        srv.start()
        try:
            args = faultlib.oneoff("imap://127.0.0.1:%d" % srv.port, srv.user, "maildir:" + self.path("Maildir"),
                                   self.state_dir, keep=True,
                                   extra=["--tls", "off", "--auth", "user", "--folder", "*", "-v", "-v", "--json"])
            r = faultlib.run(args, password=srv.password, timeout=60)
        finally:
            srv.stop()
        self.assertFalse(faultlib.crashed(r), r.describe())
        err = r.stderr
        self.assertNotIn(b"\x1b", err, "an ESC byte reached stderr:\n" + r.describe())
        self.assertNotIn(b"\r", err, "a CR reached stderr:\n" + r.describe())
        self.assertNotIn(b"\x07", err)
        self.assertNotIn(b"\xff", err, "invalid UTF-8 reached stderr")
        lines = err.split(b"\n")
        self.assertEqual(lines[-1], b"")
        for l in lines[:-1]:
            self.assertTrue(l.startswith(b"pullmail: "), "a split or foreign line on stderr: %r\n%s"
                            % (l, r.describe()))
            self.assertFalse(l.startswith(b"pullmail: account 'x'"), "a forged line: %r" % l)
        text = err.decode("utf-8")  # valid UTF-8 throughout
        self.assertIn("Entwürfe", text, "accented folder names must stay readable:\n" + r.describe())
        self.assertTrue(any("BLUE" in l and "no such folder" in l for l in text.splitlines()),
                        "the refused folder's error is missing:\n" + r.describe())
        self.assertIn("\\x1b[31mRED", text)
        # --json stays valid JSON (and UTF-8) and carries the same safe text.
        messages = [e["message"] for a in r.json()["accounts"] for e in a.get("errors", [])]
        self.assertTrue(any("BLUE" in m and "\x1b" not in m and "\ufffd" not in m for m in messages), messages)
        self.note("hostile folder names shown as: %r" %
                  [l for l in text.splitlines() if "RED" in l or "BLUE" in l][:2])


if __name__ == "__main__":
    util.main()
