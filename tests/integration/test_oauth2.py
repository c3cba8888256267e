#!/usr/bin/env python3
"""OAuth2 logins against the real Dovecot (issue 12): XOAUTH2 and
OAUTHBEARER (RFC 7628) with `passdb { driver = oauth2 }`, whose tokens a
small loopback authorization server (fakes/oauth_server.py) introspects.

oauth2_token_command prints the access token; auto prefers OAUTHBEARER;
tokens of several KB work over POP3 (no initial response past 255 octets)
and IMAP (SASL-IR); a refused token makes pullmail run the command once
more, and a second refusal is exit 77 naming the account; the IMAP target
of a POP3 -> IMAP move logs in with a token too. No token appears in -vv,
--json or error output, in any encoding.

The built-in client (oauth2 = { provider = "custom", ... } against the
fake's endpoints): `pullmail auth` by the device flow (the test approves
the code) and by the authorization code with PKCE through the loopback
redirect (the test plays the browser); the grant file is 0600; a run
within the access token's lifetime asks no token endpoint; a token near
expiry is refreshed first and a rotated refresh token replaces the old one;
a token Dovecot refuses is refreshed once more; a revoked refresh token is
exit 77 saying to run `pullmail auth`. The client secret, refresh and access
tokens appear in no output (-vv, --json), argv or child environment."""

import base64
import os
import re
import stat
import subprocess
import threading
import urllib.error
import urllib.request

import ssl

import util
from fakes.fakepop3 import FakePop3
from fakes.oauth_server import OAuthServer
from fakes.tunnelproxy import TunnelProxy
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



CLIENT_SECRET = "cs-Very-Secret-client-7Qz"


