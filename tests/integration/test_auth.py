#!/usr/bin/env python3
"""Authentication: a wrong password or unknown user is status 77 with a
clear message naming the account, nothing delivered or changed. The
password (and its SASL PLAIN encoding) never appears in -vv output, whether
it comes from the config, password_command, password_file or the
environment, on success or on failure.

Password sources that fail are configuration errors (78) naming the account
and the source: a password_command that hangs is ended after the account's
connect_timeout, an empty password_file is never sent as an empty password.
No command pullmail starts (MDA, password_command) sees the secret
PULLMAIL_PASSWORD / PULLMAIL_DELIVER_PASSWORD variables."""

import base64
import glob
import os
import pty
import re
import select
import time

import util
from messages import ordinary_corpus

AUTH_WORDS = r"auth|login|password|credential|denied|refused|rejected"


def secret_forms(user, pw):
    """The password as it could leak: plain, base64, SASL PLAIN, LOGIN."""
    forms = [pw, base64.b64encode(pw.encode()).decode()]
    for authz in ("", user):
        forms.append(base64.b64encode(("%s\0%s\0%s" % (authz, user, pw)).encode()).decode())
    return forms


class Auth(util.IntegrationCase):

    def _wrong(self, proto, user, pw):
        for m in ordinary_corpus(2, seed=51):
            self.d.add_message(self.real_user, m.data)
        maildir = self.path("Maildir-" + proto)
        name = "wrong-" + proto
        self.config({name: self.account(user, pw, proto, deliver="maildir:" + maildir, keep=False)})
        r = self.run_config("--json", expect=util.EX_NOPERM)
        lines = [l for l in self.assertStderrNames(r, name, AUTH_WORDS) if re.search(AUTH_WORDS, l, re.I)]
        self.assertEqual(util.count_maildir(maildir), 0)
        self.assertErrorKind(r, name, "auth")
        self.assertEqual(r.json()["exit_status"], util.EX_NOPERM)
        self.note("%s user %s: exit 77: %r" % (proto, user, lines[0]))
        r = self.run_config("-vv", expect=util.EX_NOPERM)
        self.assertEqual(util.count_maildir(maildir), 0)
        for form in secret_forms(user, pw):
            util.assert_secret_absent(form, r.stdout, r.stderr, what="-vv output of a failed login")
        self.note("-vv of the failed login (%d bytes): no trace of the password" % len(r.stderr))

    def test_wrong_password(self):
        user, pw = self.new_user()
        self.real_user = user
        for proto in ("pop3s", "imaps"):
            self._wrong(proto, user, "Wrong-" + pw)
        self.assertEqual(self.d.count(user), 4, "mail changed by failed logins")

    def test_unknown_user(self):
        user, pw = self.new_user()
        self.real_user = user
        for proto in ("pop3s", "imaps"):
            self._wrong(proto, "nosuchuser", pw)

    def test_password_not_in_verbose_output(self):
        # "env-login": one-off account, password from PULLMAIL_PASSWORD, SASL
        # LOGIN (user name and password each sent base64-encoded on a line)
        sources = ["literal", "command", "file", "env", "env-login"]
        for i, source in enumerate(sources):
            for proto in ("pop3s", "imaps"):
                user, pw = self.new_user("v")
                self.state_dir = self.path("state-%s-%s" % (source, proto))
                for m in ordinary_corpus(2, seed=52 + i):
                    self.d.add_message(user, m.data)
                expected = util.expected_from_served(self.d.messages(user),
                                                     final_newline=proto == "pop3s")
                maildir = self.path("Maildir-%s-%s" % (source, proto))
                acc = self.account(user, None, proto, deliver="maildir:" + maildir)
                env = None
                if source == "literal":
                    acc["password"] = pw
                elif source == "command":
                    pwf = self.path("pw-%s-%s" % (source, proto))
                    with open(pwf, "w") as f:
                        f.write(pw + "\n")
                    acc["password_command"] = "cat " + pwf
                elif source == "file":
                    pwf = self.path("pw-%s-%s" % (source, proto))
                    with open(pwf, "w") as f:
                        f.write(pw + "\n")
                    os.chmod(pwf, 0o600)
                    acc["password_file"] = pwf
                if source.startswith("env"):
                    extra = ["--auth", "LOGIN"] if source == "env-login" else []
                    r = self.pullmail("--url", self.url(proto), "--user", user,
                                      "--deliver", "maildir:" + maildir, "--ca-file", self.d.ca_file,
                                      "--state-dir", self.state_dir, "-vv", *extra, password=pw, expect=0)
                else:
                    self.config({"verbose": acc})
                    r = self.run_config("-vv", expect=0, env=env)
                self.assertDelivered(util.maildir_messages(maildir), expected,
                                     "%s password from %s" % (proto, source))
                self.assertTrue(r.err.strip(), "-vv printed nothing on stderr: the check would be empty")
                for form in secret_forms(user, pw):
                    util.assert_secret_absent(form, r.stdout, r.stderr,
                                              what="-vv output (%s, password from %s)" % (proto, source))
                self.note("%s, password from %s: -vv wrote %d bytes, no trace of the password"
                          % (proto, source, len(r.stderr)))

    # ---- password sources that fail ------------------------------------------

    def _config_error(self, r, name, pattern):
        self.assertEqual(r.rc, util.EX_CONFIG, r.describe())
        self.assertStderrNames(r, name, pattern)
        self.assertErrorKind(r, name, "config")

    def test_password_command_timeout(self):
        user, pw = self.new_user("t")
        ordinary = ordinary_corpus(1, seed=57)
        self.d.add_message(user, ordinary[0].data)
        marker = self.path("pw-cmd-child-alive")
        acc = self.account(user, None, "imaps", connect_timeout=2,
                           password_command="(sleep 6; touch %s) & sleep 8; echo %s" % (marker, pw))
        self.config({"slowpw": acc})
        t0 = time.monotonic()
        r = self.run_config("--json", timeout=60)
        took = time.monotonic() - t0
        self._config_error(r, "slowpw", r"password_command.*timed out after 2 s")
        self.assertLess(took, 4, "connect_timeout = 2 but the password command held the run %.1fs" % took)
        time.sleep(6.5 - took if took < 6.5 else 0)
        self.assertFalse(os.path.exists(marker), "the password command's child survived its timeout")
        self.assertEqual(util.count_maildir(self.path("Maildir")), 0)
        self.note("password_command 'sleep 8' with connect_timeout = 2: exit 78 after %.1fs, "
                  "its whole process group ended" % took)

    def test_empty_password_file(self):
        user, pw = self.new_user("e")
        for content in (b"", b"\n"):
            pwf = self.path("empty-pw")
            with open(pwf, "wb") as f:
                f.write(content)
            os.chmod(pwf, 0o600)
            self.config({"emptypw": self.account(user, None, "pop3s", password_file=pwf)})
            r = self.run_config("--json")
            self._config_error(r, "emptypw", re.escape(pwf) + r".*empty")
            self.note("password_file holding %r: exit 78 naming the file" % content)

    def test_secrets_not_in_child_environment(self):
        """The MDA and the password command run without PULLMAIL_PASSWORD and
        PULLMAIL_DELIVER_PASSWORD in their environment."""
        user, pw = self.new_user("s")
        for m in ordinary_corpus(2, seed=58):
            self.d.add_message(user, m.data)
        out = self.path("env-out")
        os.makedirs(out)
        secrets = {"PULLMAIL_PASSWORD": pw, "PULLMAIL_DELIVER_PASSWORD": "deliver-Secret-77x"}
        # A one-off account: the password comes from PULLMAIL_PASSWORD.
        # $PPID is pullmail: its core size limit must be 0 (no core file can
        # hold the password).
        mda = "mda:env > %s/mda.$$; grep 'core file' /proc/$PPID/limits > %s/limits.$$; cat > /dev/null" % (out, out)
        self.pullmail("--url", self.url("pop3s"), "--user", user, "--deliver", mda,
                      "--ca-file", self.d.ca_file, "--state-dir", self.path("state-oneoff"),
                      env={"PULLMAIL_DELIVER_PASSWORD": secrets["PULLMAIL_DELIVER_PASSWORD"],
                           "PULLMAIL_TEST_VISIBLE": "yes"},
                      password=pw, expect=0)
        # A configured account whose password command and MDA both dump theirs.
        pwf = self.path("pw-file")
        with open(pwf, "w") as f:
            f.write(pw + "\n")
        acc = self.account(user, None, "imaps", deliver=mda,
                           password_command="env > %s/pwcmd.$$; cat %s" % (out, pwf))
        self.config({"envcheck": acc})
        self.run_config(env=dict(secrets, PULLMAIL_TEST_VISIBLE="yes"), expect=0)
        dumps = glob.glob(os.path.join(out, "mda.*")) + glob.glob(os.path.join(out, "pwcmd.*"))
        self.assertEqual(len(dumps), 5, "expected 4 MDA runs and 1 password command: %r" % dumps)
        for path in dumps:
            with open(path, "rb") as f:
                env = f.read().decode(errors="replace")
            self.assertIn("PULLMAIL_TEST_VISIBLE=yes", env, "the child's environment was not passed at all")
            for name, value in secrets.items():
                self.assertFalse(name + "=" in env, "%s in the environment of %s" % (name, path))
                util.assert_secret_absent(value, env.encode(), what="environment of " + os.path.basename(path))
        limits = glob.glob(os.path.join(out, "limits.*"))
        self.assertEqual(len(limits), 4)
        for path in limits:
            with open(path) as f:
                fields = f.read().split()
            self.assertEqual(fields[4:6], ["0", "0"], "pullmail may write a core file: %r" % fields)
        self.note("%d child environments (MDA, password_command): no secret variable; "
                  "pullmail's core size limit is 0" % len(dumps))

    def test_password_command_prompts_on_the_terminal(self):
        """A password command in its own process group can still prompt on
        /dev/tty when pullmail runs in the foreground of a terminal (else
        SIGTTIN would stop it until its timeout)."""
        user, pw = self.new_user("p")
        for m in ordinary_corpus(1, seed=59):
            self.d.add_message(user, m.data)
        maildir = self.path("Maildir")
        acc = self.account(user, None, "imaps", deliver="maildir:" + maildir, connect_timeout=10,
                           password_command='printf "Password: " > /dev/tty; read pw < /dev/tty; echo "$pw"')
        self.config({"tty": acc})
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULLMAIL_")}
        env["HOME"] = self.home
        t0 = time.monotonic()
        pid, master = pty.fork()
        if pid == 0:  # the session leader of a new terminal, in its foreground
            try:
                os.execve(util.BIN, [util.BIN, "-f", self.config_path], env)
            finally:
                os._exit(127)
        seen = b""
        answered = False
        while time.monotonic() - t0 < 30:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
            if not answered and b"Password: " in seen:
                os.write(master, pw.encode() + b"\n")
                answered = True
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
        else:
            os.kill(pid, 9)
            done, status = os.waitpid(pid, 0)
        if not done:
            done, status = os.waitpid(pid, 0)
        os.close(master)
        shown = seen.decode(errors="replace").replace(pw, "<pw>")
        self.assertTrue(answered, "no prompt on the terminal: %r" % shown)
        self.assertTrue(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
                        "pullmail under a terminal: status %r, terminal showed %r" % (status, shown))
        self.assertEqual(util.count_maildir(maildir), 1)
        self.note("password_command prompting on /dev/tty: answered, delivered in %.1fs" % (time.monotonic() - t0))


if __name__ == "__main__":
    util.main()
