"""A small plaintext IMAP4rev1 server on loopback whose misbehaviour is
scripted, for what Dovecot cannot be made to do on demand: a UIDVALIDITY
that changes between sessions, unsolicited FETCH/EXPUNGE responses in the
middle of a fetch, endless response lines, a literal announced longer than
the data that follows.

    srv = FakeImap([b"Subject: a\\r\\n\\r\\nbody\\r\\n", ...]).start()
    srv.port; srv.user; srv.password
    srv.renumber(new_uidvalidity)          # every UID changes
    srv.add(data)                          # a new message (next UID)
    srv.before_body[uid] = [("raw", b"* 2 FETCH (FLAGS (\\\\Seen))"),
                            ("expunge", other_uid)]
    srv.cut_literal[uid] = (announced, sent)   # then the connection closes
    srv.uid_after_literal = True           # "* n FETCH (BODY[] {..}.. UID u)"
    srv.long_untagged["FETCH"] = 1 << 20   # an untagged line that long first
    srv.fetch_attrs[uid] = b'FLAGS (x) INTERNALDATE {5}\r\n...'
                                           # raw items in place of FLAGS and
                                           # INTERNALDATE in that message's
                                           # BODY.PEEK[] response
    srv.bye_on["UID FETCH"] = b"going down"  # "* BYE going down", then close
    srv.append_bad = {1}                   # the first APPEND (counted over all
                                           # connections) is answered BAD at
                                           # once and its literal read as
                                           # commands, as Dovecot does with an
                                           # argument it finds invalid
    srv.listing_flood = ("literals", 200, 1 << 20)  # the UID FETCH listing, hostile:
        # one response with 200 literals of 1 MiB; ("text", 100, 8 << 20): one
        # response of 100 text pieces of 8 MiB; ("lines", 2 * 10**6): that many
        # FETCH lines (UID n RFC822.SIZE 100), and SELECT announces that many
    srv.log                                # command lines received

It speaks what libcurl's login needs (greeting, CAPABILITY, LOGIN) and what
pullmail uses after it (CAPABILITY, LIST "" "", SELECT/EXAMINE, UID FETCH of
RFC822.SIZE / FLAGS / INTERNALDATE / BODY.PEEK[] / BODY.PEEK[HEADER.FIELDS],
UID STORE, UID EXPUNGE, EXPUNGE, UID SEARCH, NOOP, CLOSE, LOGOUT; as a
target, APPEND with LITERAL+ or synchronising literals into its one box).
Messages are stored with CRLF line endings and served byte for byte.
"""

import re
import threading

from fakes.loopback import LoopbackServer

DATE = b'"01-Jan-2024 10:00:00 +0000"'


def parse_set(text, max_uid):
    """IMAP sequence set over UIDs -> predicate."""
    ranges = []
    for part in text.split(","):
        if ":" in part:
            a, b = part.split(":", 1)
        else:
            a = b = part
        a = max_uid if a == "*" else int(a)
        b = max_uid if b == "*" else int(b)
        ranges.append((min(a, b), max(a, b)))
    return lambda uid: any(lo <= uid <= hi for lo, hi in ranges)


def header_fields(data, names):
    """The header lines of `data` whose field name is in names, plus the
    empty line, as BODY[HEADER.FIELDS (...)] returns them."""
    head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    out = []
    keep = False
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().upper()
        keep = name in names
        if keep:
            out.append(line)
    return b"".join(l + b"\r\n" for l in out) + b"\r\n"


