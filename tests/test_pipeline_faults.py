"""Faults in the middle of a stream of messages: each ends with the status its own replies give.

With PIPELINING a connection carries a message awaiting its reply and the next one, claimed,
whose envelope is out. These tests break the stream at each point between the two and check
what the send log says of each, and what the server got.
"""

from __future__ import annotations

import asyncio
import dataclasses
import mailbox
import sqlite3
from asyncio import Future
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import FAST, PIPELINING, contacts_yaml, write_campaign
from hostile import CLOSE, HANG, SLOW, hostile_server

from outreach import api, drafts
from outreach.batch import Batch, Event, Summary, choose
from outreach.batch.link import CLAIMED, Slots
from outreach.campaign import load_campaign
from outreach.errors import SendLogError, TransportError
from outreach.model import Contact
from outreach.sendlog import Journal, SendLog
from outreach.transport import (
    Connection,
    Envelope,
    Handover,
    LoginTurn,
    MaildirTransport,
    Outcome,
    SmtpSettings,
    SmtpTransport,
)

OFFERED = pytest.mark.parametrize("pipelining", [False, True], ids=["not-offered", "offered"])
Rows = dict[str, tuple[str, int]]


class ClaimFails(SendLog):
    """A send log that cannot write the claim of the second recipient (a full disk)."""

    def claim(self, contact_id: str, /, **letter: Any) -> int:
        """Fail for c00002, as SQLite does when the disk is full."""
        if contact_id == "c00002":
            msg = f"{self.path}: cannot write to the send log: database or disk is full"
            raise SendLogError(msg)
        return super().claim(contact_id, **letter)


