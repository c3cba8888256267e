#!/usr/bin/env python3
"""--check (0 with new mail, 1 without; delivers, downloads and changes
nothing), --dry-run (delivers, deletes and records nothing, even with
keep = false), --json (every field, with plausible values) and -q."""

import util
from messages import ordinary_corpus, strange_corpus
from util import Dovecot



def files(state_dir):
    return util.state_records(state_dir)


class CheckDryRunJson(util.IntegrationCase):

    def _body_downloads(self, mark, user, proto):
        stats = Dovecot.logout_stats(self.d.settled_log(mark, user), user=user, protocol=proto[:4])
        if proto.startswith("pop3"):
            return sum(s["retr"][0] for _, _, s in stats)
        return sum(s["body_count"] for _, _, s in stats)

    def test_check(self):
        for proto in ("pop3s", "imaps"):
            user, pw = self.new_user()
            corpus = ordinary_corpus(5, seed=101)
            for m in corpus:
                self.d.add_message(user, m.data)
            before = self.d.messages(user)
            maildir = self.path("M-" + proto)
            name = "check-" + proto
            self.config({name: self.account(user, pw, proto, keep=False, deliver="maildir:" + maildir)})
            state0 = files(self.state_dir)
            mark = self.d.log_mark()
            r = self.run_config("--check", expect=0)
            downloads = self._body_downloads(mark, user, proto)
            # man page: prints "N new message(s)" per account
            self.assertRegex(r.out + r.err, r"\b5 new message", "--check does not say how many:\n" + r.describe())
            self.assertEqual(util.count_maildir(maildir), 0, "--check delivered mail")
            self.assertEqual(self.d.messages(user), before, "--check changed the server")
            self.assertEqual(files(self.state_dir), state0, "--check changed the state")
            self.assertEqual(downloads, 0, "--check downloaded message bodies")
            self.note("%s: --check with 5 new messages: exit 0, nothing delivered, downloaded, deleted "
                      "or recorded" % proto)
            self.run_config(expect=0)
            self.assertEqual(util.count_maildir(maildir), 5)
            state1 = files(self.state_dir)
            r = self.run_config("--check", expect=1)
            self.assertEqual(files(self.state_dir), state1)
            self.assertEqual(util.count_maildir(maildir), 5)
            self.note("%s: --check after fetching: exit 1" % proto)
            self.d.add_message(user, ordinary_corpus(1, seed=102, prefix="new-" + proto)[0].data)
            r = self.run_config("--check", expect=0)
            self.assertRegex(r.out + r.err, r"\b1 new message", r.describe())
            self.assertEqual(util.count_maildir(maildir), 5)
            self.assertEqual(files(self.state_dir), state1)
            self.assertEqual(self.d.count(user), 1)
            self.note("%s: one more message: --check exit 0 again, still nothing delivered" % proto)

    def test_dry_run(self):
        for proto in ("pop3s", "imaps"):
            user, pw = self.new_user()
            corpus = ordinary_corpus(5, seed=103) + strange_corpus(include_huge=False)[:3]
            for m in corpus:
                self.d.add_message(user, m.data)
            before = self.d.messages(user)
            expected = util.expected_from_served(before, final_newline=proto == "pop3s")
            maildir = self.path("M-" + proto)
            name = "dry-" + proto
            self.config({name: self.account(user, pw, proto, keep=False, deliver="maildir:" + maildir)})
            state0 = files(self.state_dir)
            r = self.run_config("--dry-run", "--json")
            self.assertEqual(r.rc, 0, r.describe())
            self.assertEqual(util.count_maildir(maildir), 0, "--dry-run delivered mail")
            after = self.d.messages(user)
            if proto == "pop3s":
                # a POP3 RETR makes Dovecot set \Seen; POP3 has no flags, so
                # only the messages themselves count
                after, before_cmp = [m[:2] for m in after], [m[:2] for m in before]
            else:
                before_cmp = before
            self.assertEqual(after, before_cmp, "--dry-run changed the server (keep = false)")
            self.assertEqual(files(self.state_dir), state0, "--dry-run changed the state")
            self.note("%s: --dry-run with keep = false: nothing delivered, deleted or recorded" % proto)
            self.run_config("-n", expect=0)
            self.assertEqual(util.count_maildir(maildir), 0, "-n delivered mail")
            r = self.run_config("--json", expect=0)
            self.assertDelivered(util.maildir_messages(maildir), expected, "%s real run after --dry-run" % proto)
            self.assertEqual(self.d.count(user), 0)

    def test_json_fields(self):
        for proto in ("pop3s", "imaps"):
            user, pw = self.new_user()
            corpus = ordinary_corpus(7, seed=104) + strange_corpus(include_huge=False)
            for m in corpus:
                self.d.add_message(user, m.data)
            served = self.d.messages(user)
            # man page: bytes = what was delivered, after CRLF -> LF
            lf_bytes = sum(len(e) for e in util.expected_from_served(served, final_newline=proto == "pop3s"))
            maildir = self.path("M-" + proto)
            name = "json-" + proto
            self.config({name: self.account(user, pw, proto, deliver="maildir:" + maildir)})
            r = self.run_config("--json", expect=0)
            j = r.json()
            self.assertEqual(set(j), {"accounts", "exit_status"}, j)
            self.assertEqual(j["exit_status"], 0)
            self.assertEqual(len(j["accounts"]), 1)
            a = j["accounts"][0]
            fields = ("fetched", "bytes", "deleted", "skipped", "new", "exit_status")
            self.assertTrue({"name", "errors"} | set(fields) <= set(a), a)
            for k in fields:
                self.assertIsInstance(a[k], int, k)
                self.assertGreaterEqual(a[k], 0, k)
            self.assertEqual(a["name"], name)
            self.assertEqual((a["fetched"], a["new"], a["deleted"], a["skipped"], a["exit_status"], a["errors"]),
                             (len(corpus), len(corpus), 0, 0, 0, []), a)
            self.assertEqual(a["bytes"], lf_bytes, "bytes is not the delivered size after CRLF -> LF")
            self.note("%s: --json %s" % (proto, {k: a[k] for k in fields}))
            # second run: nothing fetched, fields still there
            r = self.run_config("--json", expect=0)
            a = self.json_account(r, name)
            self.assertEqual((a["fetched"], a["bytes"], a["deleted"], a["new"], a["errors"]), (0, 0, 0, 0, []), a)
            # a new message; -K deletes everything delivered (this run or earlier, man page)
            new = ordinary_corpus(1, seed=105, prefix="jnew")[0].data
            self.d.add_message(user, new)
            on_server = self.d.count(user)
            r = self.run_config("--json", "-K", expect=0)
            a = self.json_account(r, name)
            self.assertEqual((a["fetched"], a["new"], a["deleted"]), (1, 1, on_server), a)
            self.assertEqual(a["bytes"], len(util.lf(new)), a)
            self.assertEqual(self.d.count(user), 0)
            self.note("%s: then fetched=0 bytes=0 new=0; then -K with one new message: fetched=1 new=1 "
                      "deleted=%d (all delivered mail), skipped=%d" % (proto, on_server, a["skipped"]))

    def test_json_error_entry(self):
        user, pw = self.new_user()
        self.config({"bad": self.account(user, "wrong", "imaps")})
        r = self.run_config("--json", expect=util.EX_NOPERM)
        j = r.json()
        self.assertEqual(j["exit_status"], util.EX_NOPERM)
        a = self.json_account(r, "bad")
        self.assertEqual(a["exit_status"], util.EX_NOPERM, a)
        errors = self.assertErrorKind(r, "bad", "auth")
        self.assertFalse(errors[0]["temporary"], errors)
        self.note("failed account: exit_status 77, errors=%r" % errors)

    def test_quiet(self):
        user, pw = self.new_user()
        for m in ordinary_corpus(3, seed=106):
            self.d.add_message(user, m.data)
        self.config({"quiet": self.account(user, pw, "pop3s", deliver="maildir:" + self.path("M"))})
        r = self.run_config("-q", expect=0)
        self.assertEqual((r.out, r.err), ("", ""), r.describe())
        self.assertEqual(util.count_maildir(self.path("M")), 3)
        r = self.run_config("-q", expect=0)
        self.assertEqual((r.out, r.err), ("", ""), "-q with no new mail:\n" + r.describe())
        self.note("-q: silent on success, with and without new mail")


if __name__ == "__main__":
    util.main()
