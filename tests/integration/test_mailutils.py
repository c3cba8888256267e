#!/usr/bin/env python3
"""GNU Mailutils 3.15 as a second real server (issue 12): pop3d always
sends an APOP timestamp, which made libcurl insist on APOP (`-ERR [AUTH]
Bad login`), and imap4d has no SASL-IR, so the initial response libcurl
forced on it earned `BAD AUTHENTICATE Invalid arguments`. pullmail logs in
itself now: POP3 and IMAP fetch byte-exact, delete, a rerun fetches
nothing; auth = "user" and "plain" work despite the timestamp; a method
the server does not offer is a configuration error (78) naming the ones
it does; the password never shows in -vv."""

import base64
import os
import re

import util
from mailutils import Mailutils
from messages import ordinary_corpus


class MailutilsServers(util.IntegrationCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.m = Mailutils(cls.tmp_root).start()
        except BaseException:
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.m.stop()
        super().tearDownClass()

    def _account(self, user, pw, proto, maildir, **extra):
        acc = {"url": "%s://127.0.0.1:%d" % (proto, self.m.ports[proto]), "user": user, "password": pw,
               "deliver": "maildir:" + maildir, "ca_file": self.m.ca_file}
        acc.update(extra)
        return acc

    def _fill(self, user, n, seed):
        for msg in ordinary_corpus(n, seed=seed):
            self.m.add_message(user, msg.data)

    def _fetch_delete_rerun(self, proto, seed, **extra):
        user, pw = self.m.add_user()
        self._fill(user, 4, seed)
        served = self.m.pop3_messages(user) if proto.startswith("pop3") else self.m.imap_messages(user)
        expected = util.expected_from_served(served, final_newline=proto.startswith("pop3"))
        maildir = self.path("Maildir-" + proto)
        name = "mu-" + proto
        self.config({name: self._account(user, pw, proto, maildir, keep=False, **extra)})
        r = self.run_config("-vv", expect=0)
        self.assertDelivered(util.maildir_messages(maildir), expected, "Mailutils %s -> Maildir" % proto)
        for form in (pw, base64.b64encode(("\0%s\0%s" % (user, pw)).encode()).decode()):
            util.assert_secret_absent(form, r.stdout, r.stderr, what="-vv output against Mailutils")
        self.assertEqual(self.m.count(user), 0, "keep = false: the messages are still on the server")
        r = self.run_config(expect=0)
        self.assertEqual(util.count_maildir(maildir), 4, "the rerun fetched again:\n" + r.describe())
        return r

    def test_pop3s_user_despite_apop_timestamp(self):
        r = self._fetch_delete_rerun("pop3s", 61, auth="user")
        self.note("pop3d greets with an APOP timestamp; auth = \"user\" logs in with USER/PASS")

    def test_pop3_starttls_auto(self):
        # auto over STLS: pop3d offers USER only (no SASL): USER/PASS, not APOP.
        self._fetch_delete_rerun("pop3", 62)

    def test_imaps_plain_without_sasl_ir(self):
        # imap4d advertises no SASL-IR: AUTHENTICATE PLAIN, then the response
        # after the server's "+" (a forced initial response is BAD there).
        user, pw = self.m.add_user()
        self._fill(user, 2, 63)
        maildir = self.path("Maildir-ir")
        self.config({"mu-ir": self._account(user, pw, "imaps", maildir, auth="plain")})
        r = self.run_config("-vv", expect=0)
        self.assertEqual(util.count_maildir(maildir), 2, r.describe())
        auth = [l for l in r.err.splitlines() if re.search(r"C: L\d+ AUTHENTICATE", l)]
        self.assertTrue(auth, "no AUTHENTICATE in the -vv trace:\n" + r.err)
        self.assertTrue(all(re.search(r"AUTHENTICATE PLAIN$", l) for l in auth),
                        "an initial response was sent without SASL-IR: %r" % auth)
        self.note("imap4d without SASL-IR: %r" % auth[0])

    def test_imaps_fetch_delete_rerun(self):
        self._fetch_delete_rerun("imaps", 64)

    def test_imap_starttls_user(self):
        self._fetch_delete_rerun("imap", 65, auth="user")

    def test_mechanism_not_offered(self):
        user, pw = self.m.add_user()
        self._fill(user, 1, 66)
        maildir = self.path("Maildir-none")
        self.config({"mu-x": self._account(user, pw, "pop3s", maildir, auth="cram-md5")})
        r = self.run_config("--json", expect=util.EX_CONFIG)
        line = self.assertStderrNames(r, "mu-x", r"cram-md5.*does not offer.*offers: user, apop")[0]
        self.assertErrorKind(r, "mu-x", "config")
        self.assertEqual(util.count_maildir(maildir), 0)
        self.assertEqual(self.m.count(user), 1)
        self.note("auth = \"cram-md5\" on pop3d: exit 78: %r" % line)

    def test_wrong_password(self):
        user, pw = self.m.add_user()
        self._fill(user, 1, 67)
        maildir = self.path("Maildir-wrong")
        self.config({"mu-w": self._account(user, "Wrong-" + pw, "imaps", maildir)})
        r = self.run_config("-vv", expect=util.EX_NOPERM)
        self.assertStderrNames(r, "mu-w", r"refused the plain login of user")
        util.assert_secret_absent("Wrong-" + pw, r.stdout, r.stderr)
        self.assertEqual(self.m.count(user), 1)


if __name__ == "__main__":
    util.main()
