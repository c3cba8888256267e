#!/usr/bin/env python3
"""keep = true (the default, and -k) leaves mail on the server; keep = false
(and -K) removes the delivered mail and only it: mail in folders not
fetched, other mailboxes and mail arriving during the run stay; nothing is
ever deleted that was not delivered."""

import os
import sys

import util
from messages import ordinary_corpus, strange_corpus

# An MDA that stores each message and, while the first one is delivered,
# drops a new message into the server's Maildir: mail that arrives during
# the session.
INJECT_MDA = r'''#!/usr/bin/env python3
import os, sys
out, inbox, uid, gid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = sys.stdin.buffer.read()
n = len(os.listdir(out))
fd = os.open(os.path.join(out, "%06d.%d" % (n, os.getpid())), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, data)
os.close(fd)
if n == 0:
    name = "1800000000.M1P%d.injected" % os.getpid()
    tmp = os.path.join(inbox, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(b"Message-ID: <injected@corpus.pullmail.test>\nSubject: arrived during the run\n\nhi\n")
    os.chown(tmp, uid, gid)
    os.rename(tmp, os.path.join(inbox, "new", name))
'''


class KeepDelete(util.IntegrationCase):

    def _fill(self, user, seed, n=6, folder="INBOX"):
        corpus = ordinary_corpus(n, seed=seed) + strange_corpus(include_huge=False)[:3]
        if folder != "INBOX":
            self.d.create_folder(user, folder)
        for m in corpus:
            self.d.add_message(user, m.data, folder=folder)
        return corpus

    def test_keep_default_and_k(self):
        for proto in ("pop3s", "imaps"):
            user, pw = self.new_user()
            corpus = self._fill(user, 91)
            before = self.d.messages(user)
            name = "keep-" + proto
            self.config({name: self.account(user, pw, proto, deliver="maildir:" + self.path("M-" + name))})
            r = self.run_config("--json", expect=0)
            self.assertEqual(self.json_account(r, name)["deleted"], 0)
            self.assertEqual([(u, b) for u, b, _ in self.d.messages(user)], [(u, b) for u, b, _ in before])
            self.note("%s, keep not set: all %d messages still on the server" % (proto, len(corpus)))
            # -k overrides keep = false
            user, pw = self.new_user()
            self._fill(user, 92)
            before = self.d.messages(user)
            name = "k-" + proto
            self.config({name: self.account(user, pw, proto, keep=False,
                                            deliver="maildir:" + self.path("M-" + name))})
            r = self.run_config("-k", "--json", expect=0)
            self.assertEqual(self.json_account(r, name)["deleted"], 0)
            self.assertEqual(len(self.d.messages(user)), len(before), "-k did not keep the mail")
            self.note("%s, keep = false with -k: all messages still on the server" % proto)

    def _delete_run(self, proto, use_K):
        user, pw = self.new_user()
        other, opw = self.new_user()
        corpus = self._fill(user, 93)
        self._fill(other, 94)
        other_before = self.d.messages(other)
        archive = []
        if proto == "imaps":
            archive = self._fill(user, 95, n=3, folder="Archive")
        archive_before = self.d.messages(user, "Archive") if archive else []
        expected = util.expected_from_served(self.d.messages(user), final_newline=proto == "pop3s")
        out = self.path("out-" + proto)
        os.makedirs(out)
        mda = self.path("inject.py")
        with open(mda, "w") as f:
            f.write(INJECT_MDA)
        os.chmod(mda, 0o755)
        deliver = "mda:%s %s %s %s %d %d" % (sys.executable, mda, out, self.d.folder_path(user),
                                             self.d.uid, self.d.gid)
        name = "del-" + proto
        acc = self.account(user, pw, proto, deliver=deliver)
        args = ["--json"]
        if use_K:
            args.append("-K")
        else:
            acc["keep"] = False
        self.config({name: acc})
        mark = self.d.log_mark()
        r = self.run_config(*args, expect=0)
        log = self.d.settled_log(mark, user)
        delivered = util.read_dir_files(out)
        remaining = self.d.messages(user)
        remaining_ids = [util.message_id(b) for _, b, _ in remaining]
        injected_fetched = "<injected@corpus.pullmail.test>" in [util.message_id(d) for d in delivered]
        exp = list(expected)
        if injected_fetched:  # legitimately fetched in the same run: then also deleted
            exp.append(b"Message-ID: <injected@corpus.pullmail.test>\nSubject: arrived during the run\n\nhi\n")
        self.assertDelivered(delivered, exp, "%s keep=false -> MDA" % proto)
        self.assertEqual(self.json_account(r, name)["deleted"], len(exp), r.describe())
        if injected_fetched:
            self.assertEqual(remaining_ids, [], "fetched mail left on the server")
        else:
            self.assertEqual(remaining_ids, ["<injected@corpus.pullmail.test>"],
                             "server should hold exactly the mail that arrived during the run")
        self.assertTrue(all("\\Deleted" not in f for _, _, f in remaining), remaining)
        self.assertEqual(self.d.messages(other), other_before, "another mailbox changed")
        if archive:
            self.assertEqual(self.d.messages(user, "Archive"), archive_before, "folder Archive changed")
        if proto == "pop3s":
            stats = util.Dovecot.logout_stats(log, user=user, protocol="pop3")
            self.assertEqual(sum(s["del"][0] for _, _, s in stats), len(expected), stats)
        self.note("%s %s: %d fetched and deleted; mail arriving during the run %s; other mailbox%s untouched"
                  % (proto, "-K" if use_K else "keep = false", len(exp),
                     "fetched and deleted too" if injected_fetched else "left on the server",
                     " and folder Archive" if archive else ""))

    def test_keep_false_pop3s(self):
        self._delete_run("pop3s", use_K=False)

    def test_keep_false_imaps(self):
        self._delete_run("imaps", use_K=False)

    def test_K_pop3s(self):
        self._delete_run("pop3s", use_K=True)

    def test_K_imaps(self):
        self._delete_run("imaps", use_K=True)

    def test_previously_kept_mail(self):
        """Mail fetched earlier with keep, then a run with -K: the new mail
        and, as the man page says ("every message that is recorded as
        delivered, in this run or an earlier one"), the old mail is deleted."""
        for proto in ("pop3s", "imaps"):
            user, pw = self.new_user()
            first = self._fill(user, 96, n=3)
            maildir = self.path("M-old-" + proto)
            name = "old-" + proto
            self.config({name: self.account(user, pw, proto, deliver="maildir:" + maildir)})
            self.run_config(expect=0)
            old_ids = {util.message_id(m) for m in util.maildir_messages(maildir)}
            self.assertEqual(len(old_ids), len(first))
            new = ordinary_corpus(2, seed=97, prefix="later-" + proto)
            for m in new:
                self.d.add_message(user, m.data)
            self.run_config("-K", expect=0)
            delivered_ids = [util.message_id(m) for m in util.maildir_messages(maildir)]
            self.assertEqual(sorted(delivered_ids), sorted(list(old_ids) + [m.message_id for m in new]))
            remaining = {util.message_id(b) for _, b, _ in self.d.messages(user)}
            self.assertFalse(remaining & {m.message_id for m in new}, "new mail not deleted by -K")
            self.assertEqual(remaining, set(), "previously delivered mail not deleted by -K")
            self.note("%s: -K deleted the %d new and the %d previously delivered messages"
                      % (proto, len(new), len(old_ids)))


if __name__ == "__main__":
    util.main()
