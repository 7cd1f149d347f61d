"""The send batch against a real SMTP server on loopback, with faults injected at each stage."""

import dataclasses
import hashlib
import multiprocessing
import os
import signal
import sqlite3
import ssl
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import FAST, contacts_yaml, log_rows, send_batch, write_campaign
from mailserver import PASSWORD, USERNAME, RecordingHandler, Server, free_port

from outreach import drafts
from outreach.batch import LIMITED, Batch, SendOptions, choose
from outreach.campaign import load_campaign
from outreach.errors import LoginRefusedForNowError, SendLogError, TransportError
from outreach.model import RefusedCc
from outreach.ratelimit import Rate
from outreach.sendlog import SendLog, Status
from outreach.transport import Outcome, SmtpSettings, SmtpTransport
from outreach.transport.transaction import _stuffed


async def test_each_contact_gets_one_message_over_tls_with_login(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """Five contacts get one message each, over STARTTLS after AUTH, all logged as sent."""
    summary = await send_batch(campaign_dir, smtp_server, client_tls)
    assert (summary.sent, summary.failed, summary.uncertain, summary.ok) == (5, 0, 0, True)
    received = smtp_server.handler.by_recipient()
    assert sorted(received) == [f"c{n:05d}@mission.example" for n in range(1, 6)]
    assert all(len(copies) == 1 for copies in received.values())
    assert all(r.tls and r.user == USERNAME for r in smtp_server.handler.received)
    with SendLog(campaign_dir / "send.sqlite3", campaign=None, write=False) as log:
        rows = log.recipients()
        by_id = {r.email: r for r in rows}
        for record in smtp_server.handler.received:
            row = by_id[record.rcpt_tos[0]]
            assert row.status == Status.SENT
            assert row.reply == "250 Message accepted"
            assert row.message_id == record.message["Message-ID"]


async def test_connections_are_reused_for_many_messages(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """Two workers send five messages over two logins, not five."""
    options = SendOptions(concurrency=2, backoff=0.01)
    summary = await send_batch(campaign_dir, smtp_server, client_tls, options=options)
    assert summary.sent == 5
    assert smtp_server.handler.commands.count("MAIL") == 5
    assert smtp_server.handler.logins == 2


@pytest.mark.parametrize(
    ("fault", "status", "attempts", "copies"),
    [
        pytest.param(
            lambda f: f.mail.append("451 4.3.0 try later"), "sent", 2, 1, id="451-at-mail"
        ),
        pytest.param(lambda f: f.mail.append("550 5.7.1 no"), "failed", 1, 0, id="550-at-mail"),
        pytest.param(lambda f: f.mail.append("421 4.3.2 closing"), "sent", 2, 1, id="421-at-mail"),
        pytest.param(
            lambda f: f.rcpt.update({"c00001@mission.example": ["450 4.2.1 busy"]}),
            "sent",
            2,
            1,
            id="450-at-rcpt",
        ),
        pytest.param(
            lambda f: f.rcpt.update({"c00001@mission.example": ["550 5.1.1 no such user"]}),
            "failed",
            1,
            0,
            id="550-at-rcpt",
        ),
        pytest.param(
            lambda f: f.data.update({"c00001@mission.example": ["452 4.3.1 full"]}),
            "sent",
            2,
            1,
            id="452-at-data",
        ),
        pytest.param(
            lambda f: f.data.update({"c00001@mission.example": ["554 5.6.0 rejected"]}),
            "failed",
            1,
            0,
            id="554-at-data",
        ),
        pytest.param(
            lambda f: f.data.update({"c00001@mission.example": ["421 4.4.2 bye"]}),
            "sent",
            2,
            1,
            id="421-at-data",
        ),
        pytest.param(
            lambda f: f.drop_at_data.update({"c00001@mission.example": 1}),
            "sent",
            2,
            1,
            id="dropped-before-end-of-data",
        ),
        pytest.param(
            lambda f: f.drop_after_data.update({"c00001@mission.example": 1}),
            "uncertain",
            1,
            1,
            id="dropped-after-end-of-data",
        ),
        pytest.param(
            # Keyed by recipient: MAIL faults go by position, and with PIPELINING the next
            # recipient's MAIL may come between two attempts.
            lambda f: f.rcpt.update({"c00001@mission.example": ["451 a", "451 b", "451 c"]}),
            "failed",
            3,
            0,
            id="transient-until-attempts-run-out",
        ),
    ],
)
async def test_failures_are_classified_and_the_batch_goes_on(
    campaign_dir: Path,
    smtp_server: Server,
    client_tls: ssl.SSLContext,
    fault: Callable[..., object],
    status: str,
    attempts: int,
    copies: int,
) -> None:
    """A fault on the first recipient ends in the right status; the other four are sent."""
    fault(smtp_server.handler.faults)
    await send_batch(campaign_dir, smtp_server, client_tls)
    rows = log_rows(campaign_dir)
    assert rows["c00001"][:2] == (status, attempts)
    assert all(rows[f"c{n:05d}"][0] == "sent" for n in range(2, 6))
    received = smtp_server.handler.by_recipient()
    assert len(received.get("c00001@mission.example", [])) == copies
    assert all(len(received[f"c{n:05d}@mission.example"]) == 1 for n in range(2, 6))


async def test_a_server_that_stops_answering_after_data_leaves_it_uncertain(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """No answer to the end of DATA within the timeout marks each such recipient uncertain, not resent."""
    smtp_server.handler.faults.hang_after_data.update(
        {"c00001@mission.example", "c00003@mission.example"}
    )
    summary = await send_batch(campaign_dir, smtp_server, client_tls, timeout=0.5)
    assert summary.uncertain == 2
    assert summary.sent == 3
    rows = log_rows(campaign_dir)
    assert rows["c00001"][:2] == ("uncertain", 1)
    assert rows["c00003"][0] == "uncertain"


async def test_one_refused_cc_is_recorded_and_the_message_still_goes(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """A Cc refused at RCPT is recorded while the main recipient and the other Cc get the letter."""
    folder = tmp_path / "c"
    write_campaign(
        folder,
        contacts=textwrap.dedent(
            """\
            contacts:
              - id: one
                email: one@mission.example
                name: One
                country: Oneland
                cc: [deputy@mission.example, gone@mission.example]
            """
        ),
    )
    smtp_server.handler.faults.rcpt["gone@mission.example"] = ["550 5.1.1 no such user"]
    summary = await send_batch(folder, smtp_server, client_tls)
    assert summary.sent == 1
    (record,) = smtp_server.handler.received
    assert record.rcpt_tos == ["one@mission.example", "deputy@mission.example"]
    with SendLog(folder / "send.sqlite3", campaign=None, write=False) as log:
        row = log.recipient("one")
    assert row is not None
    assert row.refused == "gone@mission.example: 550 5.1.1 no such user"


async def test_every_refused_cc_is_in_the_summary_with_its_contact_and_in_the_log(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """Two Ccs refused, for good and for now: the summary names each with its contact; the log keeps both."""
    folder = tmp_path / "c"
    write_campaign(
        folder,
        contacts=textwrap.dedent(
            """\
            contacts:
              - id: one
                email: one@mission.example
                name: One
                country: Oneland
                cc: [gone@mission.example, deputy@mission.example, away@mission.example]
            """
        ),
    )
    smtp_server.handler.faults.rcpt["gone@mission.example"] = ["550 5.1.1 no such user"]
    smtp_server.handler.faults.rcpt["away@mission.example"] = ["451 4.2.0 try later"]
    summary = await send_batch(folder, smtp_server, client_tls)
    assert summary.sent == 1
    assert summary.refused_cc == [
        RefusedCc("one", "gone@mission.example", "550 5.1.1 no such user"),
        RefusedCc("one", "away@mission.example", "451 4.2.0 try later"),
    ]
    with SendLog(folder / "send.sqlite3", campaign=None, write=False) as log:
        row = log.recipient("one")
    assert row is not None
    assert row.refused == (
        "gone@mission.example: 550 5.1.1 no such user; "
        "away@mission.example: refused for now (451 4.2.0 try later)"
    )


async def test_a_batch_without_a_sent_folder_keeps_no_copy_in_the_log(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """Without --save-sent the send log keeps no letter's bytes: there is no copy to save later."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(2))
    summary = await send_batch(folder, smtp_server, client_tls)
    assert summary.sent == 2
    with SendLog(folder / "send.sqlite3", campaign=None, write=False) as log:
        assert log.count_unsaved_copies() == 0
        assert [log.copies(c) for c in ("c00001", "c00002")] == [[], []]


async def test_each_recipient_refused_for_good_is_counted_failed(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """Two recipients refused with 550 are both failed, in the summary and in the log."""
    for address in ("c00002@mission.example", "c00004@mission.example"):
        smtp_server.handler.faults.rcpt[address] = ["550 5.1.1 no such user"]
    summary = await send_batch(campaign_dir, smtp_server, client_tls)
    assert (summary.sent, summary.failed, summary.ok) == (3, 2, False)
    rows = log_rows(campaign_dir)
    assert [rows[f"c{n:05d}"][0] for n in range(1, 6)] == [
        "sent", "failed", "sent", "failed", "sent",
    ]  # fmt: skip


async def test_the_log_says_why_each_failed_and_how_each_attempt_ended(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """A refusal for good keeps the server's words; one for now, retried until given up, says so."""
    faults = smtp_server.handler.faults
    faults.rcpt["c00002@mission.example"] = ["550 5.1.1 no such user"]
    faults.rcpt["c00004@mission.example"] = ["451 4.3.0 try again later"] * 3
    summary = await send_batch(campaign_dir, smtp_server, client_tls)
    assert (summary.sent, summary.failed) == (3, 2)
    with SendLog(campaign_dir / "send.sqlite3", campaign=None, write=False) as log:
        gone, later = log.recipient("c00002"), log.recipient("c00004")
        outcomes = {c: [a.outcome for a in log.history(c)] for c in ("c00001", "c00002", "c00004")}
    assert gone is not None
    assert later is not None
    assert (gone.reply_code, gone.reply_text) == (550, "5.1.1 no such user")
    given_up = "4.3.0 try again later (gave up after 3 attempts in this run)"
    assert (later.reply_code, later.reply_text) == (451, given_up)
    assert outcomes == {
        "c00001": ["sent"],
        "c00002": ["permanent"],
        "c00004": ["transient"] * 3,
    }


async def test_a_summary_counts_the_sent_and_the_left_out_among_the_selected(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """With a limit of 2 out of 5, the summary selects 5: 2 sent and 3 left for a later run."""
    options = dataclasses.replace(FAST, limit=2)
    summary = await send_batch(campaign_dir, smtp_server, client_tls, options=options)
    assert (summary.selected, summary.sent, dict(summary.left_out)) == (5, 2, {LIMITED: 3})
    assert (summary.not_sent, summary.ok) == (0, True)


class SettleFails(SendLog):
    """A send log that cannot write the settles of two recipients (a full disk)."""

    def settle(self, contact_id: str, /, **outcome: Any) -> None:
        """Fail for c00002 and c00004, as SQLite does when the disk is full."""
        if contact_id in {"c00002", "c00004"}:
            msg = f"{self.path}: cannot write {contact_id}'s settle: database or disk is full"
            raise SendLogError(msg)
        super().settle(contact_id, **outcome)


async def test_a_settle_that_cannot_be_written_stops_the_batch_with_the_first_error(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """Two settles fail to write: the batch ends stopped with the first one's error, and those letters stay claimed."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(5))
    campaign = load_campaign(folder / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    settings = SmtpSettings(
        host="127.0.0.1", port=smtp_server.port, implicit_tls=False, username=USERNAME,
        password=PASSWORD,
    )  # fmt: skip
    transport = SmtpTransport(settings, tls_context=client_tls)
    with SettleFails(folder / "send.sqlite3", campaign=campaign.name, write=True) as log:
        log.register(contacts)
        plan = choose(contacts, log.statuses(), FAST)
        summary = await Batch(drafter, log, transport, options=FAST).run(plan)
    assert isinstance(summary.error, SendLogError)
    assert "cannot write c00002's settle: database or disk is full" in str(summary.error)
    assert not summary.ok
    rows = log_rows(folder)
    assert (rows["c00002"][0], rows["c00004"][0]) == ("sending", "sending")
    with sqlite3.connect(folder / "send.sqlite3") as db:
        (ending,) = db.execute("SELECT outcome FROM runs").fetchone()
    assert ending.startswith("stopped: ")
    assert "c00002's settle" in ending


class DiskFullAt(SendLog):
    """A send log whose disk fills up when one recipient is claimed."""

    full_at = "c00003"
    failed_at: float | None = None

    def claim(self, contact_id: str, /, **letter: Any) -> int:
        """Fail for ``full_at``, as SQLite does when the disk is full."""
        if contact_id == self.full_at:
            self.failed_at = time.monotonic()
            msg = f"{self.path}: cannot write to the send log: database or disk is full"
            raise SendLogError(msg)
        return super().claim(contact_id, **letter)


class CommitFailsAt(SendLog):
    """A send log whose COMMIT fails for the transaction holding one recipient's claim.

    The claim's statements succeed; a row that breaks a deferred foreign key makes SQLite
    refuse the COMMIT itself, as it would refuse one that cannot reach the disk.
    """

    fails_at = "c00003"

    def claim(self, contact_id: str, /, **letter: Any) -> int:
        """Claim, and for ``fails_at`` leave the transaction unable to commit."""
        number = super().claim(contact_id, **letter)
        if contact_id == self.fails_at:
            self._db.execute("PRAGMA defer_foreign_keys = ON")
            self._db.execute(
                "INSERT INTO attempts (contact_id, run_id, number, started_at, message_id, "
                "content_hash) VALUES ('no-such-contact', -1, 1, '', '', '')"
            )
        return number


async def test_a_message_whose_claim_cannot_be_written_is_not_sent(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """The envelope goes ahead of the claim, but the message waits for it: unrecorded, unsent."""
    campaign = load_campaign(campaign_dir / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    settings = SmtpSettings(
        host="127.0.0.1", port=smtp_server.port, implicit_tls=False, username=USERNAME,
        password=PASSWORD,
    )  # fmt: skip
    with DiskFullAt(campaign_dir / "send.sqlite3", campaign=campaign.name, write=True) as log:
        log.register(contacts)
        plan = choose(contacts, log.statuses(), FAST)
        transport = SmtpTransport(settings, tls_context=client_tls)
        summary = await Batch(drafter, log, transport, options=FAST).run(plan)
    assert summary.fatal is not None
    assert "disk is full" in summary.fatal
    assert summary.sent == 2
    assert sorted(smtp_server.handler.by_recipient()) == [
        "c00001@mission.example",
        "c00002@mission.example",
    ]
    # The third envelope went out, ahead of its claim; its message never did.
    assert smtp_server.handler.commands == ["MAIL", "RCPT", "DATA-END"] * 2 + ["MAIL", "RCPT"]
    rows = log_rows(campaign_dir)
    assert [rows[f"c{n:05d}"][:2] for n in range(1, 4)] == [
        ("sent", 1), ("sent", 1), ("pending", 0),
    ]  # fmt: skip
    # With PIPELINING the next two may have been claimed, their envelopes queued behind the
    # third's data, which never went: attempts that handed nothing over. Without it, none.
    most = 1 if smtp_server.handler.pipelining else 0
    for later in ("c00004", "c00005"):
        status, attempts = rows[later][:2]
        assert status == "pending"
        assert attempts <= most


async def test_a_claim_whose_commit_fails_is_not_handed_over_and_stays_pending(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """A COMMIT that fails after the claim's statements succeeded sends nothing; a rerun sends it once."""
    campaign = load_campaign(campaign_dir / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    settings = SmtpSettings(
        host="127.0.0.1", port=smtp_server.port, implicit_tls=False, username=USERNAME,
        password=PASSWORD,
    )  # fmt: skip
    with CommitFailsAt(campaign_dir / "send.sqlite3", campaign=campaign.name, write=True) as log:
        log.register(contacts)
        plan = choose(contacts, log.statuses(), FAST)
        transport = SmtpTransport(settings, tls_context=client_tls)
        summary = await Batch(drafter, log, transport, options=FAST).run(plan)
    assert "c00003@mission.example" not in smtp_server.handler.by_recipient()
    assert log_rows(campaign_dir)["c00003"][:2] == ("pending", 0)
    assert summary.fatal is not None
    assert "FOREIGN KEY constraint failed" in summary.fatal
    again = await send_batch(campaign_dir, smtp_server, client_tls)
    assert again.ok
    copies = smtp_server.handler.by_recipient()
    assert sorted(copies) == [f"c{n:05d}@mission.example" for n in range(1, 6)]
    assert all(len(c) == 1 for c in copies.values())


async def test_a_failed_claim_hangs_up_at_once(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """After a claim fails, the batch ends well within one reply timeout: it waits on no reply."""
    campaign = load_campaign(campaign_dir / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    timeout = 10.0
    settings = SmtpSettings(
        host="127.0.0.1", port=smtp_server.port, implicit_tls=False, username=USERNAME,
        password=PASSWORD, timeout=timeout,
    )  # fmt: skip
    with DiskFullAt(campaign_dir / "send.sqlite3", campaign=campaign.name, write=True) as log:
        log.register(contacts)
        plan = choose(contacts, log.statuses(), FAST)
        transport = SmtpTransport(settings, tls_context=client_tls)
        summary = await Batch(drafter, log, transport, options=FAST).run(plan)
    ended = time.monotonic()
    assert summary.fatal is not None
    assert log.failed_at is not None
    # Left open, the connection would wait a whole timeout for an answer to QUIT sent as data.
    assert ended - log.failed_at < timeout / 2


async def test_the_error_that_stopped_a_batch_comes_with_its_summary(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """A stopped batch's summary holds the error itself, for callers to sort."""
    summary = await send_batch(campaign_dir, smtp_server, client_tls, password="wrong")
    assert isinstance(summary.error, TransportError)
    assert not isinstance(summary.error, LoginRefusedForNowError)  # refused for good: a 535


async def test_wrong_password_stops_the_batch_and_sends_nothing(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """A refused login is fatal: nothing is sent and every recipient stays pending."""
    summary = await send_batch(campaign_dir, smtp_server, client_tls, password="wrong")
    assert summary.fatal is not None
    assert "the server refused the login (535" in summary.fatal
    assert summary.ok is False
    assert smtp_server.handler.received == []
    assert {row[0] for row in log_rows(campaign_dir).values()} == {"pending"}


async def test_untrusted_certificate_stops_the_batch(
    campaign_dir: Path, smtp_server: Server
) -> None:
    """A server certificate that the system does not trust is fatal and names the fix."""
    summary = await send_batch(campaign_dir, smtp_server, None)
    assert summary.fatal is not None
    assert "TLS certificate is not trusted" in summary.fatal
    assert "SSL_CERT_FILE" in summary.fatal
    assert smtp_server.handler.received == []


async def test_unreachable_server_stops_the_batch(
    campaign_dir: Path, client_tls: ssl.SSLContext
) -> None:
    """No server listening is fatal with a clear message, and nothing is marked sent."""
    nobody = Server(handler=RecordingHandler(), controller=None, port=free_port())
    summary = await send_batch(campaign_dir, nobody, client_tls)
    assert summary.fatal is not None
    assert f"nothing answers on 127.0.0.1 port {nobody.port} (connection refused)" in summary.fatal
    assert {row[0] for row in log_rows(campaign_dir).values()} == {"pending"}


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_implicit_tls_on_smtps(
    campaign_dir: Path,
    make_server: Callable[..., Server],
    client_tls: ssl.SSLContext,
) -> None:
    """smtps:// sends over TLS from the first byte."""
    server = make_server(implicit_tls=True)
    summary = await send_batch(campaign_dir, server, client_tls, implicit_tls=True)
    assert summary.sent == 5
    assert all(r.tls for r in server.handler.received)


@pytest.mark.parametrize("implicit_tls", [False, True], ids=["starttls", "smtps"])
async def test_without_a_login_the_client_greets_over_tls_before_mail(
    campaign_dir: Path,
    make_server: Callable[..., Server],
    client_tls: ssl.SSLContext,
    implicit_tls: bool,
) -> None:
    """A server that needs no login still hears EHLO over TLS (RFC 3207 4.2) before MAIL."""
    server = make_server(auth=False, implicit_tls=implicit_tls)
    summary = await send_batch(
        campaign_dir, server, client_tls, implicit_tls=implicit_tls, username=None
    )
    assert (summary.sent, summary.failed, summary.ok) == (5, 0, True)
    assert all(r.tls and r.user is None for r in server.handler.received)


async def test_resume_sends_only_to_those_not_yet_sent(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """A batch cut short by --limit, run again, sends to the rest and to nobody twice."""
    first = await send_batch(
        campaign_dir, smtp_server, client_tls, options=SendOptions(limit=2, backoff=0.01)
    )
    assert (first.sent, first.left_out[LIMITED]) == (2, 3)
    second = await send_batch(campaign_dir, smtp_server, client_tls)
    assert (second.sent, second.left_out[Status.SENT]) == (3, 2)
    received = smtp_server.handler.by_recipient()
    assert len(received) == 5
    assert all(len(copies) == 1 for copies in received.values())


async def test_editing_the_letter_between_runs_does_not_resend(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """After every recipient is sent, a changed template sends nothing more."""
    await send_batch(campaign_dir, smtp_server, client_tls)
    (campaign_dir / "letter.md.j2").write_text("Dear {{ name }}, a new letter.\n", "utf-8")
    again = await send_batch(campaign_dir, smtp_server, client_tls)
    assert again.sent == 0
    assert again.ok is True
    assert len(smtp_server.handler.received) == 5


async def test_failed_recipients_are_retried_only_when_asked(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """A failed recipient is left alone by a plain rerun and sent by --retry-failed."""
    smtp_server.handler.faults.rcpt["c00002@mission.example"] = ["550 5.1.1 not today"]
    await send_batch(campaign_dir, smtp_server, client_tls)
    plain = await send_batch(campaign_dir, smtp_server, client_tls)
    assert (plain.sent, plain.left_out[Status.FAILED], plain.ok) == (0, 1, False)
    retry = await send_batch(
        campaign_dir, smtp_server, client_tls, options=SendOptions(retry_failed=True)
    )
    assert (retry.sent, retry.ok) == (1, True)
    assert log_rows(campaign_dir)["c00002"][:2] == ("sent", 2)


async def test_uncertain_recipients_are_resent_only_when_asked(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """An uncertain recipient is not resent by a rerun, and is by --resend-uncertain."""
    smtp_server.handler.faults.drop_after_data["c00003@mission.example"] = 1
    await send_batch(campaign_dir, smtp_server, client_tls)
    plain = await send_batch(campaign_dir, smtp_server, client_tls)
    assert (plain.sent, plain.left_out[Status.UNCERTAIN]) == (0, 1)
    assert len(smtp_server.handler.by_recipient()["c00003@mission.example"]) == 1
    resend = await send_batch(
        campaign_dir, smtp_server, client_tls, options=SendOptions(resend_uncertain=True)
    )
    assert resend.sent == 1
    copies = smtp_server.handler.by_recipient()["c00003@mission.example"]
    assert len(copies) == 2
    # The resent copy keeps its Message-ID, so that the recipient's client can merge the two.
    assert copies[0].message["Message-ID"] == copies[1].message["Message-ID"]


async def test_rate_is_never_exceeded_in_any_window(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """At 5/s over 12 messages, no one-second window at the server holds more than 5."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(12))
    options = SendOptions(concurrency=3, rate=Rate(5, 1.0))
    summary = await send_batch(folder, smtp_server, client_tls, options=options)
    assert summary.sent == 12
    times = sorted(r.at for r in smtp_server.handler.received)
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t - start < 1.0) <= 5


async def test_lines_starting_with_a_dot_arrive_intact(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """A body line that begins with a period is dot-stuffed on the wire and arrives unchanged."""
    folder = tmp_path / "c"
    template = "Dear {{ name }},\n\n.A line that starts with a dot\n\n..and two.\n"
    write_campaign(folder, contacts=contacts_yaml(1), template=template)
    summary = await send_batch(folder, smtp_server, client_tls)
    assert summary.sent == 1
    (record,) = smtp_server.handler.received
    body = record.message.get_body(("plain",))
    assert body is not None
    text = body.get_content().replace("\r\n", "\n")
    assert "\n.A line that starts with a dot\n\n..and two.\n" in text


@pytest.mark.parametrize(
    "data",
    [
        b".first\r\nplain\r\n.\r\n.\r\n..two\r\n",
        b"no line end at the end",
        b"a\r\n.\r\n",
        b".",
        b"line\r\n\r\n.\r\n.\r\n.\r\n",
    ],
)
def test_dot_stuffing_doubles_every_leading_dot_and_ends_the_data(data: bytes) -> None:
    """Each line that starts with a dot gets a second one, and the data ends with CRLF.CRLF."""
    lines = data.removesuffix(b"\r\n").split(b"\r\n")
    stuffed = [b"." + line if line.startswith(b".") else line for line in lines]
    assert _stuffed(data) == b"".join(line + b"\r\n" for line in stuffed) + b".\r\n"


async def test_rendering_in_another_process_sends_the_same_letters(
    campaign_dir: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """With rendering in a process of its own, each contact gets its own letter, once, in order."""
    options = SendOptions(concurrency=1, parallel_render=True, backoff=0.01)
    summary = await send_batch(campaign_dir, smtp_server, client_tls, options=options)
    assert summary.sent == 5
    received = smtp_server.handler.received
    assert [r.rcpt_tos[0] for r in received] == [f"c{n:05d}@mission.example" for n in range(1, 6)]
    for number, record in enumerate(received, start=1):
        body = record.message.get_body(("plain",))
        assert body is not None
        assert f"Dear Contact {number}," in body.get_content()
    with SendLog(campaign_dir / "send.sqlite3", campaign=None, write=False) as log:
        hashes = {r.email: r.content_hash for r in log.recipients()}
    for record in received:
        assert hashes[record.rcpt_tos[0]] == hashlib.sha256(record.data).hexdigest()


async def test_a_batch_stopped_while_drafts_render_apart_leaves_no_callback_error(
    tmp_path: Path,
    smtp_server: Server,
    client_tls: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A wrong password stops a batch whose chunks still render apart; no chunk's callback fails."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(300))  # five chunks, four rendered ahead
    options = dataclasses.replace(FAST, parallel_render=True, concurrency=2)
    summary = await send_batch(
        folder, smtp_server, client_tls, options=options, password=PASSWORD + "-wrong"
    )
    assert summary.fatal is not None
    assert "refused the login" in summary.fatal
    assert smtp_server.handler.received == []
    errors = [r for r in caplog.records if r.name == "concurrent.futures"]
    assert errors == [], [r.getMessage() for r in errors]


async def test_a_batch_rendered_apart_sends_its_first_drafts_rendered_here_and_the_rest_each_once(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """The first eighth is rendered while the rendering process starts: 200 letters, each once, each its own."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(200))
    options = dataclasses.replace(FAST, parallel_render=True, concurrency=2)
    summary = await send_batch(folder, smtp_server, client_tls, options=options)
    assert (summary.sent, summary.fatal) == (200, None)
    by_recipient = smtp_server.handler.by_recipient()
    assert sorted(by_recipient) == [f"c{n:05d}@mission.example" for n in range(1, 201)]
    with SendLog(folder / "send.sqlite3", campaign=None, write=False) as log:
        hashes = {r.email: r.content_hash for r in log.recipients()}
    for address, copies in by_recipient.items():
        assert len(copies) == 1
        body = copies[0].message.get_body(("plain",))
        assert body is not None
        assert f"Dear Contact {int(address[1:6])}," in body.get_content()
        assert hashes[address] == hashlib.sha256(copies[0].data).hexdigest()


async def test_a_resend_rendered_apart_keeps_each_letters_message_id(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """Resent in a batch rendered partly here and partly apart, each letter keeps its Message-ID."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(16))  # an eighth, two, rendered here
    addresses = [f"c{n:05d}@mission.example" for n in range(1, 17)]
    for address in addresses:
        smtp_server.handler.faults.drop_after_data[address] = 1
    # Each hang-up also takes the envelope that followed the data: enough tries for each.
    await send_batch(
        folder, smtp_server, client_tls, options=dataclasses.replace(FAST, max_attempts=20)
    )
    assert {row[0] for row in log_rows(folder).values()} == {"uncertain"}
    options = dataclasses.replace(FAST, parallel_render=True, resend_uncertain=True)
    resend = await send_batch(folder, smtp_server, client_tls, options=options)
    assert (resend.sent, resend.fatal) == (16, None)
    by_recipient = smtp_server.handler.by_recipient()
    for address in addresses:
        first, again = by_recipient[address]
        assert first.message["Message-ID"] == again.message["Message-ID"], address


async def test_each_attempt_is_reported_with_its_number_up_to_the_last(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """Refused for now twice and sent at the third and last try: attempts 1, 2 and 3."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(2))
    smtp_server.handler.faults.rcpt["c00002@mission.example"] = ["451 4.2.0 try later"] * 2
    events: list[tuple[str, Status, int]] = []
    summary = await send_batch(
        folder,
        smtp_server,
        client_tls,
        on_event=lambda e: events.append((e.contact.id, e.status, e.attempt)),
    )
    assert summary.sent == 2
    assert sorted(events) == [
        ("c00001", Status.SENT, 1),
        ("c00002", Status.PENDING, 1),
        ("c00002", Status.PENDING, 2),
        ("c00002", Status.SENT, 3),
    ]


async def test_each_letter_goes_with_its_contacts_own_return_path(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """With return_path = "bounces+{id}@...", MAIL FROM names each letter's own contact."""
    folder = tmp_path / "c"
    campaign_file = write_campaign(folder, contacts=contacts_yaml(2))
    text = campaign_file.read_text("utf-8")
    campaign_file.write_text(text + 'return_path = "bounces+{id}@outreach.example"\n', "utf-8")
    summary = await send_batch(folder, smtp_server, client_tls)
    assert summary.sent == 2
    assert sorted((r.rcpt_tos[0], r.mail_from) for r in smtp_server.handler.received) == [
        ("c00001@mission.example", "bounces+c00001@outreach.example"),
        ("c00002@mission.example", "bounces+c00002@outreach.example"),
    ]


async def test_a_letter_over_the_servers_size_is_failed_unsent(
    tmp_path: Path, make_server: Callable[..., Server], client_tls: ssl.SSLContext
) -> None:
    """Without attachments no size check runs first: each letter over SIZE fails, unsent, saying why."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(2))
    server = make_server(size_limit=500)
    outcomes: list[Outcome] = []
    summary = await send_batch(
        folder, server, client_tls, on_event=lambda e: outcomes.append(e.handover.outcome)
    )
    assert (summary.sent, summary.failed, summary.fatal) == (0, 2, None)
    assert outcomes == [Outcome.PERMANENT, Outcome.PERMANENT]
    assert server.handler.received == []
    with SendLog(folder / "send.sqlite3", campaign=None, write=False) as log:
        rows = [(r.status, r.attempts, r.reply_text) for r in log.recipients()]
    assert len(rows) == 2
    for status, attempts, text in rows:
        assert (status, attempts) == ("failed", 0)  # nothing was handed over
        assert text is not None
        assert text.startswith("not sent: the message is ")
        assert text.endswith(" bytes, over the 500 the server accepts (its SIZE)")


async def test_a_rendering_process_that_dies_stops_the_batch_saying_why(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """The process rendering the letters killed after the first letter: the batch stops, saying so."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(300))  # most rendered in the other process
    killed: list[int] = []

    def kill_the_renderer(_: object) -> None:
        if not killed:
            for child in multiprocessing.active_children():
                os.kill(child.pid, signal.SIGKILL)
                killed.append(child.pid)

    options = dataclasses.replace(FAST, parallel_render=True, concurrency=1)
    summary = await send_batch(
        folder, smtp_server, client_tls, options=options, on_event=kill_the_renderer
    )
    assert killed
    assert summary.fatal is not None
    assert summary.fatal.startswith("rendering the drafts failed: ")
    assert summary.sent < 300
    assert summary.sent + summary.not_sent == 300
