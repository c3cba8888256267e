#!/usr/bin/env python3
"""Provider and server quirks (issue 12), against the real Dovecot configured
to play each role:

- Gmail-style SPECIAL-USE folders (RFC 6154): folders = ["*"] leaves out the
  folders with the \\All, \\Junk and \\Trash attributes, whatever they are
  called (here German names, as Gmail localises them);
  skip_special_use = [] takes them too.
- delete = "trash" with keep = false: delivered messages are moved into the
  \\Trash folder, byte for byte; with UID MOVE (RFC 6851) where the server
  offers MOVE, else UID COPY + \\Deleted + UID EXPUNGE (Dovecot with MOVE left
  out of its capability list).
- Gmail (X-GM-EXT-1 in the capabilities) allows 15 connections: with
  connections = 16 and 16 folders pullmail warns and logs in 15 times.
- An IMAP target whose personal namespace is "INBOX." with "." (Courier,
  Cyrus; Dovecot's compatibility namespace): folders are created and filled
  under the prefix, and a rerun appends nothing.
"""

import os
import shutil
import tempfile
import unittest

import util
from util import Dovecot
from fakes import faultlib
from fakes.fakeimap import FakeImap
from messages import ordinary_corpus

SPECIAL_NAMESPACE = """
namespace inbox {
  inbox = yes
  separator = .
  mailbox "Alle Nachrichten" {
    special_use = \\All
  }
  mailbox Papierkorb {
    special_use = \\Trash
  }
  mailbox Spam {
    special_use = \\Junk
  }
}
"""

# Dovecot 2.3's capabilities after login, less MOVE.
NO_MOVE_CAPS = ("IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE NAMESPACE UIDPLUS CHILDREN "
                "LIST-EXTENDED SPECIAL-USE LITERAL+ UNSELECT")

PREFIX_NAMESPACE = """
namespace inbox {
  inbox = yes
  prefix = INBOX.
  separator = .
}
"""


class QuirksBase(util.IntegrationCase):

    def fill(self, user, folders, n=2, seed=300):
        """Messages into each folder (Dovecot names); {folder: expected bytes}."""
        out = {}
        for i, f in enumerate(folders):
            if f != "INBOX":
                self.d.create_folder(user, f)
            for m in ordinary_corpus(n, seed=seed + i, prefix="q%d" % i):
                self.d.add_message(user, m.data, folder=f)
            out[f] = util.expected_from_served(self.d.messages(user, f))
        return out


