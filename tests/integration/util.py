"""Helpers for pullmail's integration tests: run the binary, write configs,
read what it delivered (Maildir, mboxrd, MDA files) and compare it with what
the server holds, with diffs that say which message and where.

The expected-bytes rule: a delivered message equals the server's message as
Dovecot serves it over IMAP BODY.PEEK[], with every CRLF turned into LF and
nothing else changed. Two channels cannot carry "no final newline": POP3 (the
server adds a CRLF before the terminating dot) and mbox (a message must end
with a newline before the separator's blank line); for those a final LF is
expected where the server's message lacks one.
"""

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import dovecot as dovecot_mod  # noqa: E402
from dovecot import Dovecot  # noqa: E402,F401

SRC = os.environ.get("PULLMAIL_SRC") or os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("PULLMAIL_BIN") or os.path.join(SRC, "build", "pullmail")
KEEP_TMP = os.environ.get("PULLMAIL_KEEP_TMP") == "1"

# sysexits
EX_OK, EX_USAGE, EX_DATAERR, EX_UNAVAILABLE = 0, 64, 65, 69
EX_SOFTWARE, EX_CANTCREAT, EX_IOERR, EX_TEMPFAIL = 70, 73, 74, 75
EX_PROTOCOL, EX_NOPERM, EX_CONFIG = 76, 77, 78


def require_binary():
    """A missing binary is a failure, never a skip."""
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        raise AssertionError("pullmail binary not found at %s (set PULLMAIL_BIN or build first)" % BIN)


def log(msg):
    print(msg, flush=True)


def free_port_value():
    """A loopback port nothing listens on (for 'unreachable' tests)."""
    return dovecot_mod.free_port()


# ---- running pullmail ---------------------------------------------------------

class Result:
    def __init__(self, argv, rc, stdout, stderr, seconds):
        self.argv = argv
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.seconds = seconds

    @property
    def out(self):
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def err(self):
        return self.stderr.decode("utf-8", errors="replace")

    def json(self):
        """stdout must be exactly one JSON object."""
        text = self.out.strip()
        try:
            return json.loads(text)
        except ValueError as e:
            raise AssertionError("--json output is not one JSON object (%s):\n%s" % (e, text[:2000]))

    def describe(self):
        return ("$ %s\nexit status %d after %.2fs\n--- stdout ---\n%s\n--- stderr ---\n%s" %
                (" ".join(shlex.quote(a) for a in self.argv), self.rc, self.seconds,
                 self.out[-4000:], self.err[-6000:]))


def run_pullmail(args, env=None, timeout=600, cwd=None, password=None, home=None, stdin=None,
                 preexec_fn=None, prefix=()):
    """Run the binary with argv [*prefix, BIN] + args. The environment is the
    test's own minus any PULLMAIL_* and with HOME/XDG_* pointing into `home`
    (so nothing of the real user's is read or written), plus `env`.
    preexec_fn runs in the child (resource limits); prefix wraps the binary
    (setpriv ...)."""
    require_binary()
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
    argv = list(prefix) + [BIN] + [str(a) for a in args]
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, env=e, cwd=cwd, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           preexec_fn=preexec_fn)
    except subprocess.TimeoutExpired as ex:
        raise AssertionError("pullmail did not finish within %ds: %s\nstderr so far:\n%s" %
                             (timeout, " ".join(argv), (ex.stderr or b"").decode(errors="replace")[-4000:]))
    return Result(argv, p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


# ---- config -------------------------------------------------------------------

def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        # JSON string escapes are a subset of TOML basic-string escapes.
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table, e.g. an IMAP delivery target
        return "{ " + ", ".join("%s = %s" % (toml_key(k), toml_value(x)) for k, x in v.items()) + " }"
    raise TypeError("cannot write %r as TOML" % (v,))


def toml_key(k):
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k, ensure_ascii=False)


