#!/usr/bin/env python3
"""pullmail import-fetchmailrc, end to end: a ~/.fetchmailrc written as a
fetchmail user would (comments, noise words, a defaults entry, two users of
one POP3 server, an IMAP entry with folders, quoted strings with escapes)
becomes a configuration that pullmail loads and runs against the test
Dovecot: every message of every mailbox delivered byte for byte by the MDA
the rc names, kept on the server where the rc says keep and deleted where
it says nokeep. A missing file and a malformed one are one-line errors
(exit 78) naming the file and line."""

import os

import util
from messages import ordinary_corpus


class ImportFetchmailrc(util.IntegrationCase):

    def test_imported_config_runs(self):
        alice, apw = self.new_user("alice")
        bob, bpw = self.new_user("bob")
        carol, cpw = self.new_user("carol")
        self.d.add_messages(alice, [m.data for m in ordinary_corpus(3, seed=31, prefix="alice")])
        self.d.add_messages(bob, [m.data for m in ordinary_corpus(2, seed=32, prefix="bob")])
        self.d.create_folder(carol, "Lists.cpp")
        self.d.add_messages(carol, [m.data for m in ordinary_corpus(2, seed=33, prefix="carol")])
        self.d.add_messages(carol, [m.data for m in ordinary_corpus(2, seed=34, prefix="cpp")], folder="Lists.cpp")
        expected = {
            alice: util.expected_from_served(self.d.messages(alice), final_newline=True),
            bob: util.expected_from_served(self.d.messages(bob), final_newline=True),
            carol: util.expected_from_served(self.d.messages(carol)) +
            util.expected_from_served(self.d.messages(carol, "Lists.cpp")),
        }
        out = {u: self.path("out-" + u) for u in expected}
        for d in out.values():
            os.makedirs(d)
        rc = """# fetchmail configuration of a small household
set postmaster "root"
set no bouncemail

defaults proto pop3
   sslcertfile "{ca}" sslcertck

poll 127.0.0.1 with proto POP3 port {pop3s} and options ssl:
    user "{alice}" there with password "{apw}" is alice here keep,
        mda "cat > {oa}/m.$$"
    user '{bob}' there has pass "{bpw}" is "bob" here; nokeep
        mda "cat > {ob}/m.$$"   # bob wants them gone from the server

poll 127.0.0.1 proto imap port {imaps} ssl   # carol's IMAP
    user "{carol}" password "{cpw}" is carol here
    folder INBOX, "Lists/cpp"
    keep fetchall
    mda "/bin/sh -c \\"cat > {oc}/m.$$\\""
""".format(ca=self.d.ca_file, pop3s=self.d.ports["pop3s"], imaps=self.d.ports["imaps"], alice=alice, apw=apw,
           bob=bob, bpw=bpw, carol=carol, cpw=cpw, oa=out[alice], ob=out[bob], oc=out[carol])
        with open(os.path.join(self.home, ".fetchmailrc"), "w") as f:
            f.write(rc)
        r = self.pullmail("import-fetchmailrc", expect=0)
        toml = r.out
        self.assertIn("# fetchmail: fetchall -- ", toml)
        self.assertIn("# fetchmail: set postmaster root -- ", toml)
        self.assertNotIn(apw + "\n", r.err)
        with open(self.config_path, "w") as f:
            f.write(toml)
        os.chmod(self.config_path, 0o600)
        self.note("imported:\n" + "\n".join("      " + l for l in toml.splitlines() if not l.startswith("password")))
        r = self.run_config("--state-dir", self.state_dir, "--json", expect=0)
        for user, want in expected.items():
            got = []
            for name in sorted(os.listdir(out[user])):
                with open(os.path.join(out[user], name), "rb") as f:
                    got.append(f.read())
            self.assertDelivered(got, want, "imported account of %s" % user)
        self.assertEqual(self.d.count(alice), 3, "alice: keep")
        self.assertEqual(self.d.count(bob), 0, "bob: nokeep")
        self.assertEqual(self.d.count(carol) + self.d.count(carol, "Lists.cpp"), 4, "carol: keep")
        r = self.run_config("--state-dir", self.state_dir, "--json", expect=0)
        self.assertEqual(sum(a["fetched"] for a in r.json()["accounts"]), 0, "second run fetched again")

    def test_errors(self):
        r = self.pullmail("import-fetchmailrc", self.path("missing"), expect=util.EX_CONFIG)
        self.assertEqual(r.err.strip().count("\n"), 0, r.err)
        self.assertIn("missing: cannot read", r.err)
        bad = self.path("bad.rc")
        with open(bad, "w") as f:
            f.write("poll a.example proto pop3\n  user \"x\" pass \"unterminated\n")
        r = self.pullmail("import-fetchmailrc", bad, expect=util.EX_CONFIG)
        self.assertIn("bad.rc:2: unterminated quoted string", r.err)
        self.assertEqual(r.out, "")


if __name__ == "__main__":
    util.main()
