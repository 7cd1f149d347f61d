"""Each reply that is not a plain yes: retried, failed for good, or uncertain, and never sent twice.

A 4xx is refused for now and retried, a 5xx (500 included) refused for good; a reply that is
not one of those after the message was handed over leaves it uncertain, since it may have
arrived. A session whose state is unknown (a refused RSET) is replaced, not reused.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosmtplib
import pytest
from helpers import FAST, PIPELINING, contacts_yaml, write_campaign
from hostile import CLOSE, SPLIT, Hostile, Reply, hostile_server

from outreach import drafts
from outreach.batch import Batch, Summary, choose
from outreach.campaign import load_campaign
from outreach.sendlog import SendLog
from outreach.transport import Envelope, Handover, Outcome, SmtpSettings, SmtpTransport
from outreach.transport.transaction import MAX_REPLY_LINE, SmtpConnection

OFFERED = pytest.mark.parametrize("pipelining", [False, True], ids=["not-offered", "offered"])
PIPELINED = True


def script(pipelining: bool, **replies: Reply) -> dict[str, Reply]:
    """Return the server's replies, offering PIPELINING or not."""
    return {**(PIPELINING if pipelining else {}), **replies}


async def deliver(replies: dict[str, Reply]) -> tuple[Handover, Hostile]:
    """Hand one message to the scripted server over a connection of its own; return its fate."""
    with hostile_server(**replies) as server:
        settings = SmtpSettings(host="127.0.0.1", port=server.port, implicit_tls=False, timeout=2)
        connection = await SmtpTransport(settings).connect()
        envelope = Envelope("from@mission.example", ("to@mission.example",), b"Hi\r\n")
        claimed = asyncio.get_running_loop().create_future()
        claimed.set_result(1)  # recorded at once
        handover = await (await connection.send(envelope, claimed))
        await connection.close()
    return handover, server


