#!/usr/bin/env python3
"""Fault injection: the connection is cut in the middle of a session.

fakes/cutproxy.py sits between pullmail and Dovecot and closes both sides
(FIN or RST) after exactly N bytes of one direction. For every variant a
clean run through the proxy records the session; cut points are then chosen
on it:

  plaintext POP3 and IMAP (a Dovecot without TLS, tls = "off"): named points
  found in the recorded bytes (mid-greeting, mid-login, mid-RETR and
  mid-literal, mid-pipeline of RETR/DELE, before and inside the replies to
  DELE/STORE/EXPUNGE, QUIT sent but its reply lost, ...) plus points spread
  evenly over both directions;
  POP3S, IMAPS (implicit TLS) and POP3/IMAP with STARTTLS: the plaintext
  prefix (greeting, STLS/STARTTLS reply) and seeded points spread over the
  encrypted stream in both directions, including its last bytes.

For each cut, on a fresh mailbox with -K: the run must end with a clean
error (exit 75, a one-line message naming the account, nothing on stderr
but pullmail's own lines, no crash) or succeed when the cut only hit bytes
after the work was done; at that moment every message must be on the server
or complete in the target. A rerun without the proxy must then exit 0,
leave the server empty and the target with every message exactly once,
byte for byte, and nothing half-written.
"""

import os
import random
import shutil
import time

import util
from dovecot import Dovecot
from fakes import faultlib
from fakes.cutproxy import CutProxy, find_all
from fakes.faultlib import Totals, assess, read_target
from messages import ordinary_corpus

SEED = 7781
VERBOSE = os.environ.get("FAULT_VERBOSE") == "1"
SPREAD_PLAIN = 8   # evenly spread points per direction, plaintext variants
SPREAD_TLS = 9     # seeded random points per direction, TLS variants