def write_config(path, accounts, state_dir=None, top=None):
    """accounts: {name: {key: value}} in order. Returns the path."""
    lines = []
    if state_dir is not None:
        lines.append("state_dir = %s" % toml_value(state_dir))
    for k, v in (top or {}).items():
        lines.append("%s = %s" % (toml_key(k), toml_value(v)))
    for name, settings in accounts.items():
        lines.append("")
        lines.append("[accounts.%s]" % toml_key(name))
        for k, v in settings.items():
            if v is None:
                continue
            lines.append("%s = %s" % (toml_key(k), toml_value(v)))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # 0600 like a user's own file with passwords (pullmail refuses any other)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with open(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


# ---- reading deliveries ---------------------------------------------------------

def read_maildir(path, check_tmp=True):
    """[(relative file name, bytes)] of new/ and cur/. With check_tmp, a
    non-empty tmp/ is an error (a delivery left a half-written file)."""
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(path, sub)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), "rb") as f:
                out.append((sub + "/" + name, f.read()))
    if check_tmp:
        tmp = os.path.join(path, "tmp")
        if os.path.isdir(tmp) and os.listdir(tmp):
            raise AssertionError("Maildir %s: tmp/ is not empty: %s" % (path, os.listdir(tmp)[:10]))
    return out


def maildir_messages(path):
    return [data for _, data in read_maildir(path)]


def count_maildir(path):
    n = 0
    for sub in ("new", "cur"):
        d = os.path.join(path, sub)
        if os.path.isdir(d):
            n += len(os.listdir(d))
    return n


ASCTIME_FROM = re.compile(rb"^From \S+ (Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
                          rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                          rb"[ 0-9]\d \d\d:\d\d:\d\d \d{4}\n$")
QUOTED_FROM = re.compile(rb"^>+From ")


def parse_mboxrd(data):
    """Split an mboxrd file into messages and undo the quoting exactly.

    Format: every message is "From <sender> <asctime>\\n", the message with
    each line matching ^>*From  given one more '>', and one empty line. So
    here: any line starting with "From " is a separator; it must start the
    file or follow an empty line, which belongs to the separator; a line
    matching ^>+From  loses one '>'. Returns [(separator line, bytes)]."""
    if not data:
        return []
    lines = data.splitlines(keepends=True)
    if not lines[0].startswith(b"From "):
        raise AssertionError("mbox does not start with a 'From ' line: %r" % lines[0][:100])
    if not data.endswith(b"\n"):
        raise AssertionError("mbox does not end with a newline: ...%r" % data[-100:])
    messages = []
    sep = None
    body = []
    for i, line in enumerate(lines):
        if line.startswith(b"From "):
            if sep is not None:
                if not body or body[-1] != b"\n":
                    raise AssertionError("mbox line %d: separator %r not preceded by an empty line"
                                         % (i + 1, line[:80]))
                messages.append((sep, body[:-1]))
            if not ASCTIME_FROM.match(line):
                raise AssertionError("mbox line %d: separator is not 'From <sender> <asctime>': %r"
                                     % (i + 1, line[:120]))
            sep = line
            body = []
        else:
            body.append(line)
    if not body or body[-1] != b"\n":
        raise AssertionError("mbox: last message not followed by an empty line: ...%r" % data[-80:])
    messages.append((sep, body[:-1]))
    out = []
    for sep, body_lines in messages:
        unq = [l[1:] if QUOTED_FROM.match(l) else l for l in body_lines]
        out.append((sep, b"".join(unq)))
    return out


def read_mbox(path):
    with open(path, "rb") as f:
        return [m for _, m in parse_mboxrd(f.read())]


def read_dir_files(path):
    """Messages an MDA wrote one per file (any names)."""
    out = []
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name), "rb") as f:
            out.append(f.read())
    return out


# ---- expected bytes & comparison ------------------------------------------------

def lf(data):
    return data.replace(b"\r\n", b"\n")