class GmailStyle(QuirksBase):
    DOVECOT = {"extra_conf": SPECIAL_NAMESPACE + "imap_capability = +X-GM-EXT-1\n"}

    FOLDERS = ["INBOX", "Lists", "Alle Nachrichten", "Papierkorb", "Spam"]

    def test_special_use_folders_skipped_by_attribute(self):
        user, pw = self.new_user()
        mail = self.fill(user, self.FOLDERS)
        maildir = self.path("Maildir")
        self.config({"g": self.account(user, pw, "imaps", deliver="maildir:" + maildir, folders=["*"])})
        r = self.run_config("--json", expect=0)
        wanted = mail["INBOX"] + mail["Lists"]
        self.assertEqual(self.json_account(r, "g")["fetched"], len(wanted), r.describe())
        self.assertDelivered(util.maildir_messages(maildir), wanted, "\\All, \\Trash, \\Junk left out")

        maildir2 = self.path("Maildir2")
        self.config({"g": self.account(user, pw, "imaps", deliver="maildir:" + maildir2, folders=["*"],
                                       skip_special_use=[])})
        r = self.run_config("--json", "-a", expect=0)
        everything = [m for f in self.FOLDERS for m in mail[f]]
        self.assertDelivered(util.maildir_messages(maildir2), everything, "skip_special_use = []: every folder")

    def test_delete_trash_moves_with_move(self):
        user, pw = self.new_user()
        mail = self.fill(user, ["INBOX", "Papierkorb"], n=3)
        maildir = self.path("Maildir")
        self.config({"g": self.account(user, pw, "imaps", deliver="maildir:" + maildir, keep=False,
                                       delete="trash")})
        r = self.run_config("--json", "-vv", expect=0)
        self.assertEqual(self.json_account(r, "g")["deleted"], 3, r.describe())
        self.assertDelivered(util.maildir_messages(maildir), mail["INBOX"], "INBOX delivered")
        self.assertEqual(self.d.count(user, "INBOX"), 0, "INBOX emptied")
        trash = util.expected_from_served(self.d.messages(user, "Papierkorb"))
        util.compare_messages(trash, mail["Papierkorb"] + mail["INBOX"], "the \\Trash folder")
        self.assertIn("UID MOVE", r.err, "MOVE offered: used")
        self.assertNotIn("UID COPY", r.err)
        self.note("delivered messages moved into \\Trash with UID MOVE, byte for byte")
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "g")["fetched"], 0)

    def test_delete_trash_never_syncs_the_trash_folder(self):
        # What delete = "trash" moves into \\Trash must not come back as new mail.
        user, pw = self.new_user()
        mail = self.fill(user, ["INBOX", "Lists", "Papierkorb"], n=2)
        maildir = self.path("Maildir")
        self.config({"g": self.account(user, pw, "imaps", deliver="maildir:" + maildir, keep=False,
                                       delete="trash", folders=["*"], skip_special_use=[])})
        r = self.run_config("--json", expect=0)
        wanted = [m for f in ["INBOX", "Alle Nachrichten", "Lists", "Spam"] for m in mail.get(f, [])]
        self.assertDelivered(util.maildir_messages(maildir), wanted, "every folder but \\Trash, once")
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "g")["fetched"], 0, r.describe())
        self.assertDelivered(util.maildir_messages(maildir), wanted, "nothing delivered twice")
        self.config({"g": self.account(user, pw, "imaps", deliver="maildir:" + maildir, keep=False,
                                       delete="trash", folders=["INBOX", "Papierkorb"])})
        r = self.run_config(expect=78)
        self.assertRegex(r.err, r"account 'g'.*folder 'Papierkorb' is where delete = \"trash\" moves delivered mail")
        self.assertDelivered(util.maildir_messages(maildir), wanted, "nothing delivered by the refused run")

    def test_gmail_connection_cap(self):
        user, pw = self.new_user()
        folders = ["INBOX"] + ["F%02d" % i for i in range(16)]
        mail = self.fill(user, folders, n=1)
        maildir = self.path("Maildir")
        self.config({"g": self.account(user, pw, "imaps", deliver="maildir:" + maildir, folders=["*"],
                                       connections=16)})
        mark = self.d.log_mark()
        r = self.run_config("--json", expect=0)
        self.assertRegex(r.err, r"account 'g'.*connections = 16 is more than the 15 IMAP connections Gmail "
                                r"allows an account; using 15")
        logins = Dovecot.logins(self.d.settled_log(mark, user), user=user, protocol="imap")
        self.assertLessEqual(len(logins), 15, "at most 15 connections")
        self.assertGreater(len(logins), 1)
        self.assertDelivered(util.maildir_messages(maildir), [m for f in folders for m in mail[f]],
                             "every folder over at most 15 connections")


class TrashWithoutMove(QuirksBase):
    DOVECOT = {"extra_conf": SPECIAL_NAMESPACE + "imap_capability = %s\n" % NO_MOVE_CAPS}

    def test_delete_trash_copies_without_move(self):
        user, pw = self.new_user()
        mail = self.fill(user, ["INBOX", "Papierkorb"], n=3)
        maildir = self.path("Maildir")
        self.config({"t": self.account(user, pw, "imaps", deliver="maildir:" + maildir, keep=False,
                                       delete="trash")})
        r = self.run_config("--json", "-vv", expect=0)
        self.assertEqual(self.json_account(r, "t")["deleted"], 3, r.describe())
        self.assertIn("UID COPY", r.err)
        self.assertNotIn("UID MOVE", r.err, "MOVE not offered: not used")
        self.assertEqual(self.d.count(user, "INBOX"), 0)
        trash = util.expected_from_served(self.d.messages(user, "Papierkorb"))
        util.compare_messages(trash, mail["Papierkorb"] + mail["INBOX"], "the \\Trash folder")
        self.note("without MOVE: UID COPY, \\Deleted, UID EXPUNGE; the copies are byte for byte")


