#!/usr/bin/env python3
"""Certificate checks: without ca_file the self-signed server certificate is
refused (implicit TLS and STARTTLS, POP3 and IMAP); a trusted certificate
for the wrong host name is refused. Each failure: status 76, a TLS or
certificate message naming the account, no login (the password never
leaves), nothing delivered, nothing changed on the server."""

import os
import shutil

import util
from messages import ordinary_corpus
from util import Dovecot

CERT_WORDS = r"certificat|TLS|SSL|verif|trust|issuer"


class TlsErrors(util.IntegrationCase):

    def _expect_tls_failure(self, d, proto, ca_file, words=CERT_WORDS):
        user, pw = "tlsuser%s" % proto, "tls-Secret-%s" % proto
        d.add_user(user, pw)
        for m in ordinary_corpus(3, seed=41):
            d.add_message(user, m.data)
        flags = d.flags(user)
        maildir = self.path("Maildir-" + proto)
        acc = {"url": "%s://127.0.0.1:%d" % (proto, d.ports[proto]), "user": user, "password": pw,
               "deliver": "maildir:" + maildir, "keep": False}
        if ca_file:
            acc["ca_file"] = ca_file
        name = "bad-" + proto
        util.write_config(self.config_path, {name: acc}, state_dir=self.state_dir)
        mark = d.log_mark()
        r = self.run_config("--json", expect=util.EX_PROTOCOL)
        self.assertStderrNames(r, name, words)
        self.assertEqual(util.count_maildir(maildir), 0, "delivered over an untrusted connection")
        self.assertEqual(Dovecot.logins(d.settled_log(mark, user), user=user), [], "logged in over untrusted TLS")
        self.assertEqual(d.flags(user), flags, "server changed")
        util.assert_secret_absent(pw, r.stdout, r.stderr)
        self.assertErrorKind(r, name, "tls")
        self.assertEqual(self.json_account(r, name)["fetched"], 0)
        self.note("%s: exit 76, %r" % (proto, [l for l in r.err.splitlines() if name in l][0]))

    def test_self_signed_without_ca_file(self):
        for proto in ("pop3s", "imaps", "pop3", "imap"):
            self._expect_tls_failure(self.d, proto, None)

    def test_wrong_host_name(self):
        tmp = os.path.join(self.ws, "wrong-host")
        with Dovecot(tmp, cert_names=("DNS:wrong.example",), cert_cn="wrong.example", users=0) as d:
            for proto in ("pop3s", "imaps", "imap"):
                self._expect_tls_failure(d, proto, d.ca_file)
        shutil.rmtree(tmp, ignore_errors=True)

    def test_ca_file_of_another_server(self):
        tmp = os.path.join(self.ws, "other")
        os.makedirs(tmp)
        other_cert, _ = util.dovecot_mod.make_certificate(tmp)
        self._expect_tls_failure(self.d, "pop3s", other_cert)


if __name__ == "__main__":
    util.main()
