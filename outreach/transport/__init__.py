"""Deliver messages: over SMTP with aiosmtplib, or into a local Maildir."""

from outreach.model import is_loopback
from outreach.transport.base import (
    SMTP_PORT,
    SMTPS_PORT,
    Connection,
    Envelope,
    Handover,
    LoginTurn,
    Outcome,
    Transport,
    is_live,
    is_throttling,
)
from outreach.transport.maildir import MaildirTransport
from outreach.transport.smtp import (
    ServerCertificate,
    SmtpSettings,
    SmtpTransport,
    parse_smtp_url,
    server_certificate,
)

__all__ = [
    "SMTPS_PORT",
    "SMTP_PORT",
    "Connection",
    "Envelope",
    "Handover",
    "LoginTurn",
    "MaildirTransport",
    "Outcome",
    "ServerCertificate",
    "SmtpSettings",
    "SmtpTransport",
    "Transport",
    "is_live",
    "is_loopback",
    "is_throttling",
    "parse_smtp_url",
    "server_certificate",
]
