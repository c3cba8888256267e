"""A private Exim 4.96 (Debian's exim4-daemon-light) on loopback: the real
SMTP server of the tests (issue 16).

    with Exim() as x:                      # Exim(smtputf8=False, tls=True)
        deliver = "smtp://127.0.0.1:%d" % x.port
        x.stored()          # bytes of every message in its Maildir, oldest first
        x.received()        # how many messages it accepted ("<=" log lines)
        split_trace(stored) # (Exim's Return-path:/Received: prefix, the rest)

How it runs, as root and as a normal user alike, without the system
service (installing the package may start one on port 25; it is neither
used nor in the way: this one listens on a private port):

  - `exim4 -bd` (the daemon) is refused to users who are not Exim admins,
    and Exim refuses to deliver as root (fixed_never_users), so instead this
    helper listens on 127.0.0.1:PORT itself and, per connection, runs
    `exim4 -C CONF -bs -odi` (SMTP on stdin/stdout, which any user may run)
    with pipes, relaying the bytes. As root, that Exim runs as the tests' mail
    user (dovecot.ensure_mail_user); otherwise as the caller. Exim drops its
    setuid privilege for a -C configuration, so it is an unprivileged
    process either way: spool, log and Maildir belong to that user
    (exim_user/exim_group name it), deliveries happen without a uid change
    (deliver_drop_privilege).
  - -bs is "local SMTP" to Exim: untrusted_set_sender = * keeps the MAIL FROM
    sender and control = suppress_local_fixups stops it adding Message-ID:,
    Date:, From: or Sender: to local submissions. It still speaks ESMTP with
    PIPELINING, CHUNKING (BDAT), 8BITMIME and, when asked, SMTPUTF8 and
    STARTTLS (with the instance's own certificate).
  - -odi: the message is delivered into the Maildir before the 250 is sent.

Exim adds two trace fields at the top of every stored message (and nothing
else, with return_path_add on and delivery_date_add/envelope_to_add off):
`Return-path: <sender>` and one `Received:` field with continuation lines;
the log line's P= says `esmtp`, or `utf8esmtp` once a message of the
connection used SMTPUTF8 (Exim keeps it for the rest of the connection:
seen with two messages, the second without SMTPUTF8). Maildir files are
stored with LF line ends.

Exim changes three kinds of message on the way (its own header parsing, not
the client's bytes; as_stored() applies them to an expected message):
  - a line in the header section that is neither a header field nor a
    continuation line (a "From " line, for instance) ends the header section:
    Exim inserts an empty line before it;
  - a message with no empty line after its header fields gets one at the end;
  - a bare CR (not before LF) becomes a line end.
"""

import atexit
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import weakref

from dovecot import _die_with_parent, _install_sigterm_handler, _sbin, ensure_mail_user, \
    server_temp_root

_live = weakref.WeakSet()
atexit.register(lambda: [x.stop() for x in list(_live)])

CONFIG = """\
primary_hostname = pullmail-test.localhost
exim_user = {user}
exim_group = {group}
trusted_users = {user}
spool_directory = {dir}/spool
log_file_path = {dir}/spool/%slog
keep_environment =
deliver_drop_privilege = true
host_lookup =
rfc1413_hosts =
message_size_limit = 0
return_path_remove = false
smtp_accept_queue_per_connection = 0
accept_8bitmime = true
pipelining_advertise_hosts = *
chunking_advertise_hosts = *
smtputf8_advertise_hosts = {smtputf8}
tls_advertise_hosts =
acl_smtp_rcpt = acl_rcpt
begin acl
acl_rcpt:
  accept
    control = suppress_local_fixups
begin routers
all:
  driver = accept
  transport = maildir
begin transports
maildir:
  driver = appendfile
  directory = {dir}/Maildir
  maildir_format = true
  create_directory = true
  return_path_add = true
  delivery_date_add = false
  envelope_to_add = false
"""

TRACE = re.compile(rb"Return-path: <[^>\n]*>\nReceived: [^\n]*\n(?:[ \t][^\n]*\n)*")


_FIELD = re.compile(rb"[!-9;-~]+:")


