#!/usr/bin/env python3
"""Fault injection: an MDA that misbehaves.

One message of each mailbox carries "X-Fault: yes"; the test MDA acts up on
that one only, as a mode file says:
  tempfail  exit 75 (EX_TEMPFAIL): pullmail exits 75 and stops delivering
            for the account ("try later"): the messages before it are
            delivered and deleted, it and those after it stay on the server
            even with -K; the next run with a working MDA delivers them, once.
  fail      exit 1 with a reason on stderr: reported (exit 73, the account
            and the MDA's reason named), the message stays on the server,
            the others are delivered; a working MDA later delivers it.
  hang      never exits (and leaves a child running): with mda_timeout = 2
            it is killed, with its child, after about 2 s; the message stays.
  partial   reads 2 KB of a 1 MB message and exits 0: that is a delivery
            (exit 0, message deleted with -K); no hang, no crash.
Each mode runs over POP3S and IMAPS.

Also: an MDA that exits 75 for every message is started once per run, not
once per message (one error, exit 75, everything kept); and pullmail
SIGKILLed at random instants while large messages go to an MDA that writes
its stdin straight into a file: every file is a complete message (pullmail
spools each message before it starts the MDA), duplicates are allowed
(at-least-once), nothing is lost.
"""

import os
import random
import re
import signal
import subprocess
import time
import zlib

import util
from fakes import faultlib
from messages import ordinary_corpus

MDA = r'''#!/usr/bin/env python3
import os, subprocess, sys, tempfile, time
out, modefile = sys.argv[1], sys.argv[2]
mode = open(modefile).read().strip() if os.path.exists(modefile) else "ok"
stdin = sys.stdin.buffer
head = stdin.read(2048)
marked = b"\nX-Fault: yes\n" in b"\n" + head.split(b"\n\n", 1)[0] + b"\n"
if marked and mode == "tempfail":
    sys.stderr.write("test-mda: mailbox is busy, try again later\n")
    sys.exit(75)
if marked and mode == "fail":
    sys.stderr.write("test-mda: user is over quota\n")
    sys.exit(1)
if marked and mode == "hang":
    child = subprocess.Popen(["sleep", "120"])
    with open(os.path.join(out, "hang.pids"), "w") as f:
        f.write("%d %d\n" % (os.getpid(), child.pid))
    time.sleep(120)
    sys.exit(0)
if marked and mode == "partial":
    with open(os.path.join(out, "partial.note"), "w") as f:
        f.write("read %d bytes\n" % len(head))
    sys.exit(0)
data = head + stdin.read()
fd, tmp = tempfile.mkstemp(dir=os.path.join(out, "tmp"))
with os.fdopen(fd, "wb") as f:
    f.write(data)
os.rename(tmp, os.path.join(out, "new", os.path.basename(tmp)))
'''


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


