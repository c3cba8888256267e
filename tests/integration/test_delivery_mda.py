#!/usr/bin/env python3
"""MDA delivery: each message is piped to a command (sh -c), byte for byte;
an MDA that fails is "delivery failed" (73) and a failing message is never
deleted from the server, even with keep = false; MDA exit 75 is a temporary
failure (75); after fixing the MDA the next run delivers what was left."""

import os

import util
from messages import ordinary_corpus, strange_corpus

MDA_SCRIPT = r'''#!/bin/sh
# test MDA: one file per message; fails for messages with an X-Fail header
# when MDA_FAIL (a file) exists, with the status it holds
out="$1"
f=$(mktemp "$out/msg.XXXXXXXX") || exit 74
cat > "$f" || exit 74
if [ -f "$2" ] && grep -q '^X-Fail: yes' "$f"; then
    rm -f "$f"
    exit "$(cat "$2")"
fi
exit 0
'''


class MdaDelivery(util.IntegrationCase):

    def _script(self):
        path = self.path("mda.sh")
        with open(path, "w") as f:
            f.write(MDA_SCRIPT)
        os.chmod(path, 0o755)
        return path

    def test_mda_corpus_pop3s(self):
        user, pw = self.new_user()
        corpus = strange_corpus(include_huge=False) + ordinary_corpus(10, seed=81)
        for m in corpus:
            self.d.add_message(user, m.data)
        expected = util.expected_from_served(self.d.messages(user), final_newline=True)
        out = self.path("out")
        os.makedirs(out)
        self.config({"mda": self.account(user, pw, "pop3s",
                                         deliver="mda:%s %s %s" % (self._script(), out, self.path("nofail")))})
        r = self.run_config("--json", expect=0)
        self.assertEqual(self.json_account(r, "mda")["fetched"], len(corpus), r.describe())
        self.assertDelivered(util.read_dir_files(out), expected, "POP3S -> MDA")

    def test_mda_shell_pipeline_imaps(self):
        user, pw = self.new_user()
        corpus = ordinary_corpus(6, seed=82) + strange_corpus(include_huge=False)[:5]
        for m in corpus:
            self.d.add_message(user, m.data)
        expected = util.expected_from_served(self.d.messages(user))
        out = self.path("out")
        os.makedirs(out)
        cmd = 'f=$(mktemp %s/m.XXXXXX) && cat > "$f"' % out
        self.config({"mda": self.account(user, pw, "imaps", deliver="mda:" + cmd)})
        self.run_config(expect=0)
        self.assertDelivered(util.read_dir_files(out), expected, "IMAPS -> MDA shell command")

    def _failing(self, proto, status, expect_rc):
        user, pw = self.new_user()
        good = ordinary_corpus(4, seed=83)
        for i, m in enumerate(good):
            if i == 2:
                data = m.data.replace(b"Subject:", b"X-Fail: yes\nSubject:", 1)
                self.d.add_message(user, data)
            else:
                self.d.add_message(user, m.data)
        served = self.d.messages(user)
        expected = util.expected_from_served(served, final_newline=proto.startswith("pop3"))
        failing = [e for e in expected if b"X-Fail: yes" in e]
        self.assertEqual(len(failing), 1)
        out = self.path("out-%s-%d" % (proto, status))
        os.makedirs(out)
        failfile = self.path("fail-%s-%d" % (proto, status))
        with open(failfile, "w") as f:
            f.write(str(status))
        name = "mda-%s" % proto
        self.config({name: self.account(user, pw, proto, keep=False,
                                        deliver="mda:%s %s %s" % (self._script(), out, failfile))})
        r = self.run_config("--json")
        self.assertEqual(r.rc, expect_rc, r.describe())
        self.assertStderrNames(r, name)
        errors = self.assertErrorKind(r, name, {"delivery", "temporary"})
        if status == 75:
            self.assertTrue(any(e["temporary"] for e in errors), "MDA exit 75 not temporary: %r" % errors)
        delivered = util.read_dir_files(out)
        remaining = [util.lf(b) for _, b, _ in self.d.messages(user)]
        remaining_fix = [e + b"\n" if not e.endswith(b"\n") and proto.startswith("pop3") else e
                         for e in remaining]
        self.assertIn(failing[0], remaining_fix, "the message the MDA refused was deleted from the server")
        for e in expected:
            if e not in remaining_fix and e not in delivered:
                self.fail("message %s deleted from the server but never delivered" % util.message_id(e))
        self.note("%s, MDA exit %d: pullmail exit %d, refused message still on the server, "
                  "nothing deleted undelivered (%d delivered, %d left)"
                  % (proto, status, r.rc, len(delivered), len(remaining)))
        # fix the MDA: the next run delivers the rest, each message exactly once overall
        os.unlink(failfile)
        self.run_config(expect=0)
        self.assertDelivered(util.read_dir_files(out), expected, "%s after fixing the MDA" % proto)
        self.assertEqual(self.d.count(user), 0, "keep = false left mail on the server")

    def test_mda_failure_pop3s(self):
        self._failing("pop3s", 1, util.EX_CANTCREAT)

    def test_mda_failure_imaps(self):
        self._failing("imaps", 1, util.EX_CANTCREAT)

    def test_mda_tempfail(self):
        self._failing("pop3s", 75, util.EX_TEMPFAIL)


if __name__ == "__main__":
    util.main()
