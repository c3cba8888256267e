"""A private, throwaway Dovecot 2.3 on loopback for pullmail's tests.

    with Dovecot() as d:
        d.add_user("alice", "secret")
        d.add_message("alice", b"Subject: hi\n\nbody\n")
        d.ports["pop3s"], d.ca_file
        d.messages("alice")  -> [(uid, bytes, flags), ...]

Everything lives below one private directory made for it in a system temp
directory that Dovecot's unprivileged processes can reach (config,
certificate, mail, log; the sockets in a second one in /tmp, for short
paths); it is removed by cleanup(), `with` and at exit. No directory's mode
is ever changed: the checkout or $TMPDIR may be in a 0700 home directory.
Nothing of the system's own Dovecot is touched. The master runs in the
foreground as a child of this process (`dovecot -F -c CONF`) and is told to
die with it (PR_SET_PDEATHSIG), so a killed test never leaves a server behind;
stop() (also run by `with`, atexit and SIGTERM) terminates it normally.

Listeners, all on 127.0.0.1 and free ports picked at start:
  ssl=True  (default): pop3s, imaps (implicit TLS); pop3, imap (offer STARTTLS)
  ssl=False          : pop3, imap only, no TLS at all (plaintext tests)

Mail is stored as Maildir++ ('.' is the hierarchy delimiter, folder names on
disk in modified UTF-7) owned by a dedicated system user, MAIL_USER, created
when missing. Messages are written straight into the Maildir, so the bytes on
disk are exactly the bytes given; what a client should receive is what
Dovecot serves (messages() fetches it with BODY.PEEK[], which leaves \\Seen
alone).

Dovecot 2.3 facts this relies on: login processes refuse root (dovenull),
`ssl_cert = <file` needs the '<', auth_failure_delay = 0 removes the delay
after a failed login, each IMAP logout logs hdr_count/body_count/body_bytes
and each POP3 logout logs retr=count/bytes and del=count/total.

Run `python3 dovecot.py` for a self-check against imaplib/poplib.
"""

import atexit
import base64
import contextlib
import ctypes
import fcntl
import imaplib
import os
import poplib
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import weakref

MAIL_USER = "pullmailtest"
LISTENERS_SSL = ("pop3s", "imaps", "pop3", "imap")
LISTENERS_PLAIN = ("pop3", "imap")
DH_FILE = "/usr/share/dovecot/dh.pem"


