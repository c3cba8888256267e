#!/usr/bin/env python3
"""proxy = "http://..." (CONNECT) and "socks5h://..." per account: the mail
travels through the proxy (it saw the server as the client named it; with
socks5h the name, resolved at the proxy), delivery is byte for byte, and
the server's certificate is verified exactly as without a proxy."""

import util
from fakes.tunnelproxy import TunnelProxy
from messages import ordinary_corpus


class Proxy(util.IntegrationCase):

    def _fetch_through(self, kind, scheme, proto):
        user, pw = self.new_user()
        for m in ordinary_corpus(6, seed=41):
            self.d.add_message(user, m.data)
        expected = util.expected_from_served(self.d.messages(user), final_newline=proto.startswith("pop3"))
        proxy = TunnelProxy(kind)
        self.addCleanup(proxy.close)
        maildir = self.path("Maildir-" + scheme + proto)
        self.config({"p": self.account(user, pw, proto, host="localhost", deliver="maildir:" + maildir,
                                       proxy=proxy.url(scheme))})
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "p")["fetched"], 6)
        self.assertDelivered(util.maildir_messages(maildir), expected, "%s through a %s proxy" % (proto, scheme))
        self.assertTrue(proxy.targets, "the proxy was not used")
        self.assertEqual({h for h, _ in proxy.targets}, {"localhost"}, proxy.targets)
        self.note("%s via %s: targets %s" % (proto, scheme, sorted(set(proxy.targets))))

    def test_imaps_through_http_connect(self):
        self._fetch_through("http", "http", "imaps")

    def test_pop3s_through_socks5h(self):
        self._fetch_through("socks5", "socks5h", "pop3s")

    def test_certificate_still_verified(self):
        user, pw = self.new_user()
        self.d.add_message(user, ordinary_corpus(1, seed=42)[0].data)
        proxy = TunnelProxy("http")
        self.addCleanup(proxy.close)
        # no ca_file: the test server's self-signed certificate is not trusted
        self.config({"p": self.account(user, pw, "imaps", host="localhost", ca=False,
                                       deliver="maildir:" + self.path("M"), proxy=proxy.url())})
        r = self.run_config(expect=76)
        self.assertTrue(proxy.targets, "the proxy was not used")
        self.assertEqual(self.d.messages(user) and len(self.d.messages(user)), 1, "the message was not kept")
        self.assertIn("certificate", r.err.lower(), r.describe())


if __name__ == "__main__":
    util.main()