class CutConnections(util.IntegrationCase):

    all_totals = []

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plain = Dovecot(ssl=False)
        cls.plain.start()
        cls.seq = 0
        cls.corpus = (faultlib.small_corpus(4, seed=SEED, prefix="cut-small") +
                      ordinary_corpus(3, seed=SEED, min_size=30000, max_size=60000, prefix="cut-big"))

    @classmethod
    def tearDownClass(cls):
        cls.plain.cleanup()
        util.log("\n=== connection-cut totals ===")
        for t in cls.all_totals:
            util.log(t.line())
        util.log("ALL: %d cuts tried, lost %d, duplicated %d, partial %d, other problems %d" % (
            sum(t.tried for t in cls.all_totals), sum(t.lost for t in cls.all_totals),
            sum(t.duplicated for t in cls.all_totals), sum(t.partial for t in cls.all_totals),
            sum(t.other for t in cls.all_totals)))
        super().tearDownClass()

    # ---- helpers ------------------------------------------------------------

    def _user(self, server):
        """A fresh mailbox. Names and passwords have a fixed length, so the
        client's byte offsets are the same in every session."""
        type(self).seq += 1
        user = "cut%05d" % self.seq
        pw = "pw-%05d-Xk29sLq" % self.seq
        server.add_user(user, pw)
        server.add_messages(user, [m.data for m in self.corpus])
        return user, pw

    def _args(self, server, proto, tls, port, user, pw, work, kind):
        """A config file naming the account "acc": the run through the proxy
        and the rerun straight to the server (another port) share its state."""
        target = os.path.join(work, "Maildir" if kind == "maildir" else "mail.mbox")
        args = faultlib.config_args(os.path.join(work, "config.toml"), "acc", "%s://127.0.0.1:%d" % (proto, port),
                                    user, pw, "%s:%s" % (kind, target), os.path.join(work, "state"),
                                    ca_file=server.ca_file if server.ssl else None, keep=False,
                                    tls="off" if tls == "off" else None, extra=["--json"],
                                    **({"auth": "plain"} if tls == "off" else {}))
        return args, target

    def _record(self, server, proto, tls, port_name):
        """A clean run through a non-cutting proxy: the session's bytes."""
        user, pw = self._user(server)
        expected = faultlib.expected_for(server, user, pop3=proto.startswith("pop3"))
        work = self.path("record-%s-%s" % (proto, tls))
        os.makedirs(work)
        with CutProxy(server.ports[port_name]) as p:
            args, target = self._args(server, proto, tls, p.port, user, pw, work, "maildir")
            r = faultlib.run(args, password=pw, timeout=120)
        self.assertEqual(r.rc, 0, r.describe())
        util.compare_messages(read_target("maildir", target).messages, expected, "recording run")
        self.assertEqual(len(p.transcripts), 1, "expected one connection")
        t = p.transcripts[0]
        return expected, bytes(t["c2s"]), bytes(t["s2c"])

    def _cut_once(self, server, proto, tls, port_name, expected, direction, spec, rst, kind, label, totals):
        user, pw = self._user(server)
        work = self.path("cut-%d" % self.seq)
        os.makedirs(work)
        problems = []
        with CutProxy(server.ports[port_name], direction=direction, cut_at=spec, rst=rst) as p:
            args, target = self._args(server, proto, tls, p.port, user, pw, work, kind)
            r = faultlib.run(args, password=pw, timeout=120)
        t = p.transcripts[0] if p.transcripts else {"cut": False, "at": None, "s2c": b""}
        label = "%s %s %s@%s%s %s" % (proto, tls, direction, t["at"], " RST" if rst else "", label)
        if not t["cut"]:
            # the session was shorter than the recorded one (or the marker
            # never came): nothing was cut, so this point says nothing
            self._not_cut.append(label)
            shutil.rmtree(work, ignore_errors=True)
            return
        if faultlib.crashed(r):
            problems.append("crash: exit %d\n%s" % (r.rc, r.err[-1500:]))
        elif r.rc == util.EX_UNAVAILABLE and direction == "s2c" and t["at"] == 0:
            pass  # reset before the server said anything: "unreachable" is fair
        elif r.rc not in (0, util.EX_TEMPFAIL):
            problems.append("exit %d, expected 75 (temporary) for a dropped connection: %s" % (
                r.rc, " | ".join(r.err.strip().splitlines()[-2:])))
        if r.rc != 0:
            lines = faultlib.account_lines(r)
            if not lines:
                problems.append("no error line naming the account: %r" % r.err[-500:])
        stray = faultlib.stray_stderr(r)
        if stray:
            problems.append("stderr lines not from pullmail: %r" % stray[:3])
        # (plaintext only: there the bytes after the last reply pullmail
        # waits for are known to be fewer than 100)
        if r.rc == 0 and tls == "off" and t["cut"] and direction == "s2c" and t["at"] < len(self._cur_s2c) - 100:
            problems.append("exit 0 although the server's bytes were cut %d bytes before the end" % (
                len(self._cur_s2c) - t["at"]))
        # at this moment nothing may be gone from both places
        on_server = faultlib.server_message_ids(server, user)
        a = assess(read_target(kind, target), expected,
                   also_present=[e for e in expected if util.message_id(e) in on_server])
        if a.lost:
            problems.append("after the cut, message(s) neither on the server nor delivered: %s" % a.lost)
        if a.partial:
            problems.append("after the cut, half-written data: %s" % a.partial[:2])
        # rerun without the proxy
        args2, _ = self._args(server, proto, tls, server.ports[port_name], user, pw, work, kind)
        r2 = faultlib.run(args2, password=pw, timeout=120)
        if r2.rc != 0:
            problems.append("rerun: exit %d: %s" % (r2.rc, " | ".join(r2.err.strip().splitlines()[-2:])))
        final = assess(read_target(kind, target), expected)
        left = len(server.maildir_files(user))
        if left:
            problems.append("%d message(s) left on the server after the rerun with -K" % left)
        first = (faultlib.account_lines(r) or [""])[0]
        totals.add("%s (%s; exit %d: %s)" % (label, kind, r.rc, first[:160]), final, problems)
        self._codes[r.rc] = self._codes.get(r.rc, 0) + 1
        if VERBOSE:
            util.log("      %s (%s): exit %d in %.2fs, rerun %.2fs: %s" % (label, kind, r.rc, r.seconds, r2.seconds,
                                                                   first[:150]))
        shutil.rmtree(work, ignore_errors=True)

    def _run_cuts(self, server, proto, tls, port_name, points_fn):
        t0 = time.monotonic()
        expected, c2s, s2c = self._record(server, proto, tls, port_name)
        self._cur_s2c = s2c
        self._codes = {}
        self._not_cut = []
        points = []
        missing = []
        seen = set()
        for name, direction, spec in points_fn(c2s, s2c):
            stream = c2s if direction == "c2s" else s2c
            if isinstance(spec, tuple):
                hits = find_all(stream, spec[0])
                if len(hits) <= spec[1]:
                    missing.append(name)
                    continue
                at = hits[spec[1]] + spec[2]
            else:
                at = spec = min(spec, len(stream))
            if (direction, at) in seen:
                continue
            seen.add((direction, at))
            points.append((name, direction, spec))
        self.assertLessEqual(len(missing), 1, "cut points not found in the recorded session: %s\nc2s: %r" % (
            missing, c2s[:800]))
        totals = Totals("cuts, %s tls=%s (c2s %d bytes, s2c %d bytes)" % (proto, tls, len(c2s), len(s2c)))
        self.all_totals.append(totals)
        rng = random.Random("%s-%s-%d" % (proto, tls, SEED))
        for i, (name, direction, spec) in enumerate(points):
            kind = "maildir" if i % 3 != 2 else "mbox"
            rst = rng.random() < 0.3
            self._cut_once(server, proto, tls, port_name, expected, direction, spec, rst, kind, name, totals)
        util.log("    %s; exit statuses of the cut runs: %s (%s)" % (
            totals.line(), dict(sorted(self._codes.items())), faultlib.seconds(t0)))
        if self._not_cut:
            util.log("      not counted, the session ended before the cut point: %s" % self._not_cut)
        self.assertLessEqual(len(self._not_cut), 2, "too many cut points never reached")
        for point, text in totals.failures[:40]:
            util.log("      at %s: %s" % (point, text))
        if totals.failures:
            self.fail(totals.report())

    # ---- cut points ------------------------------------------------------------
    # (name, direction, offset or marker (needle, nth, delta))

    @staticmethod
    def _spread(c2s, s2c, n):
        out = []
        for direction, total in (("c2s", len(c2s)), ("s2c", len(s2c))):
            for k in range(n):
                out.append(("spread %d/%d" % (k, n), direction, (total * k) // n))
        return out

    @staticmethod
    def _random(c2s, s2c, n, seed):
        rng = random.Random(seed)
        out = []
        for direction, total in (("c2s", len(c2s)), ("s2c", len(s2c))):
            for _ in range(n):
                out.append(("random", direction, rng.randrange(total)))
            # near the end: the replies to QUIT/LOGOUT (sessions differ from
            # the recorded one by a few bytes: Dovecot puts timings in them)
            out.append(("last 80 bytes missing", direction, max(0, total - 80)))
            out.append(("last 150 bytes missing", direction, max(0, total - 150)))
        out.append(("nothing at all", "s2c", 0))
        return out

    @staticmethod
    def _pop3_points(c2s, s2c):
        return [
            ("connect, nothing sent", "s2c", 0),
            ("mid-greeting", "s2c", 5),
            ("after greeting", "s2c", (b"\r\n", 0, 2)),
            ("mid-CAPA reply", "s2c", (b"PIPELINING", 0, 3)),
            ("mid-login command", "c2s", (b"AUTH ", 0, 7)),
            ("AUTH sent, reply lost", "c2s", (b"AUTH PLAIN\r\n", 0, 12)),
            ("credentials sent, reply lost", "c2s", (b"\r\nCAPA\r\n", 0, 2)),
            ("mid-login reply", "s2c", (b"Logged in", 0, 0)),
            ("mid-UIDL command", "c2s", (b"UIDL", 0, 2)),
            ("mid-UIDL listing", "s2c", (b"\r\n1 0000", 0, 5)),
            ("mid-pipelined RETRs", "c2s", (b"RETR ", 2, 3)),
            ("mid-RETR, first message", "s2c", (b" octets\r\n", 0, 200)),
            ("mid-RETR, big message", "s2c", (b" octets\r\n", 5, 20000)),
            ("mid-RETR, last message", "s2c", (b" octets\r\n", 6, 1000)),
            ("end of last RETR", "s2c", (b"\r\n.\r\n+OK Marked", 0, 3)),
            ("mid-DELE pipeline (client)", "c2s", (b"DELE ", 2, 3)),
            ("before DELE replies", "s2c", (b"+OK Marked", 0, 0)),
            ("mid-DELE replies", "s2c", (b"+OK Marked", 3, 5)),
            ("QUIT not sent", "c2s", (b"QUIT", 0, 0)),
            ("mid-QUIT", "c2s", (b"QUIT", 0, 2)),
            ("QUIT sent, reply lost", "c2s", (b"QUIT\r\n", 0, 6)),
            ("before QUIT reply", "s2c", (b"+OK Logging out", 0, 0)),
            ("mid-QUIT reply", "s2c", (b"+OK Logging out", 0, 6)),
            ("last byte of QUIT reply missing", "s2c", (b"messages deleted.\r\n", 0, 18)),
        ] + CutConnections._spread(c2s, s2c, SPREAD_PLAIN)

    @staticmethod
    def _imap_points(c2s, s2c):
        return [
            ("connect, nothing sent", "s2c", 0),
            ("mid-greeting", "s2c", 5),
            ("mid-login command", "c2s", (b"AUTHENTICATE ", 0, 14)),
            ("login sent, reply lost", "c2s", (b"P1 CAPABILITY", 0, 0)),
            ("mid-login reply", "s2c", (b"Logged in", 0, 0)),
            ("mid-CAPABILITY", "c2s", (b"P1 CAPABILITY", 0, 6)),
            ("mid-SELECT reply", "s2c", (b"UIDVALIDITY", 0, 4)),
            ("mid-listing", "s2c", (b"RFC822.SIZE", 0, 3)),
            ("mid-UID FETCH command", "c2s", (b"BODY.PEEK[]", 0, 4)),
            ("mid-literal, first message", "s2c", (b"BODY[] {", 0, 100)),
            ("mid-literal, big message", "s2c", (b"BODY[] {", 5, 25000)),
            ("end of last literal", "s2c", (b")\r\nP5 OK", 0, 0)),
            ("between FETCH responses", "s2c", (b"* 3 FETCH (UID 3 RFC822.SIZE", 1, 0)),
            ("before the FETCH completion", "s2c", (b"P5 OK Fetch", 0, 0)),
            ("mid-STORE command", "c2s", (b"UID STORE", 0, 6)),
            ("STORE sent, reply lost", "c2s", (b"P7 UID EXPUNGE", 0, 0)),
            ("mid-STORE reply", "s2c", (b"P6 OK", 0, 3)),
            ("mid-EXPUNGE command", "c2s", (b"UID EXPUNGE", 0, 5)),
            ("EXPUNGE sent, reply lost", "c2s", (b"P8 UID SEARCH", 0, 0)),
            ("SEARCH sent, reply lost", "c2s", (b"P9 LOGOUT", 0, 0)),
            ("before EXPUNGE responses", "s2c", (b" EXPUNGE\r\n", 0, -3)),
            ("mid-EXPUNGE responses", "s2c", (b" EXPUNGE\r\n", 3, -3)),
            ("before EXPUNGE completion", "s2c", (b"P7 OK", 0, 0)),
            ("mid-LOGOUT", "c2s", (b"P9 LOGOUT", 0, 4)),
            ("LOGOUT sent, reply lost", "c2s", (b"P9 LOGOUT\r\n", 0, 11)),
            ("before LOGOUT reply", "s2c", (b"* BYE", 0, 0)),
            ("last byte missing", "s2c", (b"P9 OK Logout completed", 0, 22)),
        ] + CutConnections._spread(c2s, s2c, SPREAD_PLAIN)

    @staticmethod
    def _tls_points(seed, starttls_marker=None, starttls_cmd=None):
        def fn(c2s, s2c):
            if starttls_marker:
                pts = [("mid-greeting", "s2c", 5),
                       ("before STARTTLS reply", "s2c", (starttls_marker, 0, 0)),
                       ("mid-STARTTLS command", "c2s", (starttls_cmd, 0, 2))]
            else:
                pts = [("mid-handshake (client)", "c2s", 100), ("mid-handshake (server)", "s2c", 300)]
            return pts + CutConnections._random(c2s, s2c, SPREAD_TLS, seed)
        return fn

    # ---- tests ------------------------------------------------------------------

    def test_pop3_plaintext(self):
        self._run_cuts(self.plain, "pop3", "off", "pop3", self._pop3_points)

    def test_imap_plaintext(self):
        self._run_cuts(self.plain, "imap", "off", "imap", self._imap_points)

    def test_pop3s_implicit_tls(self):
        self._run_cuts(self.d, "pop3s", "implicit", "pop3s", self._tls_points(SEED + 1))

    def test_imaps_implicit_tls(self):
        self._run_cuts(self.d, "imaps", "implicit", "imaps", self._tls_points(SEED + 2))

    def test_pop3_starttls(self):
        self._run_cuts(self.d, "pop3", "starttls", "pop3", self._tls_points(SEED + 3, b"+OK Begin TLS", b"STLS"))

    def test_imap_starttls(self):
        self._run_cuts(self.d, "imap", "starttls", "imap", self._tls_points(SEED + 4, b"OK Begin TLS", b"STARTTLS"))


if __name__ == "__main__":
    util.main()
