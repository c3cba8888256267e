#!/usr/bin/env python3
"""Command line and configuration errors and their exit statuses:
--version, --help, usage errors (64), config errors (78, naming the file),
an unreachable server (69, naming the account)."""

import re

import util
from util import free_port_value


class Cli(util.IntegrationCase):

    def test_version_help(self):
        r = self.pullmail("--version", expect=0)
        self.assertRegex(r.out, r"\d+\.\d+\.\d+")
        with open(util.SRC + "/CMakeLists.txt") as f:
            version = re.search(r"project\(pullmail VERSION ([\d.]+)", f.read()).group(1)
        self.assertIn(version, r.out)
        self.note("--version: %r" % r.out.strip())
        r = self.pullmail("--help", expect=0)
        for opt in ("--keep", "--no-keep", "--all", "--check", "--dry-run", "--json", "--jobs",
                    "--state-dir", "--url", "--deliver"):
            self.assertIn(opt, r.out + r.err, "--help does not mention " + opt)
        self.note("--help mentions the options")

    def test_usage_errors(self):
        for args in (["--no-such-option"], ["--jobs", "many"], ["-f"]):
            r = self.pullmail(*args)
            self.assertEqual(r.rc, util.EX_USAGE, r.describe())
            self.assertTrue(r.err.strip(), "no message for a usage error")
            self.note("%s: exit 64" % " ".join(args))

    def test_config_errors(self):
        r = self.pullmail("-f", self.path("missing.toml"), expect=util.EX_CONFIG)
        self.assertIn("missing.toml", r.err)
        with open(self.config_path, "w") as f:
            f.write("[accounts.x]\nurl = \"pop3s://127.0.0.1:1\"\nuser = \n")
        r = self.pullmail("-f", self.config_path, expect=util.EX_CONFIG)
        self.assertIn("config.toml", r.err)
        self.note("missing file and TOML syntax error: exit 78, file named")
        user, pw = self.new_user()
        acc = self.account(user, pw, "pop3s")
        acc["kepp"] = False  # a typo must not pass silently
        self.config({"typo": acc})
        r = self.pullmail("-f", self.config_path, expect=util.EX_CONFIG)
        self.assertIn("kepp", r.err)
        acc = self.account(user, pw, "pop3s", deliver="carrier-pigeon:/tmp/x")
        self.config({"deliver": acc})
        self.pullmail("-f", self.config_path, expect=util.EX_CONFIG)
        acc = self.account(user, pw, "pop3s")
        acc["url"] = "http://127.0.0.1:1"
        self.config({"url": acc})
        self.pullmail("-f", self.config_path, expect=util.EX_CONFIG)
        self.note("unknown key, unknown delivery kind, unsupported URL scheme: exit 78")

    def test_unreachable(self):
        user, pw = self.new_user()
        port = free_port_value()
        acc = self.account(user, pw, "pop3s")
        acc["url"] = "pop3s://127.0.0.1:%d" % port
        self.config({"nowhere": acc})
        r = self.run_config("--json", expect=util.EX_UNAVAILABLE)
        self.assertStderrNames(r, "nowhere")
        self.assertErrorKind(r, "nowhere", "unreachable")
        self.assertEqual(r.json()["exit_status"], util.EX_UNAVAILABLE)
        self.note("closed port: exit 69, account named")


if __name__ == "__main__":
    util.main()
