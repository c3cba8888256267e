#!/usr/bin/env python3
"""OAuth2 logins against the real Dovecot (issue 12): XOAUTH2 and
OAUTHBEARER (RFC 7628) with `passdb { driver = oauth2 }`, whose tokens a
small loopback authorization server (fakes/oauth_server.py) introspects.

oauth2_token_command prints the access token; auto prefers OAUTHBEARER;
tokens of several KB work over POP3 (no initial response past 255 octets)
and IMAP (SASL-IR); a refused token makes pullmail run the command once
more, and a second refusal is exit 77 naming the account; the IMAP target
of a POP3 -> IMAP move logs in with a token too. No token appears in -vv,
--json or error output, in any encoding."""

import base64
import os
import re

import ssl

import util
from fakes.fakepop3 import FakePop3
from fakes.oauth_server import OAuthServer
from messages import ordinary_corpus


def token_forms(user, token):
    forms = [token]
    for payload in ("user=%s\x01auth=Bearer %s\x01\x01" % (user, token),):
        forms.append(base64.b64encode(payload.encode()).decode())
    forms.append(base64.b64encode(token.encode()).decode())
    return forms


class OAuth2(util.IntegrationCase):

    @classmethod
    def setUpClass(cls):
        cls.oauth = OAuthServer().start()
        cls.DOVECOT = {"oauth2_url": cls.oauth.url}
        try:
            super().setUpClass()
        except BaseException:
            cls.oauth.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.oauth.stop()

    def token_command(self, *tokens):
        """A command printing tokens[0] on its first run, tokens[1] on the
        second, ... (the last one from then on); returns (command, runs())."""
        tokens_file = self.path("tokens")
        count_file = self.path("runs")
        with open(tokens_file, "w") as f:
            f.write("\n".join(tokens) + "\n")
        script = self.path("token.sh")
        with open(script, "w") as f:
            f.write('echo run >> "%s"\nn=$(wc -l < "%s")\nm=$(wc -l < "%s")\n'
                    '[ "$n" -gt "$m" ] && n=$m\nsed -n "${n}p" "%s"\n'
                    % (count_file, count_file, tokens_file, tokens_file))

        def runs():
            if not os.path.exists(count_file):
                return 0
            with open(count_file) as f:
                return len(f.read().splitlines())
        return "sh " + script, runs

    def _account(self, user, proto, command, maildir, **extra):
        acc = self.account(user, None, proto, deliver="maildir:" + maildir, oauth2_token_command=command, **extra)
        return acc

    def _fetch(self, proto, size=64, auth=None, mech=None):
        user, _ = self.new_user("o")
        for m in ordinary_corpus(3, seed=71):
            self.d.add_message(user, m.data)
        expected = util.expected_from_served(self.d.messages(user), final_newline=proto.startswith("pop3"))
        token = self.oauth.issue(user, size)
        command, runs = self.token_command(token)
        maildir = self.path("Maildir-" + proto)
        extra = {"auth": auth} if auth else {}
        self.config({"o": self._account(user, proto, command, maildir, keep=False, **extra)})
        r = self.run_config("-vv", "--json", expect=0)
        self.assertDelivered(util.maildir_messages(maildir), expected, "%s OAuth2 -> Maildir" % proto)
        self.assertEqual(self.d.count(user), 0)
        self.assertEqual(runs(), 1)
        self.assertIn(token, self.oauth.introspected, "Dovecot never asked about the token")
        for form in token_forms(user, token):
            util.assert_secret_absent(form, r.stdout, r.stderr, what="-vv/--json of an OAuth2 login")
        used = [l for l in r.err.splitlines() if re.search(r"C: (L1 AUTHENTICATE|AUTH) ", l)]
        self.assertTrue(used and mech in used[0], "expected %s in %r" % (mech, used))
        self.note("%s, %d-byte token: %r" % (proto, len(token), used[0]))

    def test_imaps_auto_prefers_oauthbearer(self):
        self._fetch("imaps", mech="OAUTHBEARER")

    def test_pop3s_xoauth2_large_token(self):
        self._fetch("pop3s", size=6000, auth="xoauth2", mech="AUTH XOAUTH2")

    def test_imaps_xoauth2_large_token(self):
        self._fetch("imaps", size=6000, auth="xoauth2", mech="XOAUTH2")

    def test_pop3s_oauthbearer(self):
        self._fetch("pop3s", mech="OAUTHBEARER")

    def test_refused_token_reruns_the_command_once(self):
        user, _ = self.new_user("r")
        for m in ordinary_corpus(2, seed=72):
            self.d.add_message(user, m.data)
        stale = self.oauth.issue(user)
        self.oauth.revoke(stale)
        fresh = self.oauth.issue(user)
        command, runs = self.token_command(stale, fresh)
        maildir = self.path("Maildir-r")
        self.config({"r": self._account(user, "imaps", command, maildir)})
        r = self.run_config("-vv", expect=0)
        self.assertEqual(util.count_maildir(maildir), 2, r.describe())
        self.assertEqual(runs(), 2, "the token command was not rerun after the refusal")
        for t in (stale, fresh):
            for form in token_forms(user, t):
                util.assert_secret_absent(form, r.stdout, r.stderr)
        self.note("a revoked token: the command ran again, the fresh token logged in")

    def test_token_refused_twice_is_exit_77(self):
        user, _ = self.new_user("x")
        self.d.add_message(user, ordinary_corpus(1, seed=73)[0].data)
        bad = self.oauth.issue(user)
        self.oauth.revoke(bad)
        command, runs = self.token_command(bad)
        maildir = self.path("Maildir-x")
        self.config({"x": self._account(user, "pop3s", command, maildir)})
        r = self.run_config("--json", expect=util.EX_NOPERM)
        line = [l for l in self.assertStderrNames(r, "x", r"access token was not accepted") if "not accepted" in l][0]
        self.assertErrorKind(r, "x", "auth")
        self.assertEqual(runs(), 2, "the command must run once more, and only once")
        self.assertEqual(util.count_maildir(maildir), 0)
        self.assertEqual(self.d.count(user), 1)
        for form in token_forms(user, bad):
            util.assert_secret_absent(form, r.stdout, r.stderr)
        self.note("refused twice: exit 77: %r" % line)

    def test_pop3_into_imap_target_with_token(self):
        src, src_pw = self.new_user("s")
        dst, _ = self.new_user("t")
        for m in ordinary_corpus(3, seed=74):
            self.d.add_message(src, m.data)
        token = self.oauth.issue(dst)
        command, runs = self.token_command(token)
        target = {"url": "imaps://127.0.0.1:%d/INBOX" % self.d.ports["imaps"], "user": dst,
                  "oauth2_token_command": command, "ca_file": self.d.ca_file}
        self.config({"move": self.account(src, src_pw, "pop3s", deliver=target, keep=False)})
        r = self.run_config("-vv", expect=0)
        self.assertEqual(self.d.count(dst), 3, r.describe())
        self.assertEqual(self.d.count(src), 0)
        for form in token_forms(dst, token):
            util.assert_secret_absent(form, r.stdout, r.stderr)
        self.note("POP3 -> IMAP target with oauth2_token_command: 3 messages moved")

    def test_microsoft_pop3_xoauth2_on_a_second_line(self):
        """Microsoft's POP3 (CAPA "SASL PLAIN XOAUTH2", no initial response
        accepted): AUTH XOAUTH2, "+ ", then the response on its own line."""
        msg = b"From: a@example.org\r\nSubject: ms\r\nMessage-ID: <ms1@example.org>\r\n\r\nbody\r\n"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.d.cert_file, self.d.key_file)
        with FakePop3([("m1", msg)], user="me@contoso.example",
                      capa=(b"TOP", b"UIDL", b"SASL PLAIN XOAUTH2")) as srv:
            srv.tls_context = ctx
            srv.greeting = b"+OK The Microsoft Exchange POP3 service is ready."
            token = "eyJ0eXAiOiJKV1Qi" + "x" * 1500
            srv.xoauth2_token = token
            command, runs = self.token_command(token)
            maildir = self.path("Maildir-ms")
            self.config({"ms": {"url": "pop3s://127.0.0.1:%d" % srv.port, "user": srv.user,
                                "oauth2_token_command": command, "ca_file": self.d.ca_file,
                                "deliver": "maildir:" + maildir}})
            r = self.run_config("-vv", expect=0)
            self.assertEqual(util.maildir_messages(maildir), [util.lf(msg)])
            auth = [l for l in srv.commands() if l.upper().startswith(b"AUTH")]
            self.assertEqual(auth, [b"AUTH XOAUTH2"], "not the two-line form: %r" % auth)
            for form in token_forms(srv.user, token):
                util.assert_secret_absent(form, r.stdout, r.stderr)
        self.note("Microsoft-style POP3: %r then the response on a second line" % auth[0])


if __name__ == "__main__":
    util.main()
