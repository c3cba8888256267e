#!/usr/bin/env python3
"""Fault injection: servers that misbehave in ways Dovecot cannot be made to.

fakes/fakepop3.py and fakes/fakeimap.py are small plaintext servers on
loopback (tls = "off"; pullmail warns about plaintext) whose misbehaviour
each test scripts. Expected bytes are the served bytes with CRLF -> LF.

POP3:
  duplicate UIDLs: the messages sharing one are left alone (never RETR, never
    DELE with -K), a warning names the UIDL, the others are delivered;
  a message listed, then missing (RETR -ERR "no such message") and a RETR
    refused for server trouble: that one is skipped with a warning naming
    it, not deleted, the others delivered and deleted; pullmail's contract
    (intake.cpp failed(): "not an account error") is exit 0;
    once the server hands it out, the next run delivers it;
  QUIT answered -ERR after the DELEs: the deletions were not committed, so
    --json "deleted" must be 0 and the exit status non-zero; a rerun against
    a server that accepts QUIT deletes them without delivering them again;
  a message with a 1 MB line: delivered byte for byte;
  a 1 MB status line: a clean error or correct handling, no crash, no hang;
  a RETR cut short by a closed connection: exit 75, nothing half-written,
    nothing deleted that was not delivered; the next run completes.
IMAP:
  UIDVALIDITY changes between runs (all UIDs renumbered, 2 new messages):
    the delivered ones are recognised by their header fingerprint and not
    downloaded or delivered again, the new ones are;
  unsolicited FETCH (FLAGS) and EXPUNGE responses in the middle of the
    body fetch: every message still there delivered once, byte for byte,
    the expunged one reported, nothing partial;
  UID given after the BODY[] literal: delivered correctly;
  an untagged response line of 1 MB: handled, or a clean error;
  a literal announced larger than the data sent, then the connection
    closes: a clean temporary error (75), nothing partial (Maildir and
    mbox), nothing deleted that was not delivered; the next run completes;
  an untagged BYE, then the connection closes: exit 75 and the error shows
    the server's BYE text, sanitised (not just "closed unexpectedly").
"""

import time

import util
from fakes import faultlib
from fakes.fakeimap import FakeImap
from fakes.fakepop3 import FakePop3
from messages import ordinary_corpus


def crlf(data):
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def corpus(n, seed, prefix, min_size=300, max_size=3000):
    return [crlf(m.data) for m in ordinary_corpus(n, seed=seed, min_size=min_size, max_size=max_size,
                                                  prefix=prefix)]