async def send(
    folder: Path, port: int, *, count: int = 1
) -> tuple[Summary, dict[str, tuple[str, int]]]:
    """Send ``count`` letters to the scripted server, 3 attempts each; return summary and rows."""
    write_campaign(folder, contacts=contacts_yaml(count))
    campaign = load_campaign(folder / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    settings = SmtpSettings(host="127.0.0.1", port=port, implicit_tls=False, timeout=2.0)
    with SendLog(folder / "send.sqlite3", campaign=campaign.name, write=True) as log:
        log.register(contacts)
        batch = Batch(drafter, log, SmtpTransport(settings), options=FAST)
        summary = await batch.run(choose(contacts, log.statuses(), FAST))
        rows = {r.id: (r.status, r.attempts) for r in log.recipients()}
    return summary, rows


@pytest.mark.parametrize(
    "end",
    [
        pytest.param(b"garbage after the message\r\n", id="not-smtp"),
        pytest.param(b"999 nonsense\r\n", id="code-out-of-range"),
        pytest.param(b"354 go ahead\r\n", id="out-of-step-354"),
        pytest.param(b"251 will forward\r\n", id="out-of-step-251"),
    ],
)
@OFFERED
async def test_unreadable_reply_to_the_end_of_the_data_leaves_it_uncertain_not_resent(
    tmp_path: Path, end: bytes, pipelining: bool
) -> None:
    """No readable 2xx-5xx after the data: the letter may have arrived, so it is uncertain, sent once."""
    with hostile_server(**script(pipelining, END=[end])) as server:
        summary, rows = await send(tmp_path / "c", server.port)
    assert rows == {"c00001": ("uncertain", 1)}
    assert (summary.sent, summary.failed, summary.uncertain, summary.not_sent) == (0, 0, 1, 0)
    assert server.messages == 1


@pytest.mark.parametrize(
    ("stage", "reply"),
    [
        pytest.param("RCPT", b"450 4.2.1 mailbox busy\r\n", id="450-at-rcpt"),
        pytest.param("RCPT", b"451 4.3.0 try again later\r\n", id="451-at-rcpt"),
        pytest.param("RCPT", b"452 4.2.2 mailbox full\r\n", id="452-at-rcpt"),
        pytest.param("MAIL", b"451 4.3.0 try again later\r\n", id="451-at-mail"),
    ],
)
async def test_refused_for_now_with_its_data_accepted_is_retried_not_failed(
    tmp_path: Path, stage: str, reply: bytes
) -> None:
    """A pipelined 4xx at MAIL or RCPT whose DATA got a 354 anyway: hung up on, then sent again."""
    with hostile_server(**script(PIPELINED, **{stage: [reply]})) as server:
        summary, rows = await send(tmp_path / "c", server.port)
    assert rows == {"c00001": ("sent", 2)}
    assert summary.ok
    assert server.messages == 1  # the first DATA was hung up on: nothing delivered
    assert server.heard.count("DATA") == 2


REFUSED_500 = b"500 5.5.1 command unrecognized\r\n"


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA", "END"])
@OFFERED
async def test_500_is_a_refusal_for_good(tmp_path: Path, stage: str, pipelining: bool) -> None:
    """A 500 at any step fails the letter after one attempt: it is not retried."""
    with hostile_server(**script(pipelining, **{stage: [REFUSED_500]})) as server:
        summary, rows = await send(tmp_path / "c", server.port)
    assert rows == {"c00001": ("failed", 1)}
    assert (summary.sent, summary.failed, summary.uncertain) == (0, 1, 0)
    assert server.heard.count("MAIL") == 1
    assert server.messages == (1 if stage == "END" else 0)


@pytest.mark.parametrize(
    "rset",
    [
        pytest.param(b"554 5.5.0 out of step\r\n", id="refused"),
        pytest.param(CLOSE, id="hung-up"),
    ],
)
@OFFERED
async def test_refused_rset_after_a_refusal_replaces_the_connection(
    tmp_path: Path, rset: bytes, pipelining: bool
) -> None:
    """An RSET refused or hung up on after a refused recipient: the next letter takes a new connection."""
    # Pipelined, DATA went too: it is refused, or it would be hung up on instead of reset.
    data: dict[str, list[bytes]] = {"DATA": [b"503 5.5.1 no valid recipients\r\n"]}
    replies = script(
        pipelining,
        RCPT=[b"550 5.1.1 no such user\r\n"],
        RSET=[rset],
        **(data if pipelining else {}),
    )
    with hostile_server(**replies) as server:
        summary, rows = await send(tmp_path / "c", server.port, count=2)
    # With PIPELINING the second's envelope waited behind the first's, on the dropped
    # connection: one attempt that handed nothing over.
    assert rows == {"c00001": ("failed", 1), "c00002": ("sent", 2 if pipelining else 1)}
    assert (summary.sent, summary.failed) == (1, 1)
    assert server.heard.count("EHLO") == 2
    assert server.messages == 1


AFTER = "connection lost after the message was handed over: "
BEFORE = "connection lost before the message was handed over: "
SENT, TRANSIENT, PERMANENT = Outcome.SENT, Outcome.TRANSIENT, Outcome.PERMANENT
UNCERTAIN = Outcome.UNCERTAIN


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param("400 4.0.0 later", Handover(TRANSIENT, 400, "4.0.0 later"), id="400"),
        pytest.param(
            "421 4.3.2 bye", Handover(TRANSIENT, 421, "4.3.2 bye", reconnect=True), id="421"
        ),
        pytest.param("499 4.0.0 later", Handover(TRANSIENT, 499, "4.0.0 later"), id="499"),
        pytest.param("500 5.0.0 no", Handover(PERMANENT, 500, "5.0.0 no"), id="500"),
        pytest.param("599 5.0.0 no", Handover(PERMANENT, 599, "5.0.0 no"), id="599"),
        pytest.param(
            "600 what",
            Handover(
                UNCERTAIN,
                None,
                AFTER + "unexpected reply to the end of the data (600 what)",
                reconnect=True,
            ),
            id="600",
        ),
    ],
)
@OFFERED
async def test_the_reply_to_the_end_of_the_data_is_judged_by_its_code(
    reply: str, expected: Handover, pipelining: bool
) -> None:
    """After the data: 4xx for now, 421 closing too, 5xx for good, anything else uncertain."""
    handover, server = await deliver(script(pipelining, END=[reply.encode() + b"\r\n"]))
    assert handover == expected
    assert server.messages == 1


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(
            "199 what",
            Handover(TRANSIENT, None, BEFORE + "unreadable reply (199 what)", reconnect=True),
            id="199",
        ),
        pytest.param("200 odd", Handover(PERMANENT, 200, "odd"), id="200"),
        pytest.param("400 4.0.0 later", Handover(TRANSIENT, 400, "4.0.0 later"), id="400"),
        pytest.param(
            "421 4.3.2 bye", Handover(TRANSIENT, 421, "4.3.2 bye", reconnect=True), id="421"
        ),
        pytest.param("499 4.0.0 later", Handover(TRANSIENT, 499, "4.0.0 later"), id="499"),
        pytest.param("500 5.0.0 no", Handover(PERMANENT, 500, "5.0.0 no"), id="500"),
        pytest.param("599 5.0.0 no", Handover(PERMANENT, 599, "5.0.0 no"), id="599"),
        pytest.param(
            "600 what",
            Handover(TRANSIENT, None, BEFORE + "unreadable reply (600 what)", reconnect=True),
            id="600",
        ),
    ],
)
async def test_a_refused_mail_is_judged_by_its_code(reply: str, expected: Handover) -> None:
    """MAIL refused, one command at a time: 4xx for now, 5xx or a stray 2xx for good, else lost."""
    handover, server = await deliver({"MAIL": [reply.encode() + b"\r\n"]})
    assert handover == expected
    assert server.messages == 0


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(
            "400 4.0.0 later", Handover(TRANSIENT, 400, "4.0.0 later", reconnect=True), id="400"
        ),
        pytest.param(
            "499 4.0.0 later", Handover(TRANSIENT, 499, "4.0.0 later", reconnect=True), id="499"
        ),
        pytest.param(
            "500 5.0.0 no", Handover(PERMANENT, 500, "5.0.0 no", reconnect=True), id="500"
        ),
        pytest.param(
            "599 5.0.0 no", Handover(PERMANENT, 599, "5.0.0 no", reconnect=True), id="599"
        ),
        pytest.param("600 what", Handover(TRANSIENT, 600, "what", reconnect=True), id="600"),
    ],
)
async def test_a_pipelined_refusal_with_its_data_accepted_is_judged_by_its_code(
    reply: str, expected: Handover
) -> None:
    """RCPT refused, DATA answered 354 anyway: hung up on, 4xx for now and 5xx for good."""
    handover, server = await deliver(script(PIPELINED, RCPT=[reply.encode() + b"\r\n"]))
    assert handover == expected
    assert server.messages == 0


