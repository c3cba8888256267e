#!/usr/bin/env python3
"""Hostile servers (issue 15, items 4, 5, 11): what a server can make
pullmail hold in memory, how long it can hold a run, and how old a TLS
version it can talk pullmail into.

Memory (peak RSS measured with /usr/bin/time):
  IMAP: one listing response with 200 literals of 1 MiB, one of 30 text
    pieces of 8 MiB, a listing of more messages than the limit: each ends
    the account with a protocol error (76) naming the account and the limit,
    nothing delivered or deleted, and peak RSS stays far below what the
    server sent;
  POP3: a UIDL/LIST listing over the limit: the same; a listing of 100,000
    messages works; adopt with TOP replies of 5 MB each: headers are kept
    up to 256 KiB per message, the run succeeds in bounded memory.
  POP3 and IMAP: a check of a listing of 1,000,000 new messages works
    within a peak RSS of 200 MB.
Deadlines:
  a server that sends one byte a second (never silent for `timeout`) ends
    the run once it falls below min_rate over min_rate_window: exit 75, a
    message naming min_rate, nothing delivered, nothing deleted;
  SIGTERM/SIGINT while such a server trickles, or while it keeps its
    greeting back during the login: exit 75 within two seconds.
TLS:
  a server that offers only TLS 1.0/1.1 is refused (76, a message naming
    TLS 1.2) even when the system's OpenSSL configuration would allow it.
"""

import os
import signal
import ssl
import subprocess
import time
import warnings

import util
from fakes import faultlib
from fakes.fakeimap import FakeImap
from fakes.fakepop3 import FakePop3

RSS_BOUND_MB = 150
LISTING_1M_RSS_MB = 200  # man/pullmail.1: a listing of 1,000,000 messages works within 200 MB
MESSAGE = b"From: a@example.org\r\nSubject: hostile test\r\nMessage-ID: <h1@example.org>\r\n\r\nbody\r\n"


