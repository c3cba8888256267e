#!/usr/bin/env python3
"""The daemon's NOTIFY watcher against a real Dovecot whose mailbox list
index log rotates: Dovecot's inotify watch stays on the rotated-away file, so
after a rotation changes reach a NOTIFY client only by the server's
mailbox_idle_check_interval fallback (30 s by default, 10 s here). The
watcher re-arms NOTIFY shortly after news (src/imap_watch.h, rearm_notify):
the first message after a rotation may wait for the fallback, the next ones
come by push again, each byte for byte and once. A re-arm must not itself
make the watch deaf (a second NOTIFY SET on the same, unrotated log does,
in Dovecot 2.3.19): mail after a re-arm comes by push."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import messages  # noqa: E402
from daemonproc import DaemonProcess  # noqa: E402
from util import EX_OK, IntegrationCase, compare_messages, expected_from_served, main, maildir_messages  # noqa: E402

HOUR = 3600
FALLBACK = 10  # mailbox_idle_check_interval of this server


class NotifyRotationTest(IntegrationCase):
    DOVECOT = {"extra_conf": "mailbox_idle_check_interval = %ds\n" % FALLBACK}

    def test_push_after_rearms_without_a_rotation(self):
        user, pw = self.new_user()
        self.d.create_folder(user, "F1")
        maildir = self.path("Maildir")
        corpus = [m.data for m in messages.ordinary_corpus(3, seed=212)]
        self.config({"a": self.account(user, pw, proto="imaps", folders=["INBOX", "F1"], poll_interval=HOUR)})
        with DaemonProcess(["--daemon", "-f", self.config_path], self.home) as d:
            d.wait_for("push: NOTIFY on 2 folder(s)")
            time.sleep(1)  # the catch-up sync is done, the watcher idles
            c = self.d.imap(user)
            lat = []
            try:
                for i, folder in enumerate(("F1", "INBOX", "F1")):
                    c.append(folder, None, None, corpus[i])
                    t0 = time.monotonic()
                    lat.append(d.wait_delivered(maildir, i + 1, FALLBACK + 5) - t0)
                    time.sleep(3)  # the watcher re-arms NOTIFY 2 s after the news
            finally:
                c.logout()
            # A bare NOTIFY SET as re-arm: the second message waits for the
            # fallback (up to 10 s here).
            self.assertLess(max(lat), 3.0, d.err)
            self.assertEqual(d.stop(), EX_OK, d.err)
        served = self.d.messages(user, "INBOX") + self.d.messages(user, "F1")
        compare_messages(maildir_messages(maildir), expected_from_served(served), "after re-arms")
        self.note("three messages, each after a re-arm of NOTIFY: %s s" % ", ".join("%.2f" % x for x in lat))

    def test_push_again_after_the_list_index_log_rotated(self):
        user, pw = self.new_user()
        self.d.create_folder(user, "F1")
        self.d.create_folder(user, "Bulk")  # not watched: its appends only grow the list index log
        maildir = self.path("Maildir")
        corpus = [m.data for m in messages.ordinary_corpus(4, seed=211)]
        self.config({"a": self.account(user, pw, proto="imaps", folders=["INBOX", "F1"], poll_interval=HOUR)})
        log = os.path.join(self.d.user_root(user), "dovecot.list.index.log")
        with DaemonProcess(["--daemon", "-f", self.config_path], self.home) as d:
            d.wait_for("push: NOTIFY on 2 folder(s)")
            time.sleep(1)  # the catch-up sync is done, the watcher idles
            inode = os.stat(log).st_ino
            c = self.d.imap(user)
            try:
                # Dovecot rotates the list index log past 64 KiB (about 250
                # appends of ~256 bytes each).
                for _ in range(1000):
                    c.append("Bulk", None, None, b"Subject: bulk\r\n\r\nbulk\r\n")
                    if os.stat(log).st_ino != inode:
                        break
                self.assertNotEqual(os.stat(log).st_ino, inode, "the list index log did not rotate")
                c.append("F1", None, None, corpus[0])  # may wait for the server's fallback check
                t0 = time.monotonic()
                first = d.wait_delivered(maildir, 1, FALLBACK + 5) - t0
                time.sleep(3)  # the watcher has re-armed NOTIFY
                lat = []
                for i, folder in ((1, "F1"), (2, "F1")):
                    c.append(folder, None, None, corpus[i])
                    t0 = time.monotonic()
                    lat.append(d.wait_delivered(maildir, i + 1, FALLBACK + 5) - t0)
                time.sleep(3)  # re-armed after the last news: on the same log file now
                c.append("INBOX", None, None, corpus[3])
                t0 = time.monotonic()
                lat.append(d.wait_delivered(maildir, 4, FALLBACK + 5) - t0)
            finally:
                c.logout()
            # Without the re-arm the first two wait for the next fallback
            # tick (6-7 s); with a bare NOTIFY SET as re-arm the last one.
            self.assertLess(max(lat), 3.0, d.err)
            self.assertEqual(d.stop(), EX_OK, d.err)
        served = self.d.messages(user, "INBOX") + self.d.messages(user, "F1")
        compare_messages(maildir_messages(maildir), expected_from_served(served), "after a log rotation")
        self.note("list index log rotated: first message after it in %.1f s (by push or the server's fallback), the next two by push "
                  "again (%.2f s, %.2f s), one after a re-arm on the new log (%.2f s), byte for byte, once" % (first, lat[0], lat[1], lat[2]))


if __name__ == "__main__":
    main()