@OFFERED
async def test_a_refused_data_command_ends_the_transaction_before_any_data(
    pipelining: bool,
) -> None:
    """A 554 to DATA is the message's refusal, for good: nothing of the message is written."""
    replies = script(pipelining, DATA=[b"554 5.5.1 no valid recipients\r\n"])
    handover, server = await deliver(replies)
    assert handover == Handover(PERMANENT, 554, "5.5.1 no valid recipients")
    assert server.heard[:5] == ["EHLO", "MAIL", "RCPT", "DATA", "RSET"]  # QUIT may come late


@OFFERED
async def test_a_reply_split_over_two_segments_is_read_whole(pipelining: bool) -> None:
    """A reply whose bytes come in two segments, even mid-code, is read as the one reply."""
    handover, server = await deliver(
        script(pipelining, END=[b"25" + SPLIT + b"0 2.0.0 queued\r\n"])
    )
    assert handover == Handover(SENT, 250, "2.0.0 queued")
    assert server.messages == 1


@OFFERED
async def test_a_reply_begun_in_the_segment_of_the_one_before_is_read_whole(
    pipelining: bool,
) -> None:
    """The first bytes of the next reply, come with the end of one, wait there for the rest."""
    handover, server = await deliver(
        script(pipelining, MAIL=[b"250 OK\r\n25" + SPLIT + b"0 OK\r\n"], RCPT=[b""])
    )
    assert handover == Handover(SENT, 250, "queued")
    assert server.messages == 1


