#!/usr/bin/env python3
"""Fault injection: a damaged or unusable state file.

Truncation at every byte offset, two state files:
  A) after a clean keep=true run over 3 messages (then 2 more arrive);
  B) left by a run killed right after the 2nd message was committed (the
     Maildir holds 2 messages in new/ and, with group commit, the rest of
     the batch prepared in tmp/; the file ends in intent records).
For every offset a fresh mailbox with the same UIDLs (fixed UIDVALIDITY),
a copy of the Maildir and the truncated file; then a run with -K. Allowed:
  exit 0: nothing lost (every message in the Maildir; messages whose record
  was cut off may be delivered again: counted as duplicates, not failures),
  server empty, the torn tail reported (a warning naming the state file)
  when the cut fell inside a record;
  exit 65: the message names the state file, nothing deleted on the server,
  nothing delivered.
Never: a message deleted from the server that is not in the Maildir.

Also: a header "pullmail-state 99" (exit 65 naming the path, nothing done);
an unwritable state directory (pullmail run as nobody) and a state file it
cannot write, and a state dir below a regular file (a clear error naming the
path, nothing deleted); a record damaged in the middle (exit 65), repaired
with `pullmail -f CONFIG --repair-state ACCOUNT`: the valid records kept, a
backup of the damaged file, the next run delivers what the lost record
covered and deletes the rest without losing anything.
"""

import os
import pwd
import shutil
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import util
from fakes import faultlib
from fakes.faultlib import Totals

SEED = 5150
WORKERS = 2


