"""Run a batch: the ``Batch`` that ties the pieces together for one plan, start to end.

It owns the run's beginning and end in the send log, the ``Summary`` it returns, and the
``Stop`` every piece watches. For a plan (``outreach.batch.plan``) it starts the recorder
(``record``) and, with a copier, the copy queue (``copies``); the producer (``produce``) fills
the drafts' queue, and the workers (``lanes``) empty it over connections from the connector
(``turn``). With nothing to send, no worker runs, so no connection is opened and no login
tried. When all have ended it reads what the recorder counted and the first fatal error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from outreach.batch.control import Stop
from outreach.batch.copies import CopyQueue
from outreach.batch.lanes import Lanes
from outreach.batch.link import LANES
from outreach.batch.plan import DAILY, daily_allowance
from outreach.batch.produce import Producer, check_sizes
from outreach.batch.record import Recorder, Summary
from outreach.batch.turn import Connector
from outreach.errors import OutreachError, SendLogError
from outreach.transport import is_live

if TYPE_CHECKING:
    from outreach.batch.copies import Copier
    from outreach.batch.plan import Plan, SendOptions
    from outreach.batch.record import Event
    from outreach.drafts import Draft, Drafter, DraftPool
    from outreach.sendlog import SendLog
    from outreach.transport import Connection, Transport


class Batch:
    """Deliver one plan's drafts through a transport, recording every step in the log."""

    def __init__(
        self,
        drafter: Drafter,
        log: SendLog,
        transport: Transport,
        /,
        *,
        options: SendOptions,
        on_event: Callable[[Event], None] | None = None,
        pool: DraftPool | None = None,
        copier: Copier | None = None,
    ) -> None:
        """Prepare a batch; nothing is sent until ``run``.

        With a ``pool`` the drafts are rendered in its process; without one, in this one. With
        a ``copier``, each letter sent is saved through it, and those a run left unsaved first.
        """
        self._drafter = drafter
        self._log = log
        self._transport = transport
        self._options = options
        self._stop = Stop()
        self._summary = Summary()
        self._copies = CopyQueue(copier, log) if copier is not None else None
        keep = self._copies.hand_over if self._copies is not None else None
        self._recorder = Recorder(log, self._summary, self._stop, keep=keep)
        self._producer = Producer(drafter, self._stop, pool=pool)
        self._connector = Connector(transport, self._stop, options=options)
        self._lanes = Lanes(
            drafter,
            self._recorder,
            self._connector,
            self._stop,
            options=options,
            on_event=on_event or (lambda _event: None),
        )

    @property
    def in_flight(self) -> int:
        """Count the messages whose answer is awaited or not yet recorded in the send log."""
        return self._recorder.in_flight

    def stop(self) -> None:
        """Take no new recipients; those in flight are settled and recorded."""
        self._summary.interrupted = True
        self._stop.set()

    async def run(self, plan: Plan, /) -> Summary:
        """Send to every recipient in ``plan`` and return what happened."""
        summary = self._summary
        summary.selected = len(plan.todo) + sum(plan.left_out.values())
        summary.left_out = plan.left_out
        workers = max(1, min(self._options.concurrency, len(plan.todo)))
        queue: asyncio.Queue[Draft | None] = asyncio.Queue(maxsize=2 * workers)
        first: Connection | None = None
        if plan.todo and self._drafter.attaches:
            try:
                first = await self._connector.connect()
                if first.max_size is not None:
                    check_sizes(self._drafter, plan, first.max_size)
            except OutreachError as exc:
                if first is not None:
                    await first.close()
                summary.error = exc
                summary.not_sent = len(plan.todo)
                return summary
        self._log.start_run(self._transport.description, live=is_live(self._transport))
        # A resend keeps the Message-ID the recipient may already have seen.
        message_ids = self._log.message_ids(stage=plan.stage)
        self._recorder.start(stage=plan.stage)
        await self._send_all(plan, queue, workers, first, message_ids)
        if plan.left_out[DAILY] and self._options.daily_limit is not None:
            # The run's own sends count now: the rest can go once the oldest are a day old.
            summary.resume_at = daily_allowance(self._log, self._options.daily_limit).more_at
        fatal = self._stop.fatal
        if self._recorder.write_error is not None and fatal is None:
            fatal = SendLogError(str(self._recorder.write_error))
        summary.not_sent = len(plan.todo) - summary.sent - summary.failed - summary.uncertain
        if fatal is not None:
            summary.interrupted = False
            summary.error = fatal
        ending = "complete"
        if summary.error is not None:
            ending = f"stopped: {summary.error}"
        elif summary.interrupted:
            ending = "interrupted"
        self._log.end_run(ending)
        return summary

    async def _send_all(
        self,
        plan: Plan,
        queue: asyncio.Queue[Draft | None],
        workers: int,
        first: Connection | None,
        message_ids: dict[str, str],
    ) -> None:
        """Run the workers over the plan; at the end every settle and copy is recorded."""
        if self._copies is not None:
            self._copies.start(self._recorder.journal)
        producer = asyncio.create_task(
            self._producer.run(plan, queue, ends=workers * LANES, message_ids=message_ids)
        )
        try:
            # With nothing to send no connection is opened, so no login is tried: a run with a
            # copier only saves the copies left unsaved.
            if plan.todo:
                await asyncio.gather(
                    *(
                        self._lanes.work(queue, first if number == 0 else None)
                        for number in range(workers)
                    )
                )
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
            if self._copies is not None:
                await self._copies.finish(abandon=self._summary.interrupted)
            await self._recorder.close()
        if self._copies is not None:
            self._summary.copies = self._copies.count()