@OFFERED
async def test_a_reply_of_32_kib_before_its_last_line_is_read_whole(pipelining: bool) -> None:
    """Four lines of 8,192 bytes, then the last line in a later segment: one reply, read whole."""
    text = "x" * (MAX_REPLY_LINE - len(b"250-\r\n"))
    lines = b"".join(b"250-" + text.encode() + b"\r\n" for _ in range(4))
    handover, _ = await deliver(script(pipelining, END=[lines + SPLIT + b"250 done\r\n"]))
    assert handover == Handover(SENT, 250, "\n".join([text] * 4 + ["done"]))


@OFFERED
async def test_an_unfinished_reply_over_32_kib_is_not_smtp(pipelining: bool) -> None:
    """Continuation lines past 32 KiB with no last line: after the data, the letter is uncertain."""
    lines = b"".join(b"250-" + b"x" * 8000 + b"\r\n" for _ in range(5))
    handover, _ = await deliver(script(pipelining, END=[lines + CLOSE]))
    assert handover == Handover(
        UNCERTAIN, None, AFTER + "unreadable reply (Response too long)", reconnect=True
    )


LONGEST = MAX_REPLY_LINE - len(b"250 \r\n")  # the text of a reply line of the longest length


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        pytest.param(LONGEST, Handover(SENT, 250, "x" * LONGEST), id="longest"),
        pytest.param(
            LONGEST + 1,
            Handover(
                UNCERTAIN, None, AFTER + "unreadable reply (Response too long)", reconnect=True
            ),
            id="one-byte-over",
        ),
    ],
)
async def test_a_reply_line_is_read_up_to_its_bound(length: int, expected: Handover) -> None:
    """A reply line of 8,192 bytes is read; one byte more is not SMTP, after the data uncertain."""
    handover, _ = await deliver({"END": [b"250 " + b"x" * length + b"\r\n"]})
    assert handover == expected


@pytest.mark.parametrize(
    "address",
    [
        "two words@mission.example",
        "a<b@mission.example",
        "a>b@mission.example",
        "to@mission.example>\r\nRCPT TO:<other@mission.example",
        "tab\t@mission.example",
        "caf\u00e9@mission.example",
    ],
)
@OFFERED
async def test_an_address_that_would_change_the_smtp_command_is_never_written(
    pipelining: bool, address: str
) -> None:
    """A recipient that is not plain ASCII or holds a space, <, > or a line end raises, unsent."""
    with hostile_server(**script(pipelining)) as server:
        settings = SmtpSettings(host="127.0.0.1", port=server.port, implicit_tls=False, timeout=2)
        connection = await SmtpTransport(settings).connect()
        envelope = Envelope("from@mission.example", (address,), b"Hi\r\n")
        claimed = asyncio.get_running_loop().create_future()
        claimed.set_result(1)
        with pytest.raises(ValueError, match="cannot be sent as an SMTP path") as raised:
            await connection.send(envelope, claimed)
        await connection.close()
    assert str(raised.value) == f"{address!r} cannot be sent as an SMTP path"
    assert "MAIL" not in server.heard
    assert "RCPT" not in server.heard


async def test_a_plain_address_with_capitals_is_written_as_given() -> None:
    """A recipient in capitals and digits goes into RCPT unchanged, and the letter is sent."""
    with hostile_server() as server:
        settings = SmtpSettings(host="127.0.0.1", port=server.port, implicit_tls=False, timeout=2)
        connection = await SmtpTransport(settings).connect()
        envelope = Envelope("from@mission.example", ("Xavier.X9@Mission.example",), b"Hi\r\n")
        claimed = asyncio.get_running_loop().create_future()
        claimed.set_result(1)
        handover = await (await connection.send(envelope, claimed))
        await connection.close()
    assert handover == Handover(SENT, 250, "queued")
    assert server.messages == 1


def test_a_client_whose_connection_is_gone_cannot_be_taken_over() -> None:
    """A client whose connection closed after the login has nothing to carry the letters."""
    with pytest.raises(aiosmtplib.SMTPServerDisconnected) as raised:
        SmtpConnection(aiosmtplib.SMTP(), timeout=1.0)
    assert raised.value.message == "Connection lost"