def as_stored(expected):
    """The LF form of a message as Exim stores it (the changes listed above)."""
    data = re.sub(rb"\r(?!\n)", b"\n", expected)
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        line = data[pos:] if end < 0 else data[pos:end]
        if line == b"":
            return data
        if not (line[:1] in (b" ", b"\t") and pos > 0) and not _FIELD.match(line):
            return data[:pos] + b"\n" + data[pos:]
        if end < 0:
            break
        pos = end + 1
    return data + b"\n"


def split_trace(stored):
    """(Exim's trace prefix, the rest) of a stored message; the prefix is
    b"" when the message does not start with exactly Exim's two fields."""
    m = TRACE.match(stored)
    return (m.group(0), stored[m.end():]) if m else (b"", stored)


class Exim:
    def __init__(self, smtputf8=True):
        self.dir = tempfile.mkdtemp(prefix="pullmail-exim-", dir=server_temp_root())
        os.chmod(self.dir, 0o755)
        if os.getuid() == 0:
            self.uid, self.gid = ensure_mail_user()
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
        for sub in ("spool", "Maildir"):
            os.makedirs(os.path.join(self.dir, sub))
            os.chown(os.path.join(self.dir, sub), self.uid, self.gid)
        self.config = os.path.join(self.dir, "exim.conf")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(user=pwd.getpwuid(self.uid).pw_name, group=self.gid, dir=self.dir,
                                  smtputf8="*" if smtputf8 else ""))
        self.port = None
        self._listener = None
        self._procs = []
        self._lock = threading.Lock()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        _install_sigterm_handler()
        check = subprocess.run([_sbin("exim4"), "-C", self.config, "-bV"], capture_output=True,
                               preexec_fn=self._as_user)
        if check.returncode != 0:
            raise RuntimeError("exim4 refuses its configuration:\n" + check.stdout.decode(errors="replace")
                               + check.stderr.decode(errors="replace"))
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True).start()
        _live.add(self)
        return self

    def _as_user(self):
        _die_with_parent()
        if os.getuid() == 0:
            os.setgroups([])
            os.setgid(self.gid)
            os.setuid(self.uid)

    def _accept_loop(self):
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        """One connection = one `exim4 -bs`, bytes relayed both ways (Exim
        refuses a TCP socket on stdin from an unprivileged caller)."""
        with open(os.path.join(self.dir, "exim-stderr.log"), "ab") as err:
            p = subprocess.Popen([_sbin("exim4"), "-C", self.config, "-bs", "-odi", "-oMa", "127.0.0.1"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=err, bufsize=0, preexec_fn=self._as_user)
        with self._lock:
            self._procs.append(p)

        def upstream():
            try:
                while True:
                    b = conn.recv(65536)
                    if not b:
                        break
                    p.stdin.write(b)
            except OSError:
                pass
            finally:
                try:
                    p.stdin.close()
                except OSError:
                    pass

        threading.Thread(target=upstream, daemon=True).start()
        try:
            while True:
                b = os.read(p.stdout.fileno(), 65536)
                if not b:
                    break
                conn.sendall(b)
        except OSError:
            pass
        finally:
            conn.close()
            p.wait()
            p.stdout.close()

    def stop(self):
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            procs, self._procs = self._procs, []
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if os.environ.get("PULLMAIL_KEEP_TMP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        _live.discard(self)

    def log(self):
        out = ""
        for name in ("spool/mainlog", "spool/paniclog", "spool/rejectlog", "exim-stderr.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    out += f.read()
            except OSError:
                pass
        return out

    def received(self):
        """[(sender, protocol)] of every message Exim accepted, from its log."""
        try:
            with open(os.path.join(self.dir, "spool", "mainlog"), errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            return []
        return re.findall(r"^\S+ \S+ \S+ <= (\S+) .*? P=(\S+)", text, re.M)

    def stored(self):
        """Bytes of every message in the Maildir's new/, in delivery order."""
        new = os.path.join(self.dir, "Maildir", "new")
        if not os.path.isdir(new):
            return []
        names = sorted(os.listdir(new), key=lambda n: (os.stat(os.path.join(new, n)).st_mtime_ns, n))
        out = []
        for n in names:
            with open(os.path.join(new, n), "rb") as f:
                out.append(f.read())
        return out
