"""Open a batch's connections, their logins one at a time until one has succeeded.

The connector owns the login turn and the retries of a server that asks to slow down on
connecting. The lanes (``outreach.batch.lanes``) ask it for each connection they need, and
tell it (``lost``) when one was lost, so that the next login goes alone again. A login that
fails is kept, and every later ``connect`` raises it without trying: one wrong password costs
one failed login, not one per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from outreach.batch.control import backoff
from outreach.errors import OutreachError, ThrottledError

if TYPE_CHECKING:
    from outreach.batch.control import Stop
    from outreach.batch.plan import SendOptions
    from outreach.transport import Connection, Transport


class Connector:
    """Open connections through a transport for one batch, logging in by turns."""

    def __init__(self, transport: Transport, stop: Stop, /, *, options: SendOptions) -> None:
        """Connect through ``transport``; ``options`` say how often to try when throttled."""
        self._transport = transport
        self._stop = stop
        self._options = options
        self._first_login = asyncio.Lock()
        self._takes_turn = _takes_login_turn(transport)
        self._logged_in = False
        self._login_error: OutreachError | None = None

    async def connect(self) -> Connection:
        """Open a connection; its login waits for its turn (see ``_login_turn``)."""
        if self._login_error is not None:
            raise self._login_error
        return await self._connect_patiently()

    def lost(self) -> None:
        """Let the next login go alone, as after a connection lost (see ``_login_turn``)."""
        self._logged_in = False

    @contextlib.asynccontextmanager
    async def _login_turn(self) -> AsyncIterator[None]:
        """Let one login at a time through until one has succeeded, then all at once.

        A wrong password then costs one failed login, not one per connection: servers ban an
        address after a few (fail2ban's default is five). After a connection is lost the next
        login goes alone again, as the password may have been changed or the account locked.
        Only the login waits: the connections are opened, secured and greeted meanwhile. A
        login that fails in any way (refused, timed out, hung up on) is the last one tried.
        """
        if self._login_error is not None:
            raise self._login_error
        alone = False
        if not self._logged_in:
            await self._first_login.acquire()
            alone = not self._logged_in  # else the login before succeeded: all go at once now
            if not alone:
                self._first_login.release()
        try:
            if self._login_error is not None:
                raise self._login_error
            yield
            if alone:
                self._logged_in = True
        except OutreachError as exc:
            if self._login_error is None:
                self._login_error = exc
            raise
        finally:
            if alone:
                self._first_login.release()

    async def _connect_patiently(self) -> Connection:
        """Connect; when the server asks to slow down, wait with backoff and try again."""
        tries = 0
        while True:
            try:
                if self._takes_turn:
                    return await self._transport.connect(login_turn=self._login_turn)
                return await self._transport.connect()
            except ThrottledError as exc:
                tries += 1
                said = f"{tries} attempt" if tries == 1 else f"{tries} attempts"
                msg = f"{exc} ({said}); nothing more was sent. Run again later."
                if tries >= self._options.max_attempts or self._stop.is_set():
                    raise ThrottledError(msg) from None
            await self._stop.sleep(backoff(self._options.backoff, tries))
            if self._stop.is_set():  # no new connection once stopped
                raise ThrottledError(msg)


def _takes_login_turn(transport: Transport) -> bool:
    """Tell whether a transport's ``connect`` takes ``login_turn``: one written before may not."""
    try:
        parameters = inspect.signature(transport.connect).parameters.values()
    except (TypeError, ValueError):  # no signature to read: assume the current protocol
        return True
    return any(p.name == "login_turn" or p.kind is p.VAR_KEYWORD for p in parameters)