class FakeImap(LoopbackServer):
    def __init__(self, messages, user="fake", password="fake-Pw-1", uidvalidity=1000,
                 capabilities=b"IMAP4rev1 UIDPLUS"):
        self.user = user
        self.password = password
        self.uidvalidity = uidvalidity
        self.capabilities = capabilities
        self.next_uid = 1
        self.box = []  # [{"uid", "data", "flags"}]
        for d in messages:
            self.add(d)
        self.before_body = {}
        self.cut_literal = {}
        self.uid_after_literal = False
        self.long_untagged = {}
        self.fetch_attrs = {}
        self.bye_on = {}
        self.append_bad = set()
        self.appends = 0
        self.folders = []  # extra selectable names LIST shows (bytes; CR/LF ones go as literals)
        self.select_no = {}  # SELECT/EXAMINE of a name containing KEY is answered "NO " + VALUE
        self.listing_flood = None
        self.log = []
        self.lock = threading.RLock()
        self._listen()

    def add(self, data, flags=(), date=DATE):
        """date: its INTERNALDATE, quoted (bytes)."""
        self.box.append({"uid": self.next_uid, "data": data, "flags": list(flags), "date": date})
        self.next_uid += 1
        return self.next_uid - 1

    def renumber(self, uidvalidity, first_uid=100):
        """A new UIDVALIDITY and new UIDs for every message (as after a
        server migration or a rebuilt index)."""
        self.uidvalidity = uidvalidity
        self.next_uid = first_uid
        for m in self.box:
            m["uid"] = self.next_uid
            self.next_uid += 1

    def uids(self):
        return [m["uid"] for m in self.box]

    def contents(self):
        return [m["data"] for m in self.box]

    def commands(self, pattern=None):
        out = []
        for conn in self.log:
            for l in conn:
                if pattern is None or re.search(pattern, l.decode("latin-1"), re.I):
                    out.append(l)
        return out

    # ---- one session ----------------------------------------------------------

    def _session(self, h):
        log = []
        with self.lock:
            self.log.append(log)
        w = h.wfile
        authed = False
        selected = False
        read_only = False

        def send(data):
            w.write(data)
            w.flush()

        def line(data):
            send(data + b"\r\n")

        line(b"* OK fake IMAP server ready")
        while True:
            raw = h.rfile.readline(1 << 20)
            if not raw:
                return
            raw = raw.rstrip(b"\r\n")
            log.append(raw)
            parts = raw.split(b" ", 2)
            if len(parts) < 2:
                line(b"* BAD what?")
                continue
            tag = parts[0]
            cmd = parts[1].upper().decode("latin-1")
            rest = parts[2] if len(parts) > 2 else b""
            if cmd == "UID":
                sub = rest.split(b" ", 1)
                cmd = "UID " + sub[0].upper().decode("latin-1")
                rest = sub[1] if len(sub) > 1 else b""
            word = cmd.split()[-1]
            if word in self.long_untagged:
                line(b"* OK " + b"x" * self.long_untagged[word])
            if cmd in self.bye_on:
                line(b"* BYE " + self.bye_on[cmd])
                return

            def ok(text=b"done"):
                line(tag + b" OK " + text)

            if cmd == "CAPABILITY":
                line(b"* CAPABILITY " + self.capabilities)
                ok()
            elif cmd == "NOOP" or cmd == "CHECK":
                ok()
            elif cmd == "LOGOUT":
                line(b"* BYE logging out")
                ok()
                return
            elif cmd == "LOGIN":
                args = re.findall(rb'"((?:[^"\\]|\\.)*)"|(\S+)', rest)
                vals = [a or b for a, b in args]
                if len(vals) == 2 and vals[0].decode() == self.user and vals[1].decode() == self.password:
                    authed = True
                    ok(b"[CAPABILITY " + self.capabilities + b"] logged in")
                else:
                    line(tag + b" NO [AUTHENTICATIONFAILED] authentication failed")
            elif not authed:
                line(tag + b" BAD log in first")
            elif cmd == "APPEND":
                self._append(h, tag, rest, line)
            elif cmd == "LIST":
                line(b'* LIST (\\Noselect) "." ""')
                for name in self.folders:
                    if b"\r" in name or b"\n" in name or b'"' in name:
                        send(b'* LIST () "/" {%d}\r\n' % len(name) + name + b"\r\n")
                    else:
                        line(b'* LIST () "/" "' + name + b'"')
                ok()
            elif cmd in ("SELECT", "EXAMINE") and any(k in rest for k in self.select_no):
                line(tag + b" NO " + next(v for k, v in self.select_no.items() if k in rest))
            elif cmd in ("SELECT", "EXAMINE"):
                with self.lock:
                    selected = True
                    read_only = cmd == "EXAMINE"
                    line(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)")
                    flood = self.listing_flood
                    line(b"* %d EXISTS" % (flood[1] if flood and flood[0] == "lines" else len(self.box)))
                    line(b"* 0 RECENT")
                    line(b"* OK [UIDVALIDITY %d] UIDs valid" % self.uidvalidity)
                    line(b"* OK [UIDNEXT %d] predicted next UID" % self.next_uid)
                    ok(b"[READ-ONLY] examined" if read_only else b"[READ-WRITE] selected")
            elif not selected:
                line(tag + b" BAD select a folder first")
            elif cmd == "UID FETCH":
                if not self._fetch(tag, rest, send, line):
                    return
            elif cmd == "UID STORE":
                m = re.match(rb"(\S+) ([+-]?)FLAGS(\.SILENT)? \(([^)]*)\)", rest, re.I)
                if not m or read_only:
                    line(tag + b" NO cannot store")
                    continue
                with self.lock:
                    pred = parse_set(m.group(1).decode(), max(self.uids() or [0]))
                    flags = m.group(4).decode().split()
                    for i, msg in enumerate(self.box):
                        if not pred(msg["uid"]):
                            continue
                        if m.group(2) == b"+":
                            msg["flags"] = sorted(set(msg["flags"]) | set(flags))
                        elif m.group(2) == b"-":
                            msg["flags"] = [f for f in msg["flags"] if f not in flags]
                        else:
                            msg["flags"] = list(flags)
                        if not m.group(3):
                            line(b"* %d FETCH (UID %d FLAGS (%s))" % (i + 1, msg["uid"],
                                                                      " ".join(msg["flags"]).encode()))
                ok()
            elif cmd in ("UID EXPUNGE", "EXPUNGE"):
                if read_only:
                    line(tag + b" NO read-only")
                    continue
                with self.lock:
                    pred = parse_set(rest.decode(), max(self.uids() or [0])) if cmd == "UID EXPUNGE" else \
                        (lambda uid: True)
                    i = 0
                    while i < len(self.box):
                        msg = self.box[i]
                        if "\\Deleted" in msg["flags"] and pred(msg["uid"]):
                            del self.box[i]
                            line(b"* %d EXPUNGE" % (i + 1))
                        else:
                            i += 1
                ok()
            elif cmd == "UID SEARCH":
                crit = rest.upper().strip()
                with self.lock:
                    if crit == b"DELETED":
                        hits = [m["uid"] for m in self.box if "\\Deleted" in m["flags"]]
                    elif crit.startswith(b"UID "):
                        pred = parse_set(crit[4:].decode(), self.next_uid - 1)
                        hits = [u for u in self.uids() if pred(u)]
                    else:
                        hits = self.uids()
                line(b"* SEARCH" + b"".join(b" %d" % u for u in hits))
                ok()
            elif cmd == "CLOSE":
                selected = False
                ok()
            else:
                line(tag + b" BAD unknown command")

    def _append(self, h, tag, rest, line):
        m = re.match(rb'^(\S+) \(([^)]*)\)(?: "[^"]*")? \{(\d+)(\+?)\}$', rest)
        if not m:
            line(tag + b" BAD invalid arguments")
            return
        with self.lock:
            self.appends += 1
            bad = self.appends in self.append_bad
        if bad:
            line(tag + b" BAD Invalid arguments")  # the literal's lines come next, as commands
            return
        if not m.group(4):
            line(b"+ OK")
        data = h.rfile.read(int(m.group(3)))
        h.rfile.readline()
        with self.lock:
            uid = self.add(data, m.group(2).decode("latin-1").split())
        line(tag + b" OK [APPENDUID %d %d] Append completed" % (self.uidvalidity, uid))

    @staticmethod
    def _flood(send, kind, count, size=0):
        """Huge untagged FETCH data (see listing_flood), written in chunks so
        the server itself never holds it whole."""
        if kind == "lines":
            step = 10000
            for start in range(1, count + 1, step):
                send(b"".join(b"* %d FETCH (UID %d RFC822.SIZE 100)\r\n" % (i, i)
                              for i in range(start, min(count + 1, start + step))))
            return
        send(b"* 1 FETCH (UID 1 RFC822.SIZE 100")
        chunk = b"x" * min(size, 1 << 20)
        for i in range(count):
            if kind == "literals":
                send(b" X-JUNK%d {%d}\r\n" % (i, size))
                for _ in range(size // len(chunk)):
                    send(chunk)
                send(chunk[:size % len(chunk)])
            else:
                send(b" X-JUNK%d " % i)
                for _ in range(size // len(chunk)):
                    send(chunk)
                send(b" {0}\r\n")
        send(b")\r\n")

    def _fetch(self, tag, rest, send, line):
        """UID FETCH. Returns False when the connection was closed on purpose."""
        uidset, _, items = rest.partition(b" ")
        items = items.upper()
        if self.listing_flood and b"BODY" not in items:
            self._flood(send, *self.listing_flood)
            line(tag + b" OK fetch done")
            return True
        with self.lock:
            pred = parse_set(uidset.decode(), max(self.uids() or [0]))
            todo = [m["uid"] for m in self.box if pred(m["uid"])]
        for uid in todo:
            if b"BODY.PEEK[]" in items or items.endswith(b"BODY[])") or b"RFC822)" in items:
                for action in self.before_body.get(uid, []):
                    if action[0] == "raw":
                        line(action[1])
                    elif action[0] == "expunge":
                        with self.lock:
                            for i, m in enumerate(self.box):
                                if m["uid"] == action[1]:
                                    del self.box[i]
                                    line(b"* %d EXPUNGE" % (i + 1))
                                    break
            with self.lock:
                seqs = [i for i, m in enumerate(self.box) if m["uid"] == uid]
                if not seqs:
                    continue  # expunged meanwhile: nothing to send
                seq = seqs[0] + 1
                msg = dict(self.box[seq - 1])
            data = msg["data"]
            flags = " ".join(msg["flags"]).encode()
            if b"HEADER.FIELDS" in items:
                names = set(re.search(rb"HEADER\.FIELDS \(([^)]*)\)", items).group(1).split())
                hdr = header_fields(data, names)
                date = b" INTERNALDATE " + msg["date"] if b"INTERNALDATE" in items else b""
                send(b"* %d FETCH (UID %d%s BODY[HEADER.FIELDS (%s)] {%d}\r\n%s)\r\n" % (
                    seq, uid, date, b" ".join(sorted(names)), len(hdr), hdr))
            elif b"BODY.PEEK[]" in items:
                pre = b"RFC822.SIZE %d %s" % (len(data), self.fetch_attrs.get(
                    uid, b"FLAGS (%s) INTERNALDATE %s" % (flags, msg["date"])))
                if uid in self.cut_literal:
                    announced, sent = self.cut_literal[uid]
                    send(b"* %d FETCH (UID %d %s BODY[] {%d}\r\n" % (seq, uid, pre, announced) + data[:sent])
                    return False
                if self.uid_after_literal:
                    send(b"* %d FETCH (%s BODY[] {%d}\r\n%s UID %d)\r\n" % (seq, pre, len(data), data, uid))
                else:
                    send(b"* %d FETCH (UID %d %s BODY[] {%d}\r\n%s)\r\n" % (seq, uid, pre, len(data), data))
            else:
                attrs = [b"UID %d" % uid]
                if b"RFC822.SIZE" in items:
                    attrs.append(b"RFC822.SIZE %d" % len(data))
                if b"FLAGS" in items:
                    attrs.append(b"FLAGS (%s)" % flags)
                line(b"* %d FETCH (%s)" % (seq, b" ".join(attrs)))
        line(tag + b" OK fetch done")
        return True
