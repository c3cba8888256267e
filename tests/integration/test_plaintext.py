#!/usr/bin/env python3
"""STARTTLS is required for pop3:// and imap://: against a server without
TLS (Dovecot ssl = no) pullmail refuses with status 76 and never sends the
password; with tls = "off" (or --tls off) it works and warns on stderr that
the connection is not encrypted. The password itself goes in clear only when
auth = names a plaintext method: auth = "auto" never sends it without TLS
(issue 12) and is a configuration error (78) against a server that offers
no challenge-response login."""

import re

import util
from messages import ordinary_corpus, strange_corpus
from util import Dovecot

WARNING = r"plain ?text|unencrypted|not encrypted|without (TLS|encryption)|no TLS|insecure|cleartext"


class Plaintext(util.IntegrationCase):
    DOVECOT = {"ssl": False}

    def _refused(self, proto):
        user, pw = self.new_user()
        for m in ordinary_corpus(3, seed=31):
            self.d.add_message(user, m.data)
        maildir = self.path("Maildir")
        self.config({"plain": self.account(user, pw, proto, deliver="maildir:" + maildir)})
        mark = self.d.log_mark()
        r = self.run_config("--json", expect=util.EX_PROTOCOL)
        line = self.assertStderrNames(r, "plain", r"STARTTLS|STLS|TLS")[0]
        # the server's last words are the end of its capability list ("." or
        # "A001 OK"): quoting them says nothing (issue 14)
        self.assertNotIn("server said", line, "meaningless server text in the refusal")
        self.assertEqual(util.count_maildir(maildir), 0, "delivered although TLS was refused")
        self.assertEqual(Dovecot.logins(self.d.settled_log(mark, user), user=user), [],
                         "pullmail logged in without TLS")
        util.assert_secret_absent(pw, r.stdout, r.stderr)
        self.assertEqual(self.d.count(user), 3)
        self.assertEqual(r.json()["exit_status"], util.EX_PROTOCOL)
        self.assertErrorKind(r, "plain", "tls")
        self.note("%s:// without STARTTLS on the server: exit 76, no login, nothing delivered: %r"
                  % (proto, line))

    def test_pop3_refused_without_starttls(self):
        self._refused("pop3")

    def test_imap_refused_without_starttls(self):
        self._refused("imap")

    def _tls_off(self, proto, final_newline):
        user, pw = self.new_user()
        corpus = strange_corpus(include_huge=False) + ordinary_corpus(5, seed=32)
        for m in corpus:
            self.d.add_message(user, m.data)
        expected = util.expected_from_served(self.d.messages(user), final_newline=final_newline)
        maildir = self.path("Maildir")
        self.config({"plain": self.account(user, pw, proto, deliver="maildir:" + maildir, tls="off")})
        r = self.run_config("--json", expect=util.EX_CONFIG)
        self.assertStderrNames(r, "plain", r"without TLS.*offers: user, plain, login")
        self.assertEqual(util.count_maildir(maildir), 0)
        util.assert_secret_absent(pw, r.stdout, r.stderr)
        self.config({"plain": self.account(user, pw, proto, deliver="maildir:" + maildir, tls="off",
                                           auth="plain")})
        r = self.run_config(expect=0)
        self.assertDelivered(util.maildir_messages(maildir), expected, "%s tls=off -> Maildir" % proto)
        self.assertTrue(re.search(WARNING, r.err, re.I),
                        "no warning about the plaintext connection on stderr:\n" + r.describe())
        util.assert_secret_absent(pw, r.stdout, r.stderr)
        self.note("tls = \"off\": works and warns: %r" %
                  [l for l in r.err.splitlines() if re.search(WARNING, l, re.I)][0])

    def test_pop3_tls_off(self):
        self._tls_off("pop3", True)

    def test_imap_tls_off(self):
        self._tls_off("imap", False)

    def test_imap_target_tls_off_warns(self):
        """The delivery target's password travels in clear too: one warning
        line naming the account and the target, as for the source."""
        src, src_pw = self.new_user()
        dst, dst_pw = self.new_user()
        for m in ordinary_corpus(3, seed=34):
            self.d.add_message(src, m.data)
        target = {"url": "imap://127.0.0.1:%d/INBOX" % self.d.ports["imap"], "user": dst,
                  "password": dst_pw, "tls": "off", "auth": "user"}
        self.config({"mig": self.account(src, src_pw, "pop3", deliver=target, tls="off", auth="user")})
        r = self.run_config(expect=0)
        self.assertEqual(self.d.count(dst), 3, "not delivered to the plaintext target:\n" + r.describe())
        port = ":%d" % self.d.ports["imap"]
        hits = [l for l in r.err.splitlines()
                if l.startswith("pullmail: warning: account 'mig': ") and port in l and re.search(WARNING, l, re.I)]
        self.assertEqual(len(hits), 1, "no single warning about the plaintext target %s:\n%s" % (port, r.describe()))
        util.assert_secret_absent(dst_pw, r.stdout, r.stderr)
        self.note("tls = \"off\" on the IMAP target warns: %r" % hits[0])

    def test_oneoff_tls_off(self):
        user, pw = self.new_user()
        corpus = ordinary_corpus(4, seed=33)
        for m in corpus:
            self.d.add_message(user, m.data)
        expected = util.expected_from_served(self.d.messages(user), final_newline=True)
        maildir = self.path("Maildir")
        base = ["--url", self.url("pop3"), "--user", user, "--deliver", "maildir:" + maildir,
                "--state-dir", self.state_dir]
        r = self.pullmail(*base, password=pw, expect=util.EX_PROTOCOL)
        self.assertEqual(util.count_maildir(maildir), 0)
        self.note("one-off pop3:// without --tls off: exit 76")
        r = self.pullmail(*base, "--tls", "off", "--auth", "user", password=pw, expect=0)
        self.assertTrue(re.search(WARNING, r.err, re.I), "no plaintext warning:\n" + r.describe())
        self.assertDelivered(util.maildir_messages(maildir), expected, "one-off --tls off -> Maildir")


if __name__ == "__main__":
    util.main()