def _sbin(name):
    """A system program, also when /usr/sbin is not on PATH."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin") or name

_live = weakref.WeakSet()
_made = []  # every instance, so that exit removes its private directory


def _cleanup_all():
    # PULLMAIL_KEEP_TMP=1 keeps the servers' directories for a look
    keep = os.environ.get("PULLMAIL_KEEP_TMP") == "1"
    for d in list(_made):
        d.stop() if keep else d.cleanup()


atexit.register(_cleanup_all)


def _install_sigterm_handler():
    # ctest and timeout(1) stop tests with SIGTERM: turn it into SystemExit so
    # finally blocks and atexit run and the servers and temp dirs go away.
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        def handler(signum, frame):
            raise SystemExit(128 + signum)
        signal.signal(signal.SIGTERM, handler)


def _die_with_parent():
    # Runs in the child between fork and exec: PR_SET_PDEATHSIG = 1.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)
    except OSError:
        pass
    os.setsid()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def free_ports(n):
    """n different TCP ports on 127.0.0.1 that were free a moment ago: the
    sockets stay bound until all are chosen, so the kernel cannot hand out
    one port twice (one server's listeners on one port is a config error)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def ensure_mail_user(name=MAIL_USER):
    """Create the system user that owns the test mail; return (uid, gid)."""
    lock_path = os.path.join(tempfile.gettempdir(), "pullmail-test-useradd.lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            subprocess.run([_sbin("useradd"), "--system", "--no-create-home", "--user-group",
                            "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                           check=True)
            pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def make_certificate(directory, names=("DNS:localhost", "IP:127.0.0.1"), cn="localhost",
                     days=3650, prefix=""):
    """Self-signed certificate with CA:TRUE, so it is its own trust anchor.

    Returns (cert_path, key_path)."""
    cert = os.path.join(directory, prefix + "cert.pem")
    key = os.path.join(directory, prefix + "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
         "-days", str(days), "-subj", "/CN=" + cn,
         "-addext", "subjectAltName=" + ",".join(names),
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
         "-addext", "extendedKeyUsage=serverAuth",
         "-keyout", key, "-out", cert],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    return cert, key


TEMP_ROOTS = ("/tmp", "/var/tmp", "/dev/shm")


def _reachable_by_others(path):
    """True when every directory from / down to path lets others through
    (o+x): Dovecot's unprivileged processes (dovecot, dovenull, the mail
    user) could then reach what is below it."""
    p = os.path.realpath(path)
    while True:
        try:
            if not os.stat(p).st_mode & 0o001:
                return False
        except OSError:
            return False
        parent = os.path.dirname(p)
        if parent == p:
            return True
        p = parent


def server_temp_root():
    """Where a server's private directory is made: $TMPDIR when others can
    traverse to it, else the first such system temp directory. Nothing's mode
    is ever changed to make a path reachable (a checkout or $TMPDIR may well
    be in a 0700 home directory)."""
    for cand in (tempfile.gettempdir(),) + TEMP_ROOTS:
        if os.path.isdir(cand) and _reachable_by_others(cand):
            return cand
    raise DovecotError("none of %s is traversable by other users; Dovecot's unprivileged "
                       "processes could not reach their files" % ", ".join((tempfile.gettempdir(),) + TEMP_ROOTS))


def mutf7_encode(name):
    """IMAP modified UTF-7 (RFC 3501 5.1.3) of a Unicode mailbox name."""
    out = []
    pending = []

    def flush():
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(text):
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = text.index("-", i)
        chunk = text[i + 1:end]
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            out.append(base64.b64decode(b64).decode("utf-16-be"))
        i = end + 1
    return "".join(out)


def imap_quote(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


_FLAG_LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S", "\\Deleted": "T"}


class DovecotError(RuntimeError):
    pass


class Dovecot:
    """One private Dovecot instance. See the module docstring."""

    def __init__(self, tmpdir=None, *, ssl=True, cert_names=("DNS:localhost", "IP:127.0.0.1"),
                 cert_cn="localhost", users=3, extra_conf="", verbose_log=False, lmtp=False, oauth2_url=None):
        # The server's files (config, certificate, mail, log) go in a private
        # directory of its own below server_temp_root(), never in tmpdir:
        # tmpdir is the caller's and may be unreachable for Dovecot's
        # unprivileged processes (a checkout or $TMPDIR in a 0700 home).
        # tmpdir is accepted for compatibility and not used. cleanup() (and
        # `with`, and exit) removes the private directory; stop() keeps it,
        # so that restart() finds the mail again.
        del tmpdir
        self.dir = tempfile.mkdtemp(prefix="pullmail-dovecot-", dir=server_temp_root())
        # our own directory: others may pass through it, not list it
        os.chmod(self.dir, 0o711)
        self._removed = False
        self.ssl = ssl
        self.cert_names = tuple(cert_names)
        self.cert_cn = cert_cn
        self.extra_conf = extra_conf
        self.verbose_log = verbose_log
        # lmtp=True: Dovecot's LMTP (dovecot-lmtpd) on a Unix socket in the
        # private run directory (lmtp_socket), delivering into the users'
        # Maildirs with the same userdb as the other services.
        self.lmtp = lmtp
        # oauth2_url: XOAUTH2 and OAUTHBEARER too, tokens checked by POST
        # {oauth2_url}/introspect (tests/integration/fakes/oauth_server.py)
        self.oauth2_url = oauth2_url
        self.conf_path = os.path.join(self.dir, "dovecot.conf")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.passwd_path = os.path.join(self.dir, "passwd.d")
        self.mail_root = os.path.join(self.dir, "mail")
        self.ports = {}
        self.passwords = {}
        self._proc = None
        self.run_dir = None
        self._seq = 0
        self._stopped = True
        _made.append(self)
        self.uid, self.gid = ensure_mail_user()
        os.makedirs(self.mail_root, exist_ok=True)
        os.chown(self.mail_root, self.uid, self.gid)
        os.chmod(self.mail_root, 0o755)
        os.makedirs(self.passwd_path, exist_ok=True)
        os.chmod(self.passwd_path, 0o755)
        if ssl:
            self.cert_file, self.key_file = make_certificate(self.dir, self.cert_names, cn=cert_cn)
        else:
            self.cert_file = self.key_file = None
        if isinstance(users, int):
            for i in range(1, users + 1):
                self.add_user("user%d" % i, "user%d-Secret-7Kq9" % i)
        else:
            for name, password in dict(users).items():
                self.add_user(name, password)

    # ---- certificate -------------------------------------------------------

    @property
    def ca_file(self):
        """The server certificate, which is also its own CA."""
        return self.cert_file

    # ---- lifecycle ---------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def _listeners(self):
        return LISTENERS_SSL if self.ssl else LISTENERS_PLAIN

    def _write_config(self):
        p = self.ports
        d = self.dir
        lines = [
            "# pullmail test server, generated by tests/integration/dovecot.py",
            "instance_name = pullmail-test-%s" % os.path.basename(d),
            "base_dir = %s" % self.run_dir,
            "state_dir = %s/state" % d,
            "log_path = %s" % self.log_path,
            "protocols = imap pop3" + (" lmtp" if self.lmtp else ""),
            "listen = 127.0.0.1",
            "shutdown_clients = yes",
            "default_login_user = dovenull",
            "default_internal_user = dovecot",
            "first_valid_uid = 1",
            "first_valid_gid = 1",
            "auth_failure_delay = 0",
            "auth_mechanisms = plain login" + (" xoauth2 oauthbearer" if self.oauth2_url else ""),
            "auth_cache_size = 0",
            "disable_plaintext_auth = %s" % ("yes" if self.ssl else "no"),
            "mail_location = maildir:%s/%%u" % self.mail_root,
            "mail_max_userip_connections = 100",
            "mail_fsync = never",
            "pop3_uidl_format = %08Xu%08Xv",
            "imap_logout_format = in=%i out=%o deleted=%{deleted} expunged=%{expunged} "
            "hdr_count=%{fetch_hdr_count} hdr_bytes=%{fetch_hdr_bytes} "
            "body_count=%{fetch_body_count} body_bytes=%{fetch_body_bytes}",
            "pop3_logout_format = top=%t/%p, retr=%r/%b, del=%d/%m, size=%s",
        ]
        if self.oauth2_url:
            # Dovecot 2.3: the oauth2 passdb first, the password one limited
            # to the password mechanisms (servers.md).
            oauth_conf = os.path.join(d, "oauth2.conf")
            with open(oauth_conf, "w") as f:
                f.write("introspection_mode = post\n"
                        "introspection_url = %s/introspect\n"
                        "force_introspection = yes\n"
                        "username_attribute = username\n"
                        "active_attribute = active\n"
                        "active_value = true\n" % self.oauth2_url)
            lines += ["passdb {", "  driver = oauth2", "  mechanisms = xoauth2 oauthbearer",
                      "  args = %s" % oauth_conf, "}"]
        lines += [
            "passdb {",
            "  driver = passwd-file",
            "  args = scheme=PLAIN username_format=%%u %s/%%u" % self.passwd_path,
        ] + (["  mechanisms = plain login"] if self.oauth2_url else []) + [
            "}",
            "userdb {",
            "  driver = static",
            "  args = uid=%d gid=%d home=%s/%%u" % (self.uid, self.gid, self.mail_root),
            "}",
        ]
        if self.ssl:
            lines += [
                "ssl = yes",
                "ssl_cert = <%s" % self.cert_file,
                "ssl_key = <%s" % self.key_file,
            ]
            if os.path.exists(DH_FILE):
                lines.append("ssl_dh = <%s" % DH_FILE)
        else:
            lines.append("ssl = no")
        if self.verbose_log:
            lines += ["auth_verbose = yes", "verbose_ssl = yes", "mail_debug = yes"]

        def service(name, listeners):
            out = ["service %s {" % name]
            for lname, port, is_ssl in listeners:
                out += ["  inet_listener %s {" % lname,
                        "    address = 127.0.0.1",
                        "    port = %d" % port]
                if is_ssl:
                    out.append("    ssl = yes")
                out.append("  }")
            out.append("}")
            return out

        lines += service("imap-login", [("imap", p["imap"], False)] +
                         ([("imaps", p["imaps"], True)] if self.ssl else [("imaps", 0, False)]))
        lines += service("pop3-login", [("pop3", p["pop3"], False)] +
                         ([("pop3s", p["pop3s"], True)] if self.ssl else [("pop3s", 0, False)]))
        lines += [
            "service anvil {",
            "  unix_listener anvil-auth-penalty {",
            "    mode = 0",
            "  }",
            "}",
        ]
        if self.lmtp:
            lines += [
                "service lmtp {",
                "  unix_listener lmtp {",
                "    mode = 0666",
                "  }",
                "}",
            ]
        if self.extra_conf:
            lines.append(self.extra_conf)
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=20):
        if self._proc is not None:
            return self
        _install_sigterm_handler()
        last_error = ""
        for attempt in range(5):
            # base_dir holds unix sockets, whose paths must stay short (108
            # bytes): it gets its own directory in /tmp, removed by stop()
            self.run_dir = tempfile.mkdtemp(prefix="pm-dovecot-", dir="/tmp")
            os.chmod(self.run_dir, 0o755)
            names = list(self._listeners())
            self.ports = dict(zip(names, free_ports(len(names))))
            self._write_config()
            log_offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
            self._proc = subprocess.Popen([_sbin("dovecot"), "-F", "-c", self.conf_path],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
            self._stopped = False
            _live.add(self)
            if self._wait_ready(timeout):
                return self
            out = b""
            if self._proc.poll() is not None:
                out = self._proc.stdout.read() or b""
            last_error = out.decode(errors="replace") + self._log_since(log_offset)
            self.stop()
            if "Address already in use" not in last_error:
                break
        raise DovecotError("dovecot did not start:\n" + last_error)

    def _log_since(self, offset):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        pending = set(self.ports.values())

        def lmtp_ready():
            return not self.lmtp or os.path.exists(self.lmtp_socket)

        while (pending or not lmtp_ready()) and time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            for port in list(pending):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                        s.settimeout(5)
                        if port in (self.ports.get("imap"), self.ports.get("pop3")):
                            # a plain listener answers with its greeting when
                            # the login process and auth are up
                            if s.recv(1):
                                pending.discard(port)
                        else:
                            pending.discard(port)
                except OSError:
                    pass
            if pending or not lmtp_ready():
                time.sleep(0.05)
        return not pending and lmtp_ready()

    def stop(self):
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=1.5)
                except subprocess.TimeoutExpired:
                    pass
            # The master runs in its own session (setsid): whatever of its
            # process group is still there (a slow shutdown, a hung mail
            # process) is a throwaway test server, so SIGKILL it.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
            if proc.stdout:
                proc.stdout.close()
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None
        if not self._stopped:
            self._stopped = True
            _live.discard(self)

    def cleanup(self):
        """stop() and remove the server's private directory."""
        self.stop()
        if not self._removed:
            self._removed = True
            shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self):
        self.stop()
        return self.start()

    @property
    def lmtp_socket(self):
        """The LMTP Unix socket (lmtp=True), valid while the server runs."""
        return os.path.join(self.run_dir, "lmtp") if self.run_dir else None

    @property
    def running(self):
        return self._proc is not None and self._proc.poll() is None

    # ---- users -------------------------------------------------------------

    def add_user(self, name, password):
        if ":" in name or ":" in password or "\n" in name + password or "/" in name or name.startswith("."):
            raise ValueError("user names cannot hold ':', '/' or newlines, passwords ':' or newlines")
        changed = name in self.passwords and self.passwords[name] != password
        self.passwords[name] = password
        # One passwd-file per user ("%u" in the path): Dovecot reads a new
        # user's file on first use. (A single shared file would be re-read at
        # most once a second, so a user added right after another one could
        # not log in for up to a second.)
        path = os.path.join(self.passwd_path, name)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%s:{PLAIN}%s::::::\n" % (name, password))
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
        if changed and self.running:
            time.sleep(1.1)  # Dovecot re-reads a known file at most once a second
        self._maildir(name, "INBOX")
        return password

    def password(self, user):
        return self.passwords[user]

    # ---- mail on disk ------------------------------------------------------

    def user_root(self, user):
        return os.path.join(self.mail_root, user)

    def folder_path(self, user, folder="INBOX"):
        """The Maildir of a folder; folder uses Dovecot's '.' delimiter, UTF-8."""
        root = self.user_root(user)
        if folder.upper() == "INBOX":
            return root
        return os.path.join(root, "." + mutf7_encode(folder))

    def _mkdir_owned(self, path):
        if not os.path.isdir(path):
            os.makedirs(path, exist_ok=True)
        os.chown(path, self.uid, self.gid)
        os.chmod(path, 0o700)

    def _maildir(self, user, folder):
        root = self.user_root(user)
        self._mkdir_owned(root)
        path = self.folder_path(user, folder)
        self._mkdir_owned(path)
        for sub in ("cur", "new", "tmp"):
            self._mkdir_owned(os.path.join(path, sub))
        if path != root:
            marker = os.path.join(path, "maildirfolder")
            if not os.path.exists(marker):
                open(marker, "w").close()
                os.chown(marker, self.uid, self.gid)
        return path

    def create_folder(self, user, folder):
        """Create a folder ('.'-separated, UTF-8, e.g. 'Lists.cpp', 'Entwürfe')."""
        return self._maildir(user, folder)

    def add_message(self, user, data, folder="INBOX", flags=""):
        """Put one message, byte for byte, into a folder. flags: IMAP system
        flags ("\\Seen \\Flagged") or a list of them. Returns the file path.
        Works with the server running or not; files get increasing names, so
        Dovecot assigns UIDs in the order of the calls."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if isinstance(flags, str):
            flags = flags.split()
        letters = "".join(sorted(_FLAG_LETTERS[f] for f in flags))
        path = self._maildir(user, folder)
        self._seq += 1
        # "<sec>.M<usec>P<pid>Q<n>.<host>": Dovecot sorts new files by these numbers.
        base = "%d.M%06dP%dQ%d.pullmailtest" % (1700000000 + self._seq, self._seq % 1000000,
                                                 os.getpid(), self._seq)
        tmp = os.path.join(path, "tmp", base)
        with open(tmp, "wb") as f:
            f.write(data)
        os.chown(tmp, self.uid, self.gid)
        os.chmod(tmp, 0o600)
        if letters or flags:
            dest = os.path.join(path, "cur", base + ":2," + letters)
        else:
            dest = os.path.join(path, "new", base)
        os.rename(tmp, dest)
        return dest

    def add_messages(self, user, messages, folder="INBOX"):
        return [self.add_message(user, m, folder) for m in messages]

    def maildir_files(self, user, folder="INBOX"):
        """Names of the message files on disk (new/ + cur/), for raw checks."""
        path = self.folder_path(user, folder)
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(path, sub)
            if os.path.isdir(d):
                out += [os.path.join(d, n) for n in sorted(os.listdir(d))]
        return out

    def maildir_contents(self, user, folder="INBOX"):
        """The bytes of every message file, in maildir_files() order."""
        out = []
        for path in self.maildir_files(user, folder):
            with open(path, "rb") as f:
                out.append(f.read())
        return out

    # ---- clients -----------------------------------------------------------

    def ssl_context(self, check_hostname=False):
        """Trusts exactly this server's certificate. The harness's own
        clients skip the host name check (the wrong-host-name server must
        still be readable); pass check_hostname=True to test it."""
        ctx = ssl.create_default_context(cafile=self.ca_file)
        ctx.check_hostname = check_hostname
        return ctx

    def imap(self, user, password=None):
        """Logged-in imaplib connection (IMAPS, or plain IMAP without TLS)."""
        password = self.passwords[user] if password is None else password
        if self.ssl:
            c = imaplib.IMAP4_SSL("127.0.0.1", self.ports["imaps"], ssl_context=self.ssl_context(),
                                  timeout=60)
        else:
            c = imaplib.IMAP4("127.0.0.1", self.ports["imap"], timeout=60)
        c.login(user, password)
        return c

    def pop3(self, user, password=None):
        password = self.passwords[user] if password is None else password
        if self.ssl:
            c = poplib.POP3_SSL("127.0.0.1", self.ports["pop3s"], context=self.ssl_context(), timeout=60)
        else:
            c = poplib.POP3("127.0.0.1", self.ports["pop3"], timeout=60)
        c.user(user)
        c.pass_(password)
        return c

    def _settle(self, user, offset, timeout=5):
        """Waits until every session of user that logged in since offset has
        logged its disconnect too. The helper's own sessions call it after
        LOGOUT: Dovecot writes the disconnect line (with the session's
        counters) asynchronously, and a line arriving late would be counted
        as the next pullmail run's by a test that looks at the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self._log_since(offset)
            if len(self.logout_stats(text, user=user)) >= len(self.logins(text, user=user)):
                return
            time.sleep(0.02)

    @contextlib.contextmanager
    def _session(self, user):
        """A helper IMAP session: logged out, and its disconnect line settled
        (see _settle), when the block ends."""
        mark = self.log_mark()
        c = self.imap(user)
        try:
            yield c
        finally:
            try:
                c.logout()
            except Exception:
                pass
            self._settle(user, mark)

    @contextlib.contextmanager
    def _examined(self, user, folder):
        """A helper session with folder EXAMINEd (read-only): yields
        (connection, number of messages)."""
        with self._session(user) as c:
            typ, data = c.select(imap_quote(mutf7_encode(folder)), readonly=True)
            if typ != "OK":
                raise DovecotError("EXAMINE %s failed: %r" % (folder, data))
            yield c, int(data[0])

    def list_folders(self, user):
        """Folder names as UTF-8 with Dovecot's delimiter, from IMAP LIST."""
        with self._session(user) as c:
            typ, data = c.list()
            names = []
            for item in data:
                if item is None:
                    continue
                if isinstance(item, tuple):
                    item = item[0] + b" " + item[1]
                m = re.match(rb'\((.*?)\) (NIL|"(?:[^"\\]|\\.)*") (.*)$', item)
                if not m:
                    continue
                raw = m.group(3)
                if raw.startswith(b'"'):
                    raw = raw[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\")
                names.append(mutf7_decode(raw.decode("ascii")))
            return names

    def messages(self, user, folder="INBOX"):
        """[(uid, bytes, flags)] of a folder in UID order, exactly as Dovecot
        serves them over IMAP (BODY.PEEK[], read-only EXAMINE: nothing changes)."""
        with self._examined(user, folder) as (c, n):
            if n == 0:
                return []
            typ, data = c.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            if typ != "OK":
                raise DovecotError("FETCH failed: %r" % (data,))
            out = []
            for item in data:
                if not isinstance(item, tuple):
                    continue
                head, body = item
                m_uid = re.search(rb"UID (\d+)", head)
                m_flags = re.search(rb"FLAGS \(([^)]*)\)", head)
                if m_uid is None or m_flags is None:
                    raise DovecotError("unexpected FETCH response %r" % head[:200])
                flags = [f for f in m_flags.group(1).decode().split() if f != "\\Recent"]
                out.append((int(m_uid.group(1)), body, flags))
            out.sort(key=lambda t: t[0])
            return out

    def flags(self, user, folder="INBOX"):
        """{uid: [flags]} without fetching bodies."""
        with self._examined(user, folder) as (c, n):
            if n == 0:
                return {}
            typ, data = c.uid("FETCH", "1:*", "(UID FLAGS)")
            out = {}
            for item in data:
                if isinstance(item, tuple):
                    item = item[0]
                if not item:
                    continue
                m_uid = re.search(rb"UID (\d+)", item)
                m_flags = re.search(rb"FLAGS \(([^)]*)\)", item)
                if m_uid and m_flags:
                    out[int(m_uid.group(1))] = [f for f in m_flags.group(1).decode().split()
                                                if f != "\\Recent"]
            return out

    def count(self, user, folder="INBOX"):
        return len(self.flags(user, folder))

    # ---- log ---------------------------------------------------------------

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_mark(self):
        """An offset for log_since(): the log grows, tests look at their part."""
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, mark):
        return self._log_since(mark)

    def settled_log(self, mark, user, timeout=10):
        """The log since mark once every session of user that logged in
        since then has also logged its disconnect (Dovecot writes that line
        asynchronously, possibly after the client has exited)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self._log_since(mark)
            logins = len(self.logins(text, user=user))
            ends = len(self.logout_stats(text, user=user))
            if ends >= logins or time.monotonic() > deadline:
                return text
            time.sleep(0.05)

    @staticmethod
    def logins(log_text, user=None, protocol=None):
        """Successful login lines: [(protocol, user, info)] where info holds
        the connection kind Dovecot reports ('TLS', 'secured', ...)."""
        out = []
        for m in re.finditer(r"(imap|pop3)-login: (?:Info: )?Login: user=<([^>]*)>.*", log_text):
            if user is not None and m.group(2) != user:
                continue
            if protocol is not None and m.group(1) != protocol:
                continue
            out.append((m.group(1), m.group(2), m.group(0)))
        return out

    @staticmethod
    def logout_stats(log_text, user=None, protocol=None):
        """Per session logout counters: [(protocol, user, {key: value})].
        IMAP: in, out, deleted, expunged, hdr_count, hdr_bytes, body_count,
        body_bytes. POP3: retr=(count, bytes), del=(count, total), top, size."""
        out = []
        for m in re.finditer(r"(imap|pop3)\(([^)]*)\)[^:]*: (?:Info: )?Disconnected: (.*)$",
                             log_text, re.M):
            proto, who, rest = m.group(1), m.group(2), m.group(3)
            if user is not None and who != user:
                continue
            if protocol is not None and proto != protocol:
                continue
            stats = {}
            for k, v in re.findall(r"(\w+)=([\d/]+)", rest):
                if "/" in v:
                    a, b = v.split("/", 1)
                    stats[k] = (int(a), int(b))
                else:
                    stats[k] = int(v)
            out.append((proto, who, stats))
        return out


# ---- self-check --------------------------------------------------------------

def _selfcheck():
    """Start a server, store a few tricky messages, read them back over IMAPS,
    POP3S and both STARTTLS ports; check the plaintext variant too."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import messages as corpus_mod

    corpus = corpus_mod.strange_corpus(include_huge=False) + corpus_mod.ordinary_corpus(5)
    tmp = tempfile.mkdtemp(prefix="pullmail-selfcheck-")
    try:
        with Dovecot(tmp) as d:
            d.create_folder("user1", "Lists.cpp")
            d.create_folder("user1", "Entwürfe")
            for m in corpus:
                d.add_message("user1", m.data)
            d.add_message("user1", b"Subject: in a folder\n\nx\n", folder="Lists.cpp")
            d.add_message("user1", b"Subject: draft\n\nx\n", folder="Entwürfe", flags="\\Draft")
            served = d.messages("user1")
            assert len(served) == len(corpus), (len(served), len(corpus))
            for (uid, body, flags), m in zip(served, corpus):
                assert flags == [], flags
                # Dovecot serves the file as stored with every bare LF made CRLF
                expect = m.data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                if body != expect:
                    raise AssertionError("IMAP body of %s differs (uid %d): %r vs %r"
                                         % (m.name, uid, body[:200], expect[:200]))
            print("imaps: %d messages served byte-exact (CRLF)" % len(served))
            print("folders:", d.list_folders("user1"))
            assert "Lists.cpp" in d.list_folders("user1")
            assert "Entwürfe" in d.list_folders("user1")
            assert d.messages("user1", "Entwürfe")[0][2] == ["\\Draft"]
            # POP3S: same bytes, plus a final CRLF where the message lacks one
            poplib._MAXLINE = 8 * 1024 * 1024
            p = poplib.POP3_SSL("localhost", d.ports["pop3s"], context=d.ssl_context())
            p.user("user1")
            p.pass_(d.password("user1"))
            n, _ = p.stat()
            assert n == len(corpus)
            for i, (uid, body, flags) in enumerate(served, 1):
                resp, lines, octets = p.retr(i)
                got = b"\r\n".join(lines) + b"\r\n"
                expect = body if body.endswith(b"\r\n") else body + b"\r\n"
                if got != expect:
                    raise AssertionError("POP3 message %d differs: %r vs %r" % (i, got[:200], expect[:200]))
            p.quit()
            print("pop3s: %d messages identical to IMAP (final CRLF added where missing)" % n)
            # POP3 RETR set \Seen
            assert all("\\Seen" in f for f in d.flags("user1").values())
            # STARTTLS on both plain ports
            ctx = d.ssl_context()
            c = imaplib.IMAP4("127.0.0.1", d.ports["imap"])
            assert "STARTTLS" in c.capabilities, c.capabilities
            c.starttls(ssl_context=ctx)
            c.login("user1", d.password("user1"))
            c.logout()
            p = poplib.POP3("127.0.0.1", d.ports["pop3"])
            assert "STLS" in p.capa(), p.capa()
            p.stls(context=ctx)
            p.user("user2")
            p.pass_(d.password("user2"))
            p.quit()
            print("STARTTLS on imap and pop3 ports works")
            # wrong password is refused, quickly
            t0 = time.monotonic()
            try:
                d.imap("user1", "wrong")
                raise AssertionError("wrong password accepted")
            except imaplib.IMAP4.error:
                pass
            d.imap("user1").logout()
            print("wrong password refused; next login after %.2fs" % (time.monotonic() - t0))
            # default trust store must refuse the self-signed certificate
            try:
                imaplib.IMAP4_SSL("localhost", d.ports["imaps"], ssl_context=ssl.create_default_context())
                raise AssertionError("self-signed certificate accepted by default store")
            except ssl.SSLCertVerificationError:
                pass
            time.sleep(0.3)
            log = d.log()
            print("logins:", [(p_, u, "TLS" in info) for p_, u, info in Dovecot.logins(log)])
            print("logout stats:", Dovecot.logout_stats(log, user="user1")[:3])
        with Dovecot(tmp, ssl=False) as d:
            c = imaplib.IMAP4("127.0.0.1", d.ports["imap"])
            assert "STARTTLS" not in c.capabilities, c.capabilities
            c.login("user1", d.password("user1"))
            c.logout()
            p = poplib.POP3("127.0.0.1", d.ports["pop3"])
            assert "STLS" not in p.capa()
            p.quit()
            print("ssl=no server: no STARTTLS offered, plaintext login works")
        with Dovecot(tmp, cert_names=("DNS:wrong.example",), cert_cn="wrong.example") as d:
            try:
                imaplib.IMAP4_SSL("127.0.0.1", d.ports["imaps"], ssl_context=d.ssl_context(True))
                raise AssertionError("wrong host name accepted")
            except ssl.SSLCertVerificationError as e:
                print("wrong-hostname certificate refused:", e.verify_message)
        print("selfcheck OK")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    _selfcheck()
