#!/usr/bin/env python3
"""Fault injection: the disk fills up while a message is written.

RLIMIT_FSIZE (always runs): pullmail is started with a file size limit, so
a large message cannot be written (EFBIG; pullmail ignores SIGXFSZ):
  Maildir: exit 74 with a line naming the account, the large message stays
  on the server with -K, every message not delivered is still on the
  server, nothing half-written (tmp/ empty, new/ holds only whole messages);
  mbox, failing in the spool: same, the mbox parses and holds whole messages;
  mbox, failing in the append itself (the mbox is already near the limit):
  the partial append is undone, the mbox is byte for byte what it was plus
  the whole messages delivered before;
  a later run without the limit delivers the rest exactly once.
tmpfs (when mount is permitted, else skipped with a note): a 1 MB file system
holding the Maildir or mbox and the state directory fills up (ENOSPC); same
checks; after growing the file system the next run delivers everything.
"""

import os
import resource
import subprocess

import util
from fakes import faultlib
from messages import huge_message, ordinary_corpus

LIMIT = 512 * 1024


def fsize_limit(limit):
    def pre():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


class DiskFull(util.IntegrationCase):

    def _mailbox(self, proto, big_size, tag):
        user, pw = self.new_user("disk")
        small = ordinary_corpus(4, seed=len(tag) * 31 + big_size % 97, prefix="disk-%s-%s" % (tag, proto))
        big = huge_message(big_size, seed=5, name="disk-big-%s-%s" % (tag, proto))
        datas = [small[0].data, small[1].data, big.data, small[2].data, small[3].data]
        self.d.add_messages(user, datas)
        expected = faultlib.expected_for(self.d, user, pop3=proto == "pop3s")
        big_expected = [e for e in expected if util.message_id(e) == big.message_id][0]
        return user, pw, expected, big_expected

    def _on_server(self, user, proto):
        return util.expected_from_served(self.d.messages(user), final_newline=proto == "pop3s")

    def _args(self, proto, user, deliver, state):
        return faultlib.oneoff(self.url(proto), user, deliver, state, ca_file=self.d.ca_file, keep=False,
                               extra=["--json"])

    def _check_failed_run(self, r, user, proto, expected, big, contents, what, spool=None):
        self.assertEqual(r.rc, util.EX_IOERR, "%s: expected exit 74\n%s" % (what, r.describe()))
        self.assertFalse(faultlib.stray_stderr(r), r.describe())
        lines = faultlib.account_lines(r)
        self.assertTrue(any(("too large" in l.lower() or "no space" in l.lower()) for l in lines),
                        "%s: no error line naming the account and the cause:\n%s" % (what, r.err))
        if spool is not None:
            self.assertEqual(any("temporary copy" in l for l in lines), spool,
                             "%s: the failure should be in the %s:\n%s" % (
                                 what, "spool" if spool else "mbox append", "\n".join(lines)))
        on_server = self._on_server(user, proto)
        self.assertTrue(big in on_server, "%s: the message that could not be written is no longer on the server "
                        "(exit %d)" % (what, r.rc))
        self.assertEqual(contents.partials, [], "%s: half-written data left" % what)
        a = faultlib.assess(contents, expected, also_present=on_server)
        self.assertTrue(a.clean, "%s: %s" % (what, a.summary()))
        self.assertFalse(big in contents.messages, "%s: the large message was delivered" % what)
        self.note("%s: exit 74 (%s), large message kept on the server, %d delivered, %d on the server, "
                  "nothing half-written" % (what, lines[0][:90], len(contents.messages), len(on_server)))

    def _final_run(self, args, pw, user, kind, target, expected, what):
        r = faultlib.run(args, password=pw)
        self.assertEqual(r.rc, 0, r.describe())
        contents = faultlib.read_target(kind, target)
        self.assertEqual(contents.partials, [], what)
        util.compare_messages(contents.messages, expected, what)
        self.assertEqual(self.d.count(user), 0, "%s: server not empty" % what)
        self.note("%s: all %d messages delivered once, server empty" % (what, len(expected)))
        return r

    # ---- RLIMIT_FSIZE ------------------------------------------------------------

    def _rlimit_maildir(self, proto):
        user, pw, expected, big = self._mailbox(proto, 1024 * 1024, "rl-md")
        target = self.path("Maildir")
        args = self._args(proto, user, "maildir:" + target, self.path("state"))
        r = faultlib.run(args, password=pw, preexec_fn=fsize_limit(LIMIT))
        self._check_failed_run(r, user, proto, expected, big, faultlib.read_maildir(target),
                               "Maildir over %s, RLIMIT_FSIZE %d" % (proto, LIMIT))
        self._final_run(args, pw, user, "maildir", target, expected, "Maildir, no limit")

    def test_rlimit_maildir_pop3s(self):
        self._rlimit_maildir("pop3s")

    def test_rlimit_maildir_imaps(self):
        self._rlimit_maildir("imaps")

    def _rlimit_mbox_spool(self, proto):
        user, pw, expected, big = self._mailbox(proto, 1024 * 1024, "rl-spool")
        target = self.path("mail.mbox")
        args = self._args(proto, user, "mbox:" + target, self.path("state"))
        r = faultlib.run(args, password=pw, preexec_fn=fsize_limit(LIMIT))
        self._check_failed_run(r, user, proto, expected, big, faultlib.read_mbox(target),
                               "mbox over %s, spool over RLIMIT_FSIZE" % proto, spool=True)
        self._final_run(args, pw, user, "mbox", target, expected, "mbox, no limit")

    def test_rlimit_mbox_spool_pop3s(self):
        self._rlimit_mbox_spool("pop3s")

    def _rlimit_mbox_append(self, proto):
        """The mbox is already close to the limit: the spool of the large
        message fits, appending it does not."""
        user, pw, expected, big = self._mailbox(proto, 300 * 1024, "rl-app")
        target = self.path("mail.mbox")
        # an existing mbox of 850 KB (one old message)
        old = huge_message(850 * 1024, seed=9, name="disk-old-mbox-%s" % proto).data
        with open(target, "wb") as f:
            f.write(b"From old@example.org Mon Jan  1 00:00:00 2024\n" + old + b"\n")
        args = self._args(proto, user, "mbox:" + target, self.path("state"))
        r = faultlib.run(args, password=pw, preexec_fn=fsize_limit(1024 * 1024))
        contents = faultlib.read_mbox(target)
        self.assertEqual(contents.partials, [], "mbox damaged after the failed append")
        self.assertTrue(contents.messages and contents.messages[0] == old, "the old message changed")
        with open(target, "rb") as f:
            data = f.read()
        size_ok = len(data)
        contents.messages = contents.messages[1:]
        self._check_failed_run(r, user, proto, expected, big, contents,
                               "mbox over %s, append over RLIMIT_FSIZE" % proto, spool=False)
        # byte for byte: what was there plus whole messages, no tail
        self.assertTrue(data.endswith(b"\n\n"), "mbox does not end with a blank line after a message")
        self.note("mbox is %d bytes: the old message plus %d whole messages" % (size_ok, len(contents.messages)))
        r = self._final_run(args, pw, user, "mbox", target, [old] + expected, "mbox, no limit")

    def test_rlimit_mbox_append_imaps(self):
        self._rlimit_mbox_append("imaps")

    # ---- tmpfs ---------------------------------------------------------------------

    def _mount_tmpfs(self, size):
        mnt = self.path("tmpfs")
        os.makedirs(mnt)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            util.log("    NOTE: tmpfs variant skipped, mount is not permitted here: %s" %
                     p.stdout.decode(errors="replace").strip())
            self.skipTest("mount not permitted")
        self.addCleanup(lambda: subprocess.run(["umount", "-l", mnt]))
        return mnt

    def _tmpfs(self, kind, proto):
        mnt = self._mount_tmpfs("1m")
        user, pw, expected, big = self._mailbox(proto, 2 * 1024 * 1024, "tmpfs-" + kind)
        target = os.path.join(mnt, "Maildir" if kind == "maildir" else "mail.mbox")
        state = os.path.join(mnt, "state")
        args = self._args(proto, user, "%s:%s" % (kind, target), state)
        r = faultlib.run(args, password=pw)
        self._check_failed_run(r, user, proto, expected, big, faultlib.read_target(kind, target),
                               "%s on a full 1 MB tmpfs over %s" % (kind, proto))
        subprocess.run(["mount", "-o", "remount,size=16m", mnt], check=True)
        self._final_run(args, pw, user, kind, target, expected, "%s after growing the tmpfs" % kind)

    def test_tmpfs_maildir_pop3s(self):
        self._tmpfs("maildir", "pop3s")

    def test_tmpfs_mbox_imaps(self):
        self._tmpfs("mbox", "imaps")


if __name__ == "__main__":
    util.main()
