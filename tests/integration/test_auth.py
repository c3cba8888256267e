#!/usr/bin/env python3
"""Authentication: a wrong password or unknown user is status 77 with a
clear message naming the account, nothing delivered or changed. The
password (and its SASL PLAIN encoding) never appears in -vv output, whether
it comes from the config, password_command, password_file or the
environment, on success or on failure."""

import base64
import os
import re

import util
from messages import ordinary_corpus

AUTH_WORDS = r"auth|login|password|credential|denied|refused|rejected"


def secret_forms(user, pw):
    """The password as it could leak: plain, base64, SASL PLAIN, LOGIN."""
    forms = [pw, base64.b64encode(pw.encode()).decode()]
    for authz in ("", user):
        forms.append(base64.b64encode(("%s\0%s\0%s" % (authz, user, pw)).encode()).decode())
    return forms


class Auth(util.IntegrationCase):

    def _wrong(self, proto, user, pw):
        for m in ordinary_corpus(2, seed=51):
            self.d.add_message(self.real_user, m.data)
        maildir = self.path("Maildir-" + proto)
        name = "wrong-" + proto
        self.config({name: self.account(user, pw, proto, deliver="maildir:" + maildir, keep=False)})
        r = self.run_config("--json", expect=util.EX_NOPERM)
        lines = [l for l in self.assertStderrNames(r, name, AUTH_WORDS) if re.search(AUTH_WORDS, l, re.I)]
        self.assertEqual(util.count_maildir(maildir), 0)
        self.assertErrorKind(r, name, "auth")
        self.assertEqual(r.json()["exit_status"], util.EX_NOPERM)
        self.note("%s user %s: exit 77: %r" % (proto, user, lines[0]))
        r = self.run_config("-vv", expect=util.EX_NOPERM)
        self.assertEqual(util.count_maildir(maildir), 0)
        for form in secret_forms(user, pw):
            util.assert_secret_absent(form, r.stdout, r.stderr, what="-vv output of a failed login")
        self.note("-vv of the failed login (%d bytes): no trace of the password" % len(r.stderr))

    def test_wrong_password(self):
        user, pw = self.new_user()
        self.real_user = user
        for proto in ("pop3s", "imaps"):
            self._wrong(proto, user, "Wrong-" + pw)
        self.assertEqual(self.d.count(user), 4, "mail changed by failed logins")

    def test_unknown_user(self):
        user, pw = self.new_user()
        self.real_user = user
        for proto in ("pop3s", "imaps"):
            self._wrong(proto, "nosuchuser", pw)

    def test_password_not_in_verbose_output(self):
        # "env-login": one-off account, password from PULLMAIL_PASSWORD, SASL
        # LOGIN (user name and password each sent base64-encoded on a line)
        sources = ["literal", "command", "file", "env", "env-login"]
        for i, source in enumerate(sources):
            for proto in ("pop3s", "imaps"):
                user, pw = self.new_user("v")
                self.state_dir = self.path("state-%s-%s" % (source, proto))
                for m in ordinary_corpus(2, seed=52 + i):
                    self.d.add_message(user, m.data)
                expected = util.expected_from_served(self.d.messages(user),
                                                     final_newline=proto == "pop3s")
                maildir = self.path("Maildir-%s-%s" % (source, proto))
                acc = self.account(user, None, proto, deliver="maildir:" + maildir)
                env = None
                if source == "literal":
                    acc["password"] = pw
                elif source == "command":
                    pwf = self.path("pw-%s-%s" % (source, proto))
                    with open(pwf, "w") as f:
                        f.write(pw + "\n")
                    acc["password_command"] = "cat " + pwf
                elif source == "file":
                    pwf = self.path("pw-%s-%s" % (source, proto))
                    with open(pwf, "w") as f:
                        f.write(pw + "\n")
                    os.chmod(pwf, 0o600)
                    acc["password_file"] = pwf
                if source.startswith("env"):
                    extra = ["--auth", "LOGIN"] if source == "env-login" else []
                    r = self.pullmail("--url", self.url(proto), "--user", user,
                                      "--deliver", "maildir:" + maildir, "--ca-file", self.d.ca_file,
                                      "--state-dir", self.state_dir, "-vv", *extra, password=pw, expect=0)
                else:
                    self.config({"verbose": acc})
                    r = self.run_config("-vv", expect=0, env=env)
                self.assertDelivered(util.maildir_messages(maildir), expected,
                                     "%s password from %s" % (proto, source))
                self.assertTrue(r.err.strip(), "-vv printed nothing on stderr: the check would be empty")
                for form in secret_forms(user, pw):
                    util.assert_secret_absent(form, r.stdout, r.stderr,
                                              what="-vv output (%s, password from %s)" % (proto, source))
                self.note("%s, password from %s: -vv wrote %d bytes, no trace of the password"
                          % (proto, source, len(r.stderr)))


if __name__ == "__main__":
    util.main()
