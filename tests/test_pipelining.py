"""The next message's envelope follows a message's data before its reply; each is judged alone.

With PIPELINING (RFC 2920) a connection carries two messages at once: one whose data is out
and whose reply is awaited, and the next, whose MAIL, RCPT and DATA go out meanwhile. These
tests pin what that may not change: a refusal or a loss belongs to the message it answers, a
message is never handed over behind a lost one, and without PIPELINING nothing overlaps.
"""

import asyncio
import hashlib
import ssl
from pathlib import Path

import pytest
from helpers import PIPELINING, contacts_yaml, log_rows, send_batch, write_campaign
from hostile import CLOSE, SLOW, hostile_server
from mailserver import Server

from outreach import drafts
from outreach.batch import Batch, SendOptions, Summary, choose
from outreach.campaign import load_campaign
from outreach.errors import SendLogError
from outreach.sendlog import SendLog
from outreach.transport import Envelope, Outcome, SmtpSettings, SmtpTransport

OFFERED = pytest.mark.parametrize("pipelining", [False, True], ids=["not-offered", "offered"])
NEXT_ENVELOPE = ["MAIL", "RCPT", "DATA"]


async def send_two(folder: Path, port: int) -> tuple[Summary, dict[str, tuple[str, int]]]:
    """Send two letters over one connection; return the summary, statuses and attempts."""
    write_campaign(folder, contacts=contacts_yaml(2))
    campaign = load_campaign(folder / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    settings = SmtpSettings(host="127.0.0.1", port=port, implicit_tls=False, timeout=2.0)
    options = SendOptions(max_attempts=3, backoff=0.01)
    with SendLog(folder / "send.sqlite3", campaign=campaign.name, write=True) as log:
        log.register(contacts)
        plan = choose(contacts, log.statuses(), options)
        summary = await Batch(drafter, log, SmtpTransport(settings), options=options).run(plan)
        rows = {r.id: (r.status, r.attempts) for r in log.recipients()}
    return summary, rows


@OFFERED
async def test_next_envelope_goes_out_before_the_reply_to_the_data_only_with_pipelining(
    tmp_path: Path, pipelining: bool
) -> None:
    """With PIPELINING the second MAIL, RCPT and DATA come before the first message's reply."""
    with hostile_server(
        **(PIPELINING if pipelining else {}), END=SLOW + b"250 queued\r\n"
    ) as server:
        summary, rows = await send_two(tmp_path / "c", server.port)
    assert summary.ok
    assert rows == {"c00001": ("sent", 1), "c00002": ("sent", 1)}
    expected = ["RCPT", "DATA", *NEXT_ENVELOPE] if pipelining else []
    assert server.early == expected


@OFFERED
async def test_data_refused_while_the_next_envelope_is_in_flight_fails_that_message_alone(
    tmp_path: Path, pipelining: bool
) -> None:
    """A 554 to the first message's data fails it; the second, already announced, is sent."""
    replies = {"END": [SLOW + b"554 5.6.0 content rejected\r\n", b"250 queued\r\n"]}
    with hostile_server(**(PIPELINING if pipelining else {}), **replies) as server:
        summary, rows = await send_two(tmp_path / "c", server.port)
    assert rows == {"c00001": ("failed", 1), "c00002": ("sent", 1)}
    assert (summary.failed, summary.sent) == (1, 1)
    assert server.heard.count("MAIL") == server.messages == 2
    assert ("MAIL" in server.early) is pipelining


@OFFERED
async def test_connection_lost_after_the_data_leaves_it_uncertain_and_the_next_is_retried(
    tmp_path: Path, pipelining: bool
) -> None:
    """A hang-up after the first message's data: it is uncertain; the second goes again, once."""
    replies = {"END": [SLOW + CLOSE, b"250 queued\r\n"]}
    with hostile_server(**(PIPELINING if pipelining else {}), **replies) as server:
        summary, rows = await send_two(tmp_path / "c", server.port)
    # With PIPELINING the second envelope was out when the line dropped: an attempt, no message.
    assert rows == {"c00001": ("uncertain", 1), "c00002": ("sent", 2 if pipelining else 1)}
    assert (summary.uncertain, summary.sent) == (1, 1)
    assert server.messages == 2  # each message's data reached the server once
    assert server.heard.count("END") == 2


async def test_data_accepted_after_a_refusal_behind_a_message_in_flight_is_hung_up_on(
    tmp_path: Path,
) -> None:
    """The second recipient refused, its DATA accepted anyway: hung up on, the first still sent."""
    replies = {
        "RCPT": [b"250 OK\r\n", b"550 5.1.1 no such user\r\n"],
        "END": SLOW + b"250 queued\r\n",
    }
    with hostile_server(**PIPELINING, **replies) as server:
        summary, rows = await send_two(tmp_path / "c", server.port)
    assert rows == {"c00001": ("sent", 1), "c00002": ("failed", 1)}
    assert summary.fatal is None
    assert server.messages == 1  # the second DATA was answered 354 and then hung up on
    assert server.heard.count("DATA") == 2
    assert server.early[2:5] == NEXT_ENVELOPE


async def test_refused_data_fails_one_recipient_while_the_others_follow(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """A slow aiosmtpd refuses the first message's data: it alone fails, each other goes once."""
    smtp_server.handler.faults.data_delay = 0.05  # the next envelope is out meanwhile
    smtp_server.handler.faults.data["c00001@mission.example"] = ["554 5.6.0 rejected"]
    summary = await send_batch(campaign_dir, smtp_server, client_tls)
    rows = log_rows(campaign_dir)
    assert rows["c00001"][:2] == ("failed", 1)
    assert [rows[f"c{n:05d}"][:2] for n in range(2, 6)] == [("sent", 1)] * 4
    assert (summary.failed, summary.sent) == (1, 4)
    copies = smtp_server.handler.by_recipient()
    assert "c00001@mission.example" not in copies
    assert all(len(copies[f"c{n:05d}@mission.example"]) == 1 for n in range(2, 6))


async def test_dropped_after_the_data_leaves_one_uncertain_while_the_others_follow(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """A slow aiosmtpd stores the first and hangs up: it is uncertain, each other goes once."""
    smtp_server.handler.faults.data_delay = 0.05
    smtp_server.handler.faults.drop_after_data["c00001@mission.example"] = 1
    summary = await send_batch(campaign_dir, smtp_server, client_tls)
    rows = log_rows(campaign_dir)
    assert rows["c00001"][:2] == ("uncertain", 1)
    assert [rows[f"c{n:05d}"][0] for n in range(2, 6)] == ["sent"] * 4
    assert (summary.uncertain, summary.sent) == (1, 4)
    copies = smtp_server.handler.by_recipient()
    assert all(len(copies[f"c{n:05d}@mission.example"]) == 1 for n in range(1, 6))


async def test_a_message_behind_one_whose_claim_failed_is_not_handed_over_and_close_returns() -> (
    None
):
    """A claim that fails drops the connection; the next message ends transient, close returns."""
    letter = Envelope("s@outreach.example", ("r@mission.example",), b"Subject: x\r\n\r\nhi\r\n")
    loop = asyncio.get_running_loop()
    failed, recorded = loop.create_future(), loop.create_future()
    failed.set_exception(SendLogError("send.sqlite3: database or disk is full"))
    recorded.set_result(1)
    with hostile_server(**PIPELINING) as server:
        settings = SmtpSettings(host="127.0.0.1", port=server.port, implicit_tls=False)
        connection = await SmtpTransport(settings).connect()
        first = await connection.send(letter, failed)
        with pytest.raises(SendLogError):
            await first
        second = await connection.send(letter, recorded)
        handover = await asyncio.wait_for(second, timeout=5)
        await asyncio.wait_for(connection.close(), timeout=5)
    assert handover.outcome is Outcome.TRANSIENT
    assert "before the message was handed over" in handover.text
    assert server.messages == 0


@pytest.mark.parametrize("delay", [0.0, 0.01], ids=["prompt", "slow"])
async def test_three_in_flight_on_a_connection_each_letter_arrives_as_drafted_once(
    tmp_path: Path, make_server, client_tls: ssl.SSLContext, delay: float
) -> None:
    """Over one pipelined connection, forty letters arrive each once, byte for byte as logged."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(40))
    server: Server = make_server(pipelining=True)
    server.handler.faults.data_delay = delay
    options = SendOptions(concurrency=1, max_attempts=1, backoff=0.01)
    summary = await send_batch(folder, server, client_tls, options=options)
    assert (summary.sent, summary.uncertain, summary.failed) == (40, 0, 0)
    received = server.handler.received
    assert sorted(r.rcpt_tos[0] for r in received) == [
        f"c{n:05d}@mission.example" for n in range(1, 41)
    ]
    with SendLog(folder / "send.sqlite3", campaign=None, write=False) as log:
        hashes = {r.email: r.content_hash for r in log.recipients()}
    for record in received:
        assert hashes[record.rcpt_tos[0]] == hashlib.sha256(record.data).hexdigest()
