#!/usr/bin/env python3
"""The constant-cost IMAP poll (issue 11): a folder whose UIDVALIDITY,
UIDNEXT and message count are what the last complete sync recorded is
neither selected nor listed (the -vv trace shows STATUS for it and no
SELECT/EXAMINE, no UID FETCH); a message another client deleted still gets
its record pruned (the count changed, so that folder is listed again, and
only that one); new mail is still found; and a poll after that is again
without listing."""

import os
import re

import util
from util import Dovecot  # noqa: F401  (the IntegrationCase starts it)
from messages import ordinary_corpus


def commands(result):
    """The IMAP commands pullmail sent (-vv trace lines "C: <tag> <command>")."""
    return [m.group(1) for m in re.finditer(r"C: \S+ ([^\r\n]*)", result.err)]


def opened(result):
    return [c for c in commands(result) if re.match(r"(SELECT|EXAMINE) ", c, re.I)]


def listed(result):
    return [c for c in commands(result) if re.match(r"UID FETCH 1:\* ", c, re.I)]


def live_keys(state_dir, account):
    """The keys the state file holds: its S records less the F records after them."""
    live = set()
    with open(os.path.join(state_dir, account + ".state"), "rb") as f:
        for line in util.state_lines(f.read())[1:]:
            w = line.split(b" ")
            if len(w) >= 3 and w[1] == b"S":
                live.add(w[2].decode())
            elif len(w) >= 3 and w[1] == b"F":
                live.discard(w[2].decode())
    return live


