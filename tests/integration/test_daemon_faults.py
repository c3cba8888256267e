#!/usr/bin/env python3
"""pullmail --daemon when a watcher thread meets an error that is not a
server's (a std::exception such as bad_alloc, injected with
PULLMAIL_TEST_WATCHER_THROWS=1): the daemon logs it naming the account,
reconnects with backoff and pushes again, instead of ending by
std::terminate."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import messages  # noqa: E402
from daemonproc import DaemonProcess  # noqa: E402
from util import EX_OK, IntegrationCase, compare_messages, count_maildir, expected_from_served, main, maildir_messages  # noqa: E402

HOUR = 3600


class DaemonFaultTest(IntegrationCase):

    def test_std_exception_in_a_watcher_reconnects(self):
        user, pw = self.new_user()
        maildir = self.path("Maildir")
        corpus = [m.data for m in messages.ordinary_corpus(1, seed=223)]
        self.config({"a": self.account(user, pw, proto="imaps", poll_interval=HOUR)})
        with DaemonProcess(["--daemon", "-f", self.config_path], self.home,
                           env={"PULLMAIL_TEST_WATCHER_THROWS": "1"}) as d:
            d.wait_for("account 'a': NOTIFY watcher: unexpected error: std::bad_alloc; reconnecting in")
            d.wait_for("watching again", timeout=20)
            self.assertIsNone(d.p.poll(), d.err)
            c = self.d.imap(user)
            try:
                c.append("INBOX", None, None, corpus[0])
            finally:
                c.logout()
            deadline = time.monotonic() + 10
            while count_maildir(maildir) < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertEqual(count_maildir(maildir), 1, d.err)
            self.assertEqual(d.stop(), EX_OK, d.err)
        compare_messages(maildir_messages(maildir), expected_from_served(self.d.messages(user)), "after bad_alloc")
        self.note("std::bad_alloc in the watcher thread: logged naming the account, reconnected, push again, exit 0")

    def test_sigterm_during_a_sighup_reload_stops_at_once(self):
        user, pw = self.new_user()
        self.d.add_messages(user, [m.data for m in messages.ordinary_corpus(30, seed=227)])
        out = self.path("mda-out")
        os.makedirs(out)
        mda = "sleep 0.3; cat > %s/$(date +%%s%%N).eml" % out  # a sync of about 9 s
        self.config({"a": self.account(user, pw, proto="pop3s", deliver="mda:" + mda, keep=False,
                                       poll_interval=HOUR)})
        with DaemonProcess(["--daemon", "-f", self.config_path], self.home) as d:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(os.listdir(out)) < 3:
                time.sleep(0.05)
            d.signal(signal.SIGHUP)  # the reload waits for the sync in hand
            d.wait_for("configuration reloaded")
            time.sleep(0.3)
            t0 = time.monotonic()
            rc = d.stop()
            took = time.monotonic() - t0
        self.assertEqual(rc, EX_OK, d.err)
        self.assertLess(len(os.listdir(out)), 30, "the sync ended before the signal: nothing tested")
        self.assertLess(took, 4.0, d.err)
        self.assertEqual(d.count("daemon serving"), 1, d.err)  # the new services were never started
        self.assertEqual(len(self.d.messages(user)), 30 - len(os.listdir(out)), "server holds exactly the undelivered")
        self.note("SIGTERM during a SIGHUP reload: exit 0 after %.1f s, %d of 30 delivered, the rest on the server"
                  % (took, len(os.listdir(out))))


if __name__ == "__main__":
    main()