def expected_from_served(served, final_newline=False):
    """Expected delivered bytes for server messages [(uid, bytes, flags)]
    as served over IMAP: CRLF -> LF; with final_newline (POP3, mbox) an LF
    is appended where the message does not end in one."""
    out = []
    for item in served:
        data = item[1] if isinstance(item, tuple) else item
        e = lf(data)
        if final_newline and not e.endswith(b"\n"):
            e += b"\n"
        out.append(e)
    return out


_MSGID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]*>)", re.I | re.M)


def message_id(data):
    m = _MSGID.search(data[:200000])
    return m.group(1).decode("utf-8", errors="replace") if m else None


def _excerpt(data, offset, width=40):
    lo = max(0, offset - width)
    return "%r" % data[lo:offset + width]


def first_difference(a, b):
    n = min(len(a), len(b))
    # quick bisection on blocks, then bytes
    step = 65536
    i = 0
    while i < n:
        j = min(n, i + step)
        if a[i:j] != b[i:j]:
            for k in range(i, j):
                if a[k] != b[k]:
                    return k
        i = j
    return n if len(a) != len(b) else -1


def diff_report(name, got, want):
    off = first_difference(got, want)
    line = want[:off].count(b"\n") + 1
    return ("message %s: delivered %d bytes, expected %d bytes; first difference at offset %d "
            "(line %d)\n    delivered: %s\n    expected:  %s"
            % (name, len(got), len(want), off, line, _excerpt(got, off), _excerpt(want, off)))


def compare_messages(delivered, expected, what="delivered"):
    """Delivered messages (any order) must equal the expected ones exactly,
    as a multiset. Messages are matched by Message-ID; raises AssertionError
    with a report naming each missing, extra or differing message."""
    problems = []
    want_by_id = {}
    for e in expected:
        want_by_id.setdefault(message_id(e), []).append(e)
    got_by_id = {}
    for g in delivered:
        got_by_id.setdefault(message_id(g), []).append(g)
    for mid, wants in want_by_id.items():
        gots = list(got_by_id.get(mid, []))
        unmatched_w = []
        for w in wants:
            if w in gots:
                gots.remove(w)
            else:
                unmatched_w.append(w)
        for w in unmatched_w:
            if gots:
                g = gots.pop(0)
                problems.append(diff_report(mid, g, w))
            else:
                problems.append("message %s (%d bytes): missing from %s" % (mid, len(w), what))
        got_by_id[mid] = gots
    for mid, gots in got_by_id.items():
        if mid in want_by_id:
            for g in gots:
                problems.append("message %s: delivered once more than expected (%d bytes)" % (mid, len(g)))
        else:
            for g in gots:
                problems.append("unexpected message %s (%d bytes): %r" % (mid, len(g), g[:120]))
    if problems:
        raise AssertionError("%s: %d messages, expected %d; %d problems:\n  %s" % (
            what, len(delivered), len(expected), len(problems), "\n  ".join(problems[:30])))


# ---- files & state ----------------------------------------------------------------

def snapshot(path):
    """{relative path: sha256} of every file below path (empty when missing)."""
    out = {}
    if not os.path.exists(path):
        return out
    for root, dirs, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, path)] = hashlib.sha256(f.read()).hexdigest()
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), path) + "/"] = "dir"
    return out


_MARKS = {0: b"-", 1: b"headers", 2: b"skipped", 3: b"partial"}


def _varint(b, i):
    v, shift = 0, 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if not c & 0x80:
            return v, i
        shift += 7


