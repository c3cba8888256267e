#!/usr/bin/env python3
"""Shell completions (scripts/completions): every option `pullmail --help`
lists is completed by the bash, zsh and fish scripts; account names come
from the configuration named with -f (pullmail --list-accounts); the
subcommands adopt and import-fetchmailrc; values of --tls. Each shell runs
its script for real: bash through COMP_WORDS/COMP_CWORD and the function the
script registers, fish with `complete -C`, zsh in a pseudo-terminal (zpty)
with compinit, a TAB and compadd wrapped to print the matches. (Without fish
or zsh installed, only their option lists are checked against --help.)
`cmake --install` puts the three where the shells look for them."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

import util

COMPLETIONS = os.path.join(util.SRC, "scripts", "completions")
CONFIG = """
[accounts.home]
url = "pop3s://pop.example.org"
user = "me"
password = "x"
deliver = "maildir:~/Mail"

[accounts."work.example"]
url = "imaps://imap.example.com"
user = "me"
password = "y"
deliver = "maildir:~/Work"
"""


def help_options():
    """-x and --xyz of --help, parsed here independently of the scripts."""
    out = subprocess.run([util.BIN, "--help"], capture_output=True, text=True, check=True).stdout
    opts = set()
    for line in out.split("\nExamples:")[0].splitlines():
        m = re.match(r"^\s+(-\S+)", line)
        if m:
            opts.update(o for o in m.group(1).split(",") if o.startswith("-"))
    assert "--file" in opts and "-f" in opts and "--help" in opts, out
    return opts


class Completions(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        util.require_binary()
        cls.tmp = tempfile.mkdtemp(prefix="pullmail-it-completions-")
        cls.bin = os.path.join(cls.tmp, "bin")
        os.makedirs(cls.bin)
        os.symlink(os.path.abspath(util.BIN), os.path.join(cls.bin, "pullmail"))
        cls.config = os.path.join(cls.tmp, "c.toml")
        with open(cls.config, "w") as f:
            f.write(CONFIG)
        os.chmod(cls.config, 0o600)
        cls.env = dict(os.environ, PATH=cls.bin + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
                       HOME=cls.tmp, XDG_CONFIG_HOME=os.path.join(cls.tmp, "nowhere"))
        cls.options = help_options()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def bash(self, *words, script=None):
        """COMPREPLY for the command line `words` (the last word is being completed)."""
        script = script or os.path.join(COMPLETIONS, "pullmail.bash")
        quoted = " ".join("'%s'" % w.replace("'", "'\\''") for w in words)
        prog = ("source %s; COMP_WORDS=(%s); COMP_CWORD=%d; COMP_LINE=\"${COMP_WORDS[*]}\"; "
                "complete -p pullmail >/dev/null || exit 9; _pullmail; printf '%%s\\n' \"${COMPREPLY[@]}\""
                % (script, quoted, len(words) - 1))
        r = subprocess.run(["bash", "--norc", "--noprofile", "-c", prog], capture_output=True, text=True,
                           env=self.env, cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        return set(x for x in r.stdout.splitlines() if x)

    def test_bash_options_accounts_commands(self):
        got = self.bash("pullmail", "-")
        self.assertEqual(self.options - got, set(), "options of --help that bash does not complete")
        self.assertNotIn("--list-accounts", got)
        util.log("    checked: bash completes all %d options of --help" % len(self.options))
        self.assertEqual(self.bash("pullmail", "--no-"), {"--no-keep", "--no-progress"})
        self.assertEqual(self.bash("pullmail", "-f", self.config, ""),
                         {"adopt", "auth", "import-fetchmailrc", "home", "work.example"})
        self.assertEqual(self.bash("pullmail", "--file", self.config, "adopt", "w"), {"work.example"})
        self.assertEqual(self.bash("pullmail", "-f", self.config, "--repair-state", "h"), {"home"})
        self.assertEqual(self.bash("pullmail", "--tls", ""), {"off", "starttls", "implicit"})
        self.assertIn("c.toml", self.bash("pullmail", "import-fetchmailrc", "c"))
        self.assertEqual(self.bash("pullmail", ""), {"adopt", "auth", "import-fetchmailrc"},
                         "no configuration: only the subcommands")

    def test_list_accounts(self):
        r = subprocess.run([util.BIN, "-f", self.config, "--list-accounts"], capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stdout), (0, "home\nwork.example\n"), r.stderr)
        r = subprocess.run([util.BIN, "--help"], capture_output=True, text=True)
        self.assertNotIn("--list-accounts", r.stdout, "a helper for the scripts, not for --help")

    def test_fish(self):
        script = os.path.join(COMPLETIONS, "pullmail.fish")
        listed = set()
        with open(script) as f:
            for line in f:
                listed.update("-" + s for s in re.findall(r" -s (\S)", line))
                listed.update("--" + s for s in re.findall(r" -l (\S+)", line))
        self.assertEqual(self.options - listed, set(), "options of --help missing in pullmail.fish")
        if not shutil.which("fish"):
            util.log("    fish not installed: option list checked, completion not run")
            return

        def fish(line):
            r = subprocess.run(["fish", "--no-config", "-c", "source %s; complete -C%s" % (script, shquote(line))],
                               capture_output=True, text=True, env=self.env, cwd=self.tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            return set(x.split("\t")[0] for x in r.stdout.splitlines() if x)

        longs = {o for o in self.options if o.startswith("--")}
        self.assertEqual(longs - fish("pullmail --"), set(), "long options fish does not complete")
        shorts = {o for o in self.options if not o.startswith("--")}
        self.assertEqual(shorts - fish("pullmail -"), set(), "short options fish does not complete")
        self.assertTrue({"adopt", "import-fetchmailrc", "home", "work.example"} <=
                        fish("pullmail -f %s " % self.config))
        self.assertEqual(fish("pullmail --tls "), {"off", "starttls", "implicit"})
        util.log("    checked: fish completes all %d options of --help, accounts, subcommands" % len(self.options))

    def zsh(self, line):
        """The matches zsh's completion system offers for `line`: an interactive
        zsh in a pseudo-terminal (zpty) with compinit and the script in fpath,
        sent the line and a TAB, with compadd wrapped to print its matches."""
        script = os.path.join(self.tmp, "capture.zsh")
        with open(script, "w") as f:
            f.write(ZSH_CAPTURE)
        r = subprocess.run(["zsh", "-f", script, COMPLETIONS, line], capture_output=True, text=True,
                           env=self.env, cwd=self.tmp, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return set(x for x in r.stdout.splitlines() if x)

    def test_zsh(self):
        script = os.path.join(COMPLETIONS, "_pullmail")
        with open(script) as f:
            text = f.read()
        listed = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)(?=[\[}',])", text))
        self.assertEqual(self.options - listed, set(), "options of --help missing in _pullmail")
        if not shutil.which("zsh"):
            util.log("    zsh not installed: option list checked, completion not run")
            return
        r = subprocess.run(["zsh", "-n", script], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.zsh("pullmail -")
        self.assertEqual(self.options - got, set(), "options of --help zsh does not complete")
        self.assertNotIn("--list-accounts", got)
        self.assertEqual(self.zsh("pullmail -f %s " % self.config),
                         {"adopt", "auth", "import-fetchmailrc", "home", "work.example"})
        self.assertEqual(self.zsh("pullmail -f %s adopt " % self.config), {"home", "work.example"})
        self.assertEqual(self.zsh("pullmail --tls "), {"off", "starttls", "implicit"})
        util.log("    checked: zsh completes all %d options of --help, accounts, subcommands" % len(self.options))

    def test_cmake_install(self):
        build = os.path.dirname(os.path.abspath(util.BIN))
        if not os.path.isfile(os.path.join(build, "cmake_install.cmake")):
            self.fail("no cmake_install.cmake next to %s" % util.BIN)
        prefix = os.path.join(self.tmp, "prefix")
        r = subprocess.run(["cmake", "--install", build, "--prefix", prefix], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for rel in ("share/bash-completion/completions/pullmail", "share/zsh/site-functions/_pullmail",
                    "share/fish/vendor_completions.d/pullmail.fish"):
            self.assertTrue(os.path.isfile(os.path.join(prefix, rel)), "not installed: " + rel)
        got = self.bash("pullmail", "--st", script=os.path.join(prefix, "share/bash-completion/completions/pullmail"))
        self.assertEqual(got, {"--state-dir"})


ZSH_CAPTURE = r'''zmodload zsh/zpty
zpty z zsh -f -i
init=$(mktemp)
cat > $init <<INIT
PROMPT=
fpath=($1 \$fpath)
autoload -Uz compinit
compinit -u -d $init.dump
bindkey '^I' complete-word
zstyle ':completion:*' list-grouped false
zstyle ':completion:*' insert-tab false
null-line() { echo -E - \$'\0' }
compprefuncs=(null-line)
comppostfuncs=(null-line exit)
compadd() {
    if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "\$@"; return \$?; fi
    typeset -a __hits
    builtin compadd -A __hits "\$@"
    local h; for h in \$__hits; do echo -E - "MATCH:\$h"; done
}
echo ok
INIT
zpty -w z "source $init"
repeat 10; do zpty -r z line; [[ $line == ok* ]] && break; done
zpty -w z "$2"$'\t'
integer tog=0
while zpty -r z; do :; done | while IFS= read -r line; do
    if [[ $line == *$'\0\r' ]]; then (( tog++ )) && break || continue; fi
    (( tog )) && [[ $line == MATCH:* ]] && print -r -- ${${line#MATCH:}%$'\r'}
done
rm -f $init $init.dump
'''


def shquote(s):
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


if __name__ == "__main__":
    util.main()
