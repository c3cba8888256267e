#!/usr/bin/env python3
"""Migrations: an IMAP server as the delivery target (POP3S -> IMAPS and
IMAPS -> IMAPS), with no duplicates on reruns, interruptions, a target that
already holds some of the mail, and a POP3 -> IMAP switch of an ordinary
Maildir account (which must not download old bodies again).

Hostile input never becomes IMAP commands on the target: a Date header with
negative or overflowing fields (any sender can send one), a Date with an
11-digit day or year (which once ended every run with exit 70), and an IMAP
source whose INTERNALDATE and FLAGS carry literals with CRLF or flags Dovecot
answers with BAD. After each run no folder the message bodies try to CREATE
exists on the target and every message is there byte for byte."""

import datetime
import json
import os
import re
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import messages  # noqa: E402
from dovecot import imap_quote, mutf7_encode  # noqa: E402
from fakes import faultlib  # noqa: E402
from fakes.fakeimap import FakeImap  # noqa: E402
from util import IntegrationCase, main, EX_OK, EX_CANTCREAT, EX_SOFTWARE, state_records, toml_value  # noqa: E402


def instant(imap_date):
    """An IMAP date-time as a point in time (servers may store it in UTC)."""
    return datetime.datetime.strptime(imap_date.strip(), "%d-%b-%Y %H:%M:%S %z").timestamp()


