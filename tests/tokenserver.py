"""A real OAuth2 authorization server for the tests: HTTPS on loopback, tokens it remembers.

It speaks what MSAL and google-auth send, so both can be pointed at it (MSAL through the
authority, google-auth through the client file's ``token_uri`` and ``auth_uri``):

- ``GET /{tenant}/v2.0/.well-known/openid-configuration``: the endpoints, for MSAL;
- ``POST /{tenant}/oauth2/v2.0/devicecode``: starts a device-code sign-in (RFC 8628);
- ``POST /token`` and ``/{tenant}/oauth2/v2.0/token``: the grants ``device_code`` (pending
  until approved), ``authorization_code`` and ``refresh_token`` (RFC 6749 6);
- ``GET /auth``: the consent page of the installed-app flow, which approves at once and
  redirects to the application's loopback address with a code;
- ``POST /introspect``: says whether an access token is active, and whose (RFC 7662).

Access tokens live ``lifetime`` seconds; a revoked refresh token gets ``invalid_grant``. The
test SMTP server checks the tokens it is given here, so a stale token is refused on the wire.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

TENANT = "contoso-tenant"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
GOOGLE_CLIENT_ID = "outreach-test.apps.example"
GOOGLE_CLIENT_SECRET = "client-s3ntinel-SECRET"  # a sentinel: it must never show anywhere
DEVICE_CODE = "device-code-for-the-test"
USER_CODE = "ABCD-EFGH"
# Tokens begin with these, so that a test can look for any of them in what was written.
ACCESS_PREFIX = "at-s3ntinel-"
REFRESH_PREFIX = "rt-s3ntinel-"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class Grants:
    """What the server has handed out and what it has seen."""

    lifetime: float = 3600.0
    access: dict[str, tuple[str, float]] = field(default_factory=dict)  # token: (user, expiry)
    refresh: dict[str, str] = field(default_factory=dict)  # token: user
    codes: dict[str, str] = field(default_factory=dict)  # authorization code: user
    requests: Counter[str] = field(default_factory=Counter)  # grant type: how many
    approved: threading.Event = field(default_factory=threading.Event)
    device_user: str = "sender@outreach.example"
    google_user: str = "sender@outreach.example"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, user: str) -> tuple[str, str]:
        """Hand out a new access token and a new refresh token for ``user``."""
        access = ACCESS_PREFIX + secrets.token_urlsafe(16)
        refresh = REFRESH_PREFIX + secrets.token_urlsafe(16)
        with self.lock:
            self.access[access] = (user, time.time() + self.lifetime)
            self.refresh[refresh] = user
        return access, refresh

    def check(self, token: str, user: str | None = None) -> str | None:
        """Return the user of an access token that is known and unexpired, else None."""
        with self.lock:
            entry = self.access.get(token)
        if entry is None or entry[1] <= time.time():
            return None
        if user is not None and entry[0].lower() != user.lower():
            return None
        return entry[0]

    def revoke_refresh_tokens(self) -> None:
        """Forget every refresh token, as when a user revokes the app's access."""
        with self.lock:
            self.refresh.clear()


