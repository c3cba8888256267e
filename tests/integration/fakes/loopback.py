"""A threaded TCP server on 127.0.0.1 for the fake mail servers: subclasses
implement _session(handler), one call per accepted connection (handler.rfile
and handler.wfile are the connection). Use as a context manager or with
start()/stop().

Set `tls_context` (an ssl.SSLContext for the server side) before start() to
speak implicit TLS (pop3s/imaps); a failed handshake ends that connection
and is counted in `tls_failures`."""

import socketserver
import ssl
import threading


class LoopbackServer:
    def _listen(self):
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def setup(self):
                self.tls_ok = True
                ctx = getattr(owner, "tls_context", None)
                if ctx is not None:
                    try:
                        self.request = ctx.wrap_socket(self.request, server_side=True)
                        self.connection = self.request
                    except (ssl.SSLError, OSError):
                        self.tls_ok = False
                        owner.tls_failures = getattr(owner, "tls_failures", 0) + 1
                super().setup()

            def handle(self):
                if not self.tls_ok:
                    return
                try:
                    owner._session(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away: that is what many tests do on purpose

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _session(self, handler):
        raise NotImplementedError

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
