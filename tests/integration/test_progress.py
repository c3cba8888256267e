#!/usr/bin/env python3
"""Live progress lines (src/progress.cpp), seen in a real terminal: pullmail
runs in a tmux pane against the test Dovecot, two accounts with -j 2, each
delivering through an MDA that takes 0.3 s a message so that the run lasts
a few seconds. tmux capture-pane, polled during the run, shows one line per
running account ("pullmail: a: 3/12 messages, ...") redrawn in place, and
the -v log lines above them intact; when the run is over the lines are gone
and only the log and summary lines stay. With stderr a pipe there is no
trace of them (no escape sequence), unless --progress asks; --no-progress
keeps a terminal free of them."""

import os
import re
import shlex
import shutil
import subprocess
import time

import util
from messages import ordinary_corpus

N = 12
PROGRESS = re.compile(r"pullmail: (\w+): (\d+)/(\d+) messages, ")


class Progress(util.IntegrationCase):

    def setUp(self):
        super().setUp()
        if not shutil.which("tmux"):
            self.fail("tmux is not installed (scripts/deps installs it)")
        self.sock = os.path.join(self.ws, "tmux.sock")

    def tearDown(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], capture_output=True)

    def two_accounts(self, slow=True):
        accounts = {}
        for name in ("alpha", "beta"):
            user, pw = self.new_user()
            self.d.add_messages(user, [m.data for m in ordinary_corpus(N, seed=hash(name) % 1000, prefix=name)])
            mda = "cat >/dev/null; sleep 0.3" if slow else "cat >/dev/null"
            accounts[name] = self.account(user, pw, "pop3s", deliver="mda:" + mda)
        self.config(accounts)

    def tmux(self, *args):
        return subprocess.run(["tmux", "-S", self.sock] + list(args), capture_output=True, text=True)

    def pane(self):
        return self.tmux("capture-pane", "-p", "-t", "t").stdout

    def run_in_tmux(self, *args):
        argv = [os.path.abspath(util.BIN), "-f", self.config_path] + list(args)
        cmd = "cd %s; HOME=%s %s; echo EXIT=$?; sleep 60" % (
            shlex.quote(self.ws), shlex.quote(self.home), " ".join(shlex.quote(a) for a in argv))
        r = self.tmux("new-session", "-d", "-s", "t", "-x", "160", "-y", "50", cmd)
        self.assertEqual(r.returncode, 0, r.stderr)

    def wait_exit(self, seen):
        deadline = time.time() + 120
        while time.time() < deadline:
            screen = self.pane()
            seen(screen)
            if "EXIT=" in screen:
                return screen
            time.sleep(0.1)
        self.fail("the run in tmux did not end:\n" + self.pane())

    def test_terminal_lines_while_running_gone_after(self):
        self.two_accounts()
        self.run_in_tmux("-j", "2", "-v")
        both = []
        counts = {"alpha": set(), "beta": set()}

        def seen(screen):
            lines = [m for m in (PROGRESS.match(l) for l in screen.splitlines()) if m]
            for m in lines:
                counts[m.group(1)].add(int(m.group(2)))
                self.assertEqual(int(m.group(3)), N, screen)
            names = [m.group(1) for m in lines]
            self.assertEqual(len(names), len(set(names)), "an account's line twice:\n" + screen)
            if set(names) == {"alpha", "beta"}:
                both.append(screen)

        final = self.wait_exit(seen)
        self.assertTrue(both, "never saw both accounts' progress lines at once; last screen:\n" + final)
        for name, c in counts.items():
            self.assertGreaterEqual(len(c), 3, "%s's line was not redrawn as it went: %s" % (name, sorted(c)))
        self.note("progress lines of both accounts seen, counts %s" % {k: sorted(v) for k, v in counts.items()})
        self.note("a screen during the run:\n" + "\n".join("      | " + l for l in both[len(both) // 2].splitlines()
                                                         if l.strip()))
        self.assertIn("EXIT=0", final)
        lines = [l for l in final.splitlines() if l.strip()]
        self.assertFalse([l for l in lines if PROGRESS.match(l) or "checking for new mail" in l],
                         "progress lines left on the screen:\n" + final)
        for l in lines[:-1]:
            self.assertTrue(l.startswith("pullmail: ") and l.count("pullmail: ") == 1 and "\x1b" not in l,
                            "garbled or foreign line %r in\n%s" % (l, final))
        for name in ("alpha", "beta"):
            self.assertTrue(any(l.startswith("pullmail: account '%s': %d new message(s): %d delivered" % (name, N, N)) for l in lines),
                            "summary of %s missing:\n%s" % (name, final))
        self.note("after the run: only log and summary lines, none garbled")

    def test_no_progress_in_terminal(self):
        self.two_accounts()
        self.run_in_tmux("--no-progress")
        progress = []
        self.wait_exit(lambda s: progress.extend(l for l in s.splitlines() if PROGRESS.match(l)))
        self.assertEqual(progress, [], "--no-progress drew progress lines")

    def test_pipe(self):
        self.two_accounts(slow=False)
        r = self.run_config("-j", "2", expect=0)
        self.assertNotIn("\x1b", r.err)
        self.assertNotIn("messages, ", r.err)
        self.assertNotIn("checking for new mail", r.err)
        self.note("stderr a pipe: no progress output")
        self.two_accounts(slow=True)
        r = self.run_config("--progress", expect=0)
        self.assertIn("\x1b[J", r.err, "--progress drew nothing into a pipe")
        self.note("--progress forces the lines into a pipe")


if __name__ == "__main__":
    util.main()
