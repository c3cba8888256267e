"""A loopback tunnelling proxy for tests: HTTP CONNECT (RFC 9110 9.3.6) or
SOCKS5 (RFC 1928, no authentication, CONNECT only). It records every target
it was asked for — (host, port) as the client sent it, so a socks5h:// client
that lets the proxy resolve names shows up with the name, not an address —
and relays bytes both ways without looking at them (TLS passes through)."""

import socket
import struct
import threading


class TunnelProxy:
    def __init__(self, kind, hosts=None):
        """hosts: {name: address} the proxy resolves itself (names that
        exist only behind the proxy, as with Tor)."""
        assert kind in ("http", "socks5")
        self.kind = kind
        self.hosts = dict(hosts or {})
        self.targets = []
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, scheme=None):
        return "%s://127.0.0.1:%d" % (scheme or self.kind, self.port)

    def close(self):
        self._sock.close()

    def _accept(self):
        while True:
            try:
                c, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read(c, n):
        b = b""
        while len(b) < n:
            chunk = c.recv(n - len(b))
            if not chunk:
                raise EOFError
            b += chunk
        return b

    def _http(self, c):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = c.recv(4096)
            if not chunk:
                raise EOFError
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode()
        method, target, _ = line.split(" ", 2)
        if method != "CONNECT":
            c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            raise EOFError
        host, port = target.rsplit(":", 1)
        return host.strip("[]"), int(port), lambda: c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

    def _socks5(self, c):
        ver, n = self._read(c, 2)
        self._read(c, n)
        c.sendall(b"\x05\x00")
        ver, cmd, _, atyp = self._read(c, 4)
        if atyp == 1:
            host = socket.inet_ntoa(self._read(c, 4))
        elif atyp == 3:
            host = self._read(c, self._read(c, 1)[0]).decode()
        else:
            host = socket.inet_ntop(socket.AF_INET6, self._read(c, 16))
        port = struct.unpack(">H", self._read(c, 2))[0]
        return host, port, lambda: c.sendall(b"\x05\x00\x00\x01" + bytes(4) + b"\x00\x00")

    def _serve(self, c):
        try:
            host, port, ok = self._http(c) if self.kind == "http" else self._socks5(c)
            self.targets.append((host, port))
            up = socket.create_connection((self.hosts.get(host, host), port))
            ok()
        except (EOFError, OSError, ValueError):
            c.close()
            return

        def pump(a, b):
            try:
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    b.sendall(d)
            except OSError:
                pass
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        back = threading.Thread(target=pump, args=(up, c), daemon=True)
        back.start()
        pump(c, up)
        back.join(10)
        up.close()
        c.close()
