#!/usr/bin/env python3
"""The man page documents everything a user can type: every option that
`pullmail --help` lists appears in the rendered OPTIONS section, and every
configuration key that src/ accepts (the KeySpec tables) appears as an item
of the rendered CONFIGURATION section. A failure names each missing option or
key, so that whoever adds one knows what to document."""

import os
import re
import shutil
import subprocess
import unittest

import util

MAN = os.path.join(util.SRC, "man", "pullmail.1")


def render_man():
    """The man page as plain text (mandoc, else man -l)."""
    if shutil.which("mandoc"):
        argv = ["mandoc", "-Tascii", "-Owidth=200", MAN]
    elif shutil.which("man"):
        argv = ["man", "-l", MAN]
    else:
        raise AssertionError("neither mandoc nor man is installed (scripts/deps installs mandoc)")
    env = dict(os.environ, MANWIDTH="200", MAN_KEEP_FORMATTING="0")
    text = subprocess.run(argv, check=True, stdout=subprocess.PIPE, env=env).stdout.decode("utf-8", "replace")
    return re.sub(r".\x08", "", text)  # overstrike bold/underline


def section(text, name):
    """The body of a top-level section (a line that is the name alone)."""
    m = re.search(r"^%s\n(.*?)(?=^[A-Z][A-Z /]+\n)" % re.escape(name), text, re.M | re.S)
    if not m:
        raise AssertionError("the rendered man page has no %s section" % name)
    return m.group(1)


def help_options():
    """Every option name of `pullmail --help`: ['-f', '--file', ...]."""
    r = util.run_pullmail(["--help"])
    if r.rc != 0:
        raise AssertionError("pullmail --help failed:\n" + r.describe())
    names = []
    for line in r.out.splitlines():
        m = re.match(r"^\s+(-[^\s]+)", line)
        if m:
            names += [n for n in m.group(1).split(",") if n.startswith("-")]
    return names


def config_keys():
    """Every key of every KeySpec table in src/*.cpp: {key: table name}."""
    keys = {}
    src = os.path.join(util.SRC, "src")
    for name in sorted(os.listdir(src)):
        if not name.endswith(".cpp"):
            continue
        with open(os.path.join(src, name), encoding="utf-8") as f:
            text = f.read()
        for table, body in re.findall(r"KeySpec\s+(\w+)\s*\[\s*\]\s*=\s*\{(.*?)\n\};", text, re.S):
            for key in re.findall(r'\{\s*"([a-z_][a-z0-9_]*)"\s*,', body):
                keys.setdefault(key, "%s (src/%s)" % (table, name))
    return keys


class ManCoverage(unittest.TestCase):

    def test_every_help_option_is_in_the_man_page(self):
        options = section(render_man(), "OPTIONS")
        names = help_options()
        self.assertIn("--deliver-ca-file", names, "--help lists no --deliver-ca-file; parsing broke?")
        missing = [n for n in names
                   if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(n), options)]
        self.assertEqual(missing, [], "options in `pullmail --help` but not in the OPTIONS section of "
                         "man/pullmail.1: %s" % ", ".join(missing))
        util.log("%d option names of --help, each in the man page's OPTIONS" % len(names))

    def test_every_config_key_is_in_the_man_page(self):
        conf = section(render_man(), "CONFIGURATION")
        keys = config_keys()
        self.assertIn("password_file", keys, "no keys found in src/: parsing of the KeySpec tables broke?")
        missing = []
        for key, where in sorted(keys.items()):
            # an item "key = ..." (how keys are documented), or a table "[key" / "[accounts.NAME]"
            item = re.search(r"^\s+%s =" % re.escape(key), conf, re.M)
            table = re.search(r"\[%s[\].]" % re.escape(key), conf)
            if not (item or table):
                missing.append("%s (from %s)" % (key, where))
        self.assertEqual(missing, [], "config keys accepted by src/ but not documented as an item "
                         "'KEY = ...' in the CONFIGURATION section of man/pullmail.1: %s" % ", ".join(missing))
        util.log("%d config keys, each an item of the man page's CONFIGURATION" % len(keys))


if __name__ == "__main__":
    util.main()
