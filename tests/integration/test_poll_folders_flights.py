#!/usr/bin/env python3
"""Many IMAP folders in few round trips (issue 11), counted by the delay
proxy of bench/ (bench/delayproxy.py: a round trip is the client speaking
into an empty pipe after it heard from the server):

* a first fetch of 12 folders opens and lists them all in one flight and
  fetches all their bodies in the next (the next folder's SELECT behind the
  current folder's UID FETCH): at most 2 round trips more than a poll with
  nothing new (which needs STATUS only), where one flight per folder and
  step needed 2 per folder;
* a poll where 3 of the folders got one message each costs at most 2 round
  trips more than a poll with nothing new;
* with nothing new, LIST-STATUS (RFC 5819, Dovecot offers it) answers for
  every folder: no STATUS, SELECT or listing follows;
* every message is delivered once, byte for byte, into the folder's
  Maildir++ folder, and a poll after that fetches nothing.
"""

import json
import os
import re
import subprocess
import sys
import time

import util
from util import Dovecot  # noqa: F401  (the IntegrationCase starts it)
from dovecot import free_port
from messages import ordinary_corpus

FOLDERS = ["INBOX"] + ["Box%02d" % k for k in range(1, 12)]
DELAY = 0.02  # one way: a 40 ms round trip, long enough that a flight is never mistaken for two


def maildirpp_folder(root, folder):
    return root if folder == "INBOX" else os.path.join(root, "." + folder)


class FolderFlights(util.IntegrationCase):

    def start_proxy(self):
        port = free_port()
        self.proxy_log = self.path("proxy.log")
        open(self.proxy_log, "w").close()
        src = os.environ.get("PULLMAIL_SRC") or os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
        self.proxy = subprocess.Popen([sys.executable, os.path.join(src, "bench", "delayproxy.py"), "--delay",
                                       str(DELAY), "--log", self.proxy_log,
                                       "%d:%d" % (port, self.d.ports["imaps"])],
                                      stdout=subprocess.PIPE, start_new_session=True)
        self.addCleanup(self.stop_proxy)
        if b"ready" not in self.proxy.stdout.readline():
            self.fail("the delay proxy did not start")
        return port

    def stop_proxy(self):
        self.proxy.terminate()
        self.proxy.wait()
        self.proxy.stdout.close()

    def check_delivered(self, user, root):
        """Each folder's Maildir++ folder holds what the server's folder holds, once, byte for byte."""
        for folder in FOLDERS:
            self.assertDelivered(util.maildir_messages(maildirpp_folder(root, folder)),
                                 util.expected_from_served(self.d.messages(user, folder)), folder)

    def measured(self, *args):
        """One run through the proxy: (result, round trips of its one connection)."""
        before = len(open(self.proxy_log).readlines())
        r = self.run_config("--json", *args, expect=0)
        for _ in range(50):  # the proxy logs a connection once both sides closed
            lines = open(self.proxy_log).readlines()[before:]
            if lines:
                break
            time.sleep(0.1)
        self.assertEqual(len(lines), 1, "one connection per run: %r" % lines)
        return r, json.loads(lines[0])["turns"]

    def test_folders_in_few_round_trips(self):
        user, pw = self.new_user()
        for k, folder in enumerate(FOLDERS):
            if folder != "INBOX":
                self.d.create_folder(user, folder)
            for m in ordinary_corpus(3, seed=100 + k, prefix="f%d" % k):
                self.d.add_message(user, m.data, folder=folder)
        port = self.start_proxy()
        root = self.path("Mail")
        acc = self.account(user, pw, "imaps", deliver="maildir++:" + root, folders=["*"])
        acc["url"] = "imaps://localhost:%d" % port  # the certificate names localhost
        self.config({"flights": acc})

        r, first = self.measured()
        self.assertEqual(self.json_account(r, "flights")["fetched"], 36, r.describe())
        self.check_delivered(user, root)

        r, unchanged = self.measured()
        self.assertEqual(self.json_account(r, "flights")["fetched"], 0, r.describe())
        self.note("first fetch of %d folders: %d round trips; poll with nothing new: %d" %
                  (len(FOLDERS), first, unchanged))
        self.assertLessEqual(first, unchanged + 2,
                             "the first fetch of %d folders took %d round trips, a poll %d" %
                             (len(FOLDERS), first, unchanged))

        changed = FOLDERS[2:5]
        for k, folder in enumerate(changed):
            m = ordinary_corpus(1, seed=200 + k, prefix="new%d" % k)[0]
            self.d.add_message(user, m.data, folder=folder)
        r, three = self.measured()
        self.assertEqual(self.json_account(r, "flights")["fetched"], 3, r.describe())
        self.check_delivered(user, root)
        self.note("poll where 3 folders got one message: %d round trips" % three)
        self.assertLessEqual(three, unchanged + 2,
                             "3 changed folders cost %d round trips, a poll with nothing new %d" % (three, unchanged))

        r, again = self.measured()
        self.assertEqual(self.json_account(r, "flights")["fetched"], 0, r.describe())
        self.check_delivered(user, root)

        # Dovecot offers LIST-STATUS (RFC 5819): folders = ["*"] is listed
        # with every folder's status in one command, and no STATUS follows.
        r = self.run_config("-vv", expect=0)
        sent = re.findall(r"C: \S+ ([^\r\n]*)", r.err)
        self.assertEqual([c for c in sent if c.upper().startswith("STATUS ")], [], r.err[-3000:])
        self.assertEqual([c for c in sent if re.match(r"(SELECT|EXAMINE|UID FETCH) ", c, re.I)], [], r.err[-3000:])
        self.assertTrue(any(c.startswith("LIST ") and "STATUS (MESSAGES UIDNEXT UIDVALIDITY)" in c for c in sent),
                        r.err[-3000:])
        self.note("nothing new: one LIST with STATUS, no STATUS, SELECT or UID FETCH")


if __name__ == "__main__":
    util.main()
