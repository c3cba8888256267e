#!/usr/bin/env python3
"""The papercuts of issue 14, each as a user meets it:
--json on an option-parse error still prints the JSON line; one-off options
with a config file are an error naming the option (64), never silently
ignored; a --shard that selects no account says so and exits 0;
--repair-state on a healthy file says so and changes nothing;
examples/config.toml is valid with every commented example uncommented;
the systemd units start the binary where `cmake --install` puts it (and
`systemd-analyze verify` accepts them where it runs); the man page's
"one line per message" example gives one line per message."""

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib

import util
from messages import ordinary_corpus


class Papercuts(util.IntegrationCase):

    def unreachable_config(self, names=("acct",)):
        """Accounts on a port nothing listens on: any attempt to run one is exit 69."""
        port = util.free_port_value()
        self.config({n: {"url": "pop3s://127.0.0.1:%d" % port, "user": "u", "password": "p",
                         "deliver": "maildir:" + self.path("Maildir")} for n in names})

    def test_json_on_option_parse_error(self):
        for args in (["--json", "--no-such-option"], ["--jobs", "many", "--json"], ["--json", "-f"]):
            r = self.pullmail(*args)
            self.assertEqual(r.rc, util.EX_USAGE, r.describe())
            self.assertEqual(len(r.out.splitlines()), 1, "not one JSON line on stdout:\n" + r.describe())
            j = r.json()
            self.assertEqual(j["accounts"], [])
            self.assertEqual(j["exit_status"], util.EX_USAGE)
            self.assertTrue(j["error"], r.describe())
            self.note("%s: exit 64, %s" % (" ".join(args), r.out.strip()))
        r = self.pullmail("--no-such-option", expect=util.EX_USAGE)
        self.assertEqual(r.out, "", "JSON without --json")

    def test_oneoff_options_with_config_file(self):
        self.unreachable_config()
        for opt, value in (("--auth", "CRAM-MD5"), ("--ca-file", "/nonexistent"), ("--password-command", "false"),
                           ("--tls", "off"), ("--folder", "X"), ("--deliver-user", "me"),
                           ("--deliver-ca-file", "/nonexistent"), ("--deliver-password-command", "false"),
                           ("--user", "me"), ("--deliver", "maildir:/tmp/x")):
            r = self.run_config(opt, value, "--json")
            self.assertEqual(r.rc, util.EX_USAGE, "%s with -f: expected exit 64\n%s" % (opt, r.describe()))
            self.assertIn(opt + " ", r.err, "the error does not name %s:\n%s" % (opt, r.describe()))
            self.assertIn("--url", r.err)
            self.assertEqual(r.json()["accounts"], [], "an account ran:\n" + r.describe())
            self.assertEqual(util.count_maildir(self.path("Maildir")), 0)
        self.note("one-off options with -f: exit 64 naming the option, e.g. %r" % r.err.strip())

    def test_empty_shard(self):
        self.unreachable_config()
        outcomes = {}
        for k in (1, 2, 3):
            r = self.run_config("--shard", "%d/3" % k, "--json")
            outcomes[k] = r
        ran = [k for k, r in outcomes.items() if r.rc == util.EX_UNAVAILABLE]
        empty = [k for k, r in outcomes.items() if r.rc == 0]
        self.assertEqual(len(ran), 1, "the one account is not in exactly one shard: %s"
                         % {k: r.rc for k, r in outcomes.items()})
        self.assertEqual(len(empty), 2, {k: r.describe() for k, r in outcomes.items()})
        for k in empty:
            r = outcomes[k]
            self.assertIn("shard %d/3 is empty" % k, r.err, r.describe())
            self.assertNotIn("no enabled accounts", r.err)
            self.assertEqual(r.json()["accounts"], [])
            self.assertEqual(r.json()["exit_status"], 0)
        self.note("shards %s of 3 empty: exit 0, %r" % (empty, outcomes[empty[0]].err.strip()))

    def test_repair_state_on_a_healthy_file(self):
        user, pw = self.new_user()
        for m in ordinary_corpus(3, seed=141):
            self.d.add_message(user, m.data)
        self.config({"acct": self.account(user, pw, "pop3s", deliver="maildir:" + self.path("Maildir"))})
        self.run_config(expect=0)
        state = os.path.join(self.state_dir, "acct.state")
        with open(state, "rb") as f:
            before = f.read()
        listing = sorted(os.listdir(self.state_dir))
        r = self.run_config("--repair-state", "acct", expect=0)
        self.assertIn("healthy", r.err, r.describe())
        self.assertNotIn("rebuilt", r.err)
        self.assertNotIn("damaged", r.err)
        with open(state, "rb") as f:
            self.assertEqual(f.read(), before, "--repair-state changed a healthy state file")
        self.assertEqual(sorted(os.listdir(self.state_dir)), listing, "--repair-state left files behind")
        self.note("--repair-state on a healthy file: %r, nothing changed" % r.err.strip())

    def test_example_config_with_every_example_uncommented(self):
        with open(os.path.join(util.SRC, "examples", "config.toml"), encoding="utf-8") as f:
            text = f.read()
        self.assertNotIn("cannot deliver to IMAP", text)
        # a commented line that is TOML (a key = value or a [table]) is uncommented
        setting = re.compile(r"^# ?((\[[A-Za-z0-9_.\"-]+\])|([A-Za-z_][A-Za-z0-9_]* = .*))$")
        lines, uncommented = [], 0
        for line in text.splitlines():
            m = setting.match(line)
            if m:
                uncommented += 1
                line = m.group(1)
            lines.append(line)
        self.assertGreater(uncommented, 5)
        full = "\n".join(lines) + "\n"
        for name, body in (("as shipped", text), ("uncommented", full)):
            try:
                tomllib.loads(body)
            except tomllib.TOMLDecodeError as e:
                self.fail("examples/config.toml %s is not valid TOML: %s" % (name, e))
            path = self.path("example-%s.toml" % name.replace(" ", "-"))
            with open(path, "w", encoding="utf-8") as f:
                f.write(body)
            os.chmod(path, 0o600)
            # --repair-state loads and checks the whole file and needs no server
            r = self.pullmail("-f", path, "--repair-state", "home", "--state-dir", self.path("state-x"))
            self.assertEqual(r.rc, 0, "pullmail refuses examples/config.toml %s:\n%s" % (name, r.describe()))
        self.note("examples/config.toml: valid as shipped and with %d commented settings uncommented"
                  % uncommented)

    def test_systemd_units_start_the_installed_binary(self):
        build = os.path.dirname(util.BIN)
        self.assertTrue(os.path.exists(os.path.join(build, "CMakeCache.txt")),
                        "PULLMAIL_BIN is not in a cmake build directory: %s" % util.BIN)
        dest = self.path("destdir")
        env = dict(os.environ, DESTDIR=dest)
        subprocess.run(["cmake", "--install", build, "--prefix", "/usr/local"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        installed = [p[len(dest):] for p in glob.glob(dest + "/**/pullmail", recursive=True)
                     if os.path.isfile(p) and os.access(p, os.X_OK)]
        self.assertEqual(installed, ["/usr/local/bin/pullmail"], "cmake --install (default prefix) put it elsewhere")
        units = sorted(glob.glob(os.path.join(util.SRC, "examples", "*.service")))
        self.assertTrue(units)
        for unit in units:
            with open(unit) as f:
                text = f.read()
            starts = re.findall(r"^ExecStart=(\S+)", text, re.M)
            self.assertTrue(starts, "%s has no ExecStart" % unit)
            for s in starts:
                self.assertEqual(s, installed[0], "%s starts %s, but cmake --install puts pullmail in %s"
                                 % (os.path.basename(unit), s, installed[0]))
        self.note("every ExecStart of %s is %s, where cmake --install puts it"
                  % (", ".join(os.path.basename(u) for u in units), installed[0]))
        analyze = shutil.which("systemd-analyze")
        if not analyze:
            util.log("    systemd-analyze not installed: units not verified by systemd")
            return
        # verify copies that start the binary just installed (the unit's own path may not exist here)
        vdir = self.path("units")
        os.makedirs(vdir)
        for unit in glob.glob(os.path.join(util.SRC, "examples", "*.service")) + \
                glob.glob(os.path.join(util.SRC, "examples", "*.timer")):
            with open(unit) as f:
                text = f.read()
            text = re.sub(r"^(#?ExecStart=)\S+", lambda m: m.group(1) + dest + installed[0], text, flags=re.M)
            with open(os.path.join(vdir, os.path.basename(unit)), "w") as f:
                f.write(text)
        files = sorted(glob.glob(os.path.join(vdir, "*")))
        p = subprocess.run([analyze, "verify", "--man=no"] + files, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        out = p.stdout.decode(errors="replace")
        self.assertEqual(p.returncode, 0, "systemd-analyze verify failed:\n" + out)
        self.assertEqual(out.strip(), "", "systemd-analyze verify warns:\n" + out)
        self.note("systemd-analyze verify: %s clean" % ", ".join(os.path.basename(f) for f in files))

    def test_man_page_dry_run_example(self):
        with open(os.path.join(util.SRC, "man", "pullmail.1"), encoding="utf-8") as f:
            man = f.read()
        m = re.search(r"with one line per message:\n\.Dl \$ pullmail ([^\n]*)\n", man)
        self.assertIsNotNone(m, "the man page example 'one line per message' is gone")
        args = m.group(1).split()
        user, pw = self.new_user()
        msgs = ordinary_corpus(3, seed=142)
        for x in msgs:
            self.d.add_message(user, x.data)
        self.config({"acct": self.account(user, pw, "pop3s", deliver="maildir:" + self.path("Maildir"))})
        r = self.run_config(*args, expect=0)
        lines = [l for l in (r.out + r.err).splitlines() if l.strip()]
        self.assertEqual(len(lines), len(msgs), "`pullmail %s` (the man page's 'one line per message') "
                         "printed:\n%s" % (" ".join(args), "\n".join(lines)))
        self.assertEqual(util.count_maildir(self.path("Maildir")), 0)
        # and no option of the example is there for nothing (it said -n -v,
        # and -v adds nothing to -n)
        for extra in [a for a in args if a != "-n"]:
            rest = [a for a in args if a != extra]
            r2 = self.run_config(*rest, expect=0)
            self.assertNotEqual(r2.out + r2.err, r.out + r.err,
                                "the man page example `pullmail %s` has %s, which changes nothing"
                                % (" ".join(args), extra))
        self.note("man page example `pullmail %s`: %d lines for %d messages" % (" ".join(args), len(lines), len(msgs)))


if __name__ == "__main__":
    util.main()
