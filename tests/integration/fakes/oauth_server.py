"""A small OAuth2 authorization server on 127.0.0.1 for the tests, the one
part of an OAuth2 login no real server in the tests provides. Dovecot's
`passdb { driver = oauth2 }` asks its introspection endpoint (RFC 7662)
whether an access token is good:

    POST /introspect  token=T  ->  {"active": true, "username": "alice"}
                                   {"active": false} for unknown or revoked T

The test issues and revokes tokens directly (issue(), revoke()) and reads
how often each was introspected (introspected). Only the introspection
endpoint is here: pullmail's built-in token, device and authorization
flows (and so their endpoints) are not implemented yet."""

import json
import secrets
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OAuthServer:
    def __init__(self):
        self.tokens = {}        # access token -> user name
        self.introspected = []  # tokens asked about, in order
        self._lock = threading.Lock()
        self._httpd = None

    def issue(self, user, size=64):
        """A fresh access token for `user` of about `size` characters."""
        token = "at-" + secrets.token_urlsafe(max(8, size * 3 // 4))[:size - 3]
        with self._lock:
            self.tokens[token] = user
        return token

    def revoke(self, token):
        with self._lock:
            self.tokens.pop(token, None)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self._httpd.server_address[1]

    def start(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = urllib.parse.parse_qs(body)
                if self.path != "/introspect":
                    return self._reply(404, {"error": "not_found"})
                token = (form.get("token") or [""])[0]
                with owner._lock:
                    owner.introspected.append(token)
                    user = owner.tokens.get(token)
                self._reply(200, {"active": True, "username": user} if user else {"active": False})

            def _reply(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
