#!/usr/bin/env python3
"""Fault injection: pullmail killed (SIGKILL) at every step of a run.

PULLMAIL_TEST_KILL_AFTER=N makes pullmail SIGKILL itself at its N-th step
(src/test_hooks.h). A clean run is traced first to count its steps; then for
every N from 1 to that count a fresh mailbox of 30 small messages is fetched
with -K (delete after delivery), killed at step N, checked, and fetched again
without the kill. What a user cares about is checked twice:

  right after the kill: every message is still on the server or complete in
  the target (nothing deleted before it was delivered);
  after the rerun: every message is in the target exactly once, byte for
  byte, nothing half-written is left (Maildir tmp/ empty, mbox parses), and
  the server is empty.

Targets, over POP3S: Maildir and mbox (exactly-once: duplicates are
failures) and an MDA, `exec tee -a OUT/new/m.$$` (at-least-once: duplicates
are counted and printed, losses are failures; a kill after the MDA got the
whole message but before the intent was recorded duplicates it by design).
Then 200 random kill points (seeded), in chains of one to three kills before
the final run (so recovery itself gets killed too), on a mailbox of 100
messages, for Maildir over POP3S and IMAPS. Totals are printed at the end.
"""

import os
import random
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import util
from fakes import faultlib
from fakes.faultlib import Totals, assess, read_target

SEED = 20240611
SMALL = 30
LARGE = 100
RANDOM_POINTS = 200
WORKERS = 2