def _unpack(record):
    """The S records (without checksums) of a Z record of a state file
    (src/state_snapshot.h), decoded here independently of pullmail."""
    _, count, raw_len, payload = record.split(b" ", 3)
    z = re.sub(rb"\x01([\x01\x02])", lambda m: b"\x01" if m.group(1) == b"\x01" else b"\n", payload)
    raw = zlib.decompress(z)
    assert len(raw) == int(raw_len), "packed record of the wrong size"
    out, i, key, t = [], 0, b"", 0
    for _ in range(int(count)):
        shared, i = _varint(raw, i)
        n, i = _varint(raw, i)
        key = key[:shared] + raw[i:i + n]
        i += n
        flags = raw[i]
        i += 1
        fp = b"-"
        if flags & 0x08:
            fp = raw[i:i + 16].hex().encode()
            i += 16
        elif flags & 0x10:
            n, i = _varint(raw, i)
            fp, i = raw[i:i + n], i + n
        size, i = _varint(raw, i)
        dt, i = _varint(raw, i)
        t += (dt >> 1) ^ -(dt & 1)
        where = b"-"
        if flags & 0x20:
            n, i = _varint(raw, i)
            where, i = raw[i:i + n], i + n
        mark = b"keep" if flags & 0x04 else _MARKS[flags & 3]
        out.append(b" ".join([b"S", key, b"%d" % size, fp, where, mark, b"%d" % t]))
    assert i == len(raw), "bytes left over in a packed record"
    return out


def state_lines(data):
    """The lines of a state file (bytes), each packed record (Z) replaced by
    the S record lines of its entries, with their checksums: what the file
    says, as text."""
    out = []
    for line in data.split(b"\n"):
        if line[9:11] == b"Z ":
            out += [b"%08x %s" % (zlib.crc32(r) & 0xFFFFFFFF, r) for r in _unpack(line[9:])]
        elif line:
            out.append(line)
    return out


def state_records(state_dir):
    """{account: sorted record lines} of the *.state files: what pullmail
    remembers, independent of lock files and of whether an empty state file
    exists (a file holding only the header counts as no state)."""
    out = {}
    if not os.path.isdir(state_dir):
        return out
    for name in sorted(os.listdir(state_dir)):
        if not name.endswith(".state"):
            continue
        with open(os.path.join(state_dir, name), "rb") as f:
            lines = state_lines(f.read())
        if lines and lines[0].startswith(b"pullmail-state"):
            lines = lines[1:]
        lines = sorted(l for l in lines if l.strip())
        if lines:
            out[name[:-len(".state")]] = lines
    return out


def assert_secret_absent(secret, *texts, what="output"):
    for t in texts:
        if isinstance(t, bytes):
            hit = secret.encode() in t
        else:
            hit = secret in t
        if hit:
            raise AssertionError("the password %r appears in %s" % (secret, what))


# ---- test case base ---------------------------------------------------------------

