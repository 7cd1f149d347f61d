"""Broken and hostile servers: each ends in a clear error or a correct status, and never hangs."""

import re
import time
from pathlib import Path

import pytest
from helpers import contacts_yaml, write_campaign
from hostile import CLOSE, HANG, RESET, TRICKLE, hostile_server

from outreach import drafts
from outreach.batch import Batch, SendOptions, Summary, choose
from outreach.campaign import load_campaign
from outreach.errors import OutreachError, readable
from outreach.sendlog import SendLog
from outreach.transport import SmtpSettings, SmtpTransport

TIMEOUT = 1.0
PIPELINING = {"EHLO": b"250-hostile.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"}


async def send_to(
    folder: Path,
    port: int,
    *,
    require_tls: bool = False,
    user: str | None = None,
    timeout: float = TIMEOUT,
) -> tuple[Summary, dict[str, str], float]:
    """Send a two-contact batch to the scripted server; return summary, statuses and seconds."""
    write_campaign(folder, contacts=contacts_yaml(2))
    campaign = load_campaign(folder / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    settings = SmtpSettings(
        host="127.0.0.1",
        port=port,
        implicit_tls=False,
        username=user,
        password="s3ntinel-PASSWORD-7f9c" if user else None,
        timeout=timeout,
        require_tls=require_tls,
    )
    started = time.monotonic()
    with SendLog(folder / "send.sqlite3", campaign=campaign.name, write=True) as log:
        log.register(contacts)
        options = SendOptions(max_attempts=2, backoff=0.01)
        plan = choose(contacts, log.statuses(), options)
        summary = await Batch(drafter, log, SmtpTransport(settings), options=options).run(plan)
        statuses = log.statuses()
    return summary, statuses, time.monotonic() - started


@pytest.mark.parametrize(
    ("replies", "fatal"),
    [
        pytest.param(
            {"GREETING": b"hello there\r\n"}, "is not SMTP: Malformed", id="garbage-greeting"
        ),
        pytest.param({"GREETING": HANG}, "did not answer in time", id="silent-greeting"),
        pytest.param(
            {"GREETING": b"220 " + b"A" * 100_000 + b"\r\n"},
            "is not SMTP: Response too long",
            id="huge-greeting",
        ),
        pytest.param(
            {
                "EHLO": b"250-hostile.test\r\n250 STARTTLS\r\n",
                "STARTTLS": b"220 go ahead\r\n" + CLOSE,
            },
            # Which side notices first decides the words; both say the connection is gone.
            r"cannot connect: Connection (lost|reset)|TLS failed: .*EOF",
            id="closes-during-tls-handshake",
        ),
        pytest.param(
            {
                "EHLO": b"250-hostile.test\r\n250 STARTTLS\r\n",
                "STARTTLS": b"220 go ahead\r\nthis is not TLS at all\r\n",
            },
            "TLS failed",
            id="garbage-instead-of-tls",
        ),
    ],
)
async def test_server_broken_at_connect_stops_the_batch_cleanly(
    tmp_path: Path, replies: dict[str, bytes], fatal: str
) -> None:
    """A server broken before any mail ends the batch with a clear error and nothing sent."""
    with hostile_server(**replies) as server:
        summary, statuses, seconds = await send_to(tmp_path / "c", server.port)
    assert summary.fatal is not None
    assert re.search(fatal, summary.fatal), summary.fatal
    assert set(statuses.values()) == {"pending"}
    assert seconds < 10 * TIMEOUT


async def test_no_starttls_when_tls_is_required_sends_no_password(tmp_path: Path) -> None:
    """A server without STARTTLS, offering AUTH in clear, never hears the password."""
    with hostile_server() as server:
        summary, statuses, _ = await send_to(
            tmp_path / "c", server.port, require_tls=True, user="someone"
        )
    assert summary.fatal is not None
    assert "does not offer STARTTLS" in summary.fatal
    assert "AUTH" not in server.heard
    assert set(statuses.values()) == {"pending"}


@pytest.mark.parametrize(
    ("replies", "status"),
    [
        pytest.param({"MAIL": b"lol what\r\n"}, "failed", id="garbage-at-mail"),
        pytest.param({"RCPT": b"2" * 5000 + b"\r\n"}, "failed", id="overlong-line-at-rcpt"),
        pytest.param({"MAIL": HANG}, "failed", id="silent-at-mail"),
        pytest.param({"DATA": b"999 nonsense\r\n"}, "failed", id="nonsense-code-at-data"),
        pytest.param({"END": b"garbage after the message\r\n"}, "uncertain", id="garbage-at-end"),
        pytest.param({"END": b"999 nonsense\r\n"}, "uncertain", id="nonsense-code-at-end"),
        pytest.param({"END": HANG}, "uncertain", id="silent-at-end"),
        pytest.param({"MAIL": TRICKLE}, "failed", id="trickling-at-mail"),
        pytest.param({"END": TRICKLE}, "uncertain", id="trickling-at-end"),
        pytest.param({"END": CLOSE}, "uncertain", id="closes-at-end"),
    ],
)
@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
async def test_server_broken_mid_transaction_gives_each_recipient_a_true_status(
    tmp_path: Path,
    replies: dict[str, bytes],
    status: str,
    pipelining: bool,
) -> None:
    """A reply that is not SMTP, or none, ends in failed before the hand-over, uncertain after."""
    with hostile_server(**(PIPELINING if pipelining else {}), **replies) as server:
        summary, statuses, seconds = await send_to(tmp_path / "c", server.port)
    assert summary.fatal is None
    assert set(statuses.values()) == {status}
    assert seconds < 20 * TIMEOUT
    if status == "uncertain":
        assert server.messages == 2  # each message reached the server exactly once


@pytest.mark.parametrize("pipelining", [False, True], ids=["not-offered", "offered"])
async def test_commands_are_pipelined_only_when_the_server_offers_it(
    tmp_path: Path,
    pipelining: bool,
) -> None:
    """With PIPELINING, RCPT and DATA go out before MAIL is answered (RFC 2920); else never."""
    with hostile_server(**(PIPELINING if pipelining else {})) as server:
        summary, statuses, _ = await send_to(tmp_path / "c", server.port)
    assert summary.ok
    assert set(statuses.values()) == {"sent"}
    assert server.heard.count("MAIL") == server.messages == 2
    if pipelining:  # the second MAIL may also come before the first message's reply
        assert server.early[:2] == ["RCPT", "DATA"]
        assert server.early[2:] in (["RCPT", "DATA"], ["MAIL", "RCPT", "DATA"])
    else:
        assert server.early == []


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
async def test_the_answer_to_quit_is_not_waited_for(tmp_path: Path, pipelining: bool) -> None:
    """QUIT is said, and the batch ends without waiting for its answer: all is settled by then."""
    replies = {"QUIT": HANG, **(PIPELINING if pipelining else {})}
    with hostile_server(**replies) as server:
        summary, statuses, seconds = await send_to(tmp_path / "c", server.port, timeout=30.0)
    assert summary.ok
    assert set(statuses.values()) == {"sent"}
    assert server.heard.count("QUIT") == 1
    assert seconds < 10  # waiting for the answer would take the whole 30 s timeout


@pytest.mark.parametrize(
    "replies",
    [
        pytest.param({"MAIL": b"550 sender refused\r\n"}, id="mail-refused"),
        pytest.param({"RCPT": b"550 no such user\r\n"}, id="rcpt-refused"),
    ],
)
async def test_data_accepted_after_a_refusal_delivers_nothing(
    tmp_path: Path, replies: dict[str, bytes]
) -> None:
    """A server that answers 354 to a pipelined DATA after refusing MAIL or RCPT gets no data."""
    with hostile_server(**PIPELINING, **replies) as server:
        summary, statuses, _ = await send_to(tmp_path / "c", server.port)
    assert summary.fatal is None
    assert set(statuses.values()) == {"failed"}
    assert server.messages == 0
    assert server.heard.count("DATA") == 2  # each was answered 354 and then hung up on


@pytest.mark.parametrize(
    "replies",
    [
        pytest.param({"MAIL": b"550 sender refused\r\n"}, id="mail-refused"),
        pytest.param({"RCPT": b"550 no such user\r\n"}, id="rcpt-refused"),
    ],
)
async def test_data_accepted_after_a_refusal_is_hung_up_on_at_once(
    tmp_path: Path, replies: dict[str, bytes]
) -> None:
    """The hang-up after a 354 that follows a refusal waits for no reply: both end within one timeout."""
    timeout = 10.0
    with hostile_server(**PIPELINING, **replies) as server:
        summary, statuses, seconds = await send_to(tmp_path / "c", server.port, timeout=timeout)
    assert set(statuses.values()) == {"failed"}
    assert summary.fatal is None
    # A command sent instead would be taken as data and wait out the timeout, once per contact.
    assert seconds < timeout


LOST = "connection lost after the message was handed over: "


@pytest.mark.parametrize(
    ("end", "status", "code", "text"),
    [
        pytest.param(CLOSE, "uncertain", None, LOST + "Unexpected EOF received", id="closes"),
        pytest.param(RESET, "uncertain", None, LOST + "Connection lost", id="resets"),
        pytest.param(
            b"garbage after the message\r\n",
            "uncertain",
            None,
            LOST + "unreadable reply (Malformed SMTP response: garbage after the message\r\n)",
            id="garbage",
        ),
        pytest.param(
            b"\xff\xfe, not UTF-8 either\r\n",
            "uncertain",
            None,
            LOST + "unreadable reply (Malformed SMTP response: , not UTF-8 either\r\n)",
            id="garbage-not-utf-8",
        ),
        pytest.param(
            b"999 nonsense\r\n",
            "uncertain",
            None,
            LOST + "unexpected reply to the end of the data (999 nonsense)",
            id="not-a-reply-to-data",
        ),
        pytest.param(
            b"554 5.7.1 message refused\r\n", "failed", 554, "5.7.1 message refused", id="refused"
        ),
        pytest.param(
            HANG, "uncertain", None, LOST + "Timed out waiting for server response", id="silent"
        ),
    ],
)
@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
async def test_the_log_says_what_happened_after_the_data(
    tmp_path: Path, end: bytes, status: str, code: int | None, text: str, pipelining: bool
) -> None:
    """The log keeps the reason a message is uncertain, or the server's refusal, word for word."""
    with hostile_server(**(PIPELINING if pipelining else {}), END=end) as server:
        await send_to(tmp_path / "c", server.port)
    with SendLog(tmp_path / "c" / "send.sqlite3", campaign=None, write=False) as log:
        first = log.recipient("c00001")
    assert first is not None
    assert (first.status, first.reply_code, first.reply_text) == (status, code, text)


GMAIL_UNKNOWN = (
    b"550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
    b"550-5.1.1 double-checking the recipient's email address for typos or\r\n"
    b"550 5.1.1 unnecessary spaces. X\r\n"
)


@pytest.mark.parametrize(
    ("step", "reply", "code", "text"),
    [
        pytest.param(
            "RCPT",
            GMAIL_UNKNOWN,
            550,
            "5.1.1 The email account that you tried to reach does not exist. Please try\n"
            "5.1.1 double-checking the recipient's email address for typos or\n"
            "5.1.1 unnecessary spaces. X",
            id="three-lines-at-rcpt",
        ),
        pytest.param(
            "END",
            b"554-5.7.1 Message rejected\r\n554 5.7.1 caf\xe9 au lait \xff\r\n",
            554,
            "5.7.1 Message rejected\n5.7.1 caf\\xe9 au lait \\xff",
            id="not-utf-8-at-end",
        ),
    ],
)
@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
async def test_a_refusal_over_several_lines_is_one_reply_kept_whole_in_the_log(
    tmp_path: Path, step: str, reply: bytes, code: int, text: str, pipelining: bool
) -> None:
    """A refusal in several lines is one reply: the letter failed, every line logged as sent."""
    with hostile_server(**(PIPELINING if pipelining else {}), **{step: reply}) as server:
        summary, statuses, _ = await send_to(tmp_path / "c", server.port)
    assert summary.fatal is None
    assert statuses == {"c00001": "failed", "c00002": "failed"}
    with SendLog(tmp_path / "c" / "send.sqlite3", campaign=None, write=False) as log:
        first = log.recipient("c00001")
    assert first is not None
    assert (first.reply_code, first.reply_text) == (code, text)


async def test_a_login_refused_in_another_encoding_is_said_and_logged_readably(
    tmp_path: Path,
) -> None:
    r"""A refusal in Latin-1 stops the batch with its words, the odd byte shown as \xe9."""
    with hostile_server(AUTH=b"535 5.7.8 Mot de passe refus\xe9\r\n") as server:
        summary, statuses, _ = await send_to(tmp_path / "c", server.port, user="ana")
    assert summary.fatal is not None
    assert "535 5.7.8 Mot de passe refus\\xe9" in summary.fatal
    assert statuses == {"c00001": "pending", "c00002": "pending"}
    with SendLog(tmp_path / "c" / "send.sqlite3", campaign=None, write=False) as log:
        [run] = log.runs()
    assert run.ending is not None


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (b"caf\xe9", "caf\\xe9"),
        ("caf\udce9", "caf\\xe9"),  # a byte kept as a lone surrogate, as aiosmtplib keeps it
        ("half a pair \ud800", "half a pair \\ud800"),  # a surrogate that stands for no byte
        ("plain caf\u00e9 \\ and \U0001f600", "plain caf\u00e9 \\ and \U0001f600"),
    ],
)
def test_a_text_is_made_readable_whatever_it_holds(text: str | bytes, shown: str) -> None:
    """Odd bytes and lone surrogates are written as escapes; good text is left as it is."""
    assert readable(text) == shown
    assert str(OutreachError(text if isinstance(text, str) else shown)) == shown
