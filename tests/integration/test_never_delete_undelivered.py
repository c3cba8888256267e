#!/usr/bin/env python3
"""Never delete a message that was not delivered (issue "never delete"):

- the list copy of a message that was also sent directly (same Message-ID,
  From, Date, Subject, another body) is a message of its own: delivered, and
  only then deleted, whether the direct copy is still recorded or not;
- a run killed after QUIT/EXPUNGE and before its state was pruned leaves
  records that never vouch for the next messages with the same fields;
- a mailbox refilled with byte-identical copies of delivered messages gets
  every copy delivered (Maildir and IMAP target), with SIGKILLs at random
  steps in between: nothing lost, nothing duplicated;
- a missing folder does not stop the others; --check and --dry-run create
  nothing; a run that fails before connecting leaves no state file; the
  summary says delivered and failed apart."""

import os
import random
import re

import util
from util import EX_OK

EX_PROTOCOL = 76
EX_UNAVAILABLE = 69


def message(mid, body, list_copy=False, subject="Meeting notes"):
    head = ("Message-ID: <%s@example.test>\r\nFrom: Ann <ann@example.test>\r\n"
            "Date: Tue, 1 Jul 2003 10:00:00 +0200\r\nSubject: %s\r\n" % (mid, subject))
    if list_copy:
        head += "List-Id: <team.lists.example.test>\r\n"
    return (head + "\r\n" + body + "\r\n").encode()


def lf(data):
    return data.replace(b"\r\n", b"\n")