class FakeServers(util.IntegrationCase):

    # ---- helpers ------------------------------------------------------------

    def _run(self, proto, srv, kind="maildir", keep=False, extra=(), timeout=60, name="out"):
        target = self.path(name + (".mbox" if kind == "mbox" else ""))
        args = faultlib.oneoff("%s://127.0.0.1:%d" % (proto, srv.port), srv.user, "%s:%s" % (kind, target),
                               self.path("state"), keep=keep, extra=["--tls", "off", "--auth", "user", "--json"] + list(extra))
        t0 = time.monotonic()
        r = faultlib.run(args, password=srv.password, timeout=timeout)
        self.assertFalse(faultlib.crashed(r), "crash:\n" + r.describe())
        self.assertFalse(faultlib.stray_stderr(r), "stray stderr:\n" + r.describe())
        self.assertLess(time.monotonic() - t0, timeout, "too slow")
        return r, target

    def _acc(self, r):
        j = r.json()
        self.assertEqual(len(j["accounts"]), 1, r.out)
        return j["accounts"][0]

    def _contents(self, kind, target):
        c = faultlib.read_target(kind, target)
        self.assertEqual(c.partials, [], "half-written data in the target")
        return c.messages

    def _warned(self, r, *words):
        lines = faultlib.warning_lines(r)
        hit = [l for l in lines if all(w.lower() in l.lower() for w in words)]
        self.assertTrue(hit, "no warning containing %r:\n%s" % (words, r.err))
        return hit[0]

    # ---- POP3 -------------------------------------------------------------------

    def test_pop3_duplicate_uidls(self):
        msgs = corpus(5, 1, "dupuidl")
        srv = FakePop3([("u-1", msgs[0]), ("same", msgs[1]), ("u-3", msgs[2]), ("same", msgs[3]),
                        ("u-5", msgs[4])]).start()
        self.addCleanup(srv.stop)
        r, target = self._run("pop3", srv)
        self.assertEqual(r.rc, 0, r.describe())
        w = self._warned(r, "same", "UIDL")
        util.compare_messages(self._contents("maildir", target), [util.lf(m) for m in (msgs[0], msgs[2], msgs[4])],
                              "duplicate UIDLs")
        self.assertEqual(sorted(srv.commands("RETR")), [b"RETR 1", b"RETR 3", b"RETR 5"])
        self.assertEqual(sorted(srv.commands("DELE")), [b"DELE 1", b"DELE 3", b"DELE 5"])
        self.assertEqual(srv.uidls(), ["same", "same"])
        self.assertEqual(self._acc(r)["skipped"], 2, r.out)
        self.note("duplicate UIDL: both left on the server untouched (%s)" % w)

    def _retr_refused(self, text, vanish_afterwards):
        msgs = corpus(4, 2 + vanish_afterwards, "retr%d" % vanish_afterwards)
        srv = FakePop3([("u-%d" % i, m) for i, m in enumerate(msgs)]).start()
        self.addCleanup(srv.stop)
        srv.retr_reply["u-2"] = text
        r, target = self._run("pop3", srv)
        self.assertEqual(r.rc, 0, "contract: a message the server will not hand out is no account error\n" +
                         r.describe())
        w = self._warned(r, "message 3", text.decode()[5:])
        acc = self._acc(r)
        # the refused message counts as failed, not as deliberately skipped
        self.assertEqual((acc["fetched"], acc["deleted"], acc["failed"], acc["skipped"]), (3, 3, 1, 0), r.out)
        self.assertNotIn(b"DELE 3", srv.commands("DELE"))
        self.assertEqual(srv.uidls(), ["u-2"])
        util.compare_messages(self._contents("maildir", target), [util.lf(m) for i, m in enumerate(msgs) if i != 2],
                              "others delivered")
        self.note("RETR %r: skipped with a warning (%s), kept on the server, exit 0" % (text, w[:80]))
        if vanish_afterwards:
            srv.messages = []  # another client deleted it meanwhile
            r, _ = self._run("pop3", srv)
            self.assertEqual((r.rc, self._acc(r)["fetched"]), (0, 0), r.describe())
            self.note("the vanished message is simply gone on the next run")
        else:
            del srv.retr_reply["u-2"]
            r, _ = self._run("pop3", srv)
            self.assertEqual((r.rc, self._acc(r)["fetched"], self._acc(r)["deleted"]), (0, 1, 1), r.describe())
            util.compare_messages(self._contents("maildir", target), [util.lf(m) for m in msgs], "after recovery")
            self.assertEqual(srv.uidls(), [])
            self.note("once the server hands it out, the next run delivers it")

    def test_pop3_listed_then_missing(self):
        self._retr_refused(b"-ERR no such message", vanish_afterwards=True)

    def test_pop3_retr_err(self):
        self._retr_refused(b"-ERR [SYS/TEMP] Internal error occurred", vanish_afterwards=False)

    def test_pop3_quit_err_after_dele(self):
        msgs = corpus(4, 4, "quiterr")
        srv = FakePop3([("u-%d" % i, m) for i, m in enumerate(msgs)]).start()
        self.addCleanup(srv.stop)
        srv.quit_reply = b"-ERR [SYS/TEMP] could not commit deletions"
        r, target = self._run("pop3", srv)
        acc = self._acc(r)
        self.assertNotEqual(r.rc, 0, "QUIT -ERR: deletions did not happen, the exit status must say so\n" +
                            r.describe())
        self.assertEqual(acc["deleted"], 0, "json 'deleted' counts deletions the server never committed: " + r.out)
        self.assertEqual(acc["fetched"], 4, r.out)
        self.assertEqual(len(srv.commands("DELE")), 4)
        self.assertEqual(len(srv.uidls()), 4)
        self.assertTrue(faultlib.account_lines(r), r.describe())
        self.note("QUIT -ERR: exit %d, deleted 0: %s" % (r.rc, faultlib.account_lines(r)[0][:120]))
        srv.quit_reply = b"+OK bye"
        r, _ = self._run("pop3", srv)
        acc = self._acc(r)
        self.assertEqual((r.rc, acc["fetched"], acc["deleted"]), (0, 0, 4), r.describe())
        self.assertEqual(srv.uidls(), [])
        util.compare_messages(self._contents("maildir", target), [util.lf(m) for m in msgs], "no duplicates")
        self.note("the rerun deletes them without delivering them again")

    def test_pop3_one_megabyte_line_in_message(self):
        msgs = corpus(3, 5, "longline")
        long_msg = crlf(b"Message-ID: <longline-1mb@corpus.pullmail.test>\nSubject: long line\n\n" +
                        b"x" * (1024 * 1024) + b"\nend\n")
        srv = FakePop3([("u-0", msgs[0]), ("u-1", long_msg), ("u-2", msgs[1]), ("u-3", msgs[2])]).start()
        self.addCleanup(srv.stop)
        r, target = self._run("pop3", srv)
        self.assertEqual(r.rc, 0, r.describe())
        util.compare_messages(self._contents("maildir", target), [util.lf(m) for m in [long_msg] + msgs],
                              "1 MB line")
        self.assertEqual(srv.uidls(), [])
        self.note("a message with a 1 MB line is delivered byte for byte")

    def test_pop3_one_megabyte_status_line(self):
        msgs = corpus(3, 6, "longstatus")
        srv = FakePop3([("u-%d" % i, m) for i, m in enumerate(msgs)]).start()
        self.addCleanup(srv.stop)
        srv.long_reply["LIST"] = 1024 * 1024
        r, target = self._run("pop3", srv, timeout=60)
        if r.rc == 0:
            util.compare_messages(self._contents("maildir", target), [util.lf(m) for m in msgs], "1 MB status line")
            self.note("1 MB status line: handled")
        else:
            self.assertIn(r.rc, (util.EX_PROTOCOL, util.EX_TEMPFAIL), r.describe())
            self.assertTrue(faultlib.account_lines(r), r.describe())
            self.assertEqual(len(srv.uidls()), 3, "messages deleted after a protocol error")
            self.assertEqual(self._contents("maildir", target), [])
            self.note("1 MB status line: clean error, exit %d: %s" % (r.rc, faultlib.account_lines(r)[0][:120]))
        srv.long_reply.clear()
        r, _ = self._run("pop3", srv)
        self.assertEqual(r.rc, 0, r.describe())
        util.compare_messages(self._contents("maildir", target), [util.lf(m) for m in msgs], "after the fix")

    def _retr_cut(self, kind):
        msgs = corpus(5, 7, "retrcut-" + kind, min_size=5000, max_size=9000)
        srv = FakePop3([("u-%d" % i, m) for i, m in enumerate(msgs)]).start()
        self.addCleanup(srv.stop)
        srv.cut_retr["u-2"] = 3000
        r, target = self._run("pop3", srv, kind=kind)
        self.assertEqual(r.rc, util.EX_TEMPFAIL, r.describe())
        self.assertTrue(faultlib.account_lines(r), r.describe())
        got = self._contents(kind, target)
        a = faultlib.assess(faultlib.read_target(kind, target), [util.lf(m) for m in msgs],
                            also_present=[util.lf(m) for _, m in srv.messages])
        self.assertTrue(a.clean, a.summary())
        self.assertNotIn(util.lf(msgs[2]), got)
        self.note("RETR cut after 3000 bytes (%s): exit 75, %d whole messages delivered, none half-written, "
                  "%d still on the server" % (kind, len(got), len(srv.uidls())))
        srv.cut_retr.clear()
        r, _ = self._run("pop3", srv, kind=kind)
        self.assertEqual(r.rc, 0, r.describe())
        util.compare_messages(self._contents(kind, target), [util.lf(m) for m in msgs], "after the rerun")
        self.assertEqual(srv.uidls(), [])

    def test_pop3_retr_cut_maildir(self):
        self._retr_cut("maildir")

    def test_pop3_retr_cut_mbox(self):
        self._retr_cut("mbox")

    # ---- IMAP ---------------------------------------------------------------------

    def test_imap_uidvalidity_change(self):
        old = corpus(3, 10, "uidv-old")
        new = corpus(2, 11, "uidv-new")
        srv = FakeImap(old, uidvalidity=1111).start()
        self.addCleanup(srv.stop)
        r, target = self._run("imap", srv, keep=True)
        self.assertEqual((r.rc, self._acc(r)["fetched"]), (0, 3), r.describe())
        srv.renumber(2222, first_uid=50)
        for m in new:
            srv.add(m)
        before = len(srv.commands(r"BODY\.PEEK\[\]"))
        r, _ = self._run("imap", srv, keep=True)
        self.assertEqual((r.rc, self._acc(r)["fetched"]), (0, 2), r.describe())
        w = self._warned(r, "UIDVALIDITY")
        fetches = srv.commands(r"BODY\.PEEK\[\]")[before:]
        self.assertEqual(len(fetches), 1, fetches)
        self.assertEqual(fetches[0].split()[3], b"53:54", "downloaded again: %r" % fetches)
        util.compare_messages(self._contents("maildir", target), [util.lf(m) for m in old + new],
                              "after the UIDVALIDITY change")
        self.note("UIDVALIDITY 1111 -> 2222: %s" % w[40:160])
        r, _ = self._run("imap", srv, keep=False)
        acc = self._acc(r)
        self.assertEqual((r.rc, acc["fetched"], acc["deleted"]), (0, 0, 5), r.describe())
        self.assertEqual(srv.uids(), [])
        util.compare_messages(self._contents("maildir", target), [util.lf(m) for m in old + new], "after -K")

    def test_dovecot_pop3_then_imap(self):
        """The same mechanism against Dovecot: an account that switches from
        POP3 to IMAP (keys unrelated) must recognise what POP3 delivered."""
        user, pw = self.new_user("sw")
        self.d.add_messages(user, [m.data for m in ordinary_corpus(3, seed=16, prefix="switch")])
        expected = faultlib.expected_for(self.d, user, pop3=False)
        target = self.path("switch")
        runs = []
        for proto in ("pop3s", "imaps"):
            # one account (one state file) whose URL changes
            args = faultlib.config_args(self.path("switch.toml"), "switch", self.url(proto), user, pw,
                                        "maildir:" + target, self.path("state-switch"), ca_file=self.d.ca_file,
                                        keep=True, extra=["--json"])
            r = faultlib.run(args)
            self.assertEqual(r.rc, 0, r.describe())
            runs.append(r)
        self.assertEqual(self._acc(runs[1])["fetched"], 0,
                         "after POP3 delivered them, IMAP fetched them again (header fingerprints not used):\n" +
                         runs[1].describe())
        util.compare_messages(self._contents("maildir", target), expected, "POP3 then IMAP")

    def test_imap_unsolicited_responses_mid_fetch(self):
        msgs = corpus(6, 12, "unsol")
        srv = FakeImap(msgs).start()
        self.addCleanup(srv.stop)
        srv.before_body[2] = [("raw", b"* 3 FETCH (FLAGS (\\Seen \\Flagged))"),
                              ("raw", b"* 1 FETCH (UID 1 FLAGS (\\Seen))")]
        srv.before_body[4] = [("expunge", 5), ("raw", b"* 5 FETCH (UID 6 FLAGS (\\Answered))")]
        srv.before_body[6] = [("raw", b"* OK [ALERT] still here")]
        r, target = self._run("imap", srv)
        self.assertEqual(r.rc, 0, r.describe())
        got = self._contents("maildir", target)
        util.compare_messages(got, [util.lf(m) for i, m in enumerate(msgs) if i != 4],
                              "unsolicited FETCH/EXPUNGE mid-fetch")
        self._warned(r, "UID 5")
        self.assertEqual(srv.uids(), [])
        self.note("unsolicited FLAGS/EXPUNGE/ALERT mid-fetch: 5 delivered once, the expunged one reported")

    def test_imap_uid_after_literal(self):
        msgs = corpus(4, 13, "uidafter")
        srv = FakeImap(msgs).start()
        self.addCleanup(srv.stop)
        srv.uid_after_literal = True
        r, target = self._run("imap", srv)
        self.assertEqual(r.rc, 0, r.describe())
        util.compare_messages(self._contents("maildir", target), [util.lf(m) for m in msgs], "UID after literal")
        self.assertEqual(srv.uids(), [])

    def test_imap_one_megabyte_untagged_line(self):
        msgs = corpus(3, 14, "imaplong")
        srv = FakeImap(msgs).start()
        self.addCleanup(srv.stop)
        srv.long_untagged["FETCH"] = 1024 * 1024
        r, target = self._run("imap", srv)
        if r.rc == 0:
            util.compare_messages(self._contents("maildir", target), [util.lf(m) for m in msgs], "1 MB line")
            self.assertEqual(srv.uids(), [])
            self.note("1 MB untagged line: handled")
        else:
            self.assertIn(r.rc, (util.EX_PROTOCOL, util.EX_TEMPFAIL), r.describe())
            self.assertEqual(len(srv.uids()), 3)
            self.note("1 MB untagged line: clean error %d" % r.rc)

    def _literal_cut(self, kind):
        msgs = corpus(5, 15, "litcut-" + kind, min_size=4000, max_size=8000)
        srv = FakeImap(msgs).start()
        self.addCleanup(srv.stop)
        srv.cut_literal[3] = (len(msgs[2]) + 5000, 1000)
        r, target = self._run("imap", srv, kind=kind)
        self.assertEqual(r.rc, util.EX_TEMPFAIL, r.describe())
        self.assertTrue(faultlib.account_lines(r), r.describe())
        got = self._contents(kind, target)
        self.assertNotIn(util.lf(msgs[2]), got)
        a = faultlib.assess(faultlib.read_target(kind, target), [util.lf(m) for m in msgs],
                            also_present=[util.lf(d) for d in srv.contents()])
        self.assertTrue(a.clean, a.summary())
        self.note("literal {%d} with 1000 bytes then close (%s): exit 75, %d whole messages, nothing partial" % (
            len(msgs[2]) + 5000, kind, len(got)))
        srv.cut_literal.clear()
        r, _ = self._run("imap", srv, kind=kind)
        self.assertEqual(r.rc, 0, r.describe())
        util.compare_messages(self._contents(kind, target), [util.lf(m) for m in msgs], "after the rerun")
        self.assertEqual(srv.uids(), [])

    def test_imap_bye_text_in_error(self):
        msgs = corpus(2, 16, "bye")
        srv = FakeImap(msgs).start()
        self.addCleanup(srv.stop)
        srv.bye_on["UID FETCH"] = b"System shutting down for maintenance \x1b[31mnow"
        r, target = self._run("imap", srv)
        self.assertEqual(r.rc, util.EX_TEMPFAIL, r.describe())
        lines = faultlib.account_lines(r)
        self.assertTrue(any("System shutting down for maintenance" in l for l in lines), r.describe())
        self.assertNotIn("\x1b", r.err, "the BYE text reached stderr unsanitised")
        self.assertEqual(len(srv.uids()), 2)
        self.note("untagged BYE: exit 75, the error quotes the server's BYE text, sanitised")

    def test_imap_literal_cut_maildir(self):
        self._literal_cut("maildir")

    def test_imap_literal_cut_mbox(self):
        self._literal_cut("mbox")


if __name__ == "__main__":
    util.main()
