"""A local SMTP server that keeps every message it receives in a Maildir, for trying things out."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import mailbox
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from outreach.errors import ConfigError


class MaildirSink:
    """Store each message in a Maildir and report it in one line."""

    def __init__(self, path: Path, /, *, report: Callable[[str], None]) -> None:
        """Store into the Maildir at ``path`` (created when missing); ``report`` gets a line."""
        self.box = mailbox.Maildir(path, create=True)
        self._report = report
        self._parser = email.parser.BytesHeaderParser(policy=email.policy.default)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,  # noqa: ARG002 - aiosmtpd's hook signature
        session: Session,  # noqa: ARG002 - aiosmtpd's hook signature
        envelope: Envelope,
    ) -> str:
        """Store the message and report who it came from and went to."""
        data = envelope.original_content or b""
        key = self.box.add(data)
        headers = self._parser.parsebytes(data)
        subject = str(headers.get("Subject", ""))
        rcpts = ", ".join(envelope.rcpt_tos)
        self._report(f"{envelope.mail_from} -> {rcpts}: {subject!r} ({len(data)} bytes, {key})")
        return "250 Message accepted for delivery"


async def serve(
    path: Path, /, *, host: str, port: int, report: Callable[[str], None], stop: asyncio.Event
) -> None:
    """Serve SMTP on ``host:port`` until ``stop`` is set."""
    handler = MaildirSink(path, report=report)
    loop = asyncio.get_running_loop()

    def factory() -> Any:
        return SMTP(handler, hostname="outreach-sink", ident="outreach sink")

    try:
        server = await loop.create_server(factory, host=host, port=port)
    except OSError as exc:
        msg = f"cannot listen on {host}:{port}: {exc.strerror}"
        raise ConfigError(msg) from exc
    report(f"listening on smtp://{host}:{port}, storing into {path}; Ctrl-C stops")
    async with server:
        await stop.wait()
