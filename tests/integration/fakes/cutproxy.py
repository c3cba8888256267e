"""A loopback TCP proxy that cuts a connection after a chosen number of bytes.

    with CutProxy(upstream_port, direction="s2c", cut_at=1234) as p:
        ... connect to 127.0.0.1:p.port ...
    p.transcripts  -> [{"c2s": bytes, "s2c": bytes, "cut": bool}, ...]

direction "s2c" counts bytes from the server to the client, "c2s" from the
client to the server. Exactly cut_at bytes of that direction are forwarded,
then both sockets are closed. cut_at may also be a marker (needle, nth,
delta): the cut falls `delta` bytes after the start of the nth occurrence
(0-based) of `needle` in that direction's stream, found as the bytes pass
(servers like Dovecot put timings into replies, so absolute offsets of a
recorded session drift by a few bytes; a marker does not). When the marker
is only recognised after some of the bytes before the cut point were
already passed on (a needle split across reads, a negative delta), the cut
happens at once. The offset where it happened is in transcripts[i]["at"]: with a FIN by default, or with an RST
(SO_LINGER 0) when rst=True. Only the first connection is cut (cut_once);
later ones, and every connection when cut_at is None, are passed through and
recorded, so a clean run through the proxy gives the byte layout of a
session (for picking cut points).

Everything listens on and connects to 127.0.0.1 only.
"""

import selectors
import socket
import struct
import threading


class CutProxy:
    def __init__(self, upstream_port, direction="s2c", cut_at=None, rst=False, cut_once=True,
                 upstream_host="127.0.0.1"):
        if direction not in ("s2c", "c2s"):
            raise ValueError("direction must be 's2c' or 'c2s'")
        self.upstream = (upstream_host, upstream_port)
        self.direction = direction
        self.cut_at = cut_at
        self.rst = rst
        self.cut_once = cut_once
        self.transcripts = []
        self.cuts = 0
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads = []
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self):
        self._accept_thread.start()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def stop(self):
        self._stop.set()
        try:
            # wake accept()
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            pass
        self._accept_thread.join(timeout=5)
        self._listener.close()
        for t in self._threads:
            t.join(timeout=5)

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._stop.is_set():
                client.close()
                return
            with self._lock:
                index = len(self.transcripts)
                rec = {"c2s": bytearray(), "s2c": bytearray(), "cut": False, "at": None, "live": None}
                self.transcripts.append(rec)
                cut = self.cut_at if (self.cut_at is not None and (not self.cut_once or self.cuts == 0)) else None
                if cut is not None:
                    self.cuts += 1
            t = threading.Thread(target=self._serve, args=(client, rec, cut), daemon=True)
            self._threads.append(t)
            t.start()

    def _close(self, *socks):
        for s in socks:
            try:
                if self.rst:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def _serve(self, client, rec, cut):
        try:
            server = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rec["live"] = (client, server)
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, ("c2s", server))
        sel.register(server, selectors.EVENT_READ, ("s2c", client))
        counted = 0
        marker = None
        if isinstance(cut, tuple):
            marker, cut = cut, None
        try:
            if cut == 0:
                rec["cut"] = True
                rec["at"] = 0
                return
            open_dirs = 2
            while open_dirs and not self._stop.is_set():
                for key, _ in sel.select(timeout=0.5):
                    direction, dest = key.data
                    try:
                        data = key.fileobj.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        # one side closed: pass the half-close on
                        sel.unregister(key.fileobj)
                        open_dirs -= 1
                        try:
                            dest.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        continue
                    if marker is not None and direction == self.direction:
                        needle, nth, delta = marker
                        hits = find_all(bytes(rec[direction]) + data, needle)
                        if len(hits) > nth:
                            cut = max(hits[nth] + delta, counted)
                            marker = None
                    if cut is not None and direction == self.direction:
                        room = cut - counted
                        if len(data) >= room:
                            data = data[:room]
                            rec[direction] += data
                            try:
                                dest.sendall(data)
                            except OSError:
                                pass
                            rec["cut"] = True
                            rec["at"] = cut
                            return
                        counted += len(data)
                    elif direction == self.direction:
                        counted += len(data)
                    rec[direction] += data
                    try:
                        dest.sendall(data)
                    except OSError:
                        return
        finally:
            rec["live"] = None
            sel.close()
            self._close(client, server)

    def cut_live(self, match):
        """Cuts (RST both ways) every open connection whose transcript
        record satisfies match(rec), as a broken network would; returns how
        many."""
        n = 0
        for rec in list(self.transcripts):
            socks = rec["live"]
            if socks is None or not match(rec):
                continue
            rec["cut"] = True
            rec["at"] = len(rec[self.direction])
            for s in socks:
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            n += 1
        return n


def find_all(data, needle, start=0):
    out = []
    i = data.find(needle, start)
    while i >= 0:
        out.append(i)
        i = data.find(needle, i + 1)
    return out
