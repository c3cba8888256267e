"""A small fake SMTP server on 127.0.0.1 for what no real server does on
demand: answer chosen messages with 4xx or 5xx, and offer or withhold
extensions (PIPELINING, CHUNKING, 8BITMIME, SMTPUTF8).

    with FakeSmtp(extensions=("PIPELINING", "8BITMIME")) as s:
        s.refuse[b"<bad@x>"] = "550 5.7.1 rejected by policy"   # by Message-ID
        ... deliver = "smtp://127.0.0.1:%d" % s.port, tls = "off" ...
        s.messages  -> [(mail_from_line, [rcpt], data bytes)] accepted, in order

`data` is what the client sent after DATA with dot-stuffing undone and
without the final ".\r\n" (or the BDAT chunks joined): the message as the
server received it. A refusal is given at the end of the data (after DATA's
".", or to BDAT LAST), where a real server's content filter answers.

With lmtp=True it speaks LMTP (RFC 2033): LHLO, and one reply per accepted
recipient at the end of the data; refuse_for[(Message-ID, address)] answers
that recipient alone, and s.deliveries lists every (address, Message-ID)
answered 250.

max_sessions=n answers a connection beyond n open ones with "421 4.7.0 too
many connections" and closes it (Postfix's smtpd_client_connection_count_limit);
s.peak_sessions is the most that were open at once.
"""

import re
import threading

from fakes.loopback import LoopbackServer

_MSGID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]*>)", re.I | re.M)


class FakeSmtp(LoopbackServer):

    def __init__(self, extensions=("PIPELINING", "8BITMIME", "SMTPUTF8"), starttls=None, auth=None, lmtp=False,
                 auth_in_clear=False, max_sessions=None):
        """starttls: an ssl.SSLContext (server side) to offer STARTTLS with;
        auth: (user, password) to offer and require AUTH PLAIN (after TLS,
        or before it with auth_in_clear: a server whose STARTTLS an
        attacker has stripped)."""
        self.extensions = tuple(extensions)
        self.starttls = starttls
        self.auth = auth
        self.auth_in_clear = auth_in_clear
        self.authenticated = []  # user names that logged in
        self.tls_sessions = 0
        self.refuse = {}       # Message-ID bytes -> reply line
        self.lmtp = lmtp
        self.refuse_for = {}   # LMTP: (Message-ID bytes, address bytes) -> reply line
        self.deliveries = []   # LMTP: (address bytes, Message-ID bytes) answered 250
        self.messages = []     # accepted: (MAIL FROM line, [RCPT lines], data)
        self.commands = []     # every command line received, in order
        self.max_sessions = max_sessions
        self.refused_sessions = 0
        self.peak_sessions = 0
        self._open = 0
        self._lock = threading.Lock()
        self._listen()

    def _reply(self, w, line):
        w.write(line.encode() + b"\r\n")
        w.flush()

    def _finish(self, w, mail, rcpts, data):
        m = _MSGID.search(data)
        if self.lmtp:
            return self._finish_lmtp(w, mail, rcpts, data, m.group(1) if m else None)
        answer = self.refuse.get(m.group(1) if m else None)
        if answer:
            self._reply(w, answer)
        else:
            self.messages.append((mail, rcpts, data))
            self._reply(w, "250 2.0.0 queued")

    def _finish_lmtp(self, w, mail, rcpts, data, mid):
        got = []
        for rc in rcpts:
            addr = re.search(rb"<([^>]*)>", rc).group(1)
            answer = self.refuse_for.get((mid, addr)) or self.refuse.get(mid)
            if answer:
                w.write(answer.encode() + b"\r\n")
            else:
                self.deliveries.append((addr, mid))
                got.append(rc)
                w.write(b"250 2.0.0 <%s> delivered\r\n" % addr)
        w.flush()
        if got:
            self.messages.append((mail, got, data))

    def _read_data(self, r):
        lines = []
        while True:
            line = r.readline()
            if not line:
                raise ConnectionResetError
            if line == b".\r\n":
                return b"".join(lines)
            if line.startswith(b"."):
                line = line[1:]
            lines.append(line)

    def _session(self, h):
        with self._lock:
            full = self.max_sessions is not None and self._open >= self.max_sessions
            if full:
                self.refused_sessions += 1
            else:
                self._open += 1
                self.peak_sessions = max(self.peak_sessions, self._open)
        if full:
            self._reply(h.wfile, "421 4.7.0 fake.test too many connections")
            return
        try:
            self._dialog(h)
        finally:
            with self._lock:
                self._open -= 1

    def _dialog(self, h):
        r, w = h.rfile, h.wfile
        self._reply(w, "220 fake.test ESMTP")
        mail, rcpts, chunks = None, [], []
        tls = False
        while True:
            line = r.readline()
            if not line:
                return
            cmd = line.rstrip(b"\r\n")
            self.commands.append(cmd)
            verb = cmd.split(b" ", 1)[0].upper().split(b":")[0]
            if verb in ((b"LHLO",) if self.lmtp else (b"EHLO", b"HELO")):
                offered = list(self.extensions)
                if self.starttls and not tls:
                    offered.append("STARTTLS")
                if self.auth and (tls or self.auth_in_clear):
                    offered.append("AUTH PLAIN")
                lines = ["fake.test"] + offered
                w.write(("".join("250%s%s\r\n" % ("-" if i + 1 < len(lines) else " ", l)
                                 for i, l in enumerate(lines))).encode())
                w.flush()
            elif verb == b"STARTTLS" and self.starttls and not tls:
                self._reply(w, "220 2.0.0 ready to start TLS")
                sock = self.starttls.wrap_socket(h.request, server_side=True)
                r, w = sock.makefile("rb"), sock.makefile("wb")
                tls = True
                self.tls_sessions += 1
            elif verb == b"AUTH" and self.auth:
                import base64
                parts = cmd.split()
                if len(parts) < 3:
                    self._reply(w, "334 ")
                    parts.append(r.readline().strip())
                try:
                    _, u, p = base64.b64decode(parts[2]).split(b"\0")
                except ValueError:
                    u = p = b""
                if (u.decode(), p.decode()) == self.auth:
                    self.authenticated.append(u.decode())
                    self._reply(w, "235 2.7.0 authenticated")
                else:
                    self._reply(w, "535 5.7.8 bad credentials")
            elif verb == b"MAIL":
                if self.auth and not self.authenticated:
                    self._reply(w, "530 5.7.0 authentication required")
                    continue
                mail, rcpts, chunks = cmd, [], []
                self._reply(w, "250 2.1.0 ok")
            elif verb == b"RCPT":
                rcpts.append(cmd)
                self._reply(w, "250 2.1.5 ok")
            elif verb == b"RSET":
                mail, rcpts, chunks = None, [], []
                self._reply(w, "250 2.0.0 ok")
            elif verb == b"DATA":
                self._reply(w, "354 go ahead")
                self._finish(w, mail, rcpts, self._read_data(r))
                mail, rcpts = None, []
            elif verb == b"BDAT":
                parts = cmd.split()
                chunks.append(r.read(int(parts[1])))
                if len(parts) > 2 and parts[2].upper() == b"LAST":
                    self._finish(w, mail, rcpts, b"".join(chunks))
                    mail, rcpts, chunks = None, [], []
                else:
                    self._reply(w, "250 2.0.0 chunk ok")
            elif verb == b"QUIT":
                self._reply(w, "221 2.0.0 bye")
                return
            else:
                self._reply(w, "502 5.5.2 unknown command")