class IntegrationCase(unittest.TestCase):
    """One private Dovecot per test class (options in DOVECOT), a fresh work
    directory and a fresh mail user per test."""

    DOVECOT = {}
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        require_binary()
        cls.tmp_root = tempfile.mkdtemp(prefix="pullmail-it-%s-" % cls.__name__)
        cls.d = Dovecot(**cls.DOVECOT)
        try:
            cls.d.start()
        except BaseException:
            cls.d.cleanup()
            shutil.rmtree(cls.tmp_root, ignore_errors=True)
            raise
        cls._user_seq = 0

    @classmethod
    def tearDownClass(cls):
        if KEEP_TMP:
            cls.d.stop()
            log("kept %s and the server's %s" % (cls.tmp_root, cls.d.dir))
        else:
            cls.d.cleanup()
            shutil.rmtree(cls.tmp_root, ignore_errors=True)

    def setUp(self):
        self.ws = tempfile.mkdtemp(prefix=self._testMethodName + "-", dir=self.tmp_root)
        self.home = os.path.join(self.ws, "home")
        os.makedirs(self.home)
        self.state_dir = os.path.join(self.ws, "state")
        self.config_path = os.path.join(self.ws, "config.toml")

    def path(self, *parts):
        return os.path.join(self.ws, *parts)

    def new_user(self, prefix=None):
        """A fresh mail account on the server: (user, password)."""
        type(self)._user_seq += 1
        name = "%s%d" % (prefix or "u", type(self)._user_seq)
        password = "%s-Pw-%s-x9" % (name, hashlib.sha256(name.encode()).hexdigest()[:10])
        self.d.add_user(name, password)
        return name, password

    def url(self, proto, host="127.0.0.1"):
        return "%s://%s:%d" % (proto, host, self.d.ports[proto])

    def account(self, user, password, proto="pop3s", deliver=None, host="127.0.0.1", ca=True, **extra):
        """Settings of one [accounts.NAME] table; a None value is left out."""
        acc = {
            "url": self.url(proto, host),
            "user": user,
            "password": password,
            "deliver": deliver if deliver is not None else "maildir:" + self.path("Maildir"),
        }
        if ca and self.d.ssl:
            acc["ca_file"] = self.d.ca_file
        acc.update(extra)
        return acc

    def config(self, accounts, **top):
        return write_config(self.config_path, accounts, state_dir=self.state_dir, top=top)

    def pullmail(self, *args, expect=None, **kw):
        kw.setdefault("home", self.home)
        r = run_pullmail(list(args), **kw)
        shown = [os.path.basename(a) if a == self.config_path else a for a in r.argv[1:]]
        log("    $ pullmail %s -> exit %d in %.2fs" % (" ".join(shlex.quote(a) for a in shown), r.rc, r.seconds))
        if expect is not None and r.rc != expect:
            self.fail("expected exit status %d, got %d\n%s" % (expect, r.rc, r.describe()))
        return r

    def run_config(self, *args, expect=None, **kw):
        return self.pullmail("-f", self.config_path, *args, expect=expect, **kw)

    def note(self, msg):
        log("    checked: " + msg)

    def assertDelivered(self, delivered, expected, what):
        compare_messages(delivered, expected, what)
        self.note("%s: %d messages byte for byte (%d bytes)" %
                  (what, len(expected), sum(len(e) for e in expected)))

    def json_account(self, result, name):
        j = result.json()
        accs = [a for a in j.get("accounts", []) if a.get("name") == name]
        if len(accs) != 1:
            self.fail("--json has %d entries for account %r: %r" % (len(accs), name, j))
        return accs[0]

    ERROR_KINDS = {"usage", "config", "unreachable", "tls", "auth", "protocol", "delivery",
                   "local-io", "state", "temporary", "internal"}

    def assertErrorKind(self, result, account, kinds):
        """--json: the account has errors, each {kind, temporary, message}
        (man page), and one of them is of a kind in `kinds`."""
        if isinstance(kinds, str):
            kinds = {kinds}
        a = self.json_account(result, account)
        errors = a.get("errors")
        self.assertTrue(errors, "no errors in --json for %r: %r" % (account, a))
        for e in errors:
            self.assertIsInstance(e, dict, "error entry is not an object: %r" % (e,))
            self.assertIn(e.get("kind"), self.ERROR_KINDS, e)
            self.assertIsInstance(e.get("temporary"), bool, e)
            self.assertTrue(isinstance(e.get("message"), str) and e["message"], e)
        self.assertTrue(any(e["kind"] in kinds for e in errors),
                        "no error of kind %s for %r: %r" % (sorted(kinds), account, errors))
        return errors

    def assertStderrNames(self, result, account, pattern=None):
        """stderr has a line "pullmail: account 'NAME': ..." (matching pattern)."""
        prefix = "pullmail: account '%s': " % account
        lines = [l for l in result.err.splitlines() if l.startswith(prefix)]
        if not lines:
            self.fail("stderr has no line starting with %r\n%s" % (prefix, result.describe()))
        if pattern and not any(re.search(pattern, l, re.I) for l in lines):
            self.fail("no error line for %r matches /%s/:\n  %s" % (account, pattern, "\n  ".join(lines)))
        return lines


def main():
    """unittest.main with names and docstrings printed; exit status = result."""
    unittest.main(verbosity=2, buffer=False)

