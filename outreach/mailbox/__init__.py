r"""Read the sender's mailbox over IMAP without changing it: what came back after the sending.

Only this package imports the IMAP client library, IMAPClient: it parses FETCH responses
(literals, BODYSTRUCTURE, the select response) into Python values, handles STARTTLS with our
own TLS context, and logs in with a password or with an OAuth2 access token (``AUTHENTICATE
OAUTHBEARER`` where the server offers it, else ``XOAUTH2``). It is blocking, which suits a reader
that goes through folders one after another.

The mailbox is never changed: folders are opened with ``EXAMINE`` (read-only), messages are read
with ``BODY.PEEK`` (which does not set ``\Seen``), and no flag is stored, nothing is copied,
moved or expunged. Reading is incremental: a ``Cursor`` (UIDVALIDITY and the last UID read) says
where the previous run stopped; only UIDs above it are fetched. Headers, size and structure are
fetched first for every new message, in batches; whole messages only for those the caller asks
for, in batches bounded in bytes, and never one larger than the size bound.

The one exception is ``SentCopier``, asked for by ``send --save-sent``: it appends copies of the
letters sent to the account's Sent folder, and changes nothing else.

The package: ``_settings`` says where and how to log in (``ImapSettings``, ``Credentials``,
``parse_imap_url``); ``_connection`` connects and logs in; ``_folders`` holds ``Mailbox``, which
reads folders over that connection; ``_copier`` holds ``SentCopier``. Each imports only those
named before it.
"""

from outreach.mailbox._connection import OAUTHBEARER, XOAUTH2
from outreach.mailbox._copier import COPY_BATCH, COPY_BATCH_BYTES, SentCopier, sent_copier
from outreach.mailbox._folders import (
    BODY_BATCH,
    BODY_BATCH_BYTES,
    HEAD_BATCH,
    MAX_MESSAGE_SIZE,
    NAME_SENT,
    SENT,
    Cursor,
    Folder,
    Head,
    Mailbox,
)
from outreach.mailbox._settings import (
    DEFAULT_TIMEOUT,
    IMAP_PORT,
    IMAPS_PORT,
    URL_HINT,
    Auth,
    Credentials,
    ImapSettings,
    parse_imap_url,
)

__all__ = [
    "BODY_BATCH",
    "BODY_BATCH_BYTES",
    "COPY_BATCH",
    "COPY_BATCH_BYTES",
    "DEFAULT_TIMEOUT",
    "HEAD_BATCH",
    "IMAPS_PORT",
    "IMAP_PORT",
    "MAX_MESSAGE_SIZE",
    "NAME_SENT",
    "OAUTHBEARER",
    "SENT",
    "URL_HINT",
    "XOAUTH2",
    "Auth",
    "Credentials",
    "Cursor",
    "Folder",
    "Head",
    "ImapSettings",
    "Mailbox",
    "SentCopier",
    "parse_imap_url",
    "sent_copier",
]