class _Handler(BaseHTTPRequestHandler):
    server: TokenServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        """Stay quiet: the tests read no access log."""

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        fields = parse_qs(self.rfile.read(length).decode())
        return {key: values[0] for key, values in fields.items()}

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        base = self.server.base
        if parts.path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
            self._json(
                200,
                {
                    "issuer": f"{base}/{TENANT}/v2.0",
                    "authorization_endpoint": f"{base}/{TENANT}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/{TENANT}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{base}/{TENANT}/oauth2/v2.0/devicecode",
                },
            )
            return
        if parts.path == "/auth":
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            code = "code-" + secrets.token_urlsafe(8)
            with self.server.grants.lock:
                self.server.grants.codes[code] = self.server.grants.google_user
            target = (
                query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
            )
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:  # noqa: C901, PLR0912 - a branch per endpoint
        path = urlsplit(self.path).path
        form = self._form()
        grants = self.server.grants
        if path == f"/{TENANT}/oauth2/v2.0/devicecode":
            self._json(
                200,
                {
                    "device_code": DEVICE_CODE,
                    "user_code": USER_CODE,
                    "verification_uri": f"{self.server.base}/devicelogin",
                    "expires_in": 900,
                    "interval": 1,
                    "message": f"To sign in, open {self.server.base}/devicelogin and enter the "
                    f"code {USER_CODE}.",
                },
            )
            return
        if path == "/introspect":
            with grants.lock:
                grants.requests["introspect"] += 1
            user = grants.check(form.get("token", ""))
            self._json(200, {"active": True, "username": user} if user else {"active": False})
            return
        if path not in {"/token", f"/{TENANT}/oauth2/v2.0/token"}:
            self._json(404, {"error": "not_found"})
            return
        grant = form.get("grant_type", "")
        with grants.lock:
            grants.requests[grant] += 1
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            if form.get("device_code") != DEVICE_CODE:
                self._json(400, {"error": "invalid_grant", "error_description": "unknown code"})
            elif not grants.approved.is_set():
                self._json(400, {"error": "authorization_pending", "error_description": "wait"})
            else:
                self._tokens(grants.device_user, microsoft=True, client_id=form["client_id"])
            return
        if grant == "authorization_code":
            with grants.lock:
                user = grants.codes.pop(form.get("code", ""), None)
            if user is None:
                self._json(400, {"error": "invalid_grant", "error_description": "bad code"})
            else:
                self._tokens(user, microsoft=False, client_id=form.get("client_id", ""))
            return
        if grant == "refresh_token":
            with grants.lock:
                user = grants.refresh.pop(form.get("refresh_token", ""), None)
            if user is None:
                self._json(
                    400,
                    {
                        "error": "invalid_grant",
                        "error_description": "The refresh token has expired or was revoked.",
                    },
                )
            else:
                microsoft = path != "/token"
                self._tokens(user, microsoft=microsoft, client_id=form.get("client_id", ""))
            return
        self._json(400, {"error": "unsupported_grant_type"})

    def _tokens(self, user: str, *, microsoft: bool, client_id: str) -> None:
        access, refresh = self.server.grants.issue(user)
        body: dict[str, Any] = {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": int(self.server.grants.lifetime),
        }
        if microsoft:
            now = int(time.time())
            claims = {
                "iss": f"{self.server.base}/{TENANT}/v2.0",
                "sub": "subject-1",
                "aud": client_id,
                "iat": now,
                "exp": now + 3600,
                "oid": "object-1",
                "tid": TENANT,
                "preferred_username": user,
                "name": "Test Sender",
            }
            header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
            body["id_token"] = f"{header}.{_b64url(json.dumps(claims).encode())}."
            body["client_info"] = _b64url(json.dumps({"uid": "object-1", "utid": TENANT}).encode())
            body["scope"] = (
                "https://outlook.office.com/SMTP.Send "
                "https://outlook.office.com/IMAP.AccessAsUser.All openid profile offline_access"
            )
        else:
            body["scope"] = "https://mail.google.com/"
        self._json(200, body)


class TokenServer(ThreadingHTTPServer):
    """The authorization server, serving HTTPS from a thread of its own."""

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext) -> None:
        """Listen on a free loopback port with ``tls``."""
        super().__init__(("127.0.0.1", 0), _Handler)
        self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.grants = Grants()
        self.base = f"https://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def authority(self) -> str:
        """Return the MSAL authority of the test tenant."""
        return f"{self.base}/{TENANT}"

    def google_client_file(self) -> dict[str, Any]:
        """Return the content of an installed app's OAuth client file pointing here."""
        return {
            "installed": {
                "client_id": GOOGLE_CLIENT_ID,
                "client_secret": GOOGLE_CLIENT_SECRET,
                "auth_uri": f"{self.base}/auth",
                "token_uri": f"{self.base}/token",
                "redirect_uris": ["http://localhost"],
            }
        }

    def start(self) -> TokenServer:
        """Serve in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.shutdown()
        self.server_close()