class KillAtEveryStep(util.IntegrationCase):

    all_totals = []

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.lock = threading.Lock()
        # Deliveries and state live on tmpfs when there is one: SIGKILL does
        # not lose the page cache, so fsync costs nothing to what is tested,
        # and thousands of runs stay within the time budget.
        base = "/dev/shm" if os.path.isdir("/dev/shm") else cls.tmp_root
        cls.scratch = os.path.join(base, "pullmail-fault-kill-%d" % os.getpid())
        os.makedirs(cls.scratch, exist_ok=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.scratch, ignore_errors=True)
        util.log("\n=== kill-point totals ===")
        for t in cls.all_totals:
            util.log(t.line())
        tried = sum(t.tried for t in cls.all_totals)
        util.log("ALL: %d kill points tried, lost %d, duplicated %d (MDA duplicates included), partial %d" % (
            tried, sum(t.lost for t in cls.all_totals), sum(t.duplicated for t in cls.all_totals),
            sum(t.partial for t in cls.all_totals)))
        super().tearDownClass()

    # ---- helpers ------------------------------------------------------------

    def _mailbox(self, corpus):
        with self.lock:
            user, pw = self.new_user("k")
            self.d.add_messages(user, [m.data for m in corpus])
        return user, pw

    def _target(self, work, kind):
        if kind == "maildir":
            path = os.path.join(work, "Maildir")
            return "maildir:" + path, path
        if kind == "mbox":
            path = os.path.join(work, "mail.mbox")
            return "mbox:" + path, path
        deliver, out = faultlib.make_mda(work)
        return deliver, out

    def _args(self, proto, user, deliver, state):
        return faultlib.oneoff(self.url(proto), user, deliver, state, ca_file=self.d.ca_file, keep=False,
                               extra=["--json"])

    def _expected(self, corpus, proto):
        user, _ = self._mailbox(corpus)
        return faultlib.expected_for(self.d, user, pop3=proto.startswith("pop3"))

    def _count_steps(self, corpus, kind, proto):
        work = os.path.join(self.scratch, "count-%s-%s" % (kind, proto))
        os.makedirs(work)
        user, pw = self._mailbox(corpus)
        deliver, path = self._target(work, kind)
        r = faultlib.run(self._args(proto, user, deliver, os.path.join(work, "state")), password=pw,
                         env={"PULLMAIL_TEST_KILL_AFTER": "1000000000", "PULLMAIL_TEST_TRACE_STEPS": "1"})
        self.assertEqual(r.rc, 0, r.describe())
        steps = [l for l in r.err.splitlines() if l.startswith("step ")]
        self.assertGreater(len(steps), len(corpus), "step trace looks wrong:\n" + r.err[-2000:])
        kinds = {}
        for l in steps:
            what = l.split(": ", 1)[1]
            kinds[what] = kinds.get(what, 0) + 1
        util.log("    %s over %s, %d messages: %d steps %s" % (kind, proto, len(corpus), len(steps), kinds))
        if kind == "mda":
            faultlib.wait_mda_gone(path)
        shutil.rmtree(work, ignore_errors=True)
        return len(steps)

    def _check_after_kill(self, user, kind, path, expected, r):
        """Right after the kill: nothing may be gone from both places."""
        if kind == "mda":
            faultlib.wait_mda_gone(path)
        on_server = faultlib.server_message_ids(self.d, user)
        contents = read_target(kind, path)
        a = assess(contents, expected, also_present=[e for e in expected if util.message_id(e) in on_server])
        problems = []
        if a.lost:
            problems.append("after the kill, %d message(s) neither on the server nor delivered: %s" % (
                len(a.lost), a.lost[:5]))
        # Half-written data may exist right after a kill (Maildir tmp/, an
        # mbox tail): the next run must clean it; but a message visible in the
        # target must never be damaged.
        for p in a.partial:
            if "/tmp/" in p or "never completed" in p:
                continue
            if kind == "mbox" and "does not parse" in p:
                continue
            problems.append("after the kill: damaged message visible: " + p)
        return problems

    def _one_chain(self, kind, proto, corpus, expected, kills, totals, label):
        """Fresh mailbox; a run killed at each of `kills` in turn; a final run."""
        work = os.path.join(self.scratch, label)
        os.makedirs(work)
        user, pw = self._mailbox(corpus)
        deliver, path = self._target(work, kind)
        args = self._args(proto, user, deliver, os.path.join(work, "state"))
        problems = []
        for n in kills:
            r = faultlib.run(args, password=pw, env={"PULLMAIL_TEST_KILL_AFTER": str(n)}, timeout=120)
            if r.rc != -9:
                # The run ended before step n: legal only when n is beyond
                # the steps this (shorter, resumed) run has.
                if r.rc != 0 or faultlib.crashed(r):
                    problems.append("killed run at step %d ended with status %d: %s" % (
                        n, r.rc, " | ".join(r.err.strip().splitlines()[-3:])))
            problems += self._check_after_kill(user, kind, path, expected, r)
        r = faultlib.run(args, password=pw, timeout=120)
        if r.rc != 0:
            problems.append("final run: exit status %d: %s" % (r.rc, " | ".join(r.err.strip().splitlines()[-3:])))
        if faultlib.stray_stderr(r):
            problems.append("final run: stray stderr %r" % faultlib.stray_stderr(r)[:3])
        if kind == "mda":
            faultlib.wait_mda_gone(path)
        a = assess(read_target(kind, path), expected)
        left = len(self.d.maildir_files(user))
        if left:
            problems.append("%d message(s) still on the server after the final run with -K" % left)
        if kind == "mbox" and os.path.exists(path):
            if read_target(kind, path).partials:
                problems.append("mbox does not parse after the final run")
        with self.lock:
            totals.add("%s %s kill %s" % (kind, proto, kills), a, problems, dup_allowed=(kind == "mda"),
                       points=len(kills))
            if kind == "mda" and a.duplicated:
                totals.info.setdefault("mda_dups", []).append((kills, len(a.duplicated)))
        shutil.rmtree(work, ignore_errors=True)

    def _every_step(self, kind, proto):
        t0 = time.monotonic()
        corpus = faultlib.small_corpus(SMALL, seed=SEED, prefix="kill-%s-%s" % (kind, proto))
        expected = self._expected(corpus, proto)
        steps = self._count_steps(corpus, kind, proto)
        totals = Totals("every step, %s over %s (%d msgs, %d steps)" % (kind, proto, SMALL, steps))
        self.all_totals.append(totals)
        with ThreadPoolExecutor(WORKERS) as pool:
            futs = [pool.submit(self._one_chain, kind, proto, corpus, expected, [n], totals,
                                "%s-%s-%d" % (kind, proto, n)) for n in range(1, steps + 1)]
            for f in futs:
                f.result()
        util.log("    " + totals.report() + " (" + faultlib.seconds(t0) + ")")
        if kind == "mda":
            dups = totals.info.get("mda_dups", [])
            util.log("    MDA (at-least-once) duplicates: %d message(s) at %d kill point(s): %s" % (
                sum(n for _, n in dups), len(dups), ", ".join("N=%s:%d" % (k[0], n) for k, n in dups[:40])))
            self.assertEqual((totals.lost, totals.partial, totals.other), (0, 0, 0), totals.report())
        elif totals.failures:
            self.fail(totals.report())

    # ---- tests --------------------------------------------------------------

    def test_1_maildir_pop3s(self):
        self._every_step("maildir", "pop3s")

    def test_2_mbox_pop3s(self):
        self._every_step("mbox", "pop3s")

    def test_3_mda_pop3s(self):
        self._every_step("mda", "pop3s")

    def test_4_random_chains_maildir(self):
        t0 = time.monotonic()
        rng = random.Random(SEED)
        totals = Totals("random kill points, maildir (%d msgs, chains of 1-3 kills)" % LARGE)
        self.all_totals.append(totals)
        setups = {}
        for proto in ("pop3s", "imaps"):
            corpus = faultlib.small_corpus(LARGE, seed=SEED + 1, prefix="rnd-" + proto)
            expected = self._expected(corpus, proto)
            steps = self._count_steps(corpus, "maildir", proto)
            setups[proto] = (corpus, expected, steps)
        chains = []
        points = 0
        while points < RANDOM_POINTS:
            proto = rng.choice(("pop3s", "imaps"))
            corpus, expected, steps = setups[proto]
            k = min(rng.randint(1, 3), RANDOM_POINTS - points)
            chains.append((proto, [rng.randint(1, steps) for _ in range(k)]))
            points += k
        with ThreadPoolExecutor(WORKERS) as pool:
            futs = []
            for i, (proto, kills) in enumerate(chains):
                corpus, expected, steps = setups[proto]
                futs.append(pool.submit(self._one_chain, "maildir", proto, corpus, expected, kills, totals,
                                        "rnd-%d" % i))
            for f in futs:
                f.result()
        totals.info["points"] = points
        util.log("    %d kill points in %d chains; %s (%s)" % (points, len(chains), totals.report(),
                                                             faultlib.seconds(t0)))
        if totals.failures:
            self.fail(totals.report())


if __name__ == "__main__":
    util.main()
