#!/usr/bin/env python3
"""mbox delivery (mboxrd): IMAPS -> mbox with the strange corpus; parsing the
file back and undoing the quoting gives exactly the server's messages (LF,
a final newline where one was missing); a second run appends nothing; new
mail is appended after what the file already held, which stays untouched."""

import util
from messages import Message, ordinary_corpus, strange_corpus

EXISTING = (b"From someone@example.org Mon Jan  1 00:00:00 2024\n"
            b"Message-ID: <existing@corpus.pullmail.test>\n"
            b"Subject: already in the mbox\n"
            b"\n"
            b">From quoted in the existing file\n"
            b"\n")


class MboxDelivery(util.IntegrationCase):

    def test_imaps_to_mbox(self):
        user, pw = self.new_user()
        corpus = strange_corpus(include_huge=False) + ordinary_corpus(10, seed=71)
        for m in corpus:
            self.d.add_message(user, m.data)
        expected = util.expected_from_served(self.d.messages(user), final_newline=True)
        mbox = self.path("mail.mbox")
        with open(mbox, "wb") as f:
            f.write(EXISTING)
        existing = [b"Message-ID: <existing@corpus.pullmail.test>\nSubject: already in the mbox\n\n"
                    b"From quoted in the existing file\n"]
        self.assertEqual(util.read_mbox(mbox), existing)  # the parser itself
        self.config({"mbox": self.account(user, pw, "imaps", deliver="mbox:" + mbox)})

        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "mbox")["fetched"], len(corpus), r.describe())
        with open(mbox, "rb") as f:
            data = f.read()
        self.assertTrue(data.startswith(EXISTING), "the existing mbox content was changed")
        self.assertDelivered(util.read_mbox(mbox), existing + expected, "IMAPS -> mboxrd")
        for sep, _ in util.parse_mboxrd(data):
            self.assertRegex(sep, util.ASCTIME_FROM)
        self.note("separators are 'From <sender> <asctime>' lines; existing content kept")

        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "mbox")["fetched"], 0)
        with open(mbox, "rb") as f:
            self.assertEqual(f.read(), data, "second run changed the mbox")
        self.note("second run: mbox byte-identical")

        more = [Message("mbox-more-%d" % i, b"Message-ID: <mbox-more-%d@corpus.pullmail.test>\n"
                        b"Subject: more\n\nFrom more\n>From more\n" % i) for i in range(3)]
        for m in more:
            self.d.add_message(user, m.data)
        expected_all = util.expected_from_served(self.d.messages(user), final_newline=True)
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "mbox")["fetched"], 3)
        with open(mbox, "rb") as f:
            data2 = f.read()
        self.assertTrue(data2.startswith(data), "appending changed earlier content")
        self.assertDelivered(util.read_mbox(mbox), existing + expected_all, "mbox after appending")


if __name__ == "__main__":
    util.main()
