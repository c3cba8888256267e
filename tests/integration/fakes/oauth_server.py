"""A small OAuth2 authorization server on 127.0.0.1 for the tests, the one
part of an OAuth2 login no real server in the tests provides. Dovecot's
`passdb { driver = oauth2 }` asks its introspection endpoint (RFC 7662)
whether an access token is good:

    POST /introspect  token=T  ->  {"active": true, "username": "alice"}
                                   {"active": false} for unknown or revoked T

The test issues and revokes tokens directly (issue(), revoke()) and reads
how often each was introspected (introspected).

For pullmail's built-in client (oauth2 = { provider = "custom", ... }) it is
also the authorization server:

    POST /device     client_id, scope -> device_code, user_code, verification_uri, interval
    GET  /authorize  response_type=code, PKCE S256, state, redirect_uri (loopback):
                     302 to redirect_uri?code=...&state=... for `next_user`
    POST /token      grant_type = refresh_token | device_code | authorization_code;
                     answers authorization_pending until approve(user_code, user),
                     slow_down when polled faster than the interval, invalid_grant
                     for revoked, unknown or used grants and a wrong code_verifier

Access tokens live `expires_in` seconds (Dovecot then gets "active": false);
with `rotate` each refresh answers a new refresh token and retires the old.
Every token request's form is kept in `token_requests` (grant_type, client)."""

import base64
import hashlib
import json
import secrets
import time
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OAuthServer:
    def __init__(self):
        self.tokens = {}        # access token -> user name
        self.expiry = {}        # access token -> time.time() it stops being active
        self.introspected = []  # tokens asked about, in order
        self.refresh = {}       # refresh token -> user name (live ones)
        self.devices = {}       # device_code -> {"user_code", "user", "last_poll"}
        self.codes = {}         # authorization code -> (user, challenge, redirect_uri)
        self.token_requests = []
        self.client_id = "pullmail-test"
        self.client_secret = None   # required on /token when set
        self.expires_in = 3600
        self.rotate = False
        self.interval = 1
        self.next_user = None       # the user /authorize signs in
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
            self.refresh.pop(token, None)

    def grant(self, user):
        """A fresh refresh token for `user`."""
        rt = "rt-" + secrets.token_urlsafe(24)
        with self._lock:
            self.refresh[rt] = user
        return rt

    def approve(self, user_code, user):
        """The user entered `user_code` and agreed (device flow)."""
        with self._lock:
            for d in self.devices.values():
                if d["user_code"] == user_code:
                    d["user"] = user
                    return True
        return False

    def _issue_pair(self, user, old_refresh=None):
        access = self.issue(user)
        with self._lock:
            self.expiry[access] = time.time() + self.expires_in
            if old_refresh is None or self.rotate:
                self.refresh.pop(old_refresh, None)
                refresh = "rt-" + secrets.token_urlsafe(24)
                self.refresh[refresh] = user
            else:
                refresh = None
        reply = {"access_token": access, "token_type": "Bearer", "expires_in": self.expires_in}
        if refresh:
            reply["refresh_token"] = refresh
        return 200, reply

    def _token(self, form):
        g = lambda k: (form.get(k) or [""])[0]
        with self._lock:
            self.token_requests.append({k: g(k) for k in ("grant_type", "client_id", "client_secret")})
        if g("client_id") != self.client_id or (self.client_secret and g("client_secret") != self.client_secret):
            return 401, {"error": "invalid_client"}
        grant = g("grant_type")
        if grant == "refresh_token":
            with self._lock:
                user = self.refresh.get(g("refresh_token"))
            return self._issue_pair(user, g("refresh_token")) if user else (400, {"error": "invalid_grant"})
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            with self._lock:
                d = self.devices.get(g("device_code"))
                if not d:
                    return 400, {"error": "invalid_grant"}
                now = time.time()
                early = d["last_poll"] and now - d["last_poll"] < self.interval - 0.2
                d["last_poll"] = now
                if early:
                    d["slow_downs"] = d.get("slow_downs", 0) + 1
                    return 400, {"error": "slow_down"}
                if not d["user"]:
                    return 400, {"error": "authorization_pending"}
                del self.devices[g("device_code")]
            return self._issue_pair(d["user"])
        if grant == "authorization_code":
            with self._lock:
                c = self.codes.pop(g("code"), None)
            if not c:
                return 400, {"error": "invalid_grant"}
            user, challenge, redirect = c
            digest = base64.urlsafe_b64encode(hashlib.sha256(g("code_verifier").encode()).digest()).rstrip(b"=")
            if digest.decode() != challenge or g("redirect_uri") != redirect:
                return 400, {"error": "invalid_grant"}
            return self._issue_pair(user)
        return 400, {"error": "unsupported_grant_type"}

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self._httpd.server_address[1]

    def start(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                q = urllib.parse.parse_qs(url.query)
                g = lambda k: (q.get(k) or [""])[0]
                if url.path != "/authorize":
                    return self._reply(404, {"error": "not_found"})
                redirect = g("redirect_uri")
                if (g("response_type") != "code" or g("client_id") != owner.client_id
                        or g("code_challenge_method") != "S256" or not g("code_challenge")
                        or not redirect.startswith("http://127.0.0.1:") or not owner.next_user):
                    return self._reply(400, {"error": "invalid_request"})
                code = "ac-" + secrets.token_urlsafe(16)
                with owner._lock:
                    owner.codes[code] = (owner.next_user, g("code_challenge"), redirect)
                self.send_response(302)
                self.send_header("Location", redirect + "?" + urllib.parse.urlencode(
                    {"code": code, "state": g("state")}))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = urllib.parse.parse_qs(body)
                if self.path == "/token":
                    return self._reply(*owner._token(form))
                if self.path == "/device":
                    if (form.get("client_id") or [""])[0] != owner.client_id:
                        return self._reply(401, {"error": "invalid_client"})
                    dc = "dc-" + secrets.token_urlsafe(16)
                    uc = "%04d-%04d" % (secrets.randbelow(10000), secrets.randbelow(10000))
                    with owner._lock:
                        owner.devices[dc] = {"user_code": uc, "user": None, "last_poll": 0}
                    return self._reply(200, {"device_code": dc, "user_code": uc, "interval": owner.interval,
                                             "verification_uri": owner.url + "/device-login", "expires_in": 600})
                if self.path != "/introspect":
                    return self._reply(404, {"error": "not_found"})
                token = (form.get("token") or [""])[0]
                with owner._lock:
                    owner.introspected.append(token)
                    user = owner.tokens.get(token)
                    if user and owner.expiry.get(token, float("inf")) < time.time():
                        user = None
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