class StateDamage(util.IntegrationCase):

    all_totals = []

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.lock = threading.Lock()
        cls.n = 0
        cls.old = faultlib.small_corpus(4, seed=SEED, prefix="state-old")
        cls.new = faultlib.small_corpus(2, seed=SEED + 1, prefix="state-new")

    @classmethod
    def tearDownClass(cls):
        util.log("\n=== state truncation totals ===")
        for t in cls.all_totals:
            util.log(t.line() + "  " + ", ".join("%s=%s" % kv for kv in sorted(t.info.items())))
        super().tearDownClass()

    # ---- helpers ------------------------------------------------------------

    def _fixed_user(self, datas):
        with self.lock:
            type(self).n += 1
            name, pw = "st%05d" % self.n, "st-Pw-%05d-q" % self.n
            faultlib.fixed_uidvalidity_user(self.d, name, pw)
            self.d.add_messages(name, datas)
        return name, pw

    def _args(self, user, maildir, state_dir, keep=False, extra=()):
        return faultlib.oneoff(self.url("pop3s"), user, "maildir:" + maildir, state_dir, ca_file=self.d.ca_file,
                               keep=keep, extra=list(extra))

    def _truncations(self, label, state_bytes, maildir_template, datas, expected):
        header_len = state_bytes.index(b"\n") + 1
        line_ends = {i + 1 for i, b in enumerate(state_bytes) if b == 0x0A}
        totals = Totals("state truncated at every offset, %s (%d bytes)" % (label, len(state_bytes)))
        self.all_totals.append(totals)
        totals.info.update(exit0=0, exit65=0, torn_reported=0, duplicates=0)
        template_msgs = faultlib.read_maildir(maildir_template).messages
        # a killed run may leave prepared messages in tmp/ that its intents
        # name: a run that refuses the state (65) must leave them alone, a
        # run that goes on must resolve them (none may remain)
        template_tmp = sorted(os.listdir(os.path.join(maildir_template, "tmp")))
        scratch = self.path("trunc-" + label[:1])
        os.makedirs(scratch)

        def one(offset):
            user, pw = self._fixed_user(datas)
            work = os.path.join(scratch, str(offset))
            maildir = os.path.join(work, "Maildir")
            shutil.copytree(maildir_template, maildir)
            state_dir = os.path.join(work, "state")
            os.makedirs(state_dir)
            path = os.path.join(state_dir, faultlib.oneoff_name(self.url("pop3s"), user) + ".state")
            with open(path, "wb") as f:
                f.write(state_bytes[:offset])
            r = faultlib.run(self._args(user, maildir, state_dir), password=pw, timeout=120)
            problems = []
            contents = faultlib.read_maildir(maildir)
            on_server = faultlib.server_message_ids(self.d, user)
            safe = [e for e in expected if util.message_id(e) in on_server]
            a = faultlib.assess(contents, expected, also_present=safe)
            if a.lost:
                problems.append("deleted from the server but not in the Maildir: %s" % a.lost)
            if faultlib.crashed(r) or faultlib.stray_stderr(r):
                problems.append("crash or stray output: exit %d %r" % (r.rc, r.err[-300:]))
            # a cut that removes only a record's newline leaves it whole
            torn = (offset >= header_len and offset not in line_ends and offset < len(state_bytes) and
                    state_bytes[offset] != 0x0A)
            if r.rc == 0:
                kind = "exit0"
                if on_server:
                    problems.append("exit 0 but %d message(s) left on the server with -K" % len(on_server))
                if torn and not any(path in l and "partial record" in l for l in r.err.splitlines()):
                    problems.append("torn record at offset %d not reported: %r" % (offset, r.err[-300:]))
            elif r.rc == util.EX_DATAERR:
                kind = "exit65"
                tmp_now = sorted(os.listdir(os.path.join(maildir, "tmp")))
                if tmp_now != template_tmp:
                    problems.append("exit 65 but Maildir tmp/ changed: %r -> %r" % (template_tmp, tmp_now))
                a.partial = [p for p in a.partial if "/Maildir/tmp/" not in p]
                if not any(path in l for l in faultlib.account_lines(r)):
                    problems.append("exit 65 without the state file's path: %r" % r.err[-300:])
                if len(on_server) != len(expected):
                    problems.append("exit 65 but %d message(s) deleted" % (len(expected) - len(on_server)))
                if sorted(contents.messages) != sorted(template_msgs):
                    problems.append("exit 65 but the Maildir changed")
                if offset >= header_len:
                    problems.append("exit 65 for a file whose header is whole (only a tail is cut off)")
            else:
                kind = "other"
                problems.append("exit %d: %s" % (r.rc, " | ".join(r.err.strip().splitlines()[-2:])))
            with self.lock:
                totals.info[kind] = totals.info.get(kind, 0) + 1
                if torn and r.rc == 0 and not problems:
                    totals.info["torn_reported"] += 1
                totals.info["duplicates"] += len(a.duplicated)
                # duplicates are the expected price of a lost record
                totals.add("%s offset %d (exit %d)" % (label, offset, r.rc), a, problems, dup_allowed=True)
            shutil.rmtree(work, ignore_errors=True)

        t0 = time.monotonic()
        with ThreadPoolExecutor(WORKERS) as pool:
            for f in [pool.submit(one, i) for i in range(len(state_bytes) + 1)]:
                f.result()
        util.log("    %s; %s (%s)" % (totals.line(), ", ".join("%s=%s" % kv for kv in sorted(totals.info.items())),
                                     faultlib.seconds(t0)))
        if totals.failures:
            self.fail(totals.report())

    # ---- truncation -----------------------------------------------------------

    def test_truncate_after_clean_run(self):
        old = [m.data for m in self.old[:3]]
        user, pw = self._fixed_user(old)
        template = self.path("templateA", "Maildir")
        sdir = self.path("templateA", "state")
        r = faultlib.run(self._args(user, template, sdir, keep=True), password=pw)
        self.assertEqual(r.rc, 0, r.describe())
        with open(os.path.join(sdir, faultlib.oneoff_name(self.url("pop3s"), user) + ".state"), "rb") as f:
            state = f.read()
        # a journal: the header, then per message its intent and its seen record
        # (not rewritten at the end of a run while small)
        self.assertEqual(sum(1 for l in state.splitlines() if b" S pop3:" in l), 3, state)
        self.assertTrue(state.startswith(b"pullmail-state "), state[:40])
        datas = old + [m.data for m in self.new]
        self.d.add_messages(user, [m.data for m in self.new])
        expected = faultlib.expected_for(self.d, user, pop3=True)
        self._truncations("A (clean run, keep)", state, template, datas, expected)

    def test_truncate_after_kill(self):
        datas = [m.data for m in self.old]
        # where is the 2nd "message committed"?
        user, pw = self._fixed_user(datas)
        r = faultlib.run(self._args(user, self.path("trace", "Maildir"), self.path("trace", "state")), password=pw,
                         env={"PULLMAIL_TEST_KILL_AFTER": "1000000000", "PULLMAIL_TEST_TRACE_STEPS": "1"})
        self.assertEqual(r.rc, 0, r.describe())
        steps = [l.split(": ", 1)[1] for l in r.err.splitlines() if l.startswith("step ")]
        committed = [i + 1 for i, s in enumerate(steps) if s == "message committed"]
        kill_at = committed[1]
        user, pw = self._fixed_user(datas)
        template = self.path("templateB", "Maildir")
        sdir = self.path("templateB", "state")
        r = faultlib.run(self._args(user, template, sdir), password=pw,
                         env={"PULLMAIL_TEST_KILL_AFTER": str(kill_at)})
        self.assertEqual(r.rc, -9, r.describe())
        self.assertEqual(util.count_maildir(template), 2)
        with open(os.path.join(sdir, faultlib.oneoff_name(self.url("pop3s"), user) + ".state"), "rb") as f:
            state = f.read()
        self.assertIn(b" I pop3:", state, "expected an intent record in the state file of the killed run")
        expected = faultlib.expected_for(self.d, user, pop3=True)
        self._truncations("B (killed after 2nd commit)", state, template, datas, expected)

    # ---- other damage ---------------------------------------------------------

    def _simple_setup(self, n=3):
        user, pw = self.new_user("sd")
        self.d.add_messages(user, [m.data for m in faultlib.small_corpus(n, seed=SEED + n, prefix="sd-%s" % user)])
        expected = faultlib.expected_for(self.d, user, pop3=True)
        return user, pw, expected

    def test_newer_format(self):
        user, pw, expected = self._simple_setup()
        sdir = self.path("state")
        os.makedirs(sdir)
        path = os.path.join(sdir, faultlib.oneoff_name(self.url("pop3s"), user) + ".state")
        with open(path, "w") as f:
            f.write("pullmail-state 99\nsome future record\n")
        r = faultlib.run(self._args(user, self.path("Maildir"), sdir), password=pw)
        self.assertEqual(r.rc, util.EX_DATAERR, r.describe())
        self.assertTrue(any(path in l for l in faultlib.account_lines(r)), r.describe())
        self.assertEqual(self.d.count(user), len(expected), "messages were deleted")
        self.assertEqual(util.count_maildir(self.path("Maildir")), 0, "messages were delivered")
        with open(path) as f:
            self.assertEqual(f.read(), "pullmail-state 99\nsome future record\n", "the newer file was changed")
        self.note("format 99: exit 65 naming %s, nothing fetched or deleted, file untouched" % path)

    def _as_nobody(self):
        pw = pwd.getpwnam("nobody")
        return ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid, "--clear-groups", "--"], pw

    def _open_up(self, path):
        while path and path != "/":
            st = os.stat(path)
            os.chmod(path, stat.S_IMODE(st.st_mode) | 0o711)
            if path == self.tmp_root:
                break
            path = os.path.dirname(path)

    def test_unwritable_state_dir(self):
        user, pw, expected = self._simple_setup()
        prefix, nobody = self._as_nobody()
        self._open_up(self.ws)
        home = self.path("nobody-home")
        os.makedirs(home)
        os.chown(home, nobody.pw_uid, nobody.pw_gid)
        maildir = os.path.join(home, "Maildir")
        cases = []
        # 1. a state dir nobody may not write to
        ro = self.path("root-owned-state")
        os.makedirs(ro)
        os.chmod(ro, 0o755)
        cases.append(("state dir owned by root, 0755", ro, ro))
        # 2. a state file nobody may not write to, in a dir it may write to
        sd = os.path.join(home, "state")
        os.makedirs(sd)
        os.chown(sd, nobody.pw_uid, nobody.pw_gid)
        sf = os.path.join(sd, faultlib.oneoff_name(self.url("pop3s"), user) + ".state")
        with open(sf, "w") as f:
            f.write("pullmail-state 1\n")
        os.chmod(sf, 0o444)
        cases.append(("state file read-only", sd, sf))
        # 3. a state dir below a regular file (as root)
        afile = self.path("a-file")
        with open(afile, "w") as f:
            f.write("x")
        cases.append(("state dir below a regular file", os.path.join(afile, "state"), afile))
        for what, sdir, named in cases:
            pre = prefix if "below" not in what else ()
            r = faultlib.run(self._args(user, maildir, sdir), password=pw, prefix=pre, home=home)
            self.assertEqual(r.rc, util.EX_IOERR, "%s: expected exit 74\n%s" % (what, r.describe()))
            lines = faultlib.account_lines(r)
            self.assertTrue(any(named in l for l in lines), "%s: no error naming %s:\n%s" % (what, named, r.err))
            self.assertEqual(self.d.count(user), len(expected), "%s: messages were deleted" % what)
            self.note("%s: exit 74: %s; nothing deleted" % (what, lines[0][:150]))
        # and with a usable state dir everything works, as nobody
        good = os.path.join(home, "good-state")
        r = faultlib.run(self._args(user, maildir, good), password=pw, prefix=prefix, home=home)
        self.assertEqual(r.rc, 0, r.describe())
        util.compare_messages(faultlib.read_maildir(maildir).messages, expected, "as nobody, writable state")
        self.assertEqual(self.d.count(user), 0)

    def test_damaged_record_and_repair(self):
        user, pw, expected = self._simple_setup(4)
        maildir = self.path("Maildir")
        sdir = self.path("state")
        config = util.write_config(self.path("config.toml"), {
            "acc": {"url": self.url("pop3s"), "user": user, "password": pw, "ca_file": self.d.ca_file,
                    "deliver": "maildir:" + maildir, "keep": True}}, state_dir=sdir)
        r = faultlib.run(["-f", config], password=None)
        self.assertEqual(r.rc, 0, r.describe())
        path = os.path.join(sdir, "acc.state")
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        self.assertGreaterEqual(len(lines), 5)
        # flip one character inside the 2nd record: its checksum no longer matches
        victim = bytearray(lines[2])
        victim[15] = ord("x") if victim[15] != ord("x") else ord("y")
        lines[2] = bytes(victim)
        damaged = b"\n".join(lines)
        with open(path, "wb") as f:
            f.write(damaged)
        r = faultlib.run(["-f", config, "-K"])
        self.assertEqual(r.rc, util.EX_DATAERR, r.describe())
        self.assertTrue(any(path in l for l in faultlib.account_lines(r, "acc")), r.describe())
        self.assertEqual(self.d.count(user), len(expected), "damaged state: messages were deleted")
        self.note("damaged record: exit 65 naming the file, nothing deleted")
        r = faultlib.run(["-f", config, "--repair-state", "acc"])
        self.assertEqual(r.rc, 0, r.describe())
        backups = [n for n in os.listdir(sdir) if n.startswith("acc.state.damaged-")]
        self.assertEqual(len(backups), 1, os.listdir(sdir))
        with open(os.path.join(sdir, backups[0]), "rb") as f:
            self.assertEqual(f.read(), damaged, "the backup is not the damaged file")
        with open(path, "rb") as f:
            repaired = f.read().split(b"\n")
        kept = [l for i, l in enumerate(lines) if i > 0 and i != 2 and l]
        self.assertEqual([l for l in repaired[1:] if l], kept, "repair did not keep exactly the valid records")
        self.note("--repair-state kept %d valid records, backup %s" % (len(kept), backups[0]))
        r = faultlib.run(["-f", config, "-K", "--json"])
        self.assertEqual(r.rc, 0, r.describe())
        contents = faultlib.read_maildir(maildir)
        a = faultlib.assess(contents, expected)
        self.assertEqual((a.lost, a.partial), ([], []), a.summary())
        self.assertLessEqual(len(a.duplicated), 1, "more re-delivered than the one damaged record: " + a.summary())
        self.assertEqual(self.d.count(user), 0)
        self.note("after the repair: nothing lost, %d re-delivered (the damaged record's message), server empty" %
                  len(a.duplicated))


if __name__ == "__main__":
    util.main()
