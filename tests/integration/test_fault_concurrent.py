#!/usr/bin/env python3
"""Fault injection: two pullmail runs at the same time.

One account, one state dir: a first run is slowed down by an MDA that
sleeps before each message; while it holds the account,
  a second run without --wait-lock exits 75 at once, saying the account is
  busy (a line naming the account), and touches nothing;
  a third run with --wait-lock waits until the first has finished, then
  finds nothing new (keep: everything is already in the state; -K: the
  server is empty) and delivers nothing;
every message is delivered exactly once. Over IMAPS with keep and over
POP3S with -K.

Also two different accounts appending to one mbox at the same time (two
processes): the mbox parses and holds every message of both exactly once.
"""

import os
import subprocess
import time

import util
from fakes import faultlib

SLOW_MDA = "sleep 0.4; exec tee -a %s/new/m.$$"


class Concurrent(util.IntegrationCase):

    def _popen(self, args, password):
        e = {k: v for k, v in os.environ.items() if not k.startswith("PULLMAIL_")}
        e["PULLMAIL_PASSWORD"] = password
        e["HOME"] = self.home
        return subprocess.Popen([util.BIN] + [str(a) for a in args], env=e, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def _finish(self, p, timeout=120):
        out, err = p.communicate(timeout=timeout)
        return util.Result(p.args, p.returncode, out, err, 0.0), time.monotonic()

    def _busy(self, proto, keep):
        user, pw = self.new_user("cc")
        corpus = faultlib.small_corpus(5, seed=len(proto) + keep, prefix="cc-%s-%d" % (proto, keep))
        self.d.add_messages(user, [m.data for m in corpus])
        expected = faultlib.expected_for(self.d, user, pop3=proto == "pop3s")
        out = self.path("mda-out")
        os.makedirs(os.path.join(out, "new"))
        sdir = self.path("state")
        args = faultlib.oneoff(self.url(proto), user, "mda:" + SLOW_MDA % out, sdir, ca_file=self.d.ca_file,
                               keep=keep, extra=["--json"])
        t0 = time.monotonic()
        first = self._popen(args, pw)
        # wait until the first run holds the lock (it writes its pid into the lock file)
        lock = os.path.join(sdir, faultlib.oneoff_name(self.url(proto), user) + ".lock")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with open(lock) as f:
                    if f.read().strip() == str(first.pid):
                        break
            except OSError:
                pass
            time.sleep(0.01)
        else:
            self.fail("the first run never took the lock")
        waiter = self._popen(args + ["--wait-lock"], pw)
        r = faultlib.run(args, password=pw, timeout=60)
        busy_done = time.monotonic()
        self.assertEqual(first.poll(), None, "the first run ended before the second was tried: slow it down")
        self.assertEqual(r.rc, util.EX_TEMPFAIL, r.describe())
        lines = faultlib.account_lines(r)
        self.assertTrue(any("busy" in l for l in lines), "no 'busy' line naming the account:\n" + r.err)
        self.assertEqual(r.json()["accounts"][0]["fetched"], 0, r.out)
        self.note("second run while the first holds the account: exit 75 after %.2fs: %s" % (
            busy_done - t0, lines[0]))
        r1, end1 = self._finish(first)
        self.assertEqual(r1.rc, 0, r1.describe())
        self.assertEqual(r1.json()["accounts"][0]["fetched"], len(expected), r1.out)
        rw, endw = self._finish(waiter)
        self.assertEqual(rw.rc, 0, rw.describe())
        self.assertGreaterEqual(endw, end1 - 0.05)
        acc = rw.json()["accounts"][0]
        self.assertEqual((acc["fetched"], acc["new"]), (0, 0), "the waiting run found something new: %s" % rw.out)
        self.note("--wait-lock run: waited for the first (%.1fs), then exit 0 with nothing new" % (endw - t0))
        contents = faultlib.read_mda_out(out)
        util.compare_messages(contents.messages, expected, "after three overlapping runs")
        self.assertEqual(self.d.count(user), len(expected) if keep else 0)
        self.note("every message delivered exactly once")

    def test_busy_imaps_keep(self):
        self._busy("imaps", keep=True)

    def test_busy_pop3s_delete(self):
        self._busy("pop3s", keep=False)

    def test_two_accounts_one_mbox(self):
        mbox = self.path("shared.mbox")
        runs = []
        expected = []
        for i in range(2):
            user, pw = self.new_user("mb")
            corpus = faultlib.small_corpus(25, seed=100 + i, prefix="mb%d" % i)
            self.d.add_messages(user, [m.data for m in corpus])
            expected += faultlib.expected_for(self.d, user, pop3=True)
            args = faultlib.oneoff(self.url("pop3s"), user, "mbox:" + mbox, self.path("state%d" % i),
                                   ca_file=self.d.ca_file, keep=False)
            runs.append(self._popen(args, pw))
        for p in runs:
            r, _ = self._finish(p)
            self.assertEqual(r.rc, 0, r.describe())
        contents = faultlib.read_mbox(mbox)
        self.assertEqual(contents.partials, [], "shared mbox damaged")
        util.compare_messages(contents.messages, expected, "two accounts into one mbox at once")
        self.note("two concurrent processes appended %d messages to one mbox, it parses" % len(expected))


if __name__ == "__main__":
    util.main()
