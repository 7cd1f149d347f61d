"""Produce a batch's drafts: render the plan's letters, in order, into the lanes' queue.

The producer owns the rendering: here, or for a large batch in the ``DraftPool``'s process,
with the first few rendered here while that process starts. It hands the lanes
(``outreach.batch.lanes``) one ``Draft`` at a time through a short queue, so memory does not
grow with the list, then one ``None`` per lane to say the end. A draft that cannot be rendered
stops the batch through the ``Stop`` with the error, so that no lane waits for ever.
``check_sizes`` refuses a batch whose letters the server would refuse as too large.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING

from outreach.attachments import message_size
from outreach.errors import ConfigError, OutreachError

if TYPE_CHECKING:
    from outreach.batch.control import Stop
    from outreach.batch.plan import Plan
    from outreach.drafts import Draft, Drafter, DraftPool
    from outreach.model import Contact


class Producer:
    """Render a plan's drafts into a queue, in the plan's order, until the end or a stop."""

    def __init__(self, drafter: Drafter, stop: Stop, /, *, pool: DraftPool | None = None) -> None:
        """Render with ``drafter``; with a ``pool``, most drafts in its process."""
        self._drafter = drafter
        self._stop = stop
        self._pool = pool

    async def run(
        self,
        plan: Plan,
        queue: asyncio.Queue[Draft | None],
        /,
        *,
        ends: int,
        message_ids: dict[str, str],
    ) -> None:
        """Put each draft of ``plan`` in ``queue``, then ``ends`` Nones: one for each lane.

        ``message_ids`` are those of earlier attempts: a resend keeps its Message-ID.
        """
        try:
            if self._pool is not None:
                await self._run_in_pool(self._pool, plan, queue, message_ids)
            else:
                for contact in plan.todo:
                    if self._stop.is_set():
                        break
                    draft = self._drafter.draft(contact, message_id=message_ids.get(contact.id))
                    await queue.put(draft)
        except OutreachError as exc:
            # Checked before the batch began, so unexpected: stop as for a fatal error.
            self._stop.fail(exc)
        except Exception as exc:  # noqa: BLE001 - e.g. the rendering process died: stop, do not hang
            self._stop.fail(OutreachError(f"rendering the drafts failed: {exc!r}"))
        for _ in range(ends):
            await queue.put(None)

    async def _run_in_pool(
        self,
        pool: DraftPool,
        plan: Plan,
        queue: asyncio.Queue[Draft | None],
        message_ids: dict[str, str],
    ) -> None:
        files = self._drafter.attachments.loaded()
        # The first drafts are rendered here while the rendering process starts up (a Python
        # and its imports: a good part of a second, which would hold the first messages back);
        # it renders the rest, beginning at once. At most an eighth of the batch, so that a
        # small batch sent apart is still rendered apart.
        head = min(pool.CHUNK, len(plan.todo) // 8)
        attachments = self._drafter.attachments

        def size(contact: Contact) -> int:  # what makes a letter large: its files
            return message_size(0, attachments.for_contact(contact))

        chunks = pool.drafts(plan.todo[head:], message_ids, files=files, size=size)
        first = next(chunks, None)  # the first chunks go to the rendering process now
        for contact in plan.todo[:head]:
            if self._stop.is_set():
                return
            await queue.put(self._drafter.draft(contact, message_id=message_ids.get(contact.id)))
        for chunk in itertools.chain([first] if first is not None else [], chunks):
            for draft in await asyncio.wrap_future(chunk):
                if self._stop.is_set():
                    return
                await queue.put(draft)
        pool.finish()


def check_sizes(drafter: Drafter, plan: Plan, limit: int, /) -> None:
    """Refuse the batch if any message would be larger than the server takes.

    Attachments make the size: the first letter is built whole (its PDF too), and each
    contact's size is that letter's with its own files in place of the first one's.
    """
    files = drafter.attachments
    sample = drafter.draft(plan.todo[0])
    base = len(sample.data) - message_size(0, files.for_contact(plan.todo[0]))
    too_big = [
        (contact, size)
        for contact in plan.todo
        if (size := message_size(base, files.for_contact(contact))) > limit
    ]
    if too_big:
        shown = ", ".join(f"{c.id} ({size / 2**20:.1f} MiB)" for c, size in too_big[:5])
        more = f" and {len(too_big) - 5} more" if len(too_big) > 5 else ""  # noqa: PLR2004
        msg = (
            f"{len(too_big)} messages are larger than the server accepts ({limit} bytes, "
            f"{limit / 2**20:.1f} MiB, its SIZE): {shown}{more}. Nothing was sent. Make "
            "the attachments smaller or fewer, or share them by a link."
        )
        raise ConfigError(msg)