async def send(
    folder: Path,
    port: int,
    *,
    count: int = 2,
    timeout: float = 2.0,
    log_class: type[SendLog] = SendLog,
    on_batch: Callable[[Callable[[], Batch]], Callable[[Event], None]] | None = None,
) -> tuple[Summary, Rows]:
    """Send ``count`` letters to the scripted server; return the summary and each row."""
    write_campaign(folder, contacts=contacts_yaml(count))
    campaign = load_campaign(folder / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    settings = SmtpSettings(host="127.0.0.1", port=port, implicit_tls=False, timeout=timeout)
    with log_class(folder / "send.sqlite3", campaign=campaign.name, write=True) as log:
        log.register(contacts)
        plan = choose(contacts, log.statuses(), FAST)
        batches: list[Batch] = []
        on_event = on_batch(lambda: batches[0]) if on_batch is not None else None
        batch = Batch(drafter, log, SmtpTransport(settings), options=FAST, on_event=on_event)
        batches.append(batch)
        summary = await batch.run(plan)
        rows = {r.id: (r.status, r.attempts) for r in log.recipients()}
    return summary, rows


def script(pipelining: bool, **replies: bytes | list[bytes]) -> dict[str, bytes | list[bytes]]:
    """Return the server's replies, offering PIPELINING or not."""
    return {**(PIPELINING if pipelining else {}), **replies}


@OFFERED
async def test_421_to_the_data_while_the_next_envelope_is_out_retries_both(
    tmp_path: Path, pipelining: bool
) -> None:
    """A 421 to the first message's data: it was not taken, so both go again, once each."""
    replies = script(pipelining, END=[SLOW + b"421 4.3.2 shutting down\r\n" + CLOSE])
    with hostile_server(**replies) as server:
        summary, rows = await send(tmp_path / "c", server.port)
    assert rows == {"c00001": ("sent", 2), "c00002": ("sent", 2 if pipelining else 1)}
    assert summary.ok
    assert server.heard.count("END") == 3  # the refused data, then one copy of each


@OFFERED
async def test_no_reply_to_the_data_leaves_it_uncertain_and_the_next_is_retried(
    tmp_path: Path, pipelining: bool
) -> None:
    """Silence after the first message's data: uncertain at the timeout; the second goes once."""
    with hostile_server(**script(pipelining, END=[HANG])) as server:
        summary, rows = await send(tmp_path / "c", server.port)
    assert rows == {"c00001": ("uncertain", 1), "c00002": ("sent", 2 if pipelining else 1)}
    assert (summary.uncertain, summary.sent) == (1, 1)
    assert server.heard.count("END") == 2


@OFFERED
async def test_next_first_recipient_refused_while_the_reply_is_pending_fails_it_alone(
    tmp_path: Path, pipelining: bool
) -> None:
    """The second's only recipient refused (DATA then 503) before the first's 250: each alone."""
    replies = script(
        pipelining,
        RCPT=[b"250 OK\r\n", b"550 5.1.1 no such user\r\n"],
        DATA=[b"354 go ahead\r\n", b"503 5.5.1 no valid recipients\r\n"],
        END=SLOW + b"250 queued\r\n",
    )
    with hostile_server(**replies) as server:
        summary, rows = await send(tmp_path / "c", server.port)
    assert rows == {"c00001": ("sent", 1), "c00002": ("failed", 1)}
    assert (summary.sent, summary.failed, summary.fatal) == (1, 1, None)
    assert server.messages == 1
    assert "RSET" in server.heard


@OFFERED
async def test_421_to_the_next_mail_while_the_reply_is_pending_retries_only_the_next(
    tmp_path: Path, pipelining: bool
) -> None:
    """The first's 250 comes, then a 421 to the second's MAIL: the first sent, the second retried."""
    replies = script(
        pipelining,
        MAIL=[b"250 OK\r\n", b"421 4.7.0 too many messages, slow down\r\n" + CLOSE],
        END=SLOW + b"250 queued\r\n",
    )
    with hostile_server(**replies) as server:
        summary, rows = await send(tmp_path / "c", server.port)
    assert rows == {"c00001": ("sent", 1), "c00002": ("sent", 2)}
    assert summary.ok
    assert server.messages == 2


async def test_data_accepted_after_the_next_mail_refused_is_hung_up_on(tmp_path: Path) -> None:
    """The second MAIL refused, its DATA answered 354 anyway: hung up on, the first still sent."""
    replies = script(
        True,  # noqa: FBT003 - the scripted server offers PIPELINING
        MAIL=[b"250 OK\r\n", b"550 5.7.1 sender refused\r\n"],
        END=SLOW + b"250 queued\r\n",
    )
    with hostile_server(**replies) as server:
        summary, rows = await send(tmp_path / "c", server.port)
    assert rows == {"c00001": ("sent", 1), "c00002": ("failed", 1)}
    assert summary.fatal is None
    assert server.messages == 1


@OFFERED
async def test_stop_while_two_are_in_flight_settles_both_and_claims_no_more(
    tmp_path: Path, pipelining: bool
) -> None:
    """A stop at the first reply: what is in flight ends and is recorded; no one else is claimed."""

    def stop_at_first(batch: Callable[[], Batch]) -> Callable[[Event], None]:
        return lambda _event: batch().stop()

    with hostile_server(**script(pipelining, END=SLOW + b"250 queued\r\n")) as server:
        summary, rows = await send(tmp_path / "c", server.port, count=4, on_batch=stop_at_first)
    # With PIPELINING the second was claimed and its envelope out when the stop came.
    second = ("sent", 1) if pipelining else ("pending", 0)
    assert rows == {
        "c00001": ("sent", 1),
        "c00002": second,
        "c00003": ("pending", 0),
        "c00004": ("pending", 0),
    }
    assert summary.interrupted
    assert server.messages == summary.sent


@OFFERED
async def test_failed_claim_of_the_next_keeps_the_reply_of_the_one_in_flight(
    tmp_path: Path, pipelining: bool
) -> None:
    """The second claim fails while the first awaits its 250: the first is sent, the second not."""
    with hostile_server(**script(pipelining, END=SLOW + b"250 queued\r\n")) as server:
        summary, rows = await send(tmp_path / "c", server.port, count=3, log_class=ClaimFails)
    # With PIPELINING the third was claimed and queued behind the second, whose data never
    # went: an attempt that handed nothing over.
    third = 1 if pipelining else 0
    assert rows == {"c00001": ("sent", 1), "c00002": ("pending", 0), "c00003": ("pending", third)}
    if pipelining:  # its envelope went out on the connection closed for the failed claim
        with SendLog(tmp_path / "c" / "send.sqlite3", campaign=None, write=False) as log:
            [attempt] = log.history("c00003")
        assert attempt.reply_text == (
            "connection lost before the message was handed over: Connection closed"
        )
    assert summary.fatal is not None
    assert "disk is full" in summary.fatal
    assert server.messages == 1


class FirstTwoClaimsFail(SendLog):
    """A send log that cannot write the claims of the first two recipients (a full disk)."""

    def claim(self, contact_id: str, /, **letter: Any) -> int:
        """Fail for c00001 and c00002, as SQLite does when the disk is full."""
        if contact_id in {"c00001", "c00002"}:
            msg = f"{self.path}: cannot write to the send log: database or disk is full"
            raise SendLogError(msg)
        return super().claim(contact_id, **letter)


async def test_failed_claims_give_their_slots_back_so_the_batch_ends(tmp_path: Path) -> None:
    """Both claim slots' claims fail while a third lane waits for a slot: the batch still ends."""
    with hostile_server(**script(pipelining=True)) as server:
        summary, rows = await asyncio.wait_for(
            send(tmp_path / "c", server.port, count=4, log_class=FirstTwoClaimsFail), 20
        )
    assert summary.fatal is not None
    assert "disk is full" in summary.fatal
    assert server.messages == 0
    assert {status for status, _ in rows.values()} == {"pending"}


@OFFERED
async def test_hang_up_after_354_before_the_data_is_written_is_not_uncertain(
    pipelining: bool,
) -> None:
    """Closed after the 354 while the claim was on its way: nothing was handed over, so retry."""
    replies = script(pipelining, DATA=b"354 go ahead\r\n" + CLOSE)
    with hostile_server(**replies) as server:
        settings = SmtpSettings(host="127.0.0.1", port=server.port, implicit_tls=False)
        connection = await SmtpTransport(settings).connect()
        envelope = Envelope("from@mission.example", ("to@mission.example",), b"Hi\r\n")
        # The claim is still being written when the hang-up arrives.
        pending = await connection.send(envelope, asyncio.sleep(0.5))
        handover = await pending
        await connection.close()
    assert handover.outcome is Outcome.TRANSIENT
    assert handover.reconnect
    assert handover.text == (
        "connection lost before the message was handed over: Unexpected EOF received"
    )
    assert server.messages == 0


@OFFERED
async def test_a_reply_to_the_data_that_is_neither_250_nor_a_refusal_is_uncertain(
    tmp_path: Path, pipelining: bool
) -> None:
    """A 354 to the end of data is out of step: the message may be taken, so never 'failed'."""
    with hostile_server(**script(pipelining, END=[b"354 go ahead\r\n"])) as server:
        summary, rows = await send(tmp_path / "c", server.port)
    assert rows == {"c00001": ("uncertain", 1), "c00002": ("sent", 2 if pipelining else 1)}
    assert (summary.uncertain, summary.sent, summary.failed) == (1, 1, 0)


def test_a_claim_is_resolved_only_once_another_connection_reads_it(tmp_path: Path) -> None:
    """When a claim's future is done, its row is committed: a new connection reads 'sending'."""
    path = tmp_path / "send.sqlite3"
    contacts = [Contact(id=f"c{n}", email=f"c{n}@mission.example") for n in range(20)]
    seen: list[str] = []

    def look(contact_id: str) -> None:
        with sqlite3.connect(path) as db:
            row = db.execute("SELECT status FROM recipients WHERE contact_id = ?", (contact_id,))
            seen.append(row.fetchone()[0])

    with SendLog(path, campaign="c", write=True) as log:
        log.register(contacts)
        log.start_run("test")
        journal = Journal(log)
        for contact in contacts:
            claim = journal.submit(
                lambda cid=contact.id: log.claim(cid, message_id="<m@x.example>", content_hash="a")
            )
            claim.add_done_callback(lambda _f, cid=contact.id: look(cid))
        journal.close()
    assert seen == ["sending"] * len(contacts)


class _FullAfterOne:
    """A connection carrying three messages at once whose disk fills after the first."""

    depth = 3
    max_size = None

    def __init__(self, inner: Connection) -> None:
        self._inner = inner
        self._stored = 0

    async def send(self, envelope: Envelope, claimed: Awaitable[object], /) -> Future[Handover]:
        """Store the first message; fail each later one once its claim is written."""
        if not self._stored:
            self._stored += 1
            return await self._inner.send(envelope, claimed)
        return asyncio.ensure_future(self._fail(claimed))

    async def _fail(self, claimed: Awaitable[object]) -> Handover:
        await claimed
        await asyncio.sleep(0.05)  # the next messages are handed over meanwhile
        msg = "outbox: no space left on device"
        raise TransportError(msg)

    async def close(self) -> None:
        """Close the Maildir."""
        await self._inner.close()


class FullAfterOne:
    """A Maildir outbox behind a connection that carries three messages, full after one."""

    def __init__(self, path: Path) -> None:
        self._inner = MaildirTransport(path)
        self.description = self._inner.description
        self.live = self._inner.live

    async def connect(self, *, login_turn: LoginTurn | None = None) -> _FullAfterOne:
        """Open the Maildir."""
        return _FullAfterOne(await self._inner.connect(login_turn=login_turn))


class _FaultAfterOne:
    """A connection carrying three messages whose second send is a fault, not a refusal."""

    depth = 3
    max_size = None

    def __init__(self, inner: Connection) -> None:
        self._inner = inner
        self._sends = 0

    async def send(self, envelope: Envelope, claimed: Awaitable[object], /) -> Future[Handover]:
        """Store the first message, answered late; raise a fault for the second."""
        self._sends += 1
        if self._sends == 1:
            return asyncio.ensure_future(self._answered_late(envelope, claimed))
        msg = "a fault in the connection"
        raise RuntimeError(msg)

    async def _answered_late(self, envelope: Envelope, claimed: Awaitable[object]) -> Handover:
        handover = await (await self._inner.send(envelope, claimed))
        await asyncio.sleep(0.2)  # the fault of the next comes meanwhile
        return handover

    async def close(self) -> None:
        """Close the Maildir."""
        await self._inner.close()


class FaultAfterOne:
    """A Maildir outbox behind a connection whose second send is a fault."""

    def __init__(self, path: Path) -> None:
        self._inner = MaildirTransport(path)
        self.description = self._inner.description
        self.live = self._inner.live

    async def connect(self, *, login_turn: LoginTurn | None = None) -> _FaultAfterOne:
        """Open the Maildir."""
        return _FaultAfterOne(await self._inner.connect(login_turn=login_turn))


async def test_a_fault_in_one_lane_is_raised_once_the_letter_on_another_is_recorded(
    tmp_path: Path,
) -> None:
    """A bug in the second send is raised, but only once the first, in flight, is recorded sent."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(3))
    campaign = load_campaign(folder / "campaign.toml")
    with (
        api.prepare_send(campaign, options=dataclasses.replace(FAST, allow_reserved=True)) as batch,
        pytest.raises(RuntimeError, match="a fault in the connection"),
    ):
        await asyncio.wait_for(batch.run_async(FaultAfterOne(tmp_path / "out")), 20)
    with SendLog(batch.log_path, campaign=None, write=False) as log:
        assert log.recipient("c00001").status == "sent"


async def test_transport_errors_in_flight_give_their_claim_slots_back(tmp_path: Path) -> None:
    """Two claimed messages failing in flight free their slots: the batch ends, the third unclaimed."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(5))
    campaign = load_campaign(folder / "campaign.toml")
    with api.prepare_send(
        campaign, options=dataclasses.replace(FAST, allow_reserved=True)
    ) as batch:
        # Were a written claim's slot kept, the fourth would wait for one forever.
        summary = await asyncio.wait_for(batch.run_async(FullAfterOne(tmp_path / "out")), 20)
    assert summary.fatal is not None
    assert "no space left on device" in summary.fatal
    assert summary.sent == 1
    assert len(mailbox.Maildir(tmp_path / "out", create=False)) == 1
    with SendLog(batch.log_path, campaign=None, write=False) as log:
        rows = {r.id: (r.status, r.attempts) for r in log.recipients()}
        second = log.recipient("c00002")
        [attempt] = log.history("c00002")
    assert (attempt.outcome, attempt.reply_code) == ("error", None)
    assert second is not None
    assert second.reply_text == "outbox: no space left on device"  # why it is pending again
    assert rows == {
        "c00001": ("sent", 1),
        "c00002": ("pending", 1),
        "c00003": ("pending", 1),
        "c00004": ("pending", 0),
        "c00005": ("pending", 0),
    }


async def test_a_claim_slot_waiter_that_is_cancelled_gives_back_only_a_slot_it_was_handed() -> None:
    """Cancelled while waiting, a lane leaves the count as it was; cancelled once handed one, it frees it.

    A slot too many would let a connection hold three recipients claimed and unanswered, which a
    crash would leave uncertain; one too few would hold a lane back for ever.
    """
    slots = Slots(CLAIMED)
    assert slots.take_now()
    assert slots.take_now()
    waiting = asyncio.ensure_future(slots.take())
    await asyncio.sleep(0)
    waiting.cancel()  # no slot was handed to it
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not slots.take_now()
    handed = asyncio.ensure_future(slots.take())
    await asyncio.sleep(0)
    slots.give()  # to the lane waiting, which is cancelled before it runs again
    handed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handed
    assert slots.take_now()
    assert not slots.take_now()
