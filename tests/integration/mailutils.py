"""A private GNU Mailutils 3.15 pop3d and imap4d on loopback: the second real
server of the tests (issue 12).

    with Mailutils(tmpdir) as m:
        user, pw = m.add_user()
        m.add_message(user, b"Subject: hi\\n\\nbody\\n")
        m.ports["pop3s"], m.ports["imaps"], m.ports["pop3"] (STLS), m.ca_file
        m.pop3_messages(user), m.count(user)

Both daemons run in the foreground as children of this process with their
own configuration (--no-site-config; no system service is used or needed)
and die with it (PR_SET_PDEATHSIG, see dovecot.py). They authenticate
system users (pop3d and imap4d run as root and switch to the user): each
add_user() is a `useradd` of a fresh name plus `chpasswd`, removed again by
stop(). Mail is a Maildir per user below the instance directory.

Mailutils facts relied on (servers.md): pop3d always sends an APOP
timestamp in its greeting and adds an X-UIDL: header to every message;
imap4d offers LITERAL+ but no SASL-IR, and many SASL mechanisms that do not
work against system passwords (DIGEST-MD5, CRAM-MD5, SCRAM); it needs a
`namespace personal` block to open a Maildir INBOX; mandatory locking is
turned off (it wants /var/lock/subsys/mail).
"""

import imaplib
import os
import poplib
import shutil
import ssl
import subprocess
import tempfile
import time
import weakref
import atexit

from dovecot import _die_with_parent, _install_sigterm_handler, _sbin, free_ports, make_certificate, \
    server_temp_root

_live = weakref.WeakSet()
atexit.register(lambda: [m.stop() for m in list(_live)])


class Mailutils:
    def __init__(self, tmpdir=None):
        # Like Dovecot's: a private directory of its own in a temp root the
        # servers' users can reach (tmpdir, the caller's, may be in a 0700
        # home); removed by stop(). Nothing else's mode is changed.
        del tmpdir
        self.dir = tempfile.mkdtemp(prefix="pullmail-mailutils-", dir=server_temp_root())
        os.chmod(self.dir, 0o755)
        self.mail_root = os.path.join(self.dir, "mail")
        os.makedirs(self.mail_root)
        os.chmod(self.mail_root, 0o755)
        self.cert_file, self.key_file = make_certificate(self.dir)
        self.ports = {}
        self.users = {}
        self._procs = []
        self._seq = 0

    @property
    def ca_file(self):
        return self.cert_file

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def _config(self, name, ports):
        root = self.mail_root
        lines = [
            "mode daemon;",
            "foreground yes;",
            "logging { syslog no; };",
            "mandatory-locking { enable no; };",
            'mailbox { mailbox-pattern "maildir:%s/${user}"; };' % root,
            "tls-file-checks { key-file none; cert-file none; ca-file none; };",
            'tls { ssl-certificate-file "%s"; ssl-key-file "%s"; };' % (self.cert_file, self.key_file),
        ]
        if name == "imap4d":
            lines.append('namespace personal { prefix "" { directory "%s/${user}"; mailbox-type "maildir"; }; };'
                         % root)
        lines.append("server 127.0.0.1:%d { tls-mode connection; };" % ports[0])
        lines.append("server 127.0.0.1:%d { tls-mode stls; };" % ports[1])
        path = os.path.join(self.dir, name + ".conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start(self, timeout=10):
        _install_sigterm_handler()
        names = ("pop3s", "pop3", "imaps", "imap")
        self.ports = dict(zip(names, free_ports(len(names))))
        for name, keys in (("pop3d", ("pop3s", "pop3")), ("imap4d", ("imaps", "imap"))):
            conf = self._config(name, [self.ports[k] for k in keys])
            log = open(os.path.join(self.dir, name + ".log"), "ab")
            self._procs.append(subprocess.Popen([_sbin(name), "--no-site-config", "--config-file=" + conf],
                                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                preexec_fn=_die_with_parent))
            log.close()
        _live.add(self)
        deadline = time.monotonic() + timeout
        for k in self.ports:
            while True:
                try:
                    import socket
                    with socket.create_connection(("127.0.0.1", self.ports[k]), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline or any(p.poll() is not None for p in self._procs):
                        self.stop()
                        raise RuntimeError("mailutils did not start:\n" + self.log())
                    time.sleep(0.05)
        return self

    def stop(self):
        for p in self._procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self._procs = []
        for user in list(self.users):
            subprocess.run([_sbin("userdel"), user], stderr=subprocess.DEVNULL)
            del self.users[user]
        shutil.rmtree(self.dir, ignore_errors=True)
        _live.discard(self)

    def log(self):
        out = ""
        for name in ("pop3d", "imap4d"):
            try:
                with open(os.path.join(self.dir, name + ".log"), errors="replace") as f:
                    out += f.read()
            except OSError:
                pass
        return out

    # ---- users and mail ------------------------------------------------

    def add_user(self):
        """A fresh system user with a Maildir: (name, password)."""
        self._seq += 1
        name = "pmmu%d%s" % (os.getpid() % 100000, chr(ord("a") + self._seq - 1))
        password = "Mu-%s-Pw-7q" % name
        subprocess.run([_sbin("useradd"), "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", name], check=True)
        subprocess.run([_sbin("chpasswd")], input=("%s:%s\n" % (name, password)).encode(), check=True)
        self.users[name] = password
        md = os.path.join(self.mail_root, name)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(md, sub))
        self._chown(md)
        os.chmod(md, 0o700)
        return name, password

    def _chown(self, path):
        import pwd
        pw = pwd.getpwnam(os.path.basename(path.rstrip("/")))
        for dirpath, dirs, files in os.walk(path):
            os.chown(dirpath, pw.pw_uid, pw.pw_gid)
            for f in files:
                os.chown(os.path.join(dirpath, f), pw.pw_uid, pw.pw_gid)

    def add_message(self, user, data):
        self._seq += 1
        name = "%d.M%dP%d.pullmail-test" % (int(time.time()), self._seq, os.getpid())
        path = os.path.join(self.mail_root, user, "new", name)
        with open(path, "wb") as f:
            f.write(data)
        self._chown(os.path.join(self.mail_root, user))

    def ssl_context(self):
        return ssl.create_default_context(cafile=self.ca_file)

    def settle(self, user):
        """One POP3 session with UIDL: pop3d then adds an X-UIDL: header to
        the messages (served from then on), so what it serves changes once."""
        self.pop3_messages(user, settle=False)

    def pop3_messages(self, user, settle=True):
        """What pop3d serves, as poplib reads it (CRLF lines joined), after
        the messages have settled."""
        if settle:
            self.settle(user)
        p = poplib.POP3_SSL("127.0.0.1", self.ports["pop3s"], context=self.ssl_context())
        try:
            p.user(user)
            p.pass_(self.users[user])
            p.uidl()
            out = []
            for i in range(1, len(p.list()[1]) + 1):
                out.append(b"\r\n".join(p.retr(i)[1]) + b"\r\n")
            return out
        finally:
            p.quit()

    def imap_messages(self, user):
        """What imap4d serves for BODY.PEEK[], exactly (settled first)."""
        self.settle(user)
        m = imaplib.IMAP4_SSL("127.0.0.1", self.ports["imaps"], ssl_context=self.ssl_context())
        try:
            m.login(user, self.users[user])
            m.select("INBOX", readonly=True)
            typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
            return [d[1] for d in data if isinstance(d, tuple)]
        finally:
            m.logout()

    def count(self, user):
        md = os.path.join(self.mail_root, user)
        return sum(len(os.listdir(os.path.join(md, s))) for s in ("cur", "new"))
