"""An SMTP server for the tests that takes OAuth2 logins: XOAUTH2 and OAUTHBEARER (RFC 7628).

Each token is checked with the loopback token server (tokenserver.py), so a token that expired
or was never issued is refused on the wire, as Microsoft 365 and Gmail refuse it.
"""

from __future__ import annotations

import base64
import binascii
import json

from aiosmtpd.smtp import SMTP, AuthResult
from mailserver import RecordingHandler
from tokenserver import Grants


class OAuthHandler(RecordingHandler):
    """Record mail like the recording handler, and log users in with bearer tokens only."""

    def __init__(self, grants: Grants, *, pipelining: bool = False) -> None:
        super().__init__(pipelining=pipelining)
        self.grants = grants
        self.tokens_seen: list[str] = []  # every bearer token presented, in order

    async def _initial(self, server: SMTP, args: list[str]) -> bytes | None:
        """Return the client's initial response, asking for it when it was not sent."""
        if len(args) > 1:
            try:
                return base64.b64decode(args[1], validate=True)
            except binascii.Error:
                return None
        answer = await server.challenge_auth("")
        return answer if isinstance(answer, bytes) else None

    async def _judge(self, server: SMTP, mechanism: str, user: str, token: str) -> AuthResult:
        self.auth_attempts.append(mechanism)
        self.tokens_seen.append(token)
        if self.grants.check(token, user) is not None:
            self.logins += 1
            return AuthResult(success=True, auth_data=user)
        # As Gmail and Microsoft 365 do: an error challenge, answered with an empty line (or
        # with %x01 for OAUTHBEARER), then the refusal.
        problem = json.dumps({"status": "401", "schemes": "bearer", "scope": "SMTP.Send"})
        await server.challenge_auth(problem)
        return AuthResult(
            success=False, handled=False, message="535 5.7.3 Authentication unsuccessful"
        )

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802 - aiosmtpd finds it by name
        """Check ``user=U^Aauth=Bearer T^A^A``."""
        blob = await self._initial(server, args)
        fields = dict(
            part.split("=", 1)
            for part in (blob or b"").decode("utf-8", "replace").split("\x01")
            if "=" in part
        )
        token = fields.get("auth", "").removeprefix("Bearer ")
        return await self._judge(server, "XOAUTH2", fields.get("user", ""), token)

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802 - aiosmtpd finds it by name
        """Check ``n,a=U,^Aauth=Bearer T^A^A`` (the GS2 header, then key=value pairs)."""
        blob = (await self._initial(server, args) or b"").decode("utf-8", "replace")
        header, _, rest = blob.partition("\x01")
        user = next((f[2:] for f in header.split(",") if f.startswith("a=")), "")
        fields = dict(part.split("=", 1) for part in rest.split("\x01") if "=" in part)
        token = fields.get("auth", "").removeprefix("Bearer ")
        return await self._judge(server, "OAUTHBEARER", user, token)