class MdaFaults(util.IntegrationCase):

    def _setup(self, proto, mode, big=False):
        user, pw = self.new_user("m")
        corpus = ordinary_corpus(5, seed=zlib.crc32(mode.encode()) % 1000 + (7 if proto == "imaps" else 3),
                                 prefix="mda-%s-%s" % (mode, proto))
        datas = [m.data for m in corpus]
        if big:
            from messages import huge_message
            datas[2] = huge_message(1024 * 1024, seed=11, name="mda-big-%s" % proto).data
        datas[2] = datas[2].replace(b"\nSubject:", b"\nX-Fault: yes\nSubject:", 1)
        self.d.add_messages(user, datas)
        expected = faultlib.expected_for(self.d, user, pop3=proto == "pop3s")
        marked = [e for e in expected if b"\nX-Fault: yes\n" in e]
        self.assertEqual(len(marked), 1)
        script = self.path("mda.py")
        with open(script, "w") as f:
            f.write(MDA)
        os.chmod(script, 0o755)
        out = self.path("out")
        for sub in ("tmp", "new"):
            os.makedirs(os.path.join(out, sub), exist_ok=True)
        modefile = self.path("mode")
        with open(modefile, "w") as f:
            f.write(mode)
        self.config({"mda": self.account(user, pw, proto, deliver="mda:%s %s %s" % (script, out, modefile),
                                         keep=False, mda_timeout=2)})
        return user, expected, marked[0], out, modefile

    def _delivered(self, out):
        c = faultlib.read_mda_out(out)
        self.assertEqual(c.partials, [], "MDA temp files left: the MDA never finished")
        return c.messages

    def _server_has(self, user, message, proto):
        on = util.expected_from_served(self.d.messages(user), final_newline=proto == "pop3s")
        return message in on, len(on)

    def _error_line(self, r, pattern):
        lines = faultlib.account_lines(r, "mda")
        self.assertTrue(lines, "no error line naming account 'mda':\n" + r.describe())
        self.assertTrue(any(re.search(pattern, l, re.I) for l in lines),
                        "no error line matches /%s/:\n%s" % (pattern, "\n".join(lines)))
        return lines

    def _then_working_mda(self, user, expected, out, modefile, left=1):
        with open(modefile, "w") as f:
            f.write("ok")
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "mda")["fetched"], left, r.describe())
        self.assertDelivered(self._delivered(out), expected, "after the MDA works again")
        self.assertEqual(self.d.count(user), 0, "server not empty after the final -K run")

    # ---- exit 75 -----------------------------------------------------------

    def _tempfail(self, proto):
        user, expected, marked, out, modefile = self._setup(proto, "tempfail")
        r = self.run_config("--json")
        self.assertEqual(r.rc, util.EX_TEMPFAIL, r.describe())
        self._error_line(r, r"exit 75|try again")
        acc = self.json_account(r, "mda")
        at = expected.index(marked)
        self.assertEqual(acc["fetched"], at, r.describe())
        self.assertEqual(acc["deleted"], at, r.describe())
        self.assertDelivered(self._delivered(out), expected[:at], "first run")
        on = util.expected_from_served(self.d.messages(user), final_newline=proto == "pop3s")
        self.assertEqual(sorted(on), sorted(expected[at:]),
                         "the refused message and those after it must stay on the server")
        self.note("MDA exit 75: exit status 75, delivery stopped, %d message(s) kept on the server with -K, "
                  "the %d before delivered" % (len(on), at))
        self._then_working_mda(user, expected, out, modefile, left=len(on))

    def test_tempfail_pop3s(self):
        self._tempfail("pop3s")

    def test_tempfail_imaps(self):
        self._tempfail("imaps")

    # ---- exit 1 ------------------------------------------------------------

    def _fail(self, proto):
        user, expected, marked, out, modefile = self._setup(proto, "fail")
        r = self.run_config("--json")
        self.assertEqual(r.rc, util.EX_CANTCREAT, r.describe())
        self._error_line(r, r"over quota")
        acc = self.json_account(r, "mda")
        self.assertEqual(acc["fetched"], len(expected) - 1, r.describe())
        self.assertDelivered(self._delivered(out), [e for e in expected if e != marked], "first run")
        here, n = self._server_has(user, marked, proto)
        self.assertTrue(here and n == 1, "the refused message must stay on the server (and only it): %d left" % n)
        self.note("MDA exit 1: exit status 73, the MDA's reason shown, message kept, the others delivered")
        self._then_working_mda(user, expected, out, modefile)

    def test_fail_pop3s(self):
        self._fail("pop3s")

    def test_fail_imaps(self):
        self._fail("imaps")

    # ---- hang past mda_timeout ----------------------------------------------

    def _hang(self, proto):
        user, expected, marked, out, modefile = self._setup(proto, "hang")
        t0 = time.monotonic()
        r = self.run_config("--json", timeout=60)
        took = time.monotonic() - t0
        self.assertNotEqual(r.rc, 0, r.describe())
        self.assertFalse(faultlib.crashed(r), r.describe())
        self._error_line(r, r"timed out|timeout")
        self.assertLess(took, 20, "mda_timeout = 2 but the run took %.1fs" % took)
        with open(os.path.join(out, "hang.pids")) as f:
            pids = [int(x) for x in f.read().split()]
        deadline = time.monotonic() + 5
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse([p for p in pids if alive(p)],
                         "the hung MDA or its child still runs after pullmail returned: %r" % pids)
        self.assertDelivered(self._delivered(out), [e for e in expected if e != marked], "first run")
        here, n = self._server_has(user, marked, proto)
        self.assertTrue(here and n == 1, "the timed-out message must stay on the server: %d left" % n)
        self.note("MDA hang: killed with its child after %.1fs (exit %d), message kept" % (took, r.rc))
        self._then_working_mda(user, expected, out, modefile)

    def test_hang_pop3s(self):
        self._hang("pop3s")

    def test_hang_imaps(self):
        self._hang("imaps")

    # ---- reads part of a 1 MB message, exits 0 -------------------------------

    def _partial(self, proto):
        user, expected, marked, out, modefile = self._setup(proto, "partial", big=True)
        self.assertGreater(len(marked), 1000000)
        t0 = time.monotonic()
        r = self.run_config("--json", timeout=60)
        took = time.monotonic() - t0
        self.assertEqual(r.rc, 0, r.describe())
        acc = self.json_account(r, "mda")
        self.assertEqual(acc["fetched"], len(expected), r.describe())
        self.assertTrue(os.path.exists(os.path.join(out, "partial.note")), "the MDA never saw the big message")
        self.assertDelivered(self._delivered(out), [e for e in expected if e != marked], "the other messages")
        self.assertEqual(self.d.count(user), 0, "exit 0 from the MDA is a delivery: the server should be empty")
        self.assertLess(took, 20, "took %.1fs" % took)
        self.note("MDA read 2 KB of 1 MB and exited 0: delivered, no hang (%.1fs)" % took)

    def test_partial_read_pop3s(self):
        self._partial("pop3s")

    def test_partial_read_imaps(self):
        self._partial("imaps")

    # ---- exit 75 for every message ------------------------------------------

    def _tempfail_all(self, proto):
        user, pw = self.new_user("b")
        corpus = ordinary_corpus(12, seed=91 if proto == "pop3s" else 92, prefix="busy-%s" % proto)
        self.d.add_messages(user, [m.data for m in corpus])
        expected = faultlib.expected_for(self.d, user, pop3=proto == "pop3s")
        out = self.path("out")
        for sub in ("tmp", "new"):
            os.makedirs(os.path.join(out, sub), exist_ok=True)
        starts = self.path("starts")
        busy = self.path("busy")
        open(busy, "w").close()
        # Counts its starts; exits 75 while the busy file exists.
        mda = ('echo started >> %s; if [ -e %s ]; then cat >/dev/null; echo "mailbox locked" >&2; exit 75; fi; '
               'f=$(mktemp %s/tmp/m.XXXXXX) && cat > "$f" && mv "$f" %s/new/' % (starts, busy, out, out))
        self.config({"busy": self.account(user, pw, proto, deliver="mda:" + mda, keep=False)})
        r = self.run_config("--json")
        self.assertEqual(r.rc, util.EX_TEMPFAIL, r.describe())
        with open(starts) as f:
            n = len(f.read().splitlines())
        self.assertEqual(n, 1, "the MDA said 75 (try later) but was started %d times in the run" % n)
        errors = [l for l in faultlib.account_lines(r, "busy") if re.search(r"try again later", l)]
        self.assertEqual(len(errors), 1, "expected one error line:\n" + r.describe())
        self.assertEqual(len(self.json_account(r, "busy")["errors"]), 1, r.describe())
        self.assertEqual(self.d.count(user), len(expected), "messages left the server")
        self.assertEqual(self._delivered(out), [])
        os.unlink(busy)
        r = self.run_config("--json", expect=0)
        self.assertDelivered(self._delivered(out), expected, "after the MDA works again")
        self.assertEqual(self.d.count(user), 0)
        self.note("MDA exit 75 for all 12: started once, one error, exit 75, all kept; the next run delivered 12")

    def test_tempfail_all_pop3s(self):
        self._tempfail_all("pop3s")

    def test_tempfail_all_imaps(self):
        self._tempfail_all("imaps")

    # ---- SIGKILL while large messages go to the MDA ---------------------------

    def _kill_rounds(self, proto, rounds, seed):
        from messages import huge_message
        rng = random.Random(seed)
        sizes = [3 * 1024 * 1024 + 4099 * i for i in range(5)]
        totals = faultlib.Totals("SIGKILL during MDA delivery, %s, %d x ~3 MB" % (proto, len(sizes)))
        durations = []
        for rnd in range(rounds):
            user, pw = self.new_user("k")
            datas = [huge_message(size, seed=seed * 100 + rnd * 10 + i, name="kill-%s-%d-%d" % (proto, rnd, i)).data
                     for i, size in enumerate(sizes)]
            self.d.add_messages(user, datas)
            expected = faultlib.expected_for(self.d, user, pop3=proto == "pop3s")
            out = self.path("out-%d" % rnd)
            os.makedirs(out)
            # Writes straight into its file, as `cat > file` does: a message cut
            # short on its stdin shows as a short file. (`; exit $?` keeps the
            # shell, whose argv names `out`, alive until cat is done.)
            mda = 'f=$(mktemp %s/m.XXXXXX) && cat > "$f"; exit $?' % out
            self.state_dir = self.path("state-%d" % rnd)
            self.config({"kill": self.account(user, pw, proto, deliver="mda:" + mda, keep=False)})
            argv = [util.BIN, "-f", self.config_path, "-q"]
            env = {k: v for k, v in os.environ.items() if not k.startswith("PULLMAIL_")}
            env["HOME"] = self.home
            if durations:
                delay = rng.uniform(0.0, max(durations) * 1.1)
            else:
                delay = None  # first round: measure a whole run
            t0 = time.monotonic()
            p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            if delay is None:
                _, err = p.communicate(timeout=120)
                durations.append(time.monotonic() - t0)
                self.assertEqual(p.returncode, 0, err.decode(errors="replace"))
            else:
                time.sleep(delay)
                p.send_signal(signal.SIGKILL)
                p.communicate(timeout=60)
            faultlib.wait_mda_gone(out)
            c = faultlib.Contents()
            for name in sorted(os.listdir(out)):
                with open(os.path.join(out, name), "rb") as f:
                    c.messages.append(f.read())
            a = faultlib.assess(c, expected, also_present=util.expected_from_served(
                self.d.messages(user), final_newline=proto == "pop3s"))
            point = "round %d, kill at %s" % (rnd, "none" if delay is None else "%.3fs" % delay)
            totals.add(point, a, dup_allowed=True)
            util.log("    %s: %d file(s) written by the MDA, %s" % (point, len(c.messages), a.summary()))
            # Then a run to the end: everything delivered, at least once.
            r = self.run_config()
            self.assertEqual(r.rc, 0, r.describe())
            self.assertEqual(self.d.count(user), 0, r.describe())
            c = faultlib.Contents()
            for name in sorted(os.listdir(out)):
                with open(os.path.join(out, name), "rb") as f:
                    c.messages.append(f.read())
            totals.add(point + ", then a full run", faultlib.assess(c, expected), dup_allowed=True, points=0)
        util.log("    " + totals.line())
        self.assertFalse(totals.failures, totals.report())
        self.note(totals.line())

    def test_sigkill_during_large_mda_deliveries_pop3s(self):
        self._kill_rounds("pop3s", rounds=7, seed=5)

    def test_sigkill_during_large_mda_deliveries_imaps(self):
        self._kill_rounds("imaps", rounds=7, seed=6)


if __name__ == "__main__":
    util.main()
