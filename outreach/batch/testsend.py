"""Send test copies: each contact's letter to one address, as a test, outside any batch.

No recipient is claimed or settled: the send log notes each test send in a table of its own.
It shares the transport and the drafter with the batch, and nothing else.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from outreach.transport import Envelope, Handover, Outcome

if TYPE_CHECKING:
    from outreach.drafts import Drafter
    from outreach.model import Contact
    from outreach.sendlog import SendLog
    from outreach.transport import Transport


@dataclass(frozen=True, slots=True)
class SentCopy:
    """Say how one test send went: whose letter, to which address, and the server's reply."""

    contact: Contact
    address: str
    message_id: str
    handover: Handover


async def send_test_copies(
    drafter: Drafter,
    log: SendLog,
    transport: Transport,
    contacts: list[Contact],
    /,
    *,
    address: str,
) -> list[SentCopy]:
    """Send each contact's letter to ``address`` alone, as a test; touch no recipient's status.

    Each message is the contact's, apart from To and a ``[TEST]`` subject; the envelope's only
    recipient is ``address``. The log notes each test send as such, beside the recipients.
    """
    sent: list[SentCopy] = []
    connection = await transport.connect()
    try:
        for contact in contacts:
            draft = drafter.test_draft(contact, address=address)
            envelope = Envelope(drafter.campaign.sender.address, (address,), draft.data)
            limit = connection.max_size
            if limit is not None and len(draft.data) > limit:
                text = f"not sent: {len(draft.data)} bytes, over the server's SIZE of {limit}"
                handover = Handover(Outcome.PERMANENT, None, text)
            else:
                nothing_to_record = asyncio.get_running_loop().create_future()
                nothing_to_record.set_result(None)
                handover = await (await connection.send(envelope, nothing_to_record))
            log.note_test_send(
                contact.id,
                address=address,
                message_id=draft.message_id,
                content_hash=draft.content_hash,
                outcome=str(handover.outcome),
                code=handover.code,
                text=handover.text,
            )
            sent.append(SentCopy(contact, address, draft.message_id, handover))
            if handover.reconnect:
                await connection.close()
                connection = await transport.connect()
    finally:
        await connection.close()
    return sent
