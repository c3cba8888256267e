#!/usr/bin/env python3
"""pullmail --daemon against a real Dovecot: push by NOTIFY (one connection
for every folder) and by IDLE per folder (a server without NOTIFY), mail
appended while the daemon runs is delivered within seconds although the poll
interval is an hour, byte for byte and once; a watcher connection cut by a
proxy is reconnected and what arrived meanwhile is caught up; SIGUSR1 polls
a POP3 account now; SIGHUP reloads the configuration (a broken file keeps
the old one); SIGTERM exits 0 with the state saved; a refused login is
retried on the poll interval and logged once."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import messages  # noqa: E402
from daemonproc import DaemonProcess  # noqa: E402
from fakes.cutproxy import CutProxy  # noqa: E402
from util import (EX_OK, EX_TEMPFAIL, EX_USAGE, IntegrationCase, compare_messages, count_maildir, expected_from_served, main,  # noqa: E402
                  maildir_messages)

HOUR = 3600


class DaemonCase(IntegrationCase):

    def daemon(self, *args):
        return DaemonProcess(["--daemon", "-f", self.config_path] + list(args), self.home)

    def append(self, user, folder, data):
        """APPENDs over IMAP like a real MTA/MUA would; returns when the server
        has accepted it."""
        c = self.d.imap(user)
        try:
            typ, _ = c.append(folder, None, None, data)
            self.assertEqual(typ, "OK")
        finally:
            c.logout()

    def push_run(self, expect_mode):
        user, pw = self.new_user()
        self.d.create_folder(user, "Lists")
        self.d.create_folder(user, "Lists.cpp")
        corpus = [m.data for m in messages.ordinary_corpus(6, seed=131)]
        self.d.add_message(user, corpus[0])
        maildir = self.path("Maildir")
        self.config({"a": self.account(user, pw, proto="imaps", folders=["INBOX", "Lists", "Lists/cpp"],
                                       connections=3, poll_interval=HOUR)})
        with self.daemon() as d:
            d.wait_for("push: %s on 3 folder(s)" % expect_mode)
            d.wait_delivered(maildir, 1, 20)
            time.sleep(0.5)  # every watcher is idling
            worst = 0.0
            for i, folder in enumerate(["INBOX", "Lists", "Lists.cpp", "INBOX", "Lists.cpp"]):
                self.append(user, folder, corpus[i + 1])
                t0 = time.monotonic()  # the server has accepted it
                t1 = d.wait_delivered(maildir, i + 2, 10)
                worst = max(worst, t1 - t0)
            # Polling (an hour) cannot explain this; push does.
            self.assertLess(worst, 5.0, d.err)
            self.assertEqual(d.stop(), EX_OK, d.err)
            self.assertIn("daemon stopped", d.err)
        served = []
        for f in ("INBOX", "Lists", "Lists.cpp"):
            served += self.d.messages(user, f)
        compare_messages(maildir_messages(maildir), expected_from_served(served), "pushed")
        self.note("%s: 6 messages in 3 folders, each delivered %.2f s after APPEND at worst, byte for byte, once; "
                  "SIGTERM -> exit 0" % (expect_mode, worst))
        # The state was saved: a one-shot run finds nothing new.
        r = self.run_config("-v", expect=EX_OK)
        self.assertEqual(count_maildir(maildir), 6, r.describe())


class DaemonNotifyTest(DaemonCase):

    def test_notify_push_three_folders(self):
        self.push_run("NOTIFY")

    def test_sigusr1_polls_pop3_now_and_sighup_reloads(self):
        user, pw = self.new_user()
        user2, pw2 = self.new_user()
        maildir = self.path("Maildir")
        good = {"a": self.account(user, pw, proto="pop3s", poll_interval=HOUR)}
        self.config(good)
        with self.daemon() as d:
            d.wait_for("daemon serving 1 account")
            time.sleep(1.0)  # the first poll is done
            self.d.add_message(user, messages.ordinary_corpus(1, seed=5)[0].data)
            time.sleep(1.0)
            self.assertEqual(count_maildir(maildir), 0, "POP3 has no push; nothing before SIGUSR1")
            d.signal(signal.SIGUSR1)
            d.wait_delivered(maildir, 1, 10)
            self.note("SIGUSR1: the POP3 account polled at once (interval 1 h)")

            with open(self.config_path, "a") as f:
                f.write("\n[accounts.broken\n")
            d.signal(signal.SIGHUP)
            d.wait_for("not reloaded")
            self.assertIsNone(d.p.poll(), "a broken file must not stop the daemon")
            self.d.add_message(user, messages.ordinary_corpus(2, seed=6)[1].data)
            d.signal(signal.SIGUSR1)
            d.wait_delivered(maildir, 2, 10)
            self.note("SIGHUP with a broken file: logged, old configuration still serving")

            both = dict(good)
            both["b"] = self.account(user2, pw2, proto="imaps", poll_interval=HOUR,
                                     deliver="maildir:" + self.path("Maildir2"))
            self.config(both)
            self.d.add_message(user2, messages.ordinary_corpus(1, seed=7)[0].data)
            d.signal(signal.SIGHUP)
            d.wait_for("configuration reloaded")
            d.wait_delivered(self.path("Maildir2"), 1, 15)
            self.note("SIGHUP with a good file: the new account is served")
            self.assertEqual(d.stop(signal.SIGINT), EX_OK, d.err)

    def test_sigterm_mid_sync_exits_0_and_loses_nothing(self):
        user, pw = self.new_user()
        corpus = [m.data for m in messages.ordinary_corpus(30, seed=211)]
        self.d.add_messages(user, corpus)
        want = expected_from_served(self.d.messages(user), final_newline=True)
        out = self.path("mda-out")
        os.makedirs(out)
        mda = "sleep 0.1; cat > %s/$(date +%%s%%N).eml" % out  # slow, so the signal comes mid-sync
        self.config({"a": self.account(user, pw, proto="pop3s", deliver="mda:" + mda, keep=False,
                                       poll_interval=HOUR)})
        with self.daemon() as d:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(os.listdir(out)) < 5:
                time.sleep(0.05)
            self.assertGreaterEqual(len(os.listdir(out)), 5, d.err)
            # The daemon holds the account's lock while it syncs: a one-shot
            # run beside it does not fetch the same account.
            r = self.run_config(expect=EX_TEMPFAIL)
            self.assertIn("busy", r.err)
            self.assertEqual(d.stop(), EX_OK, d.err)
        first = len(os.listdir(out))
        self.assertLess(first, len(corpus), "the signal came too late to test anything")
        self.assertEqual(len(self.d.messages(user)), len(corpus) - first, "server holds exactly the undelivered")
        self.run_config(expect=EX_OK)
        got = []
        for name in sorted(os.listdir(out)):
            with open(os.path.join(out, name), "rb") as f:
                got.append(f.read())
        compare_messages(got, want, "after SIGTERM of the daemon and a one-shot run")
        self.note("one-shot run during a daemon sync: 75, account busy (shared lock); SIGTERM mid-sync: exit 0 after "
                  "%d of %d, those deleted on the server; the rest by a one-shot run, each exactly once"
                  % (first, len(corpus)))

    def test_usage_errors(self):
        user, pw = self.new_user()
        self.config({"a": self.account(user, pw)})
        for args in (["--daemon", "--check"], ["-d", "60", "--dry-run"], ["--daemon", "--json"],
                     ["--daemon", "adopt", "a"], ["-d", "0"]):
            r = self.run_config(*args, expect=EX_USAGE)
            self.assertTrue(r.err.strip(), args)
        self.note("--daemon with --check/--dry-run/--json/adopt, and -d 0: usage errors (64)")

    def test_refused_login_backs_off_to_interval_and_logs_once(self):
        user, pw = self.new_user()
        self.config({"a": self.account(user, pw + "-wrong", proto="imaps", poll_interval=2)})
        mark = self.d.log_mark()
        with self.daemon() as d:
            time.sleep(7)
            self.assertEqual(d.stop(), EX_OK, d.err)
        refused = [l for l in d.lines if "login refused" in l]
        self.assertEqual(len(refused), 1, d.err)
        attempts = self.d.log_since(mark).count("auth failed")
        # one attempt per 2 s interval (plus Dovecot's own delay), not a tight loop
        self.assertGreaterEqual(attempts, 2, self.d.log_since(mark)[-3000:])
        self.assertLessEqual(attempts, 5, self.d.log_since(mark)[-3000:])
        self.note("wrong password: %d attempts in 7 s at poll_interval = 2, one log line" % attempts)


class DaemonIdleTest(DaemonCase):
    """A server without NOTIFY: one IDLE connection per folder."""
    DOVECOT = {"extra_conf": "imap_capability = IMAP4rev1 SASL-IR LITERAL+ IDLE UIDPLUS NAMESPACE\n"}

    def test_idle_push_three_folders(self):
        self.push_run("IDLE")



class DaemonCutTest(DaemonCase):
    """Plain IMAP on loopback, so that the proxy can see where IDLE starts;
    no NOTIFY, so the watcher is one IDLE connection."""
    DOVECOT = {"ssl": False, "extra_conf": DaemonIdleTest.DOVECOT["extra_conf"]}

    def test_cut_watcher_reconnects_and_catches_up(self):
        user, pw = self.new_user()
        maildir = self.path("Maildir")
        corpus = [m.data for m in messages.ordinary_corpus(3, seed=171)]
        # The first connection that reaches IDLE (the watcher) is cut right
        # after the server's "+ idling"; once one was, the others pass.
        with CutProxy(self.d.ports["imap"], direction="s2c", cut_at=(b"+ idling", 0, 10), rst=True,
                      cut_once=False) as p:
            acc = self.account(user, pw, proto="imap", poll_interval=HOUR, tls="off", auth="plain")
            acc["url"] = "imap://127.0.0.1:%d" % p.port
            self.config({"a": acc})
            with self.daemon() as d:
                d.wait_for("push: IDLE on 1 folder")
                deadline = time.monotonic() + 10
                while not any(t["cut"] for t in p.transcripts) and time.monotonic() < deadline:
                    time.sleep(0.01)
                p.cut_at = None
                self.assertTrue(any(t["cut"] for t in p.transcripts), "the proxy cut nothing")
                self.append(user, "INBOX", corpus[0])  # while the watcher is away
                d.wait_delivered(maildir, 1, 15)
                d.wait_for("watching again")
                self.append(user, "INBOX", corpus[1])
                d.wait_delivered(maildir, 2, 10)
                self.assertEqual(d.stop(), EX_OK, d.err)
        compare_messages(maildir_messages(maildir), expected_from_served(self.d.messages(user)), "after a cut")
        self.note("watcher cut by a proxy: reconnected with backoff, the message of the gap caught up, push again")



    def test_server_restart_reconnects_with_backoff(self):
        user, pw = self.new_user()
        maildir = self.path("Maildir")
        corpus = [m.data for m in messages.ordinary_corpus(2, seed=191)]
        # A pass-through proxy keeps the daemon's address while the server
        # comes back on other ports.
        with CutProxy(self.d.ports["imap"]) as p:
            acc = self.account(user, pw, proto="imap", poll_interval=HOUR, tls="off", auth="plain")
            acc["url"] = "imap://127.0.0.1:%d" % p.port
            self.config({"a": acc})
            with self.daemon() as d:
                d.wait_for("push: IDLE on 1 folder")
                self.append(user, "INBOX", corpus[0])
                d.wait_delivered(maildir, 1, 10)
                self.d.restart()
                p.upstream = ("127.0.0.1", self.d.ports["imap"])
                self.append(user, "INBOX", corpus[1])
                t0 = time.monotonic()
                t1 = d.wait_delivered(maildir, 2, 30)
                d.wait_for("watching again")
                self.assertEqual(d.stop(), EX_OK, d.err)
        compare_messages(maildir_messages(maildir), expected_from_served(self.d.messages(user)), "after a restart")
        self.note("server restarted: watcher reconnected with backoff, the new message delivered %.1f s after "
                  "the server accepted it" % (t1 - t0))


if __name__ == "__main__":
    main()
