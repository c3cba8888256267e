"""A small plaintext POP3 server on loopback whose misbehaviour is scripted,
for what Dovecot cannot be made to do (duplicate UIDLs, -ERR on RETR, -ERR
on QUIT, endless lines, a message cut short).

    srv = FakePop3([("uidl-1", b"Subject: a\\r\\n\\r\\nbody\\r\\n"), ...]).start()
    srv.port; srv.user; srv.password
    srv.retr_reply[uidl] = b"-ERR no such message"   # refuse one RETR
    srv.quit_reply = b"-ERR cannot commit"            # deletions not committed
    srv.cut_retr[uidl] = 100    # send 100 bytes of that message, then close
    srv.long_reply["LIST"] = 1024*1024  # a +OK line that long for LIST
    srv.trickle_retr = 3.0      # RETR payloads one byte every 3 s
    srv.greeting_delay = 30     # seconds before the greeting (a login that hangs)
    srv.synthetic_listing = 10**6   # UIDL/LIST announce that many messages
    srv.top_padding = 5 << 20   # TOP n 0 headers padded with a field that long
    srv.log  -> every command line received, per connection
    srv.uidls() -> UIDLs still in the mailbox

Messages are stored with CRLF line endings, as sent. The mailbox lives in
the object: deletions are committed at a QUIT answered +OK only (RFC 1939),
so a later connection sees what an earlier one committed.
"""

import socket
import threading
import time

from fakes.loopback import LoopbackServer