def crlf_wire(data):
    """What a server serves for stored bytes: bare LF -> CRLF."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


class MigrateTest(IntegrationCase):

    def migration_config(self, src_user, src_pw, dst_user, dst_pw, target="Archive/old-isp", proto="pop3s",
                         keep=True, extra="", target_url=None):
        """target_url: a plaintext imap:// target (a fake server) instead of Dovecot's imaps."""
        acc = self.account(src_user, src_pw, proto=proto, keep=keep)
        lines = ["state_dir = %s" % toml_value(self.state_dir), "", "[accounts.mig]"]
        for k, v in acc.items():
            if k != "deliver":
                lines.append("%s = %s" % (k, toml_value(v)))
        lines.append(extra)
        lines.append("deliver = { url = %s, user = %s, password = %s, %s }" % (
            toml_value(target_url or "imaps://127.0.0.1:%d/%s" % (self.d.ports["imaps"], target)),
            toml_value(dst_user), toml_value(dst_pw),
            'tls = "off", auth = "user"' if target_url else "ca_file = %s" % toml_value(self.d.ca_file)))
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.config_path, 0o600)  # it holds passwords: pullmail refuses it readable by others

    def target_folder(self, user, folder):
        return self.d.messages(user, folder.replace("/", "."))

    def internaldates(self, user, folder):
        c = self.d.imap(user)
        try:
            typ, data = c.select(imap_quote(mutf7_encode(folder)), readonly=True)
            self.assertEqual(typ, "OK")
            if int(data[0]) == 0:
                return {}
            typ, data = c.uid("FETCH", "1:*", "(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            out = {}
            for item in data:
                if isinstance(item, tuple):
                    head = item[0].decode()
                    date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)
                    mid = re.search(rb"<[^>]+>", item[1])
                    out[mid.group(0).decode() if mid else None] = date
            return out
        finally:
            c.logout()

    def assertExactlyOnce(self, got, want, what):
        """got, want: lists of bytes; same multiset."""
        self.assertEqual(len(got), len(want), "%s: %d messages, expected %d" % (what, len(got), len(want)))
        self.assertEqual(sorted(got), sorted(want), "%s: contents differ" % what)
        self.note("%s: %d messages, each exactly once, byte for byte" % (what, len(want)))

    # --------------------------------------------------------------------

    def test_pop3s_to_imaps_reruns_and_kills(self):
        src, src_pw = self.new_user("src")
        dst, dst_pw = self.new_user("dst")
        corpus = [m.data for m in messages.strange_corpus(include_huge=False)]
        corpus += [m.data for m in messages.ordinary_corpus(200 - len(corpus), seed=11)]
        dated = (b"Received: from a by b; Tue, 1 Jul 2003 10:52:37 +0200\n"
                 b"Date: Mon, 30 Jun 2003 09:00:00 +0000\nMessage-ID: <dated@x>\nSubject: dated\n\nbody\n")
        corpus.append(dated)
        self.d.add_messages(src, corpus)
        served = [m[1] for m in self.d.messages(src)]
        # Over POP3 a message without a final newline gains one (RFC 1939 cannot say otherwise).
        want = [s if s.endswith(b"\r\n") else s + b"\r\n" for s in served]

        self.migration_config(src, src_pw, dst, dst_pw)
        r = self.run_config("--json", expect=EX_OK)
        self.assertEqual(self.json_account(r, "mig")["fetched"], len(corpus))
        got = [m[1] for m in self.target_folder(dst, "Archive/old-isp")]
        self.assertExactlyOnce(got, want, "POP3S -> IMAPS")
        seen = [l.split(b" ") for l in state_records(self.state_dir)["mig"] if l.split(b" ")[1] == b"S"]
        self.assertEqual(len(seen), len(corpus))
        appended = {(int(r[5].split(b":")[1]), int(r[5].split(b":")[2])) for r in seen if len(r) > 5}
        self.assertEqual(len(appended), len(corpus), "every seen record names its APPENDUID")
        self.note("the state records source message -> target APPENDUID")
        dates = self.internaldates(dst, "Archive.old-isp")
        self.assertEqual(instant(dates["<dated@x>"]), instant("01-Jul-2003 10:52:37 +0200"))
        self.note("INTERNALDATE from the first Received header")

        r = self.run_config("--json", expect=EX_OK)
        self.assertEqual(self.json_account(r, "mig")["fetched"], 0)
        self.assertEqual(len(self.target_folder(dst, "Archive/old-isp")), len(corpus))
        self.note("a rerun appends nothing")

        # Interrupted migrations into fresh targets, resumed until complete.
        for kill_after in (5, 40, 211, 407):
            dst2, dst2_pw = self.new_user("dst")
            self.state_dir = self.path("state-kill-%d" % kill_after)
            self.migration_config(src, src_pw, dst2, dst2_pw, target="INBOX")
            r = self.run_config(env={"PULLMAIL_TEST_KILL_AFTER": str(kill_after)})
            self.assertEqual(r.rc, -9, "expected pullmail to be killed at step %d\n%s" % (kill_after, r.describe()))
            self.run_config(expect=EX_OK)
            self.run_config(expect=EX_OK)
            got = [m[1] for m in self.target_folder(dst2, "INBOX")]
            self.assertExactlyOnce(got, want, "killed after step %d, resumed" % kill_after)
        self.assertEqual([m[1] for m in self.d.messages(src)], served)
        self.note("source untouched (keep)")

    def test_imaps_to_imaps_folder_tree_flags_dates(self):
        src, src_pw = self.new_user("src")
        dst, dst_pw = self.new_user("dst")
        corpus = [m.data for m in messages.ordinary_corpus(12, seed=21)]
        folders = {"INBOX": corpus[:4], "Sent": corpus[4:8], "Lists.cpp": corpus[8:]}
        flag_sets = ["\\Seen", "\\Seen \\Answered", "\\Flagged", "\\Draft", ""]
        for folder, msgs in folders.items():
            if folder != "INBOX":
                self.d.create_folder(src, folder)
            for i, m in enumerate(msgs):
                self.d.add_message(src, m, folder=folder, flags=flag_sets[i % len(flag_sets)])
        self.migration_config(src, src_pw, dst, dst_pw, target="Mirror", proto="imaps",
                              extra='folders = ["*"]')
        self.run_config(expect=EX_OK)
        mapping = {"INBOX": "Mirror", "Sent": "Mirror.Sent", "Lists.cpp": "Mirror.Lists.cpp"}
        for sfolder, tfolder in mapping.items():
            source = self.d.messages(src, sfolder)
            target = self.d.messages(dst, tfolder)
            self.assertExactlyOnce([m[1] for m in target], [m[1] for m in source], "%s -> %s" % (sfolder, tfolder))
            sflags = sorted((m[1], sorted(f for f in m[2] if f != "\\Recent")) for m in source)
            tflags = sorted((m[1], sorted(f for f in m[2] if f != "\\Recent")) for m in target)
            self.assertEqual(sflags, tflags, "flags differ in %s" % tfolder)
            sd, td = self.internaldates(src, sfolder), self.internaldates(dst, tfolder)
            self.assertEqual({k: instant(v) for k, v in sd.items()}, {k: instant(v) for k, v in td.items()})
        self.note("folder tree, flags and INTERNALDATE preserved")
        self.assertEqual(self.run_config("--json", expect=EX_OK).json()["accounts"][0]["fetched"], 0)
        self.note("rerun appends nothing")

    def test_target_already_holds_half(self):
        src, src_pw = self.new_user("src")
        dst, dst_pw = self.new_user("dst")
        corpus = [m.data for m in messages.ordinary_corpus(30, seed=31)]
        self.d.add_messages(src, corpus)
        self.d.create_folder(dst, "Old")
        for m in corpus[::2]:
            self.d.add_message(dst, m, folder="Old")
        mark = self.d.log_mark()
        self.migration_config(src, src_pw, dst, dst_pw, target="Old")
        r = self.run_config("--json", "-v", expect=EX_OK)
        # pullmail's own session with the target, before the test reads it.
        stats = self.d.logout_stats(self.d.settled_log(mark, dst), user=dst, protocol="imap")
        self.assertEqual(len(stats), 1, stats)
        self.assertEqual(stats[0][2]["body_count"], 0, stats)
        got = [m[1] for m in self.target_folder(dst, "Old")]
        self.assertExactlyOnce(got, [crlf_wire(m) for m in corpus], "target holding half before")
        self.note("the target's messages were recognised from headers only (body_count 0)")

    def test_switch_pop3_to_imap_downloads_no_old_bodies(self):
        user, pw = self.new_user()
        corpus = [m.data for m in messages.ordinary_corpus(20, seed=41)]
        self.d.add_messages(user, corpus[:15])
        maildir = self.path("Maildir")
        self.config({"home": self.account(user, pw, proto="pop3s", deliver="maildir:" + maildir)})
        self.run_config(expect=EX_OK)
        self.d.add_messages(user, corpus[15:])
        self.config({"home": self.account(user, pw, proto="imaps", deliver="maildir:" + maildir)})
        mark = self.d.log_mark()
        r = self.run_config("--json", expect=EX_OK)
        self.assertEqual(self.json_account(r, "home")["fetched"], 5)
        stats = self.d.logout_stats(self.d.settled_log(mark, user), user=user, protocol="imap")
        self.assertEqual(sum(s[2]["body_count"] for s in stats), 5, stats)
        from util import read_maildir
        got = [data for _, data in read_maildir(maildir)]
        self.assertExactlyOnce(got, [m.replace(b"\r\n", b"\n") for m in corpus], "Maildir after the switch")
        self.note("after pop3s -> imaps only the 5 new bodies were downloaded")

    def test_target_unreachable_or_refusing_keeps_source(self):
        src, src_pw = self.new_user("src")
        dst, dst_pw = self.new_user("dst")
        corpus = [m.data for m in messages.ordinary_corpus(6, seed=51)]
        self.d.add_messages(src, corpus)
        before = [m[1] for m in self.d.messages(src)]
        # Unreachable target.
        self.migration_config(src, src_pw, dst, dst_pw, keep=False)
        with open(self.config_path) as f:
            text = f.read()
        with open(self.config_path, "w") as f:
            f.write(text.replace(":%d/" % self.d.ports["imaps"], ":1/"))
        r = self.run_config("--json")
        self.assertNotEqual(r.rc, EX_OK)
        self.assertStderrNames(r, "mig", "delivery target|connect")
        self.assertEqual([m[1] for m in self.d.messages(src)], before)
        self.note("unreachable target: error %d, source untouched with keep = false" % r.rc)
        # A target that refuses APPEND: its folder is not writable by the server.
        self.migration_config(src, src_pw, dst, dst_pw, target="Locked", keep=False)
        self.d.create_folder(dst, "Locked")
        locked = self.d.folder_path(dst, "Locked")
        modes = {}
        for sub in ("", "tmp", "new", "cur"):
            p = os.path.join(locked, sub)
            modes[p] = os.stat(p).st_mode
            os.chmod(p, 0o500)
        try:
            r = self.run_config("--json")
        finally:
            for p, m in modes.items():
                os.chmod(p, stat.S_IMODE(m))
        self.assertNotEqual(r.rc, EX_OK, r.describe())
        self.assertErrorKind(r, "mig", {"delivery"})
        self.assertEqual([m[1] for m in self.d.messages(src)], before)
        self.note("APPEND refused: exit %d, source untouched with keep = false" % r.rc)
        r = self.run_config("--json", expect=EX_OK)
        self.assertEqual(len(self.target_folder(dst, "Locked")), len(corpus))
        self.assertEqual(self.d.messages(src), [])
        self.note("after the target recovers: everything moved once, source emptied")

    # ---- hostile input (issue 15) -------------------------------------------

    def assertNothingInjected(self, user, marker):
        folders = self.d.list_folders(user)
        self.assertEqual([f for f in folders if marker in f.upper()], [],
                         "message bytes were run as IMAP commands on the target: folders %r" % folders)

    def pop3_migration(self, poison, seed):
        """Poison messages among ordinary ones, POP3S -> IMAPS with keep =
        false: every message lands byte for byte and the source is emptied."""
        src, src_pw = self.new_user("src")
        dst, dst_pw = self.new_user("dst")
        ordinary = [m.data for m in messages.ordinary_corpus(4, seed=seed)]
        corpus = poison[:1] + ordinary[:2] + poison[1:] + ordinary[2:]
        self.d.add_messages(src, corpus)
        served = [m[1] for m in self.d.messages(src)]
        self.migration_config(src, src_pw, dst, dst_pw, target="INBOX", keep=False)
        r = self.run_config("--json")
        return r, src, dst, [s if s.endswith(b"\r\n") else s + b"\r\n" for s in served]

    def test_hostile_date_header_runs_no_commands_on_target(self):
        body = b"X1 CREATE PWNED\r\nX2 CREATE PWNED-TOO\r\n"
        poison = [
            b"Date: Tue, 1 Jul 2003 -5:-7:00 +0200\r\nMessage-ID: <neg-time@x>\r\nSubject: neg\r\n\r\n" + body,
            b"Date: 1 Jul 2003 2147483648:00\r\nMessage-ID: <big-hour@x>\r\nSubject: big\r\n\r\n" + body,
            b"Received: from a by b; 31 Feb 2003 10:00:00 +0000\r\nDate: 1 Jul 2003 24:00:00 +0000\r\n"
            b"Message-ID: <bad-day@x>\r\nSubject: 31 Feb\r\n\r\n" + body,
        ]
        r, src, dst, want = self.pop3_migration(poison, seed=61)
        self.assertNothingInjected(dst, "PWNED")
        self.note("Date: Tue, 1 Jul 2003 -5:-7:00 +0200 and friends: no folder PWNED on the target")
        self.assertEqual(r.rc, EX_OK, r.describe())
        self.assertExactlyOnce([m[1] for m in self.target_folder(dst, "INBOX")], want, "poison dates")
        self.assertEqual(self.d.messages(src), [])
        self.note("every message delivered (without a date where it had none valid), source emptied")

    def test_poison_date_digits_never_block_the_account(self):
        poison = [
            b"Date: Tue, 12345678901 Jul 2003 10:00:00 +0000\r\nMessage-ID: <day11@x>\r\nSubject: d\r\n\r\nb\r\n",
            b"Received: from a by b; Tue, 1 Jul 12345678901 10:00:00 +0000\r\n"
            b"Date: 1 Jul 99999999999 10:00:00 +0000\r\nMessage-ID: <year11@x>\r\nSubject: y\r\n\r\nb\r\n",
            b"Date: \xff\xfe (unclosed comment\r\n\x01garbage: \x7f\r\nMessage-ID: <garbage@x>\r\n\r\nb\r\n",
        ]
        r, src, dst, want = self.pop3_migration(poison, seed=62)
        self.assertNotEqual(r.rc, EX_SOFTWARE, r.describe())
        self.assertEqual(r.rc, EX_OK, r.describe())
        self.assertExactlyOnce([m[1] for m in self.target_folder(dst, "INBOX")], want, "11-digit dates")
        self.assertEqual(self.d.messages(src), [])
        self.note("11-digit day/year and garbage headers: delivered with the others, exit 0")

    def test_hostile_imap_source_flags_and_dates_inject_nothing(self):
        dst, dst_pw = self.new_user("dst")
        cmd = b"X5 CREATE INJECTED3\r\n"
        msgs = [b"Message-ID: <h%d@x>\r\nDate: Mon, 30 Jun 2003 09:00:00 +0000\r\nSubject: %d\r\n\r\n%s" % (i, i, cmd)
                for i in range(1, 7)]
        srv = FakeImap(msgs).start()
        self.addCleanup(srv.stop)

        def lit(b):
            return b"{%d}\r\n%s" % (len(b), b)
        date = b'"01-Jan-2020 10:00:00 +0000"'
        srv.fetch_attrs[1] = b"FLAGS (\\Seen) INTERNALDATE " + lit(
            b'01-Jan-2020 00:00:00 +0000" {1+}\r\nx\r\nX1 CREATE INJECTED1\r\nX2 NOOP "')
        srv.fetch_attrs[2] = b"FLAGS (\\Seen " + lit(
            b"\\Flagged) {1+}\r\nx\r\nX3 CREATE INJECTED2\r\nX4 NOOP (") + b") INTERNALDATE " + date
        # Dovecot answers BAD to these without reading the LITERAL+ data.
        srv.fetch_attrs[3] = b"FLAGS (\\Seen $Forwarded \\Junk) INTERNALDATE " + date
        srv.fetch_attrs[4] = b'FLAGS (\\Answered \\Recent) INTERNALDATE "01-Jan-2020 -5:-7:00 +0000"'
        srv.fetch_attrs[5] = b"FLAGS (\\Flagged a\x80b \\*) INTERNALDATE " + date
        args = faultlib.oneoff("imap://127.0.0.1:%d" % srv.port, srv.user,
                               "imaps://127.0.0.1:%d/INBOX" % self.d.ports["imaps"], self.state_dir, keep=True,
                               extra=["--tls", "off", "--auth", "user", "--deliver-user", dst, "--deliver-ca-file", self.d.ca_file,
                                      "--json"])
        r = faultlib.run(args, password=srv.password, env={"PULLMAIL_DELIVER_PASSWORD": dst_pw}, timeout=120)
        self.assertNothingInjected(dst, "INJECTED")
        self.note("INTERNALDATE/FLAGS literals with CRLF, \\Junk, 8-bit flags: no folder INJECTED on the target")
        self.assertEqual(r.rc, EX_OK, r.describe())
        self.assertEqual(faultlib.stray_stderr(r), [], "a log line was split by server text:\n" + r.describe())
        self.assertTrue([l for l in faultlib.warning_lines(r) if "dropped" in l], r.describe())
        target = self.d.messages(dst)
        self.assertExactlyOnce([m[1] for m in target], msgs, "hostile IMAP source")
        flags = {re.search(rb"<(h\d)@", m[1]).group(1).decode(): sorted(m[2]) for m in target}
        self.assertEqual(flags, {"h1": ["\\Seen"], "h2": ["\\Seen"], "h3": ["$Forwarded", "\\Seen"],
                                 "h4": ["\\Answered"], "h5": ["\\Flagged"], "h6": []})
        self.note("valid flags kept, the others dropped with a warning")
        dates = self.internaldates(dst, "INBOX")
        self.assertEqual(instant(dates["<h3@x>"]), instant("01-Jan-2020 10:00:00 +0000"))
        self.assertEqual(instant(dates["<h4@x>"]), instant("30-Jun-2003 09:00:00 +0000"))
        self.note("a valid INTERNALDATE is kept; an invalid one gives way to the header's date")

    def test_target_answering_bad_is_abandoned_nothing_lost_or_doubled(self):
        src, src_pw = self.new_user("src")
        corpus = [m.data for m in messages.ordinary_corpus(12, seed=81, min_size=300000, max_size=900000)]
        self.d.add_messages(src, corpus)
        served = [m[1] for m in self.d.messages(src)]
        want = [s if s.endswith(b"\r\n") else s + b"\r\n" for s in served]
        srv = FakeImap([], capabilities=b"IMAP4rev1 UIDPLUS LITERAL+").start()
        self.addCleanup(srv.stop)
        srv.append_bad = {1}
        self.migration_config(src, src_pw, srv.user, srv.password, keep=False,
                              target_url="imap://127.0.0.1:%d/INBOX" % srv.port)
        r = self.run_config("--json")
        self.assertEqual(r.rc, EX_CANTCREAT, r.describe())
        self.assertStderrNames(r, "mig", "BAD.*abandoned the connection|abandoned the connection.*BAD")
        # Later messages of the batch may have gone over a new connection.
        self.assertFalse([l for l in srv.log[0] if l.split(b" ")[1:2] == [b"LOGOUT"]],
                         "LOGOUT sent on the abandoned connection")
        left = [m[1] for m in self.d.messages(src)]
        self.assertIn(served[0], left, "the message answered BAD was deleted from the source")
        self.note("%d connection(s) to the target, %d messages left on the source" % (len(srv.log), len(left)))
        for s, w in zip(served, want):
            if s not in left:
                self.assertIn(w, srv.contents(), "deleted from the source but not on the target")
        self.note("APPEND answered BAD: exit 73, the error says the connection was abandoned, no LOGOUT on it")
        srv.append_bad = set()
        self.run_config("--json", expect=EX_OK)
        self.assertExactlyOnce(srv.contents(), want, "after the rerun")
        self.assertEqual(self.d.messages(src), [])
        self.note("the rerun stores the rest: every message on the target once, the source emptied")


if __name__ == "__main__":
    main()
