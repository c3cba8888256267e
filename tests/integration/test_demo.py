#!/usr/bin/env python3
"""scripts/demo as a newcomer runs it: the checkout copied into a 0700
directory (Debian 12's home directories are 0700), the demo started from
another directory. It exits 0, delivers every sample message exactly once
into ./demo, prints "What happened" and leaves no server files behind; no
directory's mode is changed (neither the checkout's nor any parent's). A demo
that fails says what failed, exits non-zero and does not claim it worked.

The copy runs with --binary (the pullmail already built) so that the test
does not rebuild the project."""

import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

import util

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo import demo_corpus  # noqa: E402


def checkout_files(src):
    """The checkout's files (tracked and untracked, not ignored), relative."""
    try:
        out = subprocess.run(["git", "-C", src, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
        files = [f for f in out.decode().split("\0") if f]
        if files:
            return files
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for root, dirs, names in os.walk(src):
        dirs[:] = [d for d in dirs if not (d.startswith("build") or d in (".git", "demo"))]
        files += [os.path.relpath(os.path.join(root, n), src) for n in names]
    return files


def copy_checkout(src, dst):
    for rel in checkout_files(src):
        s = os.path.join(src, rel)
        if not os.path.isfile(s):
            continue  # deleted but still in the index
        d = os.path.join(dst, rel)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        shutil.copy2(s, d)


def dir_modes(top):
    """{directory: mode} for top, every directory below it and every parent."""
    modes = {}
    p = os.path.realpath(top)
    while True:
        modes[p] = stat.S_IMODE(os.stat(p).st_mode)
        if os.path.dirname(p) == p:
            break
        p = os.path.dirname(p)
    for root, dirs, _ in os.walk(top):
        for d in dirs:
            path = os.path.join(root, d)
            if not os.path.islink(path):
                modes[os.path.realpath(path)] = stat.S_IMODE(os.stat(path).st_mode)
    return modes


class DemoFromPrivateHome(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        util.require_binary()
        cls.tmp = tempfile.mkdtemp(prefix="pullmail-demo-test-")
        cls.home = os.path.join(cls.tmp, "home")
        os.mkdir(cls.home, 0o700)
        os.chmod(cls.home, 0o700)
        cls.checkout = os.path.join(cls.home, "pullmail")
        copy_checkout(util.SRC, cls.checkout)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_demo(self, binary):
        # started from another directory, without a terminal, with a private
        # $TMPDIR (as libpam-tmpdir gives): the harness must not use it for
        # the server's files, nor open it up
        tmpdir = os.path.join(self.home, "tmp")
        os.makedirs(tmpdir, 0o700, exist_ok=True)
        env = dict(os.environ, TMPDIR=tmpdir)
        return subprocess.run([os.path.join(self.checkout, "scripts", "demo"), "--binary", binary],
                              cwd="/", env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=300)

    def describe(self, p):
        return "exit %d\n--- stdout:\n%s\n--- stderr:\n%s" % (
            p.returncode, p.stdout.decode(errors="replace")[-6000:], p.stderr.decode(errors="replace")[-4000:])

    def test_demo_in_a_0700_home(self):
        self.assertEqual(stat.S_IMODE(os.stat(self.home).st_mode), 0o700)
        os.makedirs(os.path.join(self.home, "tmp"), 0o700, exist_ok=True)
        modes_before = dir_modes(self.home)
        p = self.run_demo(util.BIN)
        self.assertEqual(p.returncode, 0, self.describe(p))
        out = p.stdout.decode(errors="replace")
        self.assertIn("What happened", out)
        self.assertNotIn("FAILED", out + p.stderr.decode(errors="replace"))
        demo = os.path.join(self.checkout, "demo")
        pop_mail, imap_inbox, imap_list = demo_corpus()
        got_pop = sorted(util.message_id(m) for m in util.maildir_messages(os.path.join(demo, "Maildir")))
        got_imap = sorted(util.message_id(m) for m in util.read_mbox(os.path.join(demo, "imap.mbox")))
        self.assertEqual(got_pop, sorted(util.message_id(m.data) for m in pop_mail), "alice's Maildir")
        self.assertEqual(got_imap, sorted(util.message_id(m.data) for m in imap_inbox + imap_list), "bob's mbox")
        for name in ("config.toml", "ca.pem", "dovecot.log", "state"):
            self.assertTrue(os.path.exists(os.path.join(demo, name)), "demo/%s is missing" % name)
        changed = {d: (oct(m), oct(stat.S_IMODE(os.stat(d).st_mode)))
                   for d, m in modes_before.items() if stat.S_IMODE(os.stat(d).st_mode) != m}
        self.assertEqual(changed, {}, "the demo changed the mode of directories (before, after)")
        m = re.search(r"are in (/\S+), removed at the end", out)
        self.assertIsNotNone(m, "the demo does not say where the server's files are")
        server_dir = m.group(1)
        self.assertFalse(server_dir.startswith(self.tmp), "server files below the checkout's directory")
        self.assertFalse(os.path.exists(server_dir), "the server's private directory was left behind")
        util.log("demo from a 0700 home: exit 0, %d + %d messages delivered once each, no mode changed, "
                 "server files removed" % (len(got_pop), len(got_imap)))

    def test_demo_for_a_user_through_sudo(self):
        # What scripts/demo runs through sudo for a normal user (sudo itself
        # is not needed for the test): demo.py as root with --as UID:GID
        # runs pullmail as that user, and ./demo belongs to them.
        nobody = pwd.getpwnam("nobody")
        home = tempfile.mkdtemp(prefix="pullmail-demo-nobody-")  # 0700, like a home
        self.addCleanup(shutil.rmtree, home, True)
        binary = os.path.join(home, "pullmail")
        shutil.copy2(util.BIN, binary)
        os.chown(home, nobody.pw_uid, nobody.pw_gid)
        os.chown(binary, nobody.pw_uid, nobody.pw_gid)
        demo = os.path.join(home, "demo")
        before = dir_modes(home)
        p = subprocess.run([sys.executable, os.path.join(self.checkout, "tests", "integration", "demo.py"),
                            "--as", "%d:%d" % (nobody.pw_uid, nobody.pw_gid), demo, binary],
                           cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=300)
        self.assertEqual(p.returncode, 0, self.describe(p))
        pop_mail, imap_inbox, imap_list = demo_corpus()
        self.assertEqual(util.count_maildir(os.path.join(demo, "Maildir")), len(pop_mail))
        self.assertEqual(len(util.read_mbox(os.path.join(demo, "imap.mbox"))), len(imap_inbox) + len(imap_list))
        not_theirs = []
        for root, dirs, files in os.walk(demo):
            for n in [root] + [os.path.join(root, f) for f in files]:
                if os.lstat(n).st_uid != nobody.pw_uid:
                    not_theirs.append(n)
        # demo.py gives the user only what it wrote itself (config, ca.pem,
        # dovecot.log): the Maildir, mbox and state are theirs because
        # pullmail ran as them
        self.assertEqual(not_theirs, [], "files of ./demo that do not belong to the user")
        changed = {d for d, m in before.items() if stat.S_IMODE(os.stat(d).st_mode) != m}
        self.assertEqual(changed, set(), "modes changed")
        util.log("demo.py --as nobody: pullmail ran as nobody, ./demo belongs to nobody")

    def test_failed_demo_says_so(self):
        p = self.run_demo("/bin/false")
        self.assertNotEqual(p.returncode, 0, self.describe(p))
        out = p.stdout.decode(errors="replace")
        err = p.stderr.decode(errors="replace")
        self.assertNotIn("What happened", out + err, "a failed demo claims it worked")
        self.assertIn("demo FAILED: the first pullmail run failed", out, self.describe(p))
        self.assertIn("The demo FAILED", err)
        util.log("a failing pullmail: demo exit %d, says what failed, no 'What happened'" % p.returncode)


if __name__ == "__main__":
    util.main()
