"""Contacts to write no more to ('outreach stop'): no follow-up goes to them.

Owns the table ``stops``. Relies on the core for the connection, its transactions and the
clock, and reads the sends store's ``recipients`` to refuse a contact the log does not know.
"""

from __future__ import annotations

from collections.abc import Iterable

from outreach.errors import SendLogError
from outreach.sendlog._core import Core
from outreach.sendlog._records import Stop

COMPLAINT = "complaint: marked the letter as spam"  # the reason 'track' records


class Stops:
    """Record the contacts to write no more to, and read them back."""

    def __init__(self, core: Core, /) -> None:
        """Keep the stops of the log opened by ``core``."""
        self._core = core

    def stop(self, ids: Iterable[str], /, *, reason: str) -> list[str]:
        """Stop the follow-ups of each contact of ``ids``; a stopped one takes the new reason.

        Ids the log does not know are refused, all named, and nothing is recorded.
        """
        wanted = list(dict.fromkeys(ids))
        asked = set(wanted)  # each recipient is looked up in it: a set, not the list
        stamp = self._core.now()
        with self._core.transaction():
            known = {
                str(row[0])
                for row in self._core.db.execute("SELECT contact_id FROM recipients")
                if row[0] in asked
            }
            unknown = [contact_id for contact_id in wanted if contact_id not in known]
            if unknown:
                have = "is" if len(unknown) == 1 else "are"
                msg = (
                    f"{self._core.path}: {', '.join(unknown)} {have} not in the send log; "
                    "give the ids of contacts a letter was sent to (see 'outreach log'). "
                    "Nothing was stopped."
                )
                raise SendLogError(msg)
            self._core.db.executemany(
                "INSERT INTO stops (contact_id, reason, at) VALUES (?, ?, ?) "
                "ON CONFLICT (contact_id) DO UPDATE SET reason = excluded.reason, at = excluded.at",
                ((contact_id, reason, stamp) for contact_id in wanted),
            )
        return wanted

    def unstop(self, ids: Iterable[str], /) -> list[str]:
        """Take back the stops of ``ids``; ids not stopped are refused, all named, none undone."""
        wanted = list(dict.fromkeys(ids))
        with self._core.transaction():
            rows = self._core.db.execute("SELECT contact_id, reason FROM stops")
            stopped = {str(contact_id): str(reason) for contact_id, reason in rows}
            unknown = [contact_id for contact_id in wanted if contact_id not in stopped]
            if unknown:
                have = "was" if len(unknown) == 1 else "were"
                msg = (
                    f"{self._core.path}: {', '.join(unknown)} {have} not stopped; give the ids "
                    "'outreach plan' shows as stopped. No stop was taken back."
                )
                raise SendLogError(msg)
            # A stop 'track' recorded for a complaint stays: they asked for no more mail.
            spam = [contact_id for contact_id in wanted if stopped[contact_id] == COMPLAINT]
            if spam:
                msg = (
                    f"{self._core.path}: {', '.join(spam)} marked a letter as spam ({COMPLAINT}): "
                    "that stop is not taken back. No stop was taken back."
                )
                raise SendLogError(msg)
            self._core.db.executemany(
                "DELETE FROM stops WHERE contact_id = ?", ((contact_id,) for contact_id in wanted)
            )
        return wanted

    def stops(self) -> dict[str, Stop]:
        """Return every stopped contact's stop, by contact id."""
        rows = self._core.db.execute("SELECT contact_id, reason, at FROM stops ORDER BY at")
        return {str(row[0]): Stop(str(row[0]), str(row[1]), str(row[2])) for row in rows}