class NamespaceTarget(QuirksBase):
    """The source is a plain Dovecot (class server); the target a second one
    with the INBOX. personal namespace."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.target = Dovecot(os.path.join(cls.tmp_root, "target"), extra_conf=PREFIX_NAMESPACE)
        try:
            cls.target.start()
        except BaseException:
            cls.target.stop()
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.target.stop()
        super().tearDownClass()

    def test_folders_created_under_the_prefix(self):
        user, pw = self.new_user()
        mail = self.fill(user, ["INBOX", "Lists", "Lists.cpp"])
        dst = "t" + user
        dpw = self.target.add_user(dst, dst + "-Pw-9x")
        target = {"url": "imaps://127.0.0.1:%d" % self.target.ports["imaps"], "user": dst, "password": dpw,
                  "ca_file": self.target.ca_file}
        self.config({"mig": self.account(user, pw, "imaps", deliver=target, folders=["*"])})
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "mig")["delivered"], 6, r.describe())
        for src, dest in (("INBOX", "INBOX"), ("Lists", "INBOX.Lists"), ("Lists.cpp", "INBOX.Lists.cpp")):
            got = util.expected_from_served(self.target.messages(dst, dest))
            util.compare_messages(got, mail[src], "target folder %s" % dest)
        self.note("Lists -> INBOX.Lists, Lists/cpp -> INBOX.Lists.cpp under the NAMESPACE prefix")
        r = self.run_config("--json", "--state-dir", self.path("fresh-state"), expect=0)
        a = self.json_account(r, "mig")
        self.assertEqual(a["delivered"], 0, r.describe())
        self.assertEqual(a["already_present"], 6)
        self.note("first sync with a fresh state: every message found in its prefixed folder, nothing appended")


class FingerprintlessOnUnstableUidvalidity(unittest.TestCase):

    def setUp(self):
        util.require_binary()
        self.ws = tempfile.mkdtemp(prefix="pullmail-it-fpless-")
        self.addCleanup(shutil.rmtree, self.ws, True)

    def run_once(self, srv, keep=True):
        args = faultlib.oneoff("imap://127.0.0.1:%d" % srv.port, srv.user, "maildir:" + os.path.join(self.ws, "out"),
                               os.path.join(self.ws, "state"), keep=keep, extra=["--tls", "off", "--auth", "user", "--json"])
        r = faultlib.run(args, password=srv.password, timeout=60)
        self.assertEqual(r.rc, 0, r.describe())
        return r.json()["accounts"][0]

    def test_recognised_by_internaldate_and_size(self):
        msgs = [(b"Received: from a by b; Mon, 1 Jan 2024 10:00:00 +0000\r\nX-Note: no fields\r\n\r\none\r\n",
                 b'"01-Jan-2024 10:00:00 +0000"'),
                (b"From  : obsolete@example.test\r\nSubject : old syntax\r\n\r\ntwo\r\n",
                 b'"01-Jan-2024 10:00:05 +0000"'),
                (b"Message-ID: <normal@example.test>\r\nSubject: normal\r\n\r\nthree\r\n",
                 b'"01-Jan-2024 10:00:09 +0000"')]
        srv = FakeImap([], uidvalidity=1).start()
        self.addCleanup(srv.stop)
        for data, date in msgs:
            srv.add(data, date=date)
        self.assertEqual(self.run_once(srv)["fetched"], 3)
        for validity in (2, 3):
            srv.renumber(validity, first_uid=10 * validity)
            before = len(srv.commands(r"BODY\.PEEK\[\]"))
            a = self.run_once(srv)
            self.assertEqual((a["fetched"], a["recognised"]), (0, 3), a)
            self.assertEqual(srv.commands(r"BODY\.PEEK\[\]")[before:], [], "downloaded again")
        delivered = util.maildir_messages(os.path.join(self.ws, "out"))
        self.assertEqual(sorted(delivered), sorted(util.lf(d) for d, _ in msgs))
        util.log("    checked: two UIDVALIDITY changes: nothing fetched again, each message delivered once")
        # A new fingerprintless message of the same size but another arrival
        # time is new mail, not a copy.
        srv.renumber(4, first_uid=40)
        srv.add(msgs[0][0], date=b'"02-Jan-2024 10:00:00 +0000"')
        a = self.run_once(srv, keep=False)
        # Recognised by arrival time and size alone is enough not to deliver
        # again, not to delete: the two fingerprintless messages stay on the
        # server; the new one and the one with a Message-ID are deleted.
        self.assertEqual((a["fetched"], a["recognised"], a["deleted"]), (1, 3, 2), a)
        self.assertEqual(len(srv.uids()), 2, "the messages recognised by arrival are kept")
        self.assertEqual(len(util.maildir_messages(os.path.join(self.ws, "out"))), 4, "nothing delivered twice")


if __name__ == "__main__":
    util.main()
