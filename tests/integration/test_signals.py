#!/usr/bin/env python3
"""SIGTERM/SIGINT in the middle of a run: pullmail finishes or rolls back the
message in hand, saves its state, QUITs/LOGOUTs cleanly and exits with 75;
what it delivered is deleted on the server (keep = false) and the next run
delivers the rest: nothing lost, nothing duplicated."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import messages  # noqa: E402
from util import (BIN, EX_OK, EX_TEMPFAIL, IntegrationCase, compare_messages, expected_from_served, main,  # noqa: E402
                  read_maildir)


class SignalTest(IntegrationCase):

    def interrupted_run(self, proto, sig):
        user, pw = self.new_user()
        corpus = [m.data for m in messages.ordinary_corpus(40, seed=61)]
        self.d.add_messages(user, corpus)
        want = expected_from_served(self.d.messages(user), final_newline=proto.startswith("pop3"))
        out = self.path("mda-out")
        os.makedirs(out)
        # A slow MDA keeps the run going long enough to interrupt it.
        mda = "sleep 0.1; cat > %s/$(date +%%s%%N).eml" % out
        maildir = self.path("Maildir")
        self.config({"a": self.account(user, pw, proto=proto, deliver="mda:" + mda, keep=False)})
        env = dict(os.environ, HOME=self.home)
        p = subprocess.Popen([BIN, "-f", self.config_path], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while time.time() < deadline and len(os.listdir(out)) < 5:
            time.sleep(0.05)
        self.assertGreaterEqual(len(os.listdir(out)), 5, "pullmail delivered nothing in 30 s")
        p.send_signal(sig)
        try:
            _, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            self.fail("pullmail did not stop within 20 s of %s" % sig.name)
        self.assertEqual(p.returncode, EX_TEMPFAIL, err)
        self.assertIn("interrupted", err)
        first = len(os.listdir(out))
        self.assertLess(first, len(corpus), "the signal came too late to test anything")
        left = len(self.d.messages(user))
        self.assertEqual(left, len(corpus) - first, "server should hold exactly the undelivered messages")
        self.note("%s: stopped after %d of %d, those deleted on the server, exit 75" % (sig.name, first, len(corpus)))
        self.run_config(expect=EX_OK)
        got = []
        for name in sorted(os.listdir(out)):
            with open(os.path.join(out, name), "rb") as f:
                got.append(f.read())
        compare_messages(got, want, "after %s and a rerun" % sig.name)
        self.assertEqual(self.d.messages(user), [])
        self.note("%s: every message delivered exactly once, server empty" % sig.name)

    def test_sigterm_pop3s(self):
        self.interrupted_run("pop3s", signal.SIGTERM)

    def test_sigint_imaps(self):
        self.interrupted_run("imaps", signal.SIGINT)


if __name__ == "__main__":
    main()
