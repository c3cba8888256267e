#!/usr/bin/env python3
"""The daemon keeps its IMAP sync connection between wake-ups (src/sync_link.h):
push wake-ups after the first reuse one logged-in connection instead of
connecting and logging in again; a kept connection cut by the network while
the daemon waits, or dying on the health check (NOOP), is replaced by a new
one in the same wake-up, with nothing lost, duplicated or delayed to the
poll interval; SIGTERM still exits 0."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import messages  # noqa: E402
from fakes.cutproxy import CutProxy  # noqa: E402
from test_daemon import HOUR, DaemonCase  # noqa: E402
from util import EX_OK, compare_messages, expected_from_served, main, maildir_messages  # noqa: E402


def is_sync(rec):
    """A sync connection: it fetched (UID FETCH) and never idled."""
    return b" IDLE\r\n" not in rec["c2s"] and b"UID FETCH" in rec["c2s"]


class KeptSyncLinkTest(DaemonCase):
    """Plain IMAP through a proxy that sees and counts every connection; no
    NOTIFY, so the one watcher is an IDLE connection on INBOX. UNSELECT is
    offered (as by Gmail, Exchange and every IMAP4rev2 server): without it
    nothing is kept (the IDLE tests of test_daemon.py run that way)."""
    DOVECOT = {"ssl": False,
               "extra_conf": "imap_capability = IMAP4rev1 SASL-IR LITERAL+ IDLE UIDPLUS NAMESPACE UNSELECT\n"}

    def test_wakeups_reuse_one_connection_and_a_lost_one_is_replaced(self):
        user, pw = self.new_user()
        maildir = self.path("Maildir")
        corpus = [m.data for m in messages.ordinary_corpus(10, seed=241)]
        self.d.add_message(user, corpus[0])
        with CutProxy(self.d.ports["imap"], direction="c2s", rst=True) as p:
            acc = self.account(user, pw, proto="imap", poll_interval=HOUR, tls="off", auth="plain")
            acc["url"] = "imap://127.0.0.1:%d" % p.port
            self.config({"a": acc})
            with self.daemon("-v") as d:
                d.wait_for("push: IDLE on 1 folder")
                d.wait_delivered(maildir, 1, 15)
                time.sleep(0.5)  # the watcher's catch-up sync is done
                opened = len(p.transcripts)

                # Four wake-ups: no new connection, no new login.
                mark = self.d.log_mark()
                for i in range(1, 5):
                    self.append(user, "INBOX", corpus[i])
                    d.wait_delivered(maildir, i + 1, 10)
                self.assertEqual(len(p.transcripts), opened,
                                 "every wake-up opened a new connection:\n" + d.err[-3000:])
                # Dovecot's count: the four APPENDs' own logins, none of the daemon.
                self.assertEqual(self.d.log_since(mark).count("Login: user=<%s>" % user), 4,
                                 self.d.log_since(mark)[-3000:])
                syncs = [r for r in p.transcripts if is_sync(r) and r["live"]]
                self.assertEqual(len(syncs), 1, "one kept sync connection")
                self.assertGreaterEqual(syncs[0]["c2s"].count(b"UID FETCH"), 4)

                # The network drops the kept connection while the daemon
                # waits: the next wake-up sees it gone and opens another.
                # That one is cut at its first NOOP, the health check of the
                # wake-up after.
                p.cut_at = (b" NOOP\r\n", 0, 0)
                # Cut it only once it is kept (its UNSELECT sent and answered
                # after the last delivery): a cut before that loses the link
                # in keep(), silently, which is not what this part tests.
                deadline = time.monotonic() + 10
                while not syncs[0]["c2s"].endswith(b" UNSELECT\r\n") and time.monotonic() < deadline:
                    time.sleep(0.02)
                self.assertTrue(syncs[0]["c2s"].endswith(b" UNSELECT\r\n"), "the sync connection was not kept")
                time.sleep(0.3)
                self.assertEqual(p.cut_live(lambda r: is_sync(r)), 1)
                time.sleep(0.3)
                self.append(user, "INBOX", corpus[5])
                t0 = time.monotonic()
                t1 = d.wait_delivered(maildir, 6, 10)
                self.assertEqual(len(p.transcripts), opened + 1, d.err[-3000:])
                self.append(user, "INBOX", corpus[6])
                t2 = time.monotonic()
                t3 = d.wait_delivered(maildir, 7, 10)
                self.assertEqual(len(p.transcripts), opened + 2, d.err[-3000:])
                self.assertTrue(p.transcripts[opened]["cut"], "the replacement was not cut at NOOP")
                # ... and then reuse again.
                for i in (7, 8):
                    self.append(user, "INBOX", corpus[i])
                    d.wait_delivered(maildir, i + 1, 10)
                self.assertEqual(len(p.transcripts), opened + 2, d.err[-3000:])
                self.assertEqual(d.count("the kept sync connection is gone"), 2, d.err[-3000:])
                # Replaced within the wake-up: no failed sync, no backoff.
                self.assertEqual(d.count("retrying"), 0, d.err[-3000:])
                self.assertEqual(d.stop(), EX_OK, d.err)
        compare_messages(maildir_messages(maildir), expected_from_served(self.d.messages(user)), "kept sync link")
        # SIGTERM logged the kept connection out.
        self.assertTrue(p.transcripts[opened + 1]["c2s"].endswith(b" LOGOUT\r\n"),
                        p.transcripts[opened + 1]["c2s"][-200:])
        self.note("4 wake-ups on one kept connection (0 logins); kept connection cut while waiting and "
                  "its replacement cut at NOOP: each replaced in the same wake-up (%.2f s, %.2f s), "
                  "9 messages byte for byte, once; SIGTERM -> exit 0" % (t1 - t0, t3 - t2))


if __name__ == "__main__":
    main()
