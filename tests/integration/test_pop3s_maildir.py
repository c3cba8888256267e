#!/usr/bin/env python3
"""POP3S -> Maildir: the whole strange corpus (50 MB attachment included)
byte for byte, keep leaves the mail on the server, a second run fetches
nothing, --all fetches everything again."""

import os

import util
from messages import ordinary_corpus, strange_corpus
from util import Dovecot


class Pop3sMaildir(util.IntegrationCase):

    def test_corpus_keep_rerun_all(self):
        user, pw = self.new_user()
        corpus = strange_corpus(include_huge=True) + ordinary_corpus(20, seed=11)
        for m in corpus:
            self.d.add_message(user, m.data)
        served = self.d.messages(user)
        self.assertEqual(len(served), len(corpus))
        expected = util.expected_from_served(served, final_newline=True)
        maildir = self.path("Maildir")
        self.config({"pop": self.account(user, pw, "pop3s", deliver="maildir:" + maildir)})

        mark = self.d.log_mark()
        r = self.run_config("--json", expect=0)
        log = self.d.settled_log(mark, user)
        self.assertDelivered(util.maildir_messages(maildir), expected, "POP3S -> Maildir")
        j = self.json_account(r, "pop")
        self.assertEqual(j["fetched"], len(corpus), r.describe())
        self.assertEqual(j["deleted"], 0)
        self.assertEqual(j["errors"], [])
        self.assertEqual(r.json()["exit_status"], 0)
        self.note("--json: fetched=%d deleted=0 errors=[] exit_status=0" % len(corpus))

        # keep (the default): everything is still on the server
        self.assertEqual(self.d.count(user), len(corpus))
        logins = Dovecot.logins(log, user=user, protocol="pop3")
        self.assertTrue(logins and all("TLS" in l[2] for l in logins), logins)
        stats = Dovecot.logout_stats(log, user=user, protocol="pop3")
        self.assertTrue(stats, "no POP3 logout line in the Dovecot log:\n" + log[-3000:])
        self.assertEqual(sum(s["retr"][0] for _, _, s in stats), len(corpus), stats)
        self.assertEqual(sum(s["del"][0] for _, _, s in stats), 0, stats)
        self.note("keep: %d messages still on the server; Dovecot counted %d RETR, 0 DELE, login over TLS"
                  % (len(corpus), len(corpus)))
        self.assertTrue(os.path.isfile(os.path.join(self.state_dir, "pop.state")),
                        "no state file %s/pop.state" % self.state_dir)
        self.note("state file %s exists" % "pop.state")

        # a second run fetches nothing and downloads nothing
        mark = self.d.log_mark()
        r = self.run_config("--json", expect=0)
        stats = Dovecot.logout_stats(self.d.settled_log(mark, user), user=user, protocol="pop3")
        self.assertEqual(self.json_account(r, "pop")["fetched"], 0, r.describe())
        self.assertEqual(util.count_maildir(maildir), len(corpus))
        self.assertEqual(sum(s["retr"][0] for _, _, s in stats), 0, stats)
        self.note("second run: fetched 0, no RETR, Maildir unchanged")

        # --all fetches everything again
        r = self.run_config("--all", "--json", expect=0)
        self.assertEqual(self.json_account(r, "pop")["fetched"], len(corpus), r.describe())
        self.assertDelivered(util.maildir_messages(maildir), expected * 2, "POP3S -> Maildir after --all")
        self.assertEqual(self.d.count(user), len(corpus))


if __name__ == "__main__":
    util.main()
