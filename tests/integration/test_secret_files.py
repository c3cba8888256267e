#!/usr/bin/env python3
"""Config safety as fetchmail and mpop have it (issue 14): a config file
holding a password, or a password_file, that group or others may read or
write is refused with exit 78 and the exact `chmod 600 FILE` to run; a config
file anyone else may write, or one owned by another user (also when root runs
pullmail on a user's file, as fetchmail refuses it), is refused the same way.
Nothing is fetched then: the server sees no login. A private file works."""

import os
import pwd

import util
from messages import ordinary_corpus
from util import Dovecot


class SecretFiles(util.IntegrationCase):

    def setup_account(self, **extra):
        user, pw = self.new_user()
        for m in ordinary_corpus(2, seed=14):
            self.d.add_message(user, m.data)
        maildir = self.path("Maildir")
        acc = self.account(user, pw, "pop3s", deliver="maildir:" + maildir, **extra)
        self.config({"acct": acc})
        return user, pw, maildir

    def assert_refused(self, r, path, user, maildir, mark, what):
        self.assertEqual(r.rc, util.EX_CONFIG, "%s: expected exit 78\n%s" % (what, r.describe()))
        self.assertIn("chmod 600 " + path, r.err, "%s: the error does not give the chmod to run\n%s"
                      % (what, r.describe()))
        self.assertEqual(util.count_maildir(maildir), 0, "%s: delivered although refused" % what)
        self.assertEqual(Dovecot.logins(self.d.settled_log(mark, user), user=user), [],
                         "%s: pullmail logged in although the file was refused" % what)
        self.assertEqual(self.d.count(user), 2)
        self.note("%s: exit 78: %s" % (what, r.err.strip().splitlines()[-1]))

    def test_config_with_password_readable_by_others(self):
        user, pw, maildir = self.setup_account()
        for mode in (0o644, 0o640, 0o604, 0o620, 0o602):
            os.chmod(self.config_path, mode)
            mark = self.d.log_mark()
            r = self.run_config("--json")
            self.assert_refused(r, self.config_path, user, maildir, mark, "config with a password, mode %o" % mode)
            self.assertEqual(r.json()["accounts"], [])
            util.assert_secret_absent(pw, r.stdout, r.stderr)
        os.chmod(self.config_path, 0o600)
        self.run_config(expect=0)
        self.assertEqual(util.count_maildir(maildir), 2)
        self.note("mode 600: fetched")

    def test_config_writable_by_others_even_without_password(self):
        user, pw = self.new_user()
        for m in ordinary_corpus(2, seed=15):
            self.d.add_message(user, m.data)
        pwf = self.path("pw")
        with open(pwf, "w") as f:
            f.write(pw + "\n")
        os.chmod(pwf, 0o600)
        maildir = self.path("Maildir")
        self.config({"acct": self.account(user, None, "pop3s", deliver="maildir:" + maildir, password_file=pwf)})
        for mode in (0o664, 0o646):
            os.chmod(self.config_path, mode)
            mark = self.d.log_mark()
            r = self.run_config()
            self.assert_refused(r, self.config_path, user, maildir, mark, "config without password, mode %o" % mode)
        # readable by others is fine when it holds no password
        os.chmod(self.config_path, 0o644)
        self.run_config(expect=0)
        self.assertEqual(util.count_maildir(maildir), 2)
        self.note("config without a password, mode 644: fetched")

    def test_password_file_readable_by_others(self):
        user, pw = self.new_user()
        for m in ordinary_corpus(2, seed=16):
            self.d.add_message(user, m.data)
        pwf = self.path("pw")
        with open(pwf, "w") as f:
            f.write(pw + "\n")
        maildir = self.path("Maildir")
        self.config({"acct": self.account(user, None, "pop3s", deliver="maildir:" + maildir, password_file=pwf)})
        for mode in (0o644, 0o640, 0o604, 0o660):
            os.chmod(pwf, mode)
            mark = self.d.log_mark()
            r = self.run_config()
            self.assert_refused(r, pwf, user, maildir, mark, "password_file mode %o" % mode)
            self.assertStderrNames(r, "acct", "password_file")
        os.chmod(pwf, 0o600)
        self.run_config(expect=0)
        self.assertEqual(util.count_maildir(maildir), 2)

    def test_config_owned_by_another_user(self):
        # The tests run as root: root running pullmail on someone else's
        # file is refused, as fetchmail refuses it.
        user, pw, maildir = self.setup_account()
        nobody = pwd.getpwnam("nobody")
        os.chmod(self.config_path, 0o600)
        os.chown(self.config_path, nobody.pw_uid, nobody.pw_gid)
        mark = self.d.log_mark()
        r = self.run_config()
        self.assert_refused(r, self.config_path, user, maildir, mark, "config owned by nobody, run by uid %d"
                            % os.getuid())
        self.assertIn("belongs to uid %d" % nobody.pw_uid, r.err)
        os.chown(self.config_path, os.getuid(), os.getgid())
        self.run_config(expect=0)


if __name__ == "__main__":
    util.main()
