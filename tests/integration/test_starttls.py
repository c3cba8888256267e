#!/usr/bin/env python3
"""POP3 and IMAP with STARTTLS (pop3:// and imap:// URLs) -> Maildir, byte
for byte; Dovecot's log proves the login happened inside TLS. Also the
one-off command-line account (--url/--user/--deliver, password from
PULLMAIL_PASSWORD or --password-command), and 'localhost' as host name."""

import os

import util
from messages import ordinary_corpus, strange_corpus
from util import Dovecot


def small_corpus(seed):
    return strange_corpus(include_huge=False) + ordinary_corpus(10, seed=seed)


class StartTls(util.IntegrationCase):

    def _fill(self, user, seed):
        corpus = small_corpus(seed)
        for m in corpus:
            self.d.add_message(user, m.data)
        return corpus

    def _assert_tls_login(self, log, user, protocol):
        logins = Dovecot.logins(log, user=user, protocol=protocol)
        self.assertTrue(logins, "no %s login of %s in the Dovecot log" % (protocol, user))
        for _, _, line in logins:
            self.assertIn("TLS", line, "login not protected by TLS: " + line)
        self.note("Dovecot: %d %s login(s) of %s, all over TLS (STARTTLS)" % (len(logins), protocol, user))

    def test_pop3_starttls_config(self):
        user, pw = self.new_user()
        corpus = self._fill(user, 21)
        expected = util.expected_from_served(self.d.messages(user), final_newline=True)
        maildir = self.path("Maildir")
        self.config({"p": self.account(user, pw, "pop3", host="localhost", deliver="maildir:" + maildir)})
        mark = self.d.log_mark()
        r = self.run_config("--json", expect=0)
        log = self.d.settled_log(mark, user)
        self.assertEqual(self.json_account(r, "p")["fetched"], len(corpus))
        self.assertDelivered(util.maildir_messages(maildir), expected, "POP3+STARTTLS -> Maildir")
        self._assert_tls_login(log, user, "pop3")

    def test_imap_starttls_config(self):
        user, pw = self.new_user()
        corpus = self._fill(user, 22)
        served = self.d.messages(user)
        expected = util.expected_from_served(served)
        maildir = self.path("Maildir")
        self.config({"i": self.account(user, pw, "imap", host="localhost", deliver="maildir:" + maildir)})
        mark = self.d.log_mark()
        r = self.run_config("--json", expect=0)
        log = self.d.settled_log(mark, user)
        self.assertEqual(self.json_account(r, "i")["fetched"], len(corpus))
        self.assertDelivered(util.maildir_messages(maildir), expected, "IMAP+STARTTLS -> Maildir")
        self._assert_tls_login(log, user, "imap")
        self.assertTrue(all("\\Seen" not in f for f in self.d.flags(user).values()),
                        "a keep run set \\Seen")
        self.note("no message got \\Seen")

    def test_pop3_starttls_oneoff_env_password(self):
        user, pw = self.new_user()
        corpus = self._fill(user, 23)
        expected = util.expected_from_served(self.d.messages(user), final_newline=True)
        maildir = self.path("Maildir")
        mark = self.d.log_mark()
        r = self.pullmail("--url", self.url("pop3"), "--user", user, "--deliver", "maildir:" + maildir,
                          "--ca-file", self.d.ca_file, "--state-dir", self.state_dir, "--json",
                          password=pw, expect=0)
        log = self.d.settled_log(mark, user)
        self.assertEqual(r.json()["accounts"][0]["fetched"], len(corpus), r.describe())
        self.assertDelivered(util.maildir_messages(maildir), expected,
                             "one-off pop3:// (PULLMAIL_PASSWORD) -> Maildir")
        self._assert_tls_login(log, user, "pop3")
        util.assert_secret_absent(pw, r.stdout, r.stderr)
        # state kept in --state-dir: a second run fetches nothing
        r = self.pullmail("--url", self.url("pop3"), "--user", user, "--deliver", "maildir:" + maildir,
                          "--ca-file", self.d.ca_file, "--state-dir", self.state_dir, "--json",
                          password=pw, expect=0)
        self.assertEqual(r.json()["accounts"][0]["fetched"], 0, r.describe())
        self.assertTrue(os.listdir(self.state_dir), "nothing written to --state-dir")
        self.note("second one-off run fetched 0; state in --state-dir")

    def test_imap_starttls_oneoff_password_command(self):
        user, pw = self.new_user()
        corpus = self._fill(user, 24)
        expected = util.expected_from_served(self.d.messages(user))
        pwfile = self.path("pw.txt")
        with open(pwfile, "w") as f:
            f.write(pw + "\n")
        maildir = self.path("Maildir")
        mark = self.d.log_mark()
        r = self.pullmail("--url", self.url("imap", "localhost"), "--user", user,
                          "--deliver", "maildir:" + maildir, "--password-command", "cat " + pwfile,
                          "--ca-file", self.d.ca_file, "--state-dir", self.state_dir, "--json", expect=0)
        log = self.d.settled_log(mark, user)
        self.assertEqual(r.json()["accounts"][0]["fetched"], len(corpus), r.describe())
        self.assertDelivered(util.maildir_messages(maildir), expected,
                             "one-off imap:// (--password-command) -> Maildir")
        self._assert_tls_login(log, user, "imap")


if __name__ == "__main__":
    util.main()