def dot_stuff(data):
    """Message bytes (CRLF) to the RETR payload, ending with CRLF.CRLF."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    lines = data.split(b"\r\n")[:-1]
    out = [(b"." + l if l.startswith(b".") else l) for l in lines]
    return b"\r\n".join(out) + b"\r\n.\r\n"


class FakePop3(LoopbackServer):
    def __init__(self, messages, user="fake", password="fake-Pw-1", capa=(b"USER", b"UIDL", b"PIPELINING", b"TOP")):
        self.messages = [[uidl, data] for uidl, data in messages]  # mailbox, in order
        self.user = user
        self.password = password
        self.capa = list(capa)
        self.greeting = b"+OK fake POP3 server ready"
        self.retr_reply = {}       # uidl -> status line sent instead of +OK (no data follows)
        self.cut_retr = {}         # uidl -> bytes of the payload sent before closing
        self.quit_reply = b"+OK bye"
        self.long_reply = {}       # command word -> length of its +OK status line
        self.uidl_override = None  # list of UIDL strings to announce instead of the real ones
        self.trickle_retr = None   # seconds between the bytes of a RETR payload
        self.greeting_delay = 0
        # Microsoft's POP3 XOAUTH2: "AUTH XOAUTH2", "+ ", then the response on
        # its own line; an initial response on the AUTH line is refused.
        self.xoauth2_token = None
        self.synthetic_listing = None  # UIDL/LIST list messages 1..N ("uid-%08d", 100 octets) instead
        self.top_padding = 0       # bytes of an X-Padding field added to every TOP header
        self.log = []              # [[line, ...] per connection]
        self.sessions = 0
        self.lock = threading.Lock()
        self._listen()

    def uidls(self):
        with self.lock:
            return [u for u, _ in self.messages]

    def commands(self, word=None):
        out = []
        for conn in self.log:
            for l in conn:
                if word is None or l.split(b" ", 1)[0].upper() == word.encode():
                    out.append(l)
        return out

    # ---- one session ----------------------------------------------------------

    def _session(self, h):
        with self.lock:
            self.sessions += 1
            log = []
            self.log.append(log)
            box = list(self.messages)  # snapshot: numbers are fixed for the session
        deleted = set()
        authed = False
        w = h.wfile

        def send(line):
            w.write(line + b"\r\n")
            w.flush()

        if self.greeting_delay:
            time.sleep(self.greeting_delay)
        send(self.greeting)
        while True:
            line = h.rfile.readline(1 << 20)
            if not line:
                return
            line = line.rstrip(b"\r\n")
            log.append(line)
            parts = line.split(b" ")
            cmd = parts[0].upper().decode("ascii", "replace")
            arg = parts[1:]
            status = b"+OK"
            if cmd in self.long_reply:
                status = b"+OK " + b"x" * (self.long_reply[cmd] - 4)
            if cmd == "CAPA":
                send(b"+OK capability list follows")
                for c in self.capa:
                    send(c)
                send(b".")
            elif cmd == "USER":
                send(status + b" send PASS")
            elif cmd == "PASS":
                if arg and b" ".join(arg).decode() == self.password:
                    authed = True
                    send(status + b" logged in")
                else:
                    send(b"-ERR [AUTH] authentication failed")
            elif cmd == "AUTH" and self.xoauth2_token and arg and arg[0].upper() == b"XOAUTH2":
                if len(arg) > 1:
                    send(b"-ERR Protocol error. Connection is closed. 10")
                    return
                send(b"+ ")
                resp = h.rfile.readline(1 << 20).rstrip(b"\r\n")
                log.append(b"<sasl response>")
                import base64
                want = ("user=%s\x01auth=Bearer %s\x01\x01" % (self.user, self.xoauth2_token)).encode()
                try:
                    ok = base64.b64decode(resp, validate=True) == want
                except ValueError:
                    ok = False
                if ok:
                    authed = True
                    send(b"+OK User successfully authenticated.")
                else:
                    send(b"-ERR Authentication failure: unknown user name or bad password.")
            elif cmd == "QUIT":
                if not authed:
                    send(b"+OK bye")
                    return
                reply = self.quit_reply
                if reply.startswith(b"+OK"):
                    with self.lock:
                        gone = {id(box[i - 1]) for i in deleted}
                        self.messages = [m for m in self.messages if id(m) not in gone]
                send(reply)
                return
            elif not authed:
                send(b"-ERR log in first")
            elif cmd == "STAT":
                live = [i for i in range(1, len(box) + 1) if i not in deleted]
                send(b"+OK %d %d" % (len(live), sum(len(box[i - 1][1]) for i in live)))
            elif cmd in ("UIDL", "LIST"):
                if arg:
                    n = int(arg[0])
                    if n < 1 or n > len(box) or n in deleted:
                        send(b"-ERR no such message")
                    else:
                        v = self._uidl(box, n) if cmd == "UIDL" else b"%d" % len(box[n - 1][1])
                        send(b"+OK %d %s" % (n, v))
                    continue
                send(status + b" listing follows")
                if self.synthetic_listing is not None:
                    self._synthetic(w, cmd, self.synthetic_listing)
                    continue
                for i in range(1, len(box) + 1):
                    if i in deleted:
                        continue
                    v = self._uidl(box, i) if cmd == "UIDL" else b"%d" % len(box[i - 1][1])
                    send(b"%d %s" % (i, v))
                send(b".")
            elif cmd in ("RETR", "TOP"):
                n = int(arg[0]) if arg and arg[0].isdigit() else 0
                if n < 1 or n > len(box) or n in deleted:
                    send(b"-ERR no such message")
                    continue
                uidl, data = box[n - 1]
                if cmd == "RETR" and uidl in self.retr_reply:
                    send(self.retr_reply[uidl])
                    continue
                payload = dot_stuff(data)
                if cmd == "TOP":
                    head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
                    if self.top_padding:
                        head += b"X-Padding: " + b"p" * self.top_padding + b"\r\n"
                    payload = dot_stuff(head + b"\r\n")
                w.write(status + b" %d octets\r\n" % len(data))
                if cmd == "RETR" and uidl in self.cut_retr:
                    w.write(payload[:self.cut_retr[uidl]])
                    w.flush()
                    h.connection.shutdown(socket.SHUT_RDWR)
                    return
                if cmd == "RETR" and self.trickle_retr:
                    for i in range(len(payload)):
                        w.write(payload[i:i + 1])
                        w.flush()
                        time.sleep(self.trickle_retr)
                    continue
                w.write(payload)
                w.flush()
            elif cmd == "DELE":
                n = int(arg[0]) if arg and arg[0].isdigit() else 0
                if n < 1 or n > len(box) or n in deleted:
                    send(b"-ERR no such message")
                else:
                    deleted.add(n)
                    send(b"+OK deleted")
            elif cmd == "NOOP":
                send(b"+OK")
            elif cmd == "RSET":
                deleted.clear()
                send(b"+OK")
            else:
                send(b"-ERR unknown command")

    @staticmethod
    def _synthetic(w, cmd, n):
        """The lines of a listing of n messages, written in large chunks."""
        step = 10000
        for start in range(1, n + 1, step):
            stop = min(n + 1, start + step)
            if cmd == "UIDL":
                w.write(b"".join(b"%d uid-%08d\r\n" % (i, i) for i in range(start, stop)))
            else:
                w.write(b"".join(b"%d 100\r\n" % i for i in range(start, stop)))
        w.write(b".\r\n")
        w.flush()

    def _uidl(self, box, n):
        if self.uidl_override is not None:
            return self.uidl_override[n - 1].encode()
        return box[n - 1][0].encode()
