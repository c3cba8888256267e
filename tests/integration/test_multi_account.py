#!/usr/bin/env python3
"""Several accounts in one run, one of them broken (wrong password): the
others are delivered completely, the exit status is 77, the error names the
broken account, --json reports each account; the same with -j 2; a disabled
account is not run; naming accounts on the command line runs only those."""

import util
from messages import ordinary_corpus, strange_corpus


class MultiAccount(util.IntegrationCase):

    def _setup(self):
        accounts = {}
        expected = {}
        users = {}
        for name, proto, seed in (("good-pop", "pop3s", 61), ("good-imap", "imaps", 62),
                                  ("good-starttls", "imap", 63)):
            user, pw = self.new_user()
            corpus = ordinary_corpus(8, seed=seed) + strange_corpus(include_huge=False)[:4]
            for m in corpus:
                self.d.add_message(user, m.data)
            expected[name] = util.expected_from_served(self.d.messages(user),
                                                       final_newline=proto.startswith("pop3"))
            accounts[name] = self.account(user, pw, proto, deliver="maildir:" + self.path("Maildir-" + name))
            users[name] = user
        buser, bpw = self.new_user()
        for m in ordinary_corpus(3, seed=64):
            self.d.add_message(buser, m.data)
        users["broken"] = buser
        # the broken account sits between the good ones in the file
        ordered = {"good-pop": accounts["good-pop"],
                   "broken": self.account(buser, "not-" + bpw, "pop3s",
                                          deliver="maildir:" + self.path("Maildir-broken"), keep=False),
                   "good-imap": accounts["good-imap"],
                   "good-starttls": accounts["good-starttls"],
                   "disabled": self.account(buser, "also-wrong", "imaps", enabled=False,
                                            deliver="maildir:" + self.path("Maildir-disabled"))}
        self.config(ordered)
        return expected, users

    def _check(self, r, expected, users):
        self.assertEqual(r.rc, util.EX_NOPERM, r.describe())
        for name, exp in expected.items():
            self.assertDelivered(util.maildir_messages(self.path("Maildir-" + name)), exp, name)
            j = self.json_account(r, name)
            self.assertEqual(j["fetched"], len(exp), j)
            self.assertEqual(j["errors"], [], j)
        lines = self.assertStderrNames(r, "broken", r"auth|login|password|credential|denied|refused|rejected")
        for name in expected:
            self.assertFalse([l for l in r.err.splitlines() if l.startswith("pullmail: account '%s': " % name)
                              and "error" in l.lower()], "error reported for a good account:\n" + r.err)
        self.assertErrorKind(r, "broken", "auth")
        jb = self.json_account(r, "broken")
        self.assertEqual(jb["fetched"], 0)
        self.assertEqual(r.json()["exit_status"], util.EX_NOPERM)
        self.assertEqual(util.count_maildir(self.path("Maildir-broken")), 0)
        self.assertEqual(self.d.count(users["broken"]), 3)
        names = [a["name"] for a in r.json()["accounts"]]
        self.assertNotIn("disabled", names, "disabled account was run")
        self.assertNotIn("'disabled'", r.err, "disabled account was run:\n" + r.err)
        self.assertEqual(util.count_maildir(self.path("Maildir-disabled")), 0)
        self.note("exit 77; broken account named: %r; good accounts complete; disabled account not run"
                  % lines[0])

    def test_one_broken_sequential(self):
        expected, users = self._setup()
        r = self.run_config("--json")
        self._check(r, expected, users)

    def test_one_broken_parallel(self):
        expected, users = self._setup()
        r = self.run_config("--json", "-j", "2")
        self._check(r, expected, users)

    def test_select_accounts(self):
        expected, users = self._setup()
        r = self.run_config("--json", "good-imap", "good-pop", expect=0)
        names = sorted(a["name"] for a in r.json()["accounts"])
        self.assertEqual(names, ["good-imap", "good-pop"], r.describe())
        self.assertDelivered(util.maildir_messages(self.path("Maildir-good-pop")), expected["good-pop"],
                             "good-pop")
        self.assertDelivered(util.maildir_messages(self.path("Maildir-good-imap")), expected["good-imap"],
                             "good-imap")
        self.assertEqual(util.count_maildir(self.path("Maildir-good-starttls")), 0)
        self.note("only the named accounts ran")


if __name__ == "__main__":
    util.main()