class PollUnchanged(util.IntegrationCase):

    def two_folders(self, seed, in_count, lists_count):
        """Account "poll": INBOX and Lists/cpp with that many messages, into
        a Maildir. Returns (user, Maildir path)."""
        user, pw = self.new_user()
        self.d.create_folder(user, "Lists.cpp")
        for m in ordinary_corpus(in_count, seed=seed, prefix="in"):
            self.d.add_message(user, m.data)
        for m in ordinary_corpus(lists_count, seed=seed + 1, prefix="li"):
            self.d.add_message(user, m.data, folder="Lists.cpp")
        maildir = self.path("Maildir")
        self.config({"poll": self.account(user, pw, "imaps", deliver="maildir:" + maildir,
                                          folders=["INBOX", "Lists/cpp"])})
        return user, maildir

    def test_unchanged_folders_are_not_listed(self):
        user, maildir = self.two_folders(11, 6, 3)
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "poll")["fetched"], 9, r.describe())

        r = self.run_config("-vv", expect=0)
        self.assertEqual(len(util.maildir_messages(maildir)), 9)
        self.assertEqual(opened(r), [], "an unchanged folder was opened:\n" + r.err[-3000:])
        self.assertEqual(listed(r), [], "an unchanged folder was listed:\n" + r.err[-3000:])
        self.assertEqual(len([c for c in commands(r) if c.upper().startswith("STATUS ")]), 2, r.err[-3000:])
        self.note("poll with nothing new: two STATUS, no SELECT, no UID listing")

        # Another client deletes one INBOX message: its record is pruned.
        c = self.d.imap(user)
        c.select("INBOX")
        typ, data = c.uid("SEARCH", None, "ALL")
        gone_uid = int(data[0].split()[2])
        c.uid("STORE", str(gone_uid), "+FLAGS", "(\\Deleted)")
        c.expunge()
        c.logout()
        before = live_keys(self.state_dir, "poll")
        gone = [k for k in before if re.fullmatch(r"imap:INBOX:\d+:%d" % gone_uid, k)]
        self.assertEqual(len(gone), 1, before)
        r = self.run_config("-vv", expect=0)
        self.assertEqual([c.split()[0].upper() + " " + c.split()[1] for c in opened(r)], ["EXAMINE INBOX"],
                         "only the changed folder is opened:\n" + r.err[-3000:])
        self.assertEqual(len(listed(r)), 1, r.err[-3000:])
        after = live_keys(self.state_dir, "poll")
        self.assertNotIn(gone[0], after, "the record of the deleted message is still there")
        self.assertEqual(len(after), 8, after)
        self.note("deleted by another client: INBOX listed again, its record pruned, Lists/cpp not opened")

        # New mail in the other folder is found.
        new = ordinary_corpus(1, seed=13, prefix="new")[0]
        self.d.add_message(user, new.data, folder="Lists.cpp")
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "poll")["fetched"], 1, r.describe())
        self.assertEqual(len(util.maildir_messages(maildir)), 10)

        r = self.run_config("-vv", expect=0)
        self.assertEqual(opened(r), [], "unchanged again, yet opened:\n" + r.err[-3000:])
        self.note("new mail found; then unchanged again, nothing listed")

        # -a lists everything (and fetches it again).
        r = self.run_config("-vv", "-a", expect=0)
        self.assertEqual(len(listed(r)), 2, r.err[-3000:])

    def test_unchanged_poll_reads_no_records(self):
        """The marks file beside the state (<account>.state.marks) lets a poll
        whose folders are all unchanged skip reading the state's records
        (PULLMAIL_TEST_TRACE_TIMES prints "state: records loaded" when they
        are read); a marks file that does not stand for the state file as it
        is (deleted, the state restored from a backup, the state deleted) is
        ignored, and the run is the full sync it would have been without it."""
        user, maildir = self.two_folders(21, 6, 2)
        state = os.path.join(self.state_dir, "poll.state")
        marks = state + ".marks"
        trace = {"PULLMAIL_TEST_TRACE_TIMES": "1"}

        def poll(*args, fetched=0):
            r = self.run_config("--json", "-vv", *args, expect=0, env=trace)
            self.assertEqual(self.json_account(r, "poll")["fetched"], fetched, r.describe())
            return r, "state: records loaded" in r.err

        r, loaded = poll(fetched=8)
        self.assertTrue(os.path.exists(marks), "no marks file after a complete sync")
        with open(state, "rb") as f:
            backup = f.read()
        r, loaded = poll()
        self.assertFalse(loaded, "an unchanged poll read the state's records:\n" + r.err[-3000:])
        self.assertEqual(opened(r), [], r.err[-3000:])
        self.note("unchanged poll: marks file believed, no record read, no folder opened")

        os.unlink(marks)
        r, loaded = poll()
        self.assertTrue(loaded, "without a marks file the records must be read:\n" + r.err[-3000:])
        self.assertTrue(os.path.exists(marks), "the marks file was not written again")
        r, loaded = poll()
        self.assertFalse(loaded, r.err[-3000:])
        self.note("marks file missing: records read, marks file written again, then believed")

        # A later run fetches one new message; then the state is restored
        # from the backup taken before it (the marks file stays the newer
        # one). The marks file says INBOX is unchanged, the restored state
        # does not know the message: the marks file must be ignored, INBOX
        # opened and the message fetched again (what the restored state says).
        new = ordinary_corpus(1, seed=23, prefix="new")[0]
        self.d.add_message(user, new.data)
        r, loaded = poll(fetched=1)
        with open(state, "wb") as f:
            f.write(backup)
        r, loaded = poll(fetched=1)
        self.assertTrue(loaded, r.err[-3000:])
        self.assertEqual([c.split()[1] for c in opened(r)], ["INBOX"], r.err[-3000:])
        self.assertEqual(len(util.maildir_messages(maildir)), 10)
        self.note("state restored from a backup: marks file ignored, INBOX synced as the backup says")

        # The state deleted (a reset): everything is fetched again.
        os.unlink(state)
        r, loaded = poll(fetched=9)
        r, loaded = poll()
        self.assertFalse(loaded, r.err[-3000:])
        self.note("state deleted: marks file ignored, all fetched again; then unchanged polls read no record")


if __name__ == "__main__":
    util.main()