class NeverDelete(util.IntegrationCase):

    def _delete_on_server(self, user):
        """Another client (webmail) removes every message of INBOX."""
        for path in self.d.maildir_files(user):
            os.remove(path)

    def _steps(self, args, pw):
        r = util.run_pullmail(args, password=pw, home=self.home,
                              env={"PULLMAIL_TEST_KILL_AFTER": "1000000000", "PULLMAIL_TEST_TRACE_STEPS": "1"})
        self.assertEqual(r.rc, EX_OK, r.describe())
        return [l.split(": ", 1)[1] for l in r.err.splitlines() if l.startswith("step ")]

    def test_list_copy_of_a_deleted_message_is_delivered(self):
        for proto in ("imaps", "pop3s"):
            for keep in (True, False):
                user, pw = self.new_user()
                direct = message("x2", "direct copy")
                listed = message("x2", "the list's copy, with a footer", list_copy=True)
                maildir = self.path("M-%s-%s" % (proto, keep))
                self.d.add_message(user, direct)
                self.config({"acc": self.account(user, pw, proto, deliver="maildir:" + maildir, keep=True)})
                self.run_config(expect=EX_OK)
                self._delete_on_server(user)
                self.d.add_message(user, listed)
                r = self.run_config("--json", "-k" if keep else "-K", expect=EX_OK)
                self.assertNotIn("recognised", r.err, r.describe())
                a = self.json_account(r, "acc")
                self.assertEqual((a["new"], a["delivered"]), (1, 1), a)
                util.compare_messages(sorted(util.maildir_messages(maildir)), sorted([lf(direct), lf(listed)]),
                                      "%s keep=%s" % (proto, keep))
                self.assertEqual(self.d.count(user), 1 if keep else 0)
                self.note("%s keep=%s: the list copy was delivered (not 'recognised' by the direct copy's "
                          "stale record)%s" % (proto, keep, "" if keep else ", then deleted"))

    def test_kill_after_delete_before_prune(self):
        for proto in ("pop3s", "imaps"):
            user, pw = self.new_user()
            maildir = self.path("M-kill-" + proto)
            first = [message("k%d" % i, "first body %d" % i) for i in range(3)]
            self.d.add_messages(user, first)
            args = ["--url", self.url(proto), "--user", user, "--deliver", "maildir:" + maildir,
                    "--state-dir", self.state_dir, "-K", "--ca-file", self.d.ca_file]
            steps = self._steps(args, pw)
            after = "after quit" if proto == "pop3s" else "after expunge"
            self.assertIn(after, steps)
            # Same mailbox again, killed right after the server confirmed the deletion.
            self.d.add_messages(user, first)
            util.run_pullmail(args, password=pw, home=self.home,
                              env={"PULLMAIL_TEST_KILL_AFTER": str(steps.index(after) + 1)})
            self.assertEqual(self.d.count(user), 0)
            second = [message("k%d" % i, "another body, a different message %d" % i) for i in range(3)]
            self.d.add_messages(user, second)
            r = util.run_pullmail(args + ["--json"], password=pw, home=self.home)
            self.assertEqual(r.rc, EX_OK, r.describe())
            self.assertEqual(self.d.count(user), 0)
            util.compare_messages(sorted(util.maildir_messages(maildir)), sorted([lf(m) for m in first * 2 + second]),
                                  proto + " after a kill before pruning")
            self.note("%s: killed after the deletion, before pruning: the 3 new messages with the old ones' "
                      "header fields were delivered, none lost" % proto)

    def _refill_rounds(self, proto, deliver, count_target, rounds, rng, totals):
        user, pw = self.new_user()
        copies = [message("r%d" % i, "the same bytes every time %d" % i) for i in range(3)]
        args = ["--url", self.url(proto), "--user", user, "--deliver", deliver[0], "--state-dir",
                self.path("state-" + proto + deliver[1]), "-K", "--ca-file", self.d.ca_file] + deliver[2]
        env = deliver[3]
        for rnd in range(1, rounds + 1):
            self.d.add_messages(user, copies)
            if rng.random() < 0.7:
                k = rng.randint(1, 40)
                util.run_pullmail(args, password=pw, home=self.home,
                                  env=dict(env, PULLMAIL_TEST_KILL_AFTER=str(k)))
                totals["kills"] += 1
            r = util.run_pullmail(args, password=pw, home=self.home, env=env)
            self.assertEqual(r.rc, EX_OK, r.describe())
            self.assertEqual(self.d.count(user), 0, "round %d left mail on the server" % rnd)
            got = count_target()
            for c in copies:
                n = sum(1 for g in got if lf(g) == lf(c))
                if n < rnd:
                    totals["lost"] += rnd - n
                if n > rnd:
                    totals["duplicated"] += n - rnd
            totals["partial"] += sum(1 for g in got if lf(g) not in [lf(c) for c in copies])
            self.assertEqual(sorted(lf(g) for g in got), sorted(lf(c) for c in copies * rnd),
                             "%s round %d: every copy delivered exactly once" % (proto, rnd))
        totals["messages"] += rounds * len(copies)

    def test_refilled_with_identical_copies(self):
        rng = random.Random(9)
        totals = {"messages": 0, "kills": 0, "lost": 0, "duplicated": 0, "partial": 0}
        for proto in ("pop3s", "imaps"):
            maildir = self.path("M-refill-" + proto)
            self._refill_rounds(proto, ("maildir:" + maildir, "m", [], {}),
                                lambda: util.maildir_messages(maildir), 5, rng, totals)
            dst, dst_pw = self.new_user("dst")
            target = ("%s/Moved" % self.url("imaps"), "i",
                      ["--deliver-user", dst, "--deliver-ca-file", self.d.ca_file],
                      {"PULLMAIL_DELIVER_PASSWORD": dst_pw})
            self._refill_rounds(proto, target, lambda: [m[1] for m in self.d.messages(dst, "Moved")],
                                4, rng, totals)
        self.note("refilled with identical copies, random SIGKILLs: %(messages)d copies, %(kills)d kills, "
                  "lost %(lost)d, duplicated %(duplicated)d, partial %(partial)d" % totals)

    def test_missing_folder_does_not_stop_the_others(self):
        user, pw = self.new_user()
        m = message("f1", "in the inbox")
        self.d.add_message(user, m)
        maildir = self.path("M-missing")
        r = self.pullmail("--url", self.url("imaps"), "--user", user, "--deliver", "maildir:" + maildir,
                          "--state-dir", self.state_dir, "--ca-file", self.d.ca_file,
                          "--folder", "Nope", "--folder", "INBOX", "--json", password=pw)
        self.assertEqual(r.rc, EX_PROTOCOL, r.describe())
        self.assertEqual(util.maildir_messages(maildir), [lf(m)])
        self.assertTrue(any("Nope" in l for l in r.err.splitlines() if "account '" in l), r.err)
        self.note("--folder Nope --folder INBOX: INBOX delivered, 'Nope' reported, exit %d" % r.rc)

    def test_check_and_dry_run_create_nothing(self):
        user, pw = self.new_user()
        self.d.add_message(user, message("c1", "x"))
        for opt in ("--check", "--dry-run"):
            state = self.path("state" + opt)
            self.config({"acc": self.account(user, pw, "imaps", keep=False)})
            r = self.pullmail("-f", self.config_path, "--state-dir", state, opt)
            self.assertIn(r.rc, (0,), r.describe())
            self.assertFalse(os.path.exists(state), "%s created %s" % (opt, state))
        state = self.path("state-unresolvable")
        r = self.pullmail("--url", "imaps://no-such-host.invalid", "--user", user, "--deliver",
                          "maildir:" + self.path("M-x"), "--state-dir", state, password=pw)
        self.assertNotEqual(r.rc, 0, r.describe())
        left = os.listdir(state) if os.path.isdir(state) else []
        self.assertFalse([f for f in left if f.endswith(".state")], "a failed run left %r" % left)
        self.note("--check / --dry-run created no state directory; an unresolvable host left no state file")

    def test_summary_counts_delivered_and_failed_apart(self):
        user, pw = self.new_user()
        for i in range(3):
            self.d.add_message(user, message("s%d" % i, "refused %d" % i))
        self.config({"acc": self.account(user, pw, "pop3s", keep=False, deliver="mda:exit 1")})
        r = self.run_config("--json")
        a = self.json_account(r, "acc")
        self.assertEqual((a["new"], a["delivered"], a["failed"], a["deleted"]), (3, 0, 3, 0), a)
        self.assertRegex(r.err, r"3 new message\(s\): 0 delivered, 3 failed")
        self.assertEqual(self.d.count(user), 3)
        self.note("an MDA refusing 3 messages: '3 new message(s): 0 delivered, 3 failed', all kept")

    def test_adopt_records_without_fetching_or_deleting(self):
        for proto in ("pop3s", "imaps"):
            user, pw = self.new_user()
            old = [message("a%d" % i, "copied by other means %d" % i) for i in range(4)]
            self.d.add_messages(user, old)
            maildir = self.path("M-adopt-" + proto)
            self.config({"acc": self.account(user, pw, proto, keep=False, deliver="maildir:" + maildir)})
            mark = self.d.log_mark()
            r = self.run_config("adopt", "acc", "--json", expect=EX_OK)
            a = self.json_account(r, "acc")
            self.assertEqual((a["recognised"], a["delivered"], a["deleted"]), (4, 0, 0), a)
            self.assertEqual(self.d.count(user), 4, "adopt deleted mail")
            self.assertEqual(util.count_maildir(maildir), 0)
            stats = self.d.logout_stats(self.d.settled_log(mark, user), user=user)
            self.assertTrue(stats, "no session of pullmail's in Dovecot's log")
            self.assertEqual(sum(s[2].get("body_count", 0) + s[2].get("retr", (0, 0))[0] for s in stats), 0, stats)
            new = message("a-new", "arrived after the adoption")
            self.d.add_message(user, new)
            r = self.run_config("--json", expect=EX_OK)
            a = self.json_account(r, "acc")
            self.assertEqual((a["new"], a["delivered"], a["deleted"]), (1, 1, 5), a)
            self.assertEqual(util.maildir_messages(maildir), [lf(new)])
            self.note("%s: adopt recorded 4 messages without downloading or deleting them; the next run "
                      "delivered only the new one, then deleted all 5 (keep = false)" % proto)


if __name__ == "__main__":
    util.main()