class BuiltInOAuth2(util.IntegrationCase):
    """pullmail's own OAuth2 client against the fake authorization server."""

    @classmethod
    def setUpClass(cls):
        cls.oauth = OAuthServer().start()
        cls.oauth.client_secret = CLIENT_SECRET
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

    def setUp(self):
        super().setUp()
        self.oauth.expires_in = 3600
        self.oauth.rotate = False
        self.spy = self.path("spy")  # what the children saw: environment and their parent's argv
        script = self.path("secret.sh")
        with open(script, "w") as f:
            f.write('{ env; tr "\\0" " " < /proc/$PPID/cmdline; echo; } >> "%s"\necho %s\n' % (self.spy, CLIENT_SECRET))
        self.secret_command = "sh " + script

    def _config(self, user, proto="imaps"):
        base = self.oauth.url
        oauth2 = {"provider": "custom", "client_id": self.oauth.client_id,
                  "client_secret_command": self.secret_command, "token_url": base + "/token",
                  "device_url": base + "/device", "auth_url": base + "/authorize", "scope": "mail"}
        self.maildir = self.path("Maildir")
        mda = "mda:{ env; tr \"\\\\0\" \" \" < /proc/$PPID/cmdline; echo; echo DELIVERED; } >> %s; cat > /dev/null" % self.spy
        self.config({"o": self.account(user, None, proto, deliver=mda, oauth2=oauth2)})

    def _auth(self, *flags, browser=False, paste=False):
        """Runs `pullmail auth o`, approving like a user; returns (rc, stderr)."""
        util.require_binary()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULLMAIL_") and not k.startswith("XDG_")}
        env["HOME"] = self.home
        p = subprocess.Popen([util.BIN, "-f", self.config_path, "auth", "o", *flags], env=env,
                             stdin=subprocess.PIPE if paste else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        err = []
        timer = threading.Timer(30, p.kill)
        timer.start()
        try:
            for raw in p.stderr:
                line = raw.decode(errors="replace")
                err.append(line)
                m = re.search(r"enter the code (\S+)", line)
                if m:
                    self.assertTrue(self.oauth.approve(m.group(1), self.user))
                if paste and line.startswith(self.oauth.url + "/authorize?"):
                    # A browser elsewhere: it lands on an error page whose address the user copies.
                    self.oauth.next_user = self.user

                    class NoRedirect(urllib.request.HTTPRedirectHandler):
                        def redirect_request(self, *a, **k):
                            return None
                    try:
                        urllib.request.build_opener(NoRedirect).open(line.strip(), timeout=10)
                        self.fail("no redirect")
                    except urllib.error.HTTPError as e:
                        landed = e.headers["Location"]
                    self.assertTrue(landed.startswith("http://127.0.0.1:1/?"), landed)
                    p.stdin.write((landed + "\n").encode())
                    p.stdin.close()
                if browser and line.startswith(self.oauth.url + "/authorize?"):
                    self.oauth.next_user = self.user
                    with urllib.request.urlopen(line.strip(), timeout=10) as page:  # follows the redirect
                        self.assertIn(b"sign-in received", page.read())
            rc = p.wait()
        finally:
            timer.cancel()
        p.stdout.close()
        p.stderr.close()
        return rc, "".join(err)

    def _grant_file(self):
        path = os.path.join(self.state_dir, "o.oauth2")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path) as f:
            import json
            return json.load(f)

    def _secrets_absent(self, *texts):
        spy = ""
        if os.path.exists(self.spy):
            with open(self.spy) as f:
                spy = f.read()
        secrets_ = [CLIENT_SECRET] + list(self.oauth.tokens) + list(self.oauth.refresh) + self.seen_refresh
        for s in secrets_:
            for form in [s] + token_forms(self.user, s)[1:]:
                util.assert_secret_absent(form, spy, *texts, what="output, argv or child environment")
        return spy

    def _fetch(self, n, *args, expect=0):
        r = self.run_config("-vv", "--json", *args, expect=expect)
        self.seen_refresh.append(self._grant_file()["refresh_token"])
        return r

    def _signed_in(self, *flags, browser=False, paste=False, n=2, seed=80):
        self.user, _ = self.new_user("b")
        self.seen_refresh = []
        for m in ordinary_corpus(n, seed=seed):
            self.d.add_message(self.user, m.data)
        self._config(self.user)
        rc, err = self._auth(*flags, browser=browser, paste=paste)
        self.assertEqual(rc, 0, err)
        grant = self._grant_file()
        self.seen_refresh.append(grant["refresh_token"])
        self.assertIn(grant["refresh_token"], self.oauth.refresh)
        self._secrets_absent(err)
        return err

    def test_device_flow_then_fetch(self):
        err = self._signed_in()
        self.assertIn("enter the code", err)
        before = len(self.oauth.token_requests)
        r = self._fetch(2)
        self.assertEqual(len(self.oauth.token_requests), before, "a valid access token was refreshed anyway")
        spy = self._secrets_absent(r.stdout, r.stderr)
        self.assertEqual(spy.count("DELIVERED"), 2, "the MDA did not get both messages")
        self.assertIn(" -f ", spy, "the spy did not see pullmail's argv")
        grants = [q["grant_type"] for q in self.oauth.token_requests]
        self.assertIn("urn:ietf:params:oauth:grant-type:device_code", grants)
        self.note("device flow: approved, grant file 0600, fetch used the stored token; no secret anywhere")

    def test_browser_pkce_loopback_redirect(self):
        err = self._signed_in("--browser", browser=True)
        self.assertIn("open this address", err)
        self.assertEqual(self.oauth.token_requests[-1]["grant_type"], "authorization_code")
        r = self._fetch(2)
        self._secrets_absent(r.stdout, r.stderr)
        self.note("authorization code + PKCE S256 through the 127.0.0.1 redirect")

    def test_paste_mode(self):
        err = self._signed_in("--paste", paste=True)
        self.assertIn("paste here", err)
        self.assertEqual(self.oauth.token_requests[-1]["grant_type"], "authorization_code")
        r = self._fetch(2)
        self._secrets_absent(r.stdout, r.stderr)
        self.note("--paste: the redirect address pasted on stdin signed in")

    def test_refresh_ahead_of_expiry_saves_rotated_token(self):
        self.oauth.expires_in = 60  # inside the two minutes pullmail refreshes ahead
        self._signed_in()
        old = self._grant_file()["refresh_token"]
        self.oauth.rotate = True
        r = self._fetch(2)
        new = self._grant_file()["refresh_token"]
        self.assertNotEqual(new, old, "the rotated refresh token was not saved")
        self.assertNotIn(old, self.oauth.refresh)
        self.assertEqual(self.oauth.token_requests[-1]["grant_type"], "refresh_token")
        self._secrets_absent(r.stdout, r.stderr)
        self.note("refreshed ahead of expiry; rotated refresh token saved (0600)")

    def test_token_endpoint_through_the_account_proxy_only(self):
        self.oauth.expires_in = 60  # every run refreshes
        self._signed_in()
        # No proxy configured: $http_proxy and $https_proxy are not honoured
        # (a dead proxy there must not matter), as for the mail connections.
        dead = "http://127.0.0.1:9"
        before = len(self.oauth.token_requests)
        self.run_config(expect=0, env={"http_proxy": dead, "https_proxy": dead, "HTTPS_PROXY": dead,
                                       "ALL_PROXY": dead})
        self.assertEqual(len(self.oauth.token_requests), before + 1)
        # proxy = ...: the token endpoint goes through it, like the mail.
        proxy = TunnelProxy("http")
        self.addCleanup(proxy.close)
        with open(self.config_path) as f:
            text = f.read()
        with open(self.config_path, "w") as f:
            f.write(text.replace("[accounts.o]\n", "[accounts.o]\nproxy = \"%s\"\n" % proxy.url(), 1))
        self.run_config(expect=0)
        port = int(self.oauth.url.rsplit(":", 1)[1].split("/")[0])
        self.assertIn(port, [p for _, p in proxy.targets], proxy.targets)
        self.note("token endpoint: through the account's proxy; $http(s)_proxy ignored")

    def test_refused_access_token_is_refreshed_once(self):
        self._signed_in()
        for t in list(self.oauth.tokens):  # Dovecot stops accepting the stored token
            self.oauth.expiry[t] = 0
        before = len(self.oauth.token_requests)
        r = self._fetch(2)
        self.assertEqual(len(self.oauth.token_requests), before + 1)
        self._secrets_absent(r.stdout, r.stderr)
        self.note("access token refused by the server: refreshed once, logged in")

    def test_revoked_refresh_token_is_exit_77(self):
        self.oauth.expires_in = 60
        self._signed_in()
        self.oauth.revoke(self._grant_file()["refresh_token"])
        r = self.run_config("-vv", "--json", expect=util.EX_NOPERM)
        line = [l for l in self.assertStderrNames(r, "o", r"pullmail auth o") if "pullmail auth o" in l][0]
        self.assertErrorKind(r, "o", "auth")
        self.assertEqual(self.d.count(self.user), 2)
        self._secrets_absent(r.stdout, r.stderr)
        self.note("revoked refresh token: exit 77: %r" % line)


if __name__ == "__main__":
    util.main()
