#!/usr/bin/env python3
"""Certificate checks: without ca_file the self-signed server certificate is
refused (implicit TLS and STARTTLS, POP3 and IMAP); a trusted certificate
for the wrong host name is refused. Each failure: status 76, a TLS or
certificate message naming the account, no login (the password never
leaves), nothing delivered, nothing changed on the server.

pullmail loads the CA certificates once per process and shares them between
connections: in one run, an account with ca_file and one without against the
same server must still get different answers, in either order and in
parallel; a ca_file that holds no certificate is a configuration error."""

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

    def test_trust_is_per_account_within_one_run(self):
        d = self.d
        served = {}
        accounts = {}
        for i, (proto, with_ca) in enumerate([("pop3s", True), ("imaps", False), ("imaps", True),
                                              ("pop3", False), ("imap", True), ("pop3s", False)]):
            user, pw = "shared%d" % i, "shared-Secret-%d" % i
            d.add_user(user, pw)
            msgs = [m.data for m in ordinary_corpus(2, seed=60 + i)]
            for m in msgs:
                d.add_message(user, m)
            served[user] = d.messages(user)
            acc = {"url": "%s://127.0.0.1:%d" % (proto, d.ports[proto]), "user": user, "password": pw,
                   "deliver": "maildir:" + self.path("Maildir-%d" % i), "keep": True}
            if with_ca:
                acc["ca_file"] = d.ca_file
            accounts["%s-%s" % ("trusted" if with_ca else "untrusted", i)] = acc
        util.write_config(self.config_path, accounts, state_dir=self.state_dir)
        for jobs in ("1", "6"):
            shutil.rmtree(self.state_dir, ignore_errors=True)
            for i in range(6):
                shutil.rmtree(self.path("Maildir-%d" % i), ignore_errors=True)
            r = self.run_config("--json", "-j", jobs, expect=util.EX_PROTOCOL)
            for name, acc in accounts.items():
                i = int(name.rsplit("-", 1)[1])
                maildir = self.path("Maildir-%d" % i)
                if "ca_file" in acc:
                    self.assertEqual(self.json_account(r, name).get("errors") or [], [], name)
                    self.assertDelivered(util.maildir_messages(maildir),
                                         util.expected_from_served(served[acc["user"]],
                                                                   final_newline=acc["url"].startswith("pop3")),
                                         "%s -j %s" % (name, jobs))
                else:
                    self.assertStderrNames(r, name, CERT_WORDS)
                    self.assertErrorKind(r, name, "tls")
                    self.assertEqual(util.count_maildir(maildir), 0, "%s: delivered over untrusted TLS" % name)
            util.assert_secret_absent("shared-Secret", r.stdout, r.stderr)
            self.note("-j %s: 3 accounts with ca_file delivered, 3 without refused (76)" % jobs)

    def test_ca_file_without_certificates(self):
        user, pw = "tlsgarbage", "garbage-Secret-1"
        self.d.add_user(user, pw)
        self.d.add_message(user, ordinary_corpus(1, seed=70)[0].data)
        bogus = self.path("not-a-cert.pem")
        with open(bogus, "w") as f:
            f.write("this is not a certificate\n")
        maildir = self.path("Maildir-garbage")
        util.write_config(self.config_path, {"garbage": {
            "url": "imaps://127.0.0.1:%d" % self.d.ports["imaps"], "user": user, "password": pw,
            "deliver": "maildir:" + maildir, "ca_file": bogus}}, state_dir=self.state_dir)
        r = self.run_config("--json", expect=util.EX_CONFIG)
        self.assertStderrNames(r, "garbage", r"ca_file .*not-a-cert\.pem")
        self.assertErrorKind(r, "garbage", "config")
        self.assertEqual(util.count_maildir(maildir), 0)
        util.assert_secret_absent(pw, r.stdout, r.stderr)
        self.note("ca_file without certificates: exit 78, %r" % r.err.strip().splitlines()[-1])


if __name__ == "__main__":
    util.main()
