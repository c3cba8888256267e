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
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import util  # noqa: E402



def oneoff_name(url, user):
    """The name pullmail gives a one-off (--url) account: "user@host:port"
    ('/', '\\' and ' ' replaced by '_'); its state file is NAME.state and
    its lock NAME.lock in the state dir."""
    rest = url.split("://", 1)[1]
    hostport = rest.split("/", 1)[0]
    name = "%s@%s" % (user, hostport)
    for c in "/\\ ":
        name = name.replace(c, "_")
    return name


# ---- running pullmail ---------------------------------------------------------

def run(args, password=None, env=None, timeout=300, preexec_fn=None, prefix=(), home=None):
    """util.run_pullmail with the fault tests' shorter default timeout."""
    return util.run_pullmail(args, env=env, timeout=timeout, password=password, home=home,
                             preexec_fn=preexec_fn, prefix=prefix)


def run_measured(args, password=None, env=None, timeout=300):
    """run() under /usr/bin/time: returns (result, peak resident set size in
    MB). time's own line is taken out of result.stderr."""
    marker = "pullmail-test-peak-rss-kb="
    r = run(args, password=password, env=env, timeout=timeout, prefix=["/usr/bin/time", "-f", marker + "%M"])
    lines = r.stderr.split(b"\n")
    peak = [l for l in lines if l.startswith(marker.encode())]
    if len(peak) != 1:
        raise AssertionError("no peak RSS from /usr/bin/time:\n" + r.describe())
    r.stderr = b"\n".join(l for l in lines if not l.startswith(marker.encode()))
    return r, int(peak[0][len(marker):]) / 1024.0


def oneoff(url, user, deliver, state_dir, ca_file=None, keep=False, extra=()):
    args = ["--url", url, "--user", user, "--deliver", deliver, "--state-dir", state_dir,
            "-K" if not keep else "-k"]
    if ca_file:
        args += ["--ca-file", ca_file]
    return args + list(extra)


def account_lines(result, account=None, errors_only=True):
    """stderr lines "pullmail: account 'NAME': ..." (any NAME when account
    is None; the fault tests run one account per invocation), without
    warnings when errors_only."""
    pat = re.compile(r"^pullmail: (warning: )?account '%s': " % (re.escape(account) if account else "[^']+"))
    out = []
    for line in result.err.splitlines():
        m = pat.match(line)
        if not m or (errors_only and m.group(1)):
            continue
        out.append(line)
    return out


def warning_lines(result):
    return [l for l in result.err.splitlines() if re.match(r"^pullmail: warning: account '[^']+': ", l)]


def config_args(path, name, url, user, password, deliver, state_dir, ca_file=None, keep=False, tls=None,
                extra=(), **settings):
    """Writes a config file with one account NAME and returns the arguments
    to run it (-f PATH, -k/-K, extra). Unlike one-off accounts (named after
    user@host:port), the name and so the state survive a change of URL (a
    run through a proxy, then one straight to the server)."""
    acc = {"url": url, "user": user, "password": password, "deliver": deliver}
    if ca_file:
        acc["ca_file"] = ca_file
    if tls:
        acc["tls"] = tls
    if tls == "off":
        # auth = "auto" never sends a password without TLS (issue 12): the
        # plaintext tests on loopback name the plaintext method.
        acc["auth"] = "user"
    acc.update(settings)
    util.write_config(path, {name: acc}, state_dir=state_dir)
    return ["-f", path, "-k" if keep else "-K"] + list(extra)


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

def make_mda(directory):
    """An MDA that writes its stdin to a uniquely named file and exits 0:
    `exec tee -a OUT/new/m.<pid>` (stdout is /dev/null for an MDA). One
    process per message keeps thousands of runs fast; the output path is in
    its argv, so wait_mda_gone(OUT) finds MDAs orphaned by a killed
    pullmail. -a: should a pid ever repeat, two messages end up in one file
    and show as damaged instead of one silently replacing the other.
    Returns (deliver, outdir)."""
    out = os.path.join(directory, "mda-out")
    for sub in ("tmp", "new"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    return "mda:exec tee -a %s/new/m.$$" % out, out


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
    for name in sorted(os.listdir(tmp)) if os.path.isdir(tmp) else []:
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




def fixed_uidvalidity_user(dovecot, name, password, uidvalidity=1700000000):
    """A Dovecot user whose INBOX has a chosen UIDVALIDITY, so that every
    such user with the same messages has the same POP3 UIDLs and IMAP UIDs:
    a state file written for one is valid for all (lets a test replay one
    state file against many fresh mailboxes). Done by seeding Dovecot's
    dovecot-uidlist ("3 V<uidvalidity> N<next uid>") before any message."""
    dovecot.add_user(name, password)
    path = os.path.join(dovecot.user_root(name), "dovecot-uidlist")
    with open(path, "w") as f:
        f.write("3 V%d N1\n" % uidvalidity)
    os.chown(path, dovecot.uid, dovecot.gid)
    return name, password


def server_message_ids(dovecot, user):
    """Message-IDs of a user's INBOX read from Dovecot's Maildir on disk
    (no login; Dovecot unlinks a file when it expunges the message). Dovecot
    may be moving files from new/ to cur/ (or renaming them for a flag) while
    we look: a file that vanished between listing and reading makes us look
    again, so a message being moved is never taken for a deleted one."""
    for _ in range(50):
        ids = set()
        moved = False
        for path in dovecot.maildir_files(user):
            try:
                with open(path, "rb") as f:
                    ids.add(util.message_id(f.read(8192)))
            except FileNotFoundError:
                moved = True
        if not moved:
            return ids
        time.sleep(0.02)
    raise AssertionError("the server's Maildir of %s keeps changing" % user)
