#!/usr/bin/env python3
"""IMAPS -> Maildir: the whole strange corpus (50 MB attachment included)
byte for byte against BODY.PEEK[]; the server's flags do not change (no
\\Seen after a keep run); read mail is fetched too; a second run fetches and
downloads nothing; --all fetches again."""

import util
from messages import ordinary_corpus, strange_corpus
from util import Dovecot


class ImapsMaildir(util.IntegrationCase):

    def test_corpus_unseen_rerun_all(self):
        user, pw = self.new_user()
        corpus = strange_corpus(include_huge=True) + ordinary_corpus(20, seed=12)
        for i, m in enumerate(corpus):
            # a few already read or flagged in webmail: pullmail's state is
            # UIDVALIDITY+UID, not \Seen, so these are new mail as well
            flags = {3: "\\Seen", 7: "\\Seen \\Flagged", 9: "\\Answered"}.get(i, "")
            self.d.add_message(user, m.data, flags=flags)
        served = self.d.messages(user)
        self.assertEqual(len(served), len(corpus))
        flags_before = self.d.flags(user)
        expected = util.expected_from_served(served)
        maildir = self.path("Maildir")
        self.config({"imap": self.account(user, pw, "imaps", deliver="maildir:" + maildir)})

        mark = self.d.log_mark()
        r = self.run_config("--json", expect=0)
        log = self.d.settled_log(mark, user)
        self.assertDelivered(util.maildir_messages(maildir), expected, "IMAPS -> Maildir")
        j = self.json_account(r, "imap")
        self.assertEqual(j["fetched"], len(corpus), r.describe())
        self.assertEqual(j["deleted"], 0)
        self.assertEqual(j["errors"], [])

        flags_after = self.d.flags(user)
        self.assertEqual(flags_after, flags_before, "server flags changed by a keep run")
        unseen = [u for u, f in flags_after.items() if "\\Seen" not in f]
        self.assertEqual(len(unseen), len(corpus) - 2)
        self.note("keep run: all %d messages still on the server, flags unchanged, %d still unseen"
                  % (len(flags_after), len(unseen)))
        logins = Dovecot.logins(log, user=user, protocol="imap")
        self.assertTrue(logins and all("TLS" in l[2] for l in logins), logins)
        stats = Dovecot.logout_stats(log, user=user, protocol="imap")
        self.assertTrue(stats, "no IMAP logout line in the Dovecot log:\n" + log[-3000:])
        body_count = sum(s["body_count"] for _, _, s in stats)
        self.assertEqual(body_count, len(corpus), stats)
        self.note("Dovecot log: body_count=%d (each body downloaded once)" % body_count)

        mark = self.d.log_mark()
        r = self.run_config("--json", expect=0)
        stats = Dovecot.logout_stats(self.d.settled_log(mark, user), user=user, protocol="imap")
        self.assertEqual(self.json_account(r, "imap")["fetched"], 0, r.describe())
        self.assertEqual(util.count_maildir(maildir), len(corpus))
        self.assertEqual(sum(s["body_count"] for _, _, s in stats), 0, stats)
        self.note("second run: fetched 0, body_count=0, Maildir unchanged")

        r = self.run_config("--all", "--json", expect=0)
        self.assertEqual(self.json_account(r, "imap")["fetched"], len(corpus), r.describe())
        self.assertDelivered(util.maildir_messages(maildir), expected * 2, "IMAPS -> Maildir after --all")
        self.assertEqual(self.d.flags(user), flags_before, "server flags changed by --all")


if __name__ == "__main__":
    util.main()