class HostileLimits(util.IntegrationCase):

    # ---- helpers ------------------------------------------------------------

    def _args(self, proto, srv, name="hostile", keep=False, extra=(), **settings):
        settings.setdefault("tls", "off")
        return faultlib.config_args(self.config_path, name, "%s://127.0.0.1:%d" % (proto, srv.port), srv.user,
                                    srv.password, "maildir:" + self.path("Maildir"), self.state_dir, keep=keep,
                                    extra=["--json"] + list(extra), **settings)

    def _measured(self, args, timeout=300, env=None):
        r, peak = faultlib.run_measured(args, env=env, timeout=timeout)
        self.assertFalse(faultlib.crashed(r), "crash:\n" + r.describe())
        util.log("    exit %d in %.1fs, peak RSS %.0f MB" % (r.rc, r.seconds, peak))
        return r, peak

    def _limit_error(self, r, peak, pattern, sent_mb):
        self.assertEqual(r.rc, util.EX_PROTOCOL, r.describe())
        self.assertStderrNames(r, "hostile", pattern)
        self.assertErrorKind(r, "hostile", "protocol")
        self.assertEqual(util.count_maildir(self.path("Maildir")), 0, "delivered something")
        self.assertLess(peak, RSS_BOUND_MB, "peak RSS %.0f MB for %d MB sent" % (peak, sent_mb))
        self.note("%d MB from the server: exit 76, peak RSS %.0f MB, %r" % (
            sent_mb, peak, [l for l in r.err.splitlines() if "hostile" in l][-1]))

    # ---- memory: IMAP -------------------------------------------------------

    def _imap_flood(self, flood, pattern, sent_mb):
        with FakeImap([MESSAGE]) as srv:
            srv.listing_flood = flood
            r, peak = self._measured(self._args("imap", srv))
            self._limit_error(r, peak, pattern, sent_mb)
            self.assertEqual(srv.commands(r"STORE|EXPUNGE"), [], "deleted something")

    def test_imap_response_of_many_literals(self):
        self._imap_flood(("literals", 200, 1 << 20), r"response .*larger than .*MiB", 200)

    def test_imap_response_of_many_text_pieces(self):
        self._imap_flood(("text", 30, 8 << 20), r"response .*larger than .*MiB", 240)

    def test_imap_listing_over_the_limit(self):
        self._imap_flood(("lines", 2100000), r"more than 2000000 messages", 2100000 * 37 >> 20)

    # ---- memory: POP3 -------------------------------------------------------

    def test_pop3_listing_over_the_limit(self):
        with FakePop3([("m1", MESSAGE)]) as srv:
            srv.synthetic_listing = 2100000
            r, peak = self._measured(self._args("pop3", srv))
            self._limit_error(r, peak, r"more than 2000000 messages", 2100000 * 30 >> 20)
            self.assertEqual(srv.commands("DELE"), [], "deleted something")

    def test_pop3_listing_of_100k_messages_works(self):
        with FakePop3([("m1", MESSAGE)]) as srv:
            srv.synthetic_listing = 100000
            r, peak = self._measured(self._args("pop3", srv, extra=["-c"]))
            self.assertEqual(r.rc, util.EX_OK, r.describe())
            self.assertEqual(self.json_account(r, "hostile")["new"], 100000)
            self.assertLess(peak, RSS_BOUND_MB)
            self.note("100,000-message listing counted in %.1fs, peak RSS %.0f MB" % (r.seconds, peak))

    def _million(self, proto, srv):
        """A check (-c) of a 1,000,000-message listing: every message is new,
        so the whole listing is planned for fetching."""
        r, peak = self._measured(self._args(proto, srv, extra=["-c"]), timeout=600)
        self.assertEqual(r.rc, util.EX_OK, r.describe())
        self.assertEqual(self.json_account(r, "hostile")["new"], 1000000)
        self.assertLessEqual(peak, LISTING_1M_RSS_MB, "peak RSS %.0f MB for a 1,000,000-message listing" % peak)
        self.note("%s: 1,000,000-message listing counted in %.1fs, peak RSS %.0f MB" % (proto, r.seconds, peak))

    def test_pop3_listing_of_1m_messages_in_bounded_memory(self):
        with FakePop3([("m1", MESSAGE)]) as srv:
            srv.synthetic_listing = 1000000
            self._million("pop3", srv)

    def test_imap_listing_of_1m_messages_in_bounded_memory(self):
        with FakeImap([MESSAGE]) as srv:
            srv.listing_flood = ("lines", 1000000)
            self._million("imap", srv)

    def test_pop3_adopt_with_huge_headers(self):
        msgs = [("u%03d" % i, MESSAGE.replace(b"<h1@", b"<h%d@" % i)) for i in range(100)]
        with FakePop3(msgs) as srv:
            srv.top_padding = 5 * 1000 * 1000
            r, peak = self._measured(["adopt", "hostile"] + self._args("pop3", srv, keep=True))
            self.assertEqual(r.rc, util.EX_OK, r.describe())
            self.assertLess(peak, RSS_BOUND_MB, "peak RSS %.0f MB for 500 MB of TOP replies" % peak)
            seen = [l for l in util.state_records(self.state_dir).get("hostile", []) if l.split(b" ")[1] == b"S"]
            self.assertEqual(len(seen), 100, "not every message adopted")
            self.assertEqual(srv.commands("RETR"), [], "adopt downloaded bodies")
            self.note("adopt over 100 TOP replies of 5 MB: exit 0, peak RSS %.0f MB" % peak)

    # ---- deadlines ----------------------------------------------------------

    def test_trickling_server_ends_by_min_rate(self):
        with FakePop3([("m1", MESSAGE)]) as srv:
            srv.trickle_retr = 1.0
            t0 = time.monotonic()
            r = faultlib.run(self._args("pop3", srv, timeout=5, min_rate=64, min_rate_window=5), timeout=60)
            took = time.monotonic() - t0
            self.assertEqual(r.rc, util.EX_TEMPFAIL, r.describe())
            self.assertStderrNames(r, "hostile", r"min_rate")
            self.assertLess(took, 20, "the 5 s rate window took %.1fs to trip" % took)
            self.assertEqual(util.count_maildir(self.path("Maildir")), 0, "a partial message was delivered")
            self.assertEqual(srv.commands("DELE"), [])
            self.assertEqual(srv.uidls(), ["m1"])
            self.note("1 byte/s with timeout = 5, min_rate = 64 over 5 s: exit 75 after %.1fs" % took)

    def test_run_timeout_bounds_a_connection_whatever_the_rate(self):
        with FakePop3([("m1", MESSAGE + b"x" * 3000 + b"\r\n")]) as srv:
            srv.trickle_retr = 0.01  # about 100 bytes/s: 30 s for this message
            t0 = time.monotonic()
            r = faultlib.run(self._args("pop3", srv, min_rate=0, run_timeout=3), timeout=60)
            took = time.monotonic() - t0
            self.assertEqual(r.rc, util.EX_TEMPFAIL, r.describe())
            self.assertStderrNames(r, "hostile", r"run_timeout = 3 s")
            self.assertLess(took, 6, "run_timeout = 3 took %.1fs" % took)
            self.assertEqual(srv.commands("DELE"), [])
            self.assertEqual(srv.uidls(), ["m1"])
            self.note("run_timeout = 3 against a slow RETR: exit 75 after %.1fs" % took)

    def _interrupt(self, sig, phase):
        """sig while the server trickles a RETR (phase "retr") or keeps its
        greeting back (phase "login")."""
        with FakePop3([("m1", MESSAGE)]) as srv:
            if phase == "retr":
                srv.trickle_retr = 1.0
                started = lambda: srv.commands("RETR")  # noqa: E731
            else:
                srv.greeting_delay = 30
                started = lambda: srv.sessions  # noqa: E731
            args = self._args("pop3", srv, timeout=30, connect_timeout=60)
            env = dict(os.environ, HOME=self.home)
            p = subprocess.Popen([util.BIN] + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not started():
                time.sleep(0.05)
            self.assertTrue(started(), "pullmail never got to the %s" % phase)
            time.sleep(1.5)  # inside the trickle or the wait for the greeting
            t0 = time.monotonic()
            p.send_signal(sig)
            try:
                _, err = p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                self.fail("pullmail ignored %s for 10 s (%s)" % (sig.name, phase))
            took = time.monotonic() - t0
            err = err.decode(errors="replace")
            self.assertEqual(p.returncode, util.EX_TEMPFAIL, err)
            self.assertIn("interrupted", err)
            self.assertLess(took, 2.0, "%s took %.2fs to end the run" % (sig.name, took))
            self.assertEqual(srv.commands("DELE"), [])
            self.assertEqual(util.count_maildir(self.path("Maildir")), 0)
            self.note("%s during the %s: exit 75 after %.2fs" % (sig.name, phase, took))

    def test_sigterm_during_trickle(self):
        self._interrupt(signal.SIGTERM, "retr")

    def test_sigint_during_trickle(self):
        self._interrupt(signal.SIGINT, "retr")

    def test_sigterm_during_login(self):
        self._interrupt(signal.SIGTERM, "login")

    # ---- TLS floor ----------------------------------------------------------

    def test_tls_below_1_2_is_refused_whatever_openssl_allows(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT@SECLEVEL=0")  # Debian's OpenSSL offers nothing below 1.2 otherwise
        ctx.load_cert_chain(self.d.cert_file, self.d.key_file)
        # A system configuration that lets OpenSSL speak TLS 1.0 (what
        # pullmail must not rely on the system to forbid).
        conf = self.path("openssl.cnf")
        with open(conf, "w") as f:
            f.write("openssl_conf = conf\n[conf]\nssl_conf = ssl\n[ssl]\nsystem_default = sys\n"
                    "[sys]\nMinProtocol = TLSv1\nCipherString = DEFAULT@SECLEVEL=0\n")
        with FakePop3([("m1", MESSAGE)]) as srv:
            srv.tls_context = ctx
            args = self._args("pop3s", srv, tls=None, ca_file=self.d.ca_file)
            r = faultlib.run(args, env={"OPENSSL_CONF": conf}, timeout=60)
            self.assertEqual(r.rc, util.EX_PROTOCOL, r.describe())
            self.assertStderrNames(r, "hostile", r"TLS 1\.2")
            self.assertErrorKind(r, "hostile", "tls")
            self.assertEqual(srv.commands(), [], "pullmail talked POP3 over TLS < 1.2")
            self.assertEqual(util.count_maildir(self.path("Maildir")), 0)
            self.note("TLS 1.0/1.1-only server: exit 76, %r" % r.err.strip().splitlines()[-1])


if __name__ == "__main__":
    util.main()
