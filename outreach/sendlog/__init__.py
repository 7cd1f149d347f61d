"""The send log: a SQLite file that says who got what, when, and what the server answered.

A recipient is claimed (status ``sending``, committed to disk) before its message is handed to
the server, and marked ``sent`` only after the server's 250. A run that dies leaves at most its
in-flight recipients in ``sending``; the next run turns them into ``uncertain``, which is never
resent unless asked. One run at a time holds the log's lock file.

The package: ``_core`` opens the file (lock, connection with WAL and ``synchronous = FULL``,
migrations from ``_schema``, transactions, clock); one store per concern owns its tables
(``_sends``: runs, claims and settles of every letter; ``_copies``: Sent copies; ``_files``:
attachment hashes and test sends; ``_tracking``: events and folder cursors; ``_stops``: contacts
to write no more to); ``_log.SendLog`` is the one object
callers use, and ``_journal.Journal`` writes through it from a thread of its own. Only this
package imports sqlite3.
"""

from outreach.model import Status
from outreach.sendlog._core import Durability
from outreach.sendlog._journal import Journal
from outreach.sendlog._log import SendLog
from outreach.sendlog._records import (
    Attempt,
    Correction,
    KeptCopy,
    Letter,
    NotedTestSend,
    Recipient,
    Run,
    Stop,
    TrackEvent,
)
from outreach.sendlog._schema import MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Attempt",
    "Correction",
    "Durability",
    "Journal",
    "KeptCopy",
    "Letter",
    "NotedTestSend",
    "Recipient",
    "Run",
    "SendLog",
    "Status",
    "Stop",
    "TrackEvent",
]
