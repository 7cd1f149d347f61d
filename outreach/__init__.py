"""Send a personalized letter to every contact on a list, once each, with a send log.

The names below are the Python API (``outreach.api``); they are imported on first use, so that
the command line, which needs few of them, starts quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from outreach.errors import (
    ConfigError,
    InputError,
    LogLockedError,
    OutreachError,
    Problem,
    SendLogError,
    TransportError,
)

if TYPE_CHECKING:
    from outreach.api import (
        CAMPAIGN_FILE,
        DAILY,
        LIMITED,
        Attachment,
        Attempt,
        Campaign,
        CheckReport,
        Contact,
        Correction,
        Draft,
        Event,
        MaildirTransport,
        Plan,
        PreparedSend,
        Preview,
        Rate,
        Recipient,
        SendLog,
        SendOptions,
        SentCopy,
        SinkLogin,
        SmtpSettings,
        SmtpTransport,
        Status,
        Summary,
        TrackEvent,
        Transport,
        check,
        dry_run,
        load_campaign,
        note_attachments,
        open_log,
        parse_rate,
        prepare_send,
        preview,
        send,
        send_test,
        serve_sink,
        smtp_settings,
    )

__version__ = "0.1.0"

_API = frozenset(
    {
        "CAMPAIGN_FILE",
        "DAILY",
        "LIMITED",
        "Attachment",
        "Attempt",
        "Campaign",
        "CheckReport",
        "Contact",
        "Correction",
        "Draft",
        "Event",
        "MaildirTransport",
        "Plan",
        "PreparedSend",
        "Preview",
        "Rate",
        "Recipient",
        "SendLog",
        "SendOptions",
        "SentCopy",
        "SinkLogin",
        "SmtpSettings",
        "SmtpTransport",
        "Status",
        "Summary",
        "TrackEvent",
        "Transport",
        "check",
        "dry_run",
        "load_campaign",
        "note_attachments",
        "open_log",
        "parse_rate",
        "prepare_send",
        "preview",
        "send",
        "send_test",
        "serve_sink",
        "smtp_settings",
    }
)

__all__ = [
    "CAMPAIGN_FILE",
    "DAILY",
    "LIMITED",
    "Attachment",
    "Attempt",
    "Campaign",
    "CheckReport",
    "ConfigError",
    "Contact",
    "Correction",
    "Draft",
    "Event",
    "InputError",
    "LogLockedError",
    "MaildirTransport",
    "OutreachError",
    "Plan",
    "PreparedSend",
    "Preview",
    "Problem",
    "Rate",
    "Recipient",
    "SendLog",
    "SendLogError",
    "SendOptions",
    "SentCopy",
    "SinkLogin",
    "SmtpSettings",
    "SmtpTransport",
    "Status",
    "Summary",
    "TrackEvent",
    "Transport",
    "TransportError",
    "__version__",
    "check",
    "dry_run",
    "load_campaign",
    "note_attachments",
    "open_log",
    "parse_rate",
    "prepare_send",
    "preview",
    "send",
    "send_test",
    "serve_sink",
    "smtp_settings",
]


def __getattr__(name: str) -> Any:
    """Import the API when one of its names is first asked for."""
    if name in _API:
        from outreach import api  # noqa: PLC0415 - on first use, by design

        return getattr(api, name)
    msg = f"module 'outreach' has no attribute {name!r}"
    raise AttributeError(msg)
