#!/usr/bin/env python3
"""Retention and limits (issue 13) against the real Dovecot, over POP3 and
IMAP, with the clock injected through PULLMAIL_TEST_NOW (no test waits):

- delete_after = "30d" with keep: nothing is deleted before the time is up,
  the expired messages are deleted after it, only messages recorded as
  delivered whole (a skipped oversize message and mail that arrives later
  stay); --dry-run lists what would expire and deletes nothing; a version 1
  state file (an older pullmail) counts from the first run that reads it.
- max_size with oversize = skip / headers / delete: what is delivered is
  byte-exact (the stub is the server's header block and a note), a skipped
  message is reported once, neither a skipped message nor a header-only one
  is ever deleted (even with keep = false), delete removes unread.
- max_messages: several runs deliver everything exactly once, oldest first;
  the limit is the account's per run across its folders (configured order).
- bad durations and sizes: exit 78 naming the account and the key."""

import os
import re
import zlib

import util
from messages import ordinary_corpus

DAY = 86400
T0 = 1_900_000_000


def big_message(name, size=60 * 1024):
    body = b"".join(b"line %06d of a large attachment that pullmail must not fetch\n" % i
                    for i in range(size // 62))
    return (b"Message-ID: <" + name.encode() + b"@corpus.pullmail.test>\n"
            b"From: Big Sender <big@example.test>\nTo: someone@example.test\n"
            b"Subject: a large message\nDate: Tue, 1 Jul 2003 10:00:00 +0000\n"
            b"X-Odd-Header:   kept exactly  \n\n" + body)


class Retention(util.IntegrationCase):

    def at(self, t):
        return {"PULLMAIL_TEST_NOW": str(t)}

    def _setup(self, proto, n, seed, big=()):
        user, pw = self.new_user()
        corpus = ordinary_corpus(n, seed=seed, max_size=8 * 1024, prefix="ret-%s-%d" % (proto, seed))
        for m in corpus:
            self.d.add_message(user, m.data)
        for b in big:
            self.d.add_message(user, big_message(b))
        return user, pw, corpus

    def _ids(self, user):
        return [util.message_id(b) for _, b, _ in self.d.messages(user)]

    # ---- delete_after ---------------------------------------------------

    def _delete_after(self, proto):
        user, pw, first = self._setup(proto, 3, 11, big=["too-big-" + proto])
        maildir = self.path("M-" + proto)
        name = "exp-" + proto
        self.config({name: self.account(user, pw, proto, deliver="maildir:" + maildir,
                                        delete_after="30d", max_size="20K")})
        served = self.d.messages(user)
        first_ids = [m.message_id for m in first]
        big_id = "<too-big-%s@corpus.pullmail.test>" % proto
        r = self.run_config("--json", expect=0, env=self.at(T0))
        self.assertEqual(self.json_account(r, name)["deleted"], 0)
        self.assertEqual(len(self._ids(user)), 4)
        # Later mail, delivered 29 days on.
        later = ordinary_corpus(2, seed=12, max_size=4096, prefix="later-" + proto)
        for m in later:
            self.d.add_message(user, m.data)
        r = self.run_config("--json", expect=0, env=self.at(T0 + 29 * DAY))
        self.assertEqual(self.json_account(r, name)["deleted"], 0, "deleted before its time")
        self.assertEqual(len(self._ids(user)), 6)
        self.note("%s: nothing deleted at day 0 and day 29" % proto)
        # The dry run at day 31 lists the three expired messages, deletes nothing.
        r = self.run_config("-n", expect=0, env=self.at(T0 + 31 * DAY))
        would = [l for l in r.err.splitlines() if "delete_after has passed" in l]
        self.assertEqual(len(would), 3, r.describe())
        self.assertEqual(len(self._ids(user)), 6, "the dry run deleted mail")
        self.note("%s: --dry-run at day 31 lists the 3 expired messages, deletes nothing" % proto)
        r = self.run_config("-k", "--json", expect=0, env=self.at(T0 + 31 * DAY))
        self.assertEqual(self.json_account(r, name)["deleted"], 0, "-k must keep everything")
        self.assertEqual(len(self._ids(user)), 6)
        # Mail that arrives right before the day-31 run: delivered then, kept.
        fresh = ordinary_corpus(1, seed=13, max_size=4096, prefix="fresh-" + proto)
        self.d.add_message(user, fresh[0].data)
        r = self.run_config("--json", expect=0, env=self.at(T0 + 31 * DAY))
        self.assertEqual(self.json_account(r, name)["deleted"], 3, r.describe())
        remaining = self._ids(user)
        self.assertEqual(sorted(remaining), sorted([big_id] + [m.message_id for m in later] + [fresh[0].message_id]))
        self.assertFalse(set(first_ids) & set(remaining))
        # Long after, the later mail goes too; the skipped oversize message never.
        r = self.run_config("--json", expect=0, env=self.at(T0 + 1000 * DAY))
        self.assertEqual(self._ids(user), [big_id], "only the never-delivered message may stay")
        delivered = util.maildir_messages(maildir)
        want = util.expected_from_served([s for s in served if util.message_id(s[1]) != big_id],
                                         final_newline=proto == "pop3s")
        want += [util.lf(m.data) for m in later + fresh]
        self.assertDelivered(delivered, want, "%s delete_after" % proto)
        self.note("%s: day 31 deleted exactly the 3 expired messages; the oversize one was never deleted" % proto)

    def test_delete_after_pop3s(self):
        self._delete_after("pop3s")

    def test_delete_after_imaps(self):
        self._delete_after("imaps")

    def test_delete_after_version1_state(self):
        """A state file of an older pullmail: its messages expire counted
        from the first run that reads it, never at once."""
        user, pw, first = self._setup("pop3s", 2, 21)
        name = "v1"
        self.config({name: self.account(user, pw, "pop3s", deliver="maildir:" + self.path("M"), delete_after="2w")})
        self.run_config(expect=0, env=self.at(T0))
        path = os.path.join(self.state_dir, name + ".state")
        with open(path, "rb") as f:
            lines = [l.decode() for l in util.state_lines(f.read())]
        self.assertTrue(lines[0].startswith("pullmail-state 4 "), lines[0])
        v1 = ["pullmail-state 1"]
        for line in lines[1:]:
            rec = line[9:]
            if rec.startswith("S "):
                rec = " ".join(rec.split(" ")[:4])  # S key size fingerprint: as version 1 wrote it
            v1.append("%08x %s" % (zlib.crc32(rec.encode()) & 0xffffffff, rec))
        with open(path, "w") as f:
            f.write("\n".join(v1) + "\n")
        r = self.run_config("--json", expect=0, env=self.at(T0 + 100 * DAY))
        self.assertEqual(self.json_account(r, name)["deleted"], 0, "old records expired at once")
        with open(path, "rb") as f:
            self.assertTrue(f.readline().startswith(b"pullmail-state 4 "))
        r = self.run_config("--json", expect=0, env=self.at(T0 + 113 * DAY))
        self.assertEqual(self.json_account(r, name)["deleted"], 0)
        r = self.run_config("--json", expect=0, env=self.at(T0 + 114 * DAY))
        self.assertEqual(self.json_account(r, name)["deleted"], 2)
        self.assertEqual(self._ids(user), [])
        self.note("version 1 state: rewritten as version 2, expired 14 days after the first run that read it")

    # ---- oversize -------------------------------------------------------

    def _oversize(self, proto, action, keep):
        user, pw, small = self._setup(proto, 2, 31, big=["big-%s-%s" % (proto, action)])
        served = self.d.messages(user)
        big_uid, big_served = [(u, b) for u, b, _ in served if len(b) > 20 * 1024][0]
        maildir = self.path("M-%s-%s" % (proto, action))
        name = "ovr-%s-%s" % (proto, action)
        self.config({name: self.account(user, pw, proto, deliver="maildir:" + maildir, keep=keep,
                                        max_size="20K", oversize=action)})
        r1 = self.run_config("--json", expect=0)
        r2 = self.run_config("--json", expect=0)
        delivered = util.maildir_messages(maildir)
        want = util.expected_from_served([s for s in served if s[0] != big_uid], final_newline=proto == "pop3s")
        remaining = [u for u, _, _ in self.d.messages(user)]
        reports = [l for r in (r1, r2) for l in r.err.splitlines() if "max_size" in l]
        if action == "headers":
            head = util.lf(big_served[:big_served.index(b"\r\n\r\n") + 4])
            stubs = [m for m in delivered if m.startswith(head)]
            self.assertEqual(len(stubs), 1, "the stub is not the server's header block byte for byte")
            note = stubs[0][len(head):]
            self.assertRegex(note, rb"^\[pullmail: this message is %d bytes, more than max_size \(20480 bytes\);"
                             % len(big_served))
            self.assertTrue(note.endswith(b"\n") and note.count(b"\n") == 1, note)
            want.append(stubs[0])
        self.assertDelivered(delivered, want, "%s oversize=%s" % (proto, action))
        if action == "delete":
            self.assertEqual(remaining, [] if not keep else [u for u, _, _ in served if u != big_uid])
            self.assertEqual(self.json_account(r1, name)["deleted"], 1 + (0 if keep else 2))
        else:
            # Never delivered whole: never deleted, with keep = false too.
            self.assertEqual(remaining, [big_uid], "keep = false must remove the small ones and only them")
        if action == "skip":
            self.assertEqual(len(reports), 1, "a skipped message is reported once:\n" + "\n".join(reports))
            self.assertIn("left ", reports[0])
        self.assertEqual(self.json_account(r2, name)["delivered"], 0, "the second run fetched again")
        self.note("%s oversize=%s keep=%s: small ones delivered, large one %s" % (
            proto, action, keep, {"skip": "left and reported once", "headers": "as a header stub, left on the server",
                                  "delete": "deleted unread"}[action]))

    def test_oversize_pop3s(self):
        self._oversize("pop3s", "skip", keep=False)
        self._oversize("pop3s", "headers", keep=False)
        self._oversize("pop3s", "delete", keep=True)

    def test_oversize_imaps(self):
        self._oversize("imaps", "skip", keep=False)
        self._oversize("imaps", "headers", keep=False)
        self._oversize("imaps", "delete", keep=False)

    def test_adopt_takes_oversize_mail_too(self):
        # Adoption says the mail on the server is where it should be, the
        # large message too: later runs neither stub it nor report it.
        for proto, action in (("pop3s", "headers"), ("imaps", "skip")):
            user, pw, _ = self._setup(proto, 2, 41, big=["adopt-big-" + proto])
            maildir = self.path("M-adopt-" + proto)
            name = "adopt-" + proto
            self.config({name: self.account(user, pw, proto, deliver="maildir:" + maildir, keep=True,
                                            max_size="20K", oversize=action)})
            r0 = self.run_config("adopt", name, "--json", expect=0)
            r = self.run_config("--json", expect=0)
            self.assertEqual(self.json_account(r, name)["delivered"], 0, r.err)
            self.assertEqual(util.count_maildir(maildir) if os.path.isdir(maildir) else 0, 0, r.err)
            self.assertEqual([l for l in r0.err.splitlines() + r.err.splitlines() if "max_size" in l], [])
            self.assertEqual(len(self.d.messages(user)), 3, "adopt and the run after it delete nothing")
            self.note("%s oversize=%s: adopt records the large message; the next run delivers and reports nothing"
                      % (proto, action))

    def test_oversize_headers_killed_at_every_step(self):
        """A run with oversize = "headers" and keep = false, SIGKILLed at
        every step (src/test_hooks.h), then run again: the large message is
        never deleted (a stub recovered after the kill is recorded as a stub,
        not as a delivery), the small one and the stub are delivered once."""
        def mailbox():
            user, pw = self.new_user()
            self.d.add_message(user, ordinary_corpus(1, seed=51, max_size=4096, prefix="kill-small")[0].data)
            self.d.add_message(user, big_message("kill-big"))
            return user, pw

        def run(user, pw, maildir, state, env):
            util.write_config(self.config_path, {"k": self.account(user, pw, "pop3s", deliver="maildir:" + maildir,
                                                                   keep=False, max_size="20K", oversize="headers")},
                              state_dir=state)
            return util.run_pullmail(["-f", self.config_path], env=env, home=self.home)

        user, pw = mailbox()
        r = run(user, pw, self.path("count"), self.path("count-state"), {"PULLMAIL_TEST_TRACE_STEPS": "1"})
        self.assertEqual(r.rc, 0, r.describe())
        steps = len([l for l in r.err.splitlines() if l.startswith("step ")])
        self.assertGreater(steps, 5, r.err)
        big_id = "<kill-big@corpus.pullmail.test>"
        for n in range(1, steps + 1):
            user, pw = mailbox()
            maildir, state = self.path("M%d" % n), self.path("S%d" % n)
            r = run(user, pw, maildir, state, {"PULLMAIL_TEST_KILL_AFTER": str(n)})
            self.assertIn(r.rc, (-9, 0), r.describe())
            self.assertIn(big_id, self._ids(user), "step %d: the large message was deleted" % n)
            for again in range(2):
                r = run(user, pw, maildir, state, {})
                self.assertEqual(r.rc, 0, r.describe())
            self.assertEqual(self._ids(user), [big_id], "step %d: after the reruns" % n)
            got = sorted(util.message_id(m) for m in util.maildir_messages(maildir))
            self.assertEqual(got, sorted([big_id, ordinary_corpus(1, seed=51, max_size=4096, prefix="kill-small")[0].message_id]),
                             "step %d: not exactly once" % n)
        self.note("killed at each of %d steps: the large message stayed, small one and stub delivered once" % steps)

    # ---- max_messages ---------------------------------------------------

    def _max_messages(self, proto, keep):
        user, pw, corpus = self._setup(proto, 7, 41)
        served = self.d.messages(user)
        maildir = self.path("M-max-" + proto)
        name = "max-" + proto
        self.config({name: self.account(user, pw, proto, deliver="maildir:" + maildir, keep=keep, max_messages=3)})
        counts = []
        for run in range(4):
            r = self.run_config("--json", expect=0)
            counts.append(self.json_account(r, name)["delivered"])
            if run == 0:
                got = [util.message_id(m) for m in util.maildir_messages(maildir)]
                self.assertEqual(sorted(got), sorted(util.message_id(b) for _, b, _ in served[:3]), "not oldest first")
        self.assertEqual(counts, [3, 3, 1, 0])
        want = util.expected_from_served(served, final_newline=proto == "pop3s")
        self.assertDelivered(util.maildir_messages(maildir), want, "%s max_messages=3 over 4 runs" % proto)
        self.assertEqual(len(self.d.messages(user)), 0 if not keep else 7)
        self.note("%s max_messages = 3: runs delivered %s, every message exactly once" % (proto, counts))

    def test_max_messages_pop3s(self):
        self._max_messages("pop3s", keep=False)

    def test_max_messages_imaps(self):
        self._max_messages("imaps", keep=True)

    def _max_messages_folders(self, connections):
        """max_messages is the account's budget per run, not each folder's:
        3 folders x 4 messages with max_messages = 5 deliver 5, 5, 2, 0,
        in the configured folder order, oldest first within a folder."""
        user, pw = self.new_user()
        folders = ["INBOX", "Work", "Lists"]
        served = []
        for k, folder in enumerate(folders):
            if folder != "INBOX":
                self.d.create_folder(user, folder)
            for m in ordinary_corpus(4, seed=60 + k, max_size=4096, prefix="budget-%d-%s" % (connections, folder)):
                self.d.add_message(user, m.data, folder=folder)
            served += self.d.messages(user, folder)
        maildir = self.path("M-budget-%d" % connections)
        name = "budget-%d" % connections
        self.config({name: self.account(user, pw, "imaps", deliver="maildir:" + maildir, keep=True,
                                        folders=folders, connections=connections, max_messages=5)})
        counts, before = [], set()
        for run in range(4):
            r = self.run_config("--json", expect=0)
            counts.append(self.json_account(r, name)["delivered"])
            got = set(util.message_id(m) for m in util.maildir_messages(maildir))
            want_now = set(util.message_id(b) for _, b, _ in served[:min(12, 5 * (run + 1))])
            self.assertEqual(got, want_now, "run %d: not the configured folder order, oldest first" % (run + 1))
            self.assertTrue(before <= got)
            before = got
        self.assertEqual(counts, [5, 5, 2, 0], "max_messages = 5 over 3 folders x 4 messages")
        self.assertDelivered(util.maildir_messages(maildir), util.expected_from_served(served),
                             "max_messages = 5 across 3 folders over 4 runs")
        self.note("imaps, 3 folders x 4, max_messages = 5, connections = %d: runs delivered %s, "
                  "every message exactly once, byte-exact" % (connections, counts))

    def test_max_messages_across_folders(self):
        self._max_messages_folders(1)

    def test_max_messages_across_folders_parallel(self):
        self._max_messages_folders(3)

    # ---- configuration errors ---------------------------------------------

    def test_bad_values(self):
        user, pw = self.new_user()
        for key, value, what in (("delete_after", "30x", "duration"), ("delete_after", "0d", "duration"),
                                 ("max_size", "10Q", "size"), ("max_size", "0", "size"),
                                 ("oversize", "drop", "skip"), ("max_messages", -1, "")):
            self.config({"bad": self.account(user, pw, "pop3s", **{key: value})})
            r = self.run_config(expect=util.EX_CONFIG)
            self.assertRegex(r.err, r"accounts\.bad\.%s.*%s" % (key, what), r.describe())
        self.note("bad delete_after / max_size / oversize / max_messages: exit 78 naming accounts.bad.KEY")


if __name__ == "__main__":
    util.main()
