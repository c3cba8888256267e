"""Shared bookkeeping of the fault tests: running pullmail with extra process
settings, reading what a target holds (Maildir, mbox, MDA output) without
giving up at the first problem, and turning it into lost / duplicated /
partial counts against the expected messages.

Expected bytes follow util.py: Dovecot's IMAP BODY.PEEK[] bytes with CRLF ->
LF, plus a final LF where the message lacks one when it travelled over POP3
or into an mbox.
"""

import os
import re
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import util  # noqa: E402

ACCOUNT = "cli"  # the name pullmail gives a one-off (--url) account


# ---- running pullmail ---------------------------------------------------------

def run(args, password=None, env=None, timeout=300, preexec_fn=None, prefix=(), home=None):
    """Like util.run_pullmail, plus preexec_fn (resource limits) and an argv
    prefix (setpriv ...). Returns a util.Result."""
    util.require_binary()
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("PULLMAIL_") and not k.startswith("XDG_")}
    if home is not None:
        e["HOME"] = home
        e["XDG_CONFIG_HOME"] = os.path.join(home, ".config")
        e["XDG_STATE_HOME"] = os.path.join(home, ".local", "state")
    if password is not None:
        e["PULLMAIL_PASSWORD"] = password
    if env:
        e.update(env)
    argv = list(prefix) + [util.BIN] + [str(a) for a in args]
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, env=e, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, preexec_fn=preexec_fn)
    except subprocess.TimeoutExpired as ex:
        raise AssertionError("pullmail did not finish within %ds (hang?): %s\nstderr so far:\n%s" % (
            timeout, " ".join(shlex.quote(a) for a in argv),
            (ex.stderr or b"").decode(errors="replace")[-4000:]))
    return util.Result(argv, p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


def oneoff(url, user, deliver, state_dir, ca_file=None, keep=False, extra=()):
    args = ["--url", url, "--user", user, "--deliver", deliver, "--state-dir", state_dir,
            "-K" if not keep else "-k"]
    if ca_file:
        args += ["--ca-file", ca_file]
    return args + list(extra)


def account_lines(result, account=ACCOUNT, errors_only=True):
    """stderr lines "pullmail: account 'NAME': ..." (without warnings when
    errors_only)."""
    prefix = "pullmail: account '%s': " % account
    out = []
    for line in result.err.splitlines():
        if not line.startswith(prefix):
            continue
        if errors_only and line[len(prefix):].startswith("warning:"):
            continue
        out.append(line)
    return out


def stray_stderr(result):
    """stderr lines that are not pullmail's own messages (library noise,
    sanitizer reports, a shell complaining, ...)."""
    return [l for l in result.err.splitlines()
            if l.strip() and not l.startswith("pullmail: ") and not l.startswith("step ")]


def crashed(result):
    """A signal death (negative return code) other than the injected SIGKILL
    is a crash; so is an internal-error exit."""
    return result.rc < 0 or result.rc == util.EX_SOFTWARE


# ---- MDA ----------------------------------------------------------------------

MDA_SCRIPT = r'''#!/bin/sh
# fault-test MDA: stores its stdin as one uniquely named file: written in
# tmp/, moved to new/ when complete. Exits 0.
d="$1"
f=$(mktemp "$d/tmp/m.XXXXXXXXXX") || exit 74
cat > "$f" || exit 74
mv "$f" "$d/new/" || exit 74
exit 0
'''


def make_mda(directory, script=MDA_SCRIPT, name="mda.sh"):
    """Writes the MDA script and its output dir. Returns (deliver, outdir).
    The output dir's path is unique, so wait_mda_gone(outdir) can find
    MDAs (orphaned by a killed pullmail) still running."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(script)
    os.chmod(path, 0o755)
    out = os.path.join(directory, "mda-out")
    for sub in ("tmp", "new"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    return "mda:%s %s" % (path, out), out


def processes_mentioning(marker):
    """pids of processes whose command line contains marker."""
    pids = []
    me = os.getpid()
    mb = marker.encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if mb in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def wait_mda_gone(marker, timeout=30):
    """Waits until no process mentions marker (MDAs left running by a
    pullmail that was killed finish on their own: their stdin is closed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not processes_mentioning(marker):
            return
        time.sleep(0.01)
    raise AssertionError("MDA processes still running after %ds: %r" % (timeout, processes_mentioning(marker)))


# ---- reading targets ------------------------------------------------------------

class Contents:
    """What a target holds: complete messages, plus partial leftovers."""

    def __init__(self):
        self.messages = []   # bytes of each complete message
        self.partials = []   # descriptions of half-written things
        self.problems = []   # other structural problems (unparseable mbox)


def read_maildir(path):
    c = Contents()
    for name, data in util.read_maildir(path, check_tmp=False):
        c.messages.append(data)
    tmp = os.path.join(path, "tmp")
    if os.path.isdir(tmp):
        for name in sorted(os.listdir(tmp)):
            c.partials.append("%s/tmp/%s (%d bytes)" % (path, name, os.path.getsize(os.path.join(tmp, name))))
    return c


def read_mbox(path):
    c = Contents()
    if not os.path.exists(path):
        return c
    with open(path, "rb") as f:
        data = f.read()
    try:
        c.messages = [m for _, m in util.parse_mboxrd(data)]
    except AssertionError as e:
        c.partials.append("mbox %s does not parse (%d bytes): %s" % (path, len(data), str(e)[:300]))
    return c


def read_mda_out(out):
    c = Contents()
    new = os.path.join(out, "new")
    for name in sorted(os.listdir(new)):
        with open(os.path.join(new, name), "rb") as f:
            c.messages.append(f.read())
    tmp = os.path.join(out, "tmp")
    for name in sorted(os.listdir(tmp)):
        c.partials.append("MDA file %s/tmp/%s never completed" % (out, name))
    return c


def read_target(kind, path):
    return {"maildir": read_maildir, "mbox": read_mbox, "mda": read_mda_out}[kind](path)


# ---- assessment ------------------------------------------------------------------

class Assessment:
    def __init__(self):
        self.lost = []        # message ids missing
        self.duplicated = []  # message ids delivered more than once (extra copies)
        self.partial = []     # leftovers and delivered messages equal to no expected one
        self.notes = []

    @property
    def clean(self):
        return not (self.lost or self.duplicated or self.partial)

    def summary(self):
        parts = []
        if self.lost:
            parts.append("lost %d: %s" % (len(self.lost), ", ".join(self.lost[:5])))
        if self.duplicated:
            parts.append("duplicated %d: %s" % (len(self.duplicated), ", ".join(self.duplicated[:5])))
        if self.partial:
            parts.append("partial/damaged %d: %s" % (len(self.partial), "; ".join(self.partial[:3])))
        return "; ".join(parts) if parts else "clean"


def assess(contents, expected, also_present=()):
    """Compares a target's contents with the expected messages (bytes, each
    with a unique Message-ID). also_present: messages known to be safe
    elsewhere (still on the server) that therefore do not count as lost."""
    a = Assessment()
    a.partial.extend(contents.partials)
    a.notes.extend(contents.problems)
    want = {}
    for e in expected:
        want[e] = want.get(e, 0) + 1
    got = {}
    for g in contents.messages:
        got[g] = got.get(g, 0) + 1
    safe = set(also_present)
    for e, n in want.items():
        have = got.get(e, 0)
        mid = util.message_id(e) or repr(e[:60])
        if have < n and e not in safe:
            a.lost.extend([mid] * (n - have))
        elif have > n:
            a.duplicated.extend([mid] * (have - n))
    for g, n in got.items():
        if g not in want:
            mid = util.message_id(g)
            near = [e for e in expected if util.message_id(e) == mid]
            if near:
                a.partial.extend([util.diff_report(mid, g, near[0])] * n)
            else:
                a.partial.extend(["unexpected message (%d bytes): %r" % (len(g), g[:80])] * n)
    return a


class Totals:
    """Counts over many fault points, printed at the end of a test."""

    def __init__(self, what):
        self.what = what
        self.tried = 0
        self.lost = 0
        self.duplicated = 0
        self.partial = 0
        self.other = 0      # exit status / message / crash problems
        self.failures = []  # (point, text)
        self.info = {}

    def add(self, point, assessment, extra_problems=(), dup_allowed=False, points=1):
        self.tried += points
        self.lost += len(assessment.lost)
        self.duplicated += len(assessment.duplicated)
        self.partial += len(assessment.partial)
        problems = list(extra_problems)
        self.other += len(problems)
        bad = assessment.lost or assessment.partial or (assessment.duplicated and not dup_allowed)
        if bad:
            problems.insert(0, assessment.summary())
        for p in problems:
            self.failures.append((point, p))

    def line(self):
        return ("%s: %d tried, lost %d, duplicated %d, partial %d, other problems %d" %
                (self.what, self.tried, self.lost, self.duplicated, self.partial, self.other))

    def report(self, limit=25):
        out = [self.line()]
        for point, text in self.failures[:limit]:
            out.append("  at %s: %s" % (point, text))
        if len(self.failures) > limit:
            out.append("  ... and %d more" % (len(self.failures) - limit))
        return "\n".join(out)


def small_corpus(n, seed, prefix):
    """n small messages (200-1500 bytes): fast exhaustive loops."""
    from messages import ordinary_corpus
    return ordinary_corpus(n, seed=seed, min_size=200, max_size=1500, prefix=prefix)


def expected_for(dovecot, user, pop3):
    """Expected delivered bytes of a user's INBOX as Dovecot serves it."""
    return util.expected_from_served(dovecot.messages(user), final_newline=pop3)


def seconds(t0):
    return "%.1fs" % (time.monotonic() - t0)


