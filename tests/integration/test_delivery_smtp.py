#!/usr/bin/env python3
"""POP3S -> SMTP against a small fake SMTP server (fakes/fakesmtp.py), for
what a real server does not do on demand:

  - 4xx at the end of the data: the message stays on the server (even with
    keep = false), exit 75, and the next run delivers it;
  - 5xx: kept on the server, exit 73, the server's words on stderr naming
    the account;
  - byte-exact data over DATA (dot-stuffing) and over BDAT (CHUNKING);
  - 8-bit header fields: MAIL FROM carries SMTPUTF8 when the server offers
    it, and not when it does not (the message is then sent unchanged, with
    a warning); BODY=8BITMIME when offered.
"""

import ssl

import util
from fakes.fakesmtp import FakeSmtp
from fakes.tunnelproxy import TunnelProxy
from messages import strange_corpus


def wire(served):
    """What the server must receive for a message POP3 served: the CRLF
    bytes, ending in CRLF."""
    return served if served.endswith(b"\r\n") else served + b"\r\n"


class SmtpDelivery(util.IntegrationCase):

    def smtp_account(self, user, pw, server, **extra):
        return self.account(user, pw, "pop3s", deliver="smtp://127.0.0.1:%d" % server.port,
                            recipient="me@example.org", **extra)

    def mailbox(self, messages):
        user, pw = self.new_user()
        self.d.add_messages(user, messages)
        return user, pw, [m[1] for m in self.d.messages(user)]

    def check_exact(self, extensions):
        corpus = [m.data for m in strange_corpus(include_huge=False)]
        user, pw, served = self.mailbox(corpus)
        with FakeSmtp(extensions=extensions) as s:
            self.config({"smtp": self.smtp_account(user, pw, s)})
            self.run_config(expect=0)
            got = [data for _, _, data in s.messages]
            util.compare_messages(got, [wire(m) for m in served], "SMTP %s" % (extensions,))
            self.assertTrue(all(rc == [b"RCPT TO:<me@example.org>"] for _, rc, _ in s.messages))
            bdat = any(c.startswith(b"BDAT") for c in s.commands)
            self.assertEqual(bdat, "CHUNKING" in extensions)
        self.note("%d messages byte for byte over %s" % (len(corpus), "BDAT" if bdat else "DATA"))

    def test_exact_over_data(self):
        self.check_exact(("PIPELINING", "8BITMIME"))

    def test_exact_over_bdat(self):
        self.check_exact(("PIPELINING", "CHUNKING", "8BITMIME"))

    def test_exact_without_pipelining(self):
        self.check_exact(())

    def _three(self, tag):
        return [b"From: a@example.net\r\nMessage-ID: <%s%d@t>\r\nSubject: %d\r\n\r\nbody\r\n" % (tag, i, i)
                for i in range(3)]

    def test_temporary_refusal_kept_and_retried(self):
        user, pw, served = self.mailbox(self._three(b"tmp"))
        with FakeSmtp() as s:
            s.refuse[b"<tmp1@t>"] = "451 4.3.0 try again later"
            self.config({"smtp": self.smtp_account(user, pw, s, keep=False)})
            r = self.run_config(expect=75)
            self.assertStderrNames(r, "smtp", "try again later")
            self.assertEqual(len(s.messages), 2)
            self.assertEqual(self.d.count(user), 1, "the refused message must stay on the server")
            s.refuse.clear()
            self.run_config(expect=0)
            self.assertEqual(len(s.messages), 3)
            self.assertEqual(self.d.count(user), 0)
        self.note("451: exit 75, kept on the server, delivered by the next run")

    def test_permanent_refusal_kept_and_reported(self):
        user, pw, served = self.mailbox(self._three(b"perm"))
        with FakeSmtp(extensions=("PIPELINING", "CHUNKING")) as s:
            s.refuse[b"<perm2@t>"] = "554 5.7.1 rejected by policy"
            self.config({"smtp": self.smtp_account(user, pw, s, keep=False)})
            r = self.run_config("--json", expect=73)
            self.assertStderrNames(r, "smtp", "rejected by policy")
            self.assertErrorKind(r, "smtp", "delivery")
            self.assertEqual(len(s.messages), 2)
            self.assertEqual(self.d.count(user), 1, "the refused message must stay on the server")
        self.note("554: exit 73 with the server's words, kept on the server")

    def test_starttls_and_auth(self):
        user, pw, served = self.mailbox(self._three(b"auth"))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.d.cert_file, self.d.key_file)
        secret = "smtp-Secret-4711"
        with FakeSmtp(starttls=ctx, auth=("relay", secret)) as s:
            acc = self.smtp_account(user, pw, s)
            acc["deliver"] = {"url": "smtp://localhost:%d" % s.port, "tls": "starttls", "user": "relay",
                              "password": secret, "ca_file": self.d.ca_file}
            self.config({"smtp": acc})
            r = self.run_config("-vvv", expect=0)
            self.assertEqual(len(s.messages), 3)
            self.assertEqual(s.tls_sessions, 1)
            self.assertEqual(s.authenticated, ["relay"])
            util.assert_secret_absent(secret, r.err, r.out, what="pullmail -vvv output")
        self.note("STARTTLS (certificate verified against ca_file), AUTH PLAIN, 3 delivered, password masked at -vvv")

    def test_starttls_required_but_not_offered(self):
        user, pw, served = self.mailbox(self._three(b"tls"))
        with FakeSmtp() as s:
            acc = self.smtp_account(user, pw, s, keep=False)
            acc["deliver"] = {"url": acc["deliver"], "tls": "starttls"}
            self.config({"smtp": acc})
            r = self.run_config(expect=76)
            self.assertStderrNames(r, "smtp", "delivery target")
            self.assertEqual(s.messages, [])
            self.assertFalse(any(c.startswith(b"MAIL") for c in s.commands), s.commands)
            self.assertEqual(self.d.count(user), 3)
        self.note("tls = starttls without STARTTLS on offer: exit 76, nothing sent, nothing deleted")

    def test_auth_never_in_clear_when_starttls_stripped(self):
        # An attacker deleted STARTTLS from the EHLO reply; the server still
        # offers AUTH. A relay with a user and no tls setting must require
        # STARTTLS and send neither AUTH nor the password.
        user, pw, served = self.mailbox(self._three(b"strip"))
        secret = "smtp-Secret-0815"
        with FakeSmtp(auth=("relay", secret), auth_in_clear=True) as s:
            acc = self.smtp_account(user, pw, s, keep=False)
            acc["deliver"] = {"url": "smtp://127.0.0.1:%d" % s.port, "user": "relay", "password": secret}
            self.config({"smtp": acc})
            r = self.run_config(expect=76)
            self.assertStderrNames(r, "smtp", "delivery target")
            self.assertEqual(s.authenticated, [])
            self.assertFalse(any(c.upper().startswith(b"AUTH") for c in s.commands), s.commands)
            self.assertEqual(s.messages, [])
            self.assertEqual(self.d.count(user), 3)
        self.note("relay user without tls setting, STARTTLS stripped: exit 76, no AUTH sent, nothing deleted")

    def test_relay_without_user_through_proxy(self):
        # mx.test exists only behind the proxy: a direct connection fails.
        user, pw, served = self.mailbox(self._three(b"proxy"))
        with FakeSmtp() as s:
            proxy = TunnelProxy("socks5", hosts={"mx.test": "127.0.0.1"})
            self.addCleanup(proxy.close)
            acc = self.smtp_account(user, pw, s, keep=False)
            acc["deliver"] = {"url": "smtp://mx.test:%d" % s.port, "proxy": proxy.url("socks5h")}
            self.config({"smtp": acc})
            r = self.run_config(expect=0)
            self.assertEqual(len(s.messages), 3)
            self.assertEqual(set(proxy.targets), {("mx.test", s.port)})
            self.assertEqual(self.d.count(user), 0)
            # No STARTTLS on offer: delivered in clear, and the user is told.
            self.assertIn("mail travels unencrypted to the delivery target", r.err)
        self.note("deliver = { url = smtp://..., proxy = socks5h://... } without user: through the proxy, warned: no STARTTLS")

    def test_8bit_headers_smtputf8(self):
        msg = "From: Jörg <joerg@example.net>\r\nMessage-ID: <utf8@t>\r\nSubject: Grüße\r\n\r\nBody ü\r\n"
        for offered in (True, False):
            user, pw, served = self.mailbox([msg.encode("utf-8")])
            exts = ("PIPELINING", "8BITMIME") + (("SMTPUTF8",) if offered else ())
            with FakeSmtp(extensions=exts) as s:
                self.config({"smtp": self.smtp_account(user, pw, s)})
                # Own state per mailbox: two users made in the same second
                # get the same UIDVALIDITY, hence the same POP3 UIDLs.
                r = self.run_config("--state-dir", self.path("state-%s" % offered), expect=0)
                self.assertEqual(len(s.messages), 1)
                mail, _, data = s.messages[0]
                self.assertEqual(data, wire(served[0]))
                self.assertIn(b"BODY=8BITMIME", mail)
                self.assertEqual(b"SMTPUTF8" in mail, offered, mail)
                if not offered:
                    self.assertIn("SMTPUTF8", r.err)
        self.note("8-bit header: SMTPUTF8 when offered, not otherwise (warned); bytes unchanged")

    def test_lmtp_partial_success_resends_only_owed(self):
        """LMTP: 250 for one recipient, 451 for the other. The message stays
        on the source (keep = false), and the next run sends it to the
        recipient still owed only; then it is deleted."""
        user, pw, served = self.mailbox(self._three(b"part"))
        with FakeSmtp(extensions=("PIPELINING", "8BITMIME"), lmtp=True) as s:
            s.refuse_for[(b"<part1@t>", b"b@example.org")] = "451 4.2.2 mailbox busy"
            acc = self.account(user, pw, "pop3s", deliver="lmtp://127.0.0.1:%d" % s.port,
                               recipient=["a@example.org", "b@example.org"], keep=False)
            self.config({"lmtp": acc})
            r = self.run_config(expect=75)
            self.assertStderrNames(r, "lmtp", "mailbox busy")
            self.assertEqual(self.d.count(user), 1, "the message owed to b@ must stay on the source")
            s.refuse_for.clear()
            self.run_config(expect=0)
            got = sorted((a.decode(), m.decode()) for a, m in s.deliveries)
            want = sorted((a, "<part%d@t>" % i) for i in range(3) for a in ("a@example.org", "b@example.org"))
            self.assertEqual(got, want, "each recipient must get each message exactly once")
            rcpts = [c for c in s.commands if c.startswith(b"RCPT")]
            self.assertEqual(len(rcpts), 7, rcpts)
            self.assertEqual(self.d.count(user), 0, "delivered to every recipient: deleted on the source")
            r = self.run_config(expect=0)
            self.assertEqual(len(s.deliveries), 6, "a third run sent mail again")
        self.note("LMTP 250 + 451: kept, the next run sends to the owed recipient only, then deletes")


if __name__ == "__main__":
    util.main()
