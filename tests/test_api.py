"""The Python API as a script uses it: load, check, preview, prepare and run a batch, read the log."""

import asyncio
import dataclasses
import mailbox
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import contacts_yaml, write_campaign

import outreach
from outreach import api
from outreach.batch import check_reserved
from outreach.contacts import load_contacts
from outreach.transport import Connection


def test_every_api_name_is_exported_from_the_package() -> None:
    """Each name of outreach.api's __all__ is in outreach's __all__ and is the same object."""
    assert set(api.__all__) <= set(outreach.__all__)
    for name in api.__all__:
        assert getattr(outreach, name) is getattr(api, name)


def test_unknown_package_attribute_is_an_attribute_error() -> None:
    """Asking the package for a name it does not have raises AttributeError, as for any module."""
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = outreach.nothing_here  # type: ignore[attr-defined]


def test_a_script_sends_a_whole_batch_into_the_outbox_and_reads_the_log(campaign_dir: Path) -> None:
    """Load, check, prepare, look at the plan, run into the Maildir, then read every status."""
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    report = outreach.check(campaign)
    assert (report.contacts, report.rendered, report.problems) == (5, 5, [])
    events: list[outreach.Event] = []
    with outreach.prepare_send(campaign) as batch:
        assert [c.id for c in batch.plan.todo] == [f"c{n:05d}" for n in range(1, 6)]
        assert not (campaign_dir / "outbox").exists()  # nothing goes before run
        summary = batch.run(
            outreach.MaildirTransport(campaign.default_outbox), on_event=events.append
        )
    assert (summary.sent, summary.failed, summary.uncertain, summary.ok) == (5, 0, 0, True)
    assert [e.contact.id for e in events] == [f"c{n:05d}" for n in range(1, 6)]
    assert len(mailbox.Maildir(campaign.default_outbox, create=False)) == 5
    with outreach.open_log(outreach.log_to_read(campaign).path) as log:
        assert {r.status for r in log.recipients()} == {outreach.Status.SENT}
    again = outreach.send(campaign)
    assert (again.sent, again.left_out[outreach.Status.SENT], again.ok) == (0, 5, True)


def test_preview_renders_the_named_contacts_only(campaign_dir: Path) -> None:
    """Preview yields one draft per id asked for, in that order, and writes nothing."""
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    drafts = list(outreach.preview(campaign, ["c00003", "c00001"]))
    assert [d.contact.id for d in drafts] == ["c00003", "c00001"]
    assert "Dear Contact 3," in drafts[0].data.decode()
    assert not campaign.default_log.exists()


def test_a_prepared_batch_holds_the_log_until_it_is_closed(campaign_dir: Path) -> None:
    """While one batch is prepared a second cannot be, and closing it lets the next one in."""
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    with outreach.prepare_send(campaign), pytest.raises(outreach.LogLockedError):
        outreach.prepare_send(campaign)
    with outreach.prepare_send(campaign) as batch:
        assert len(batch.plan.todo) == 5


def test_live_batch_to_reserved_domains_is_refused_before_anything_is_sent(
    campaign_dir: Path,
) -> None:
    """Over SMTP, .example recipients are refused when the batch is prepared, unless allowed."""
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    with pytest.raises(outreach.ConfigError, match="reserved domains"):
        outreach.prepare_send(campaign, live=True)
    settings = outreach.smtp_settings("smtp://127.0.0.1:9")
    with pytest.raises(outreach.ConfigError, match="reserved domains"):
        outreach.send(campaign, transport=outreach.SmtpTransport(settings))
    with outreach.open_log(campaign.default_log) as log:
        assert {r.status for r in log.recipients()} == {outreach.Status.PENDING}


def test_a_batch_prepared_as_a_trial_refuses_a_live_transport(campaign_dir: Path) -> None:
    """A batch prepared for the outbox records in the trial log: it sends through no server."""
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    settings = outreach.smtp_settings("smtp://127.0.0.1:9")
    with (
        outreach.prepare_send(campaign) as batch,
        pytest.raises(outreach.ConfigError, match="prepared as a trial") as caught,
    ):
        batch.run(outreach.SmtpTransport(settings))
    assert "given a live one: prepare it with live=True." in str(caught.value)
    with outreach.open_log(batch.log_path) as log:
        assert {r.status for r in log.recipients()} == {outreach.Status.PENDING}


def test_a_template_error_stops_prepare_and_releases_the_log(tmp_path: Path) -> None:
    """A contact the letter cannot render fails prepare_send, which leaves the log unlocked."""
    folder = tmp_path / "c"
    write_campaign(folder, contacts=contacts_yaml(2), template="Dear {{ nobody_has_this }},\n")
    campaign = outreach.load_campaign(folder / "campaign.toml")
    with pytest.raises(outreach.InputError, match="nobody_has_this"):
        outreach.prepare_send(campaign)
    trial = outreach.log_to_read(campaign, trial=True).path
    outreach.SendLog(trial, campaign=campaign.name, write=True).close()


@pytest.mark.parametrize(
    ("count", "named"),
    [
        (5, "c00001, c00002, c00003, c00004, c00005"),
        (6, "c00001, c00002, c00003, c00004, c00005 ..."),
    ],
)
def test_reserved_recipients_are_named_with_the_way_out(
    campaign_dir: Path, count: int, named: str
) -> None:
    """The refusal counts the placeholder recipients, names the first five, and says what to do."""
    write_campaign(campaign_dir, contacts=contacts_yaml(count))
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    plan = outreach.Plan(todo=load_contacts(campaign.contacts))
    with pytest.raises(outreach.ConfigError) as refused:
        check_reserved(plan)
    assert str(refused.value) == (
        f"{count} recipients have placeholder addresses on reserved domains (.example, "
        f".invalid, .test, .localhost): {named}. Put real addresses in the contact list, or "
        "pass SendOptions(allow_reserved=True) to send anyway (a test server). Nothing was sent."
    )
    with pytest.raises(outreach.ConfigError, match=f"^2 problems:(.|\n)*{named}"):
        outreach.prepare_send(campaign, live=True)  # the sender is a placeholder too


def test_one_reserved_recipient_and_a_reserved_sender_are_named_in_one_error() -> None:
    """A placeholder sender and one placeholder recipient make one error listing both."""
    plan = outreach.Plan(todo=[outreach.Contact(id="x", email="x@mission.example")])
    with pytest.raises(outreach.ConfigError) as refused:
        check_reserved(plan, sender="me@sender.example")
    assert str(refused.value) == (
        "2 problems:\n"
        "  the sender me@sender.example is a placeholder on a reserved domain (.example, "
        ".invalid, .test, .localhost): no reply could reach it. Set 'from' in the campaign file "
        "or pass load_campaign(sender=...) 'Name <you@your-domain>';\n"
        "  1 recipient has placeholder addresses on reserved domains (.example, .invalid, "
        ".test, .localhost): x. Put real addresses in the contact list;\n"
        "or pass SendOptions(allow_reserved=True) to send anyway (a test server). Nothing was sent."
    )


def test_a_stop_while_waiting_for_the_rate_limiter_ends_the_batch_at_once(
    campaign_dir: Path,
) -> None:
    """Stopped after the first letter, workers waiting for their turn send nothing more."""
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    options = outreach.SendOptions(concurrency=3, rate=outreach.Rate(1, 3600.0))
    with outreach.prepare_send(campaign, options=options) as batch:

        def stop_after_the_first(event: outreach.Event) -> None:
            batch.stop()

        summary = batch.run(
            outreach.MaildirTransport(campaign.default_outbox), on_event=stop_after_the_first
        )
    assert (summary.sent, summary.interrupted) == (1, True)
    assert len(mailbox.Maildir(campaign.default_outbox, create=False)) == 1
    with outreach.open_log(batch.log_path) as log:
        assert sorted(r.status for r in log.recipients()) == ["pending"] * 4 + ["sent"]


class _OneMessageConnection:
    """A Maildir connection that asks to be reopened after each message."""

    depth = 1
    max_size = None

    def __init__(self, inner) -> None:
        self._inner = inner

    async def send(self, envelope, claimed):
        handover = (await self._inner.send(envelope, claimed)).result()
        fate = asyncio.get_running_loop().create_future()
        fate.set_result(dataclasses.replace(handover, reconnect=True))
        return fate

    async def close(self) -> None:
        await self._inner.close()


class StoppedOnReconnect:
    """The Maildir outbox, where opening a second connection stops the batch (as Ctrl-C would)."""

    def __init__(self, path: Path, stop: Callable[[], None]) -> None:
        self._inner = outreach.MaildirTransport(path)
        self._stop = stop
        self.description = self._inner.description
        self.live = self._inner.live
        self.connections = 0

    async def connect(
        self, *, login_turn: outreach.LoginTurn | None = None
    ) -> _OneMessageConnection:
        self.connections += 1
        if self.connections > 1:
            self._stop()
        return _OneMessageConnection(await self._inner.connect(login_turn=login_turn))


def test_a_stop_during_a_reconnection_sends_nothing_more_even_with_a_free_slot(
    campaign_dir: Path,
) -> None:
    """A stop that comes while a connection is reopened wins over a rate-limiter slot free at once."""
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    # allow_reserved: a transport of its own counts as live, and the addresses are .example
    options = outreach.SendOptions(rate=outreach.Rate(1_000_000, 1.0), allow_reserved=True)
    with outreach.prepare_send(campaign, options=options) as batch:
        transport = StoppedOnReconnect(campaign.default_outbox, batch.stop)
        summary = batch.run(transport)
    assert transport.connections == 2
    assert (summary.sent, summary.interrupted) == (1, True)
    assert len(mailbox.Maildir(campaign.default_outbox, create=False)) == 1


def test_a_stop_during_a_reconnection_sends_nothing_more_without_a_rate(
    campaign_dir: Path,
) -> None:
    """A stop that comes while a connection is reopened sends no one else, with no rate set either."""
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    options = outreach.SendOptions(allow_reserved=True)
    with outreach.prepare_send(campaign, options=options) as batch:
        transport = StoppedOnReconnect(campaign.default_outbox, batch.stop)
        summary = batch.run(transport)
    assert transport.connections == 2
    assert (summary.sent, summary.interrupted) == (1, True)
    assert len(mailbox.Maildir(campaign.default_outbox, create=False)) == 1


class WithoutLoginTurn:
    """A transport written to the protocol before ``login_turn``: its connect takes nothing."""

    def __init__(self, path: Path) -> None:
        self._inner = outreach.MaildirTransport(path)
        self.description = self._inner.description

    async def connect(self) -> Connection:
        return await self._inner.connect()


def test_each_transport_says_whether_it_is_live(tmp_path: Path) -> None:
    """The Maildir keeps messages on this machine; SMTP sends them to a server."""
    assert outreach.MaildirTransport(tmp_path / "outbox").live is False
    assert outreach.SmtpTransport(outreach.smtp_settings("smtp://127.0.0.1:9")).live is True


def test_a_transport_that_does_not_say_whether_it_is_live_is_taken_as_live(
    campaign_dir: Path,
) -> None:
    """A transport without ``live``, even one writing a Maildir, refuses placeholder addresses."""
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    transport = WithoutLoginTurn(campaign.default_outbox)
    refused = "placeholder addresses on reserved domains"
    with pytest.raises(outreach.ConfigError, match=refused):
        outreach.send(campaign, transport=transport)
    with (
        outreach.prepare_send(campaign) as batch,
        pytest.raises(outreach.ConfigError, match=r"prepared as a trial .* given a live one"),
    ):
        batch.run(transport)
    assert not campaign.default_outbox.exists()


def test_a_transport_whose_connect_takes_no_login_turn_still_sends(campaign_dir: Path) -> None:
    """A transport whose connect has no login_turn parameter is connected as before."""
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    options = outreach.SendOptions(allow_reserved=True, concurrency=2)
    # Saying nothing of live, it is taken as live: the batch is prepared so.
    with outreach.prepare_send(campaign, options=options, live=True) as batch:
        summary = batch.run(WithoutLoginTurn(campaign.default_outbox))
    assert (summary.sent, summary.fatal) == (5, None)


class _FullAfterOne:
    """A Maildir connection whose disk fills after one message: the next send raises."""

    depth = 1
    max_size = None

    def __init__(self, inner: Connection) -> None:
        self._inner = inner
        self.sent = 0

    async def send(self, envelope, claimed):
        if self.sent:
            await claimed  # the claim is written; the message cannot be
            msg = "outbox: no space left on device"
            raise outreach.TransportError(msg)
        self.sent += 1
        return await self._inner.send(envelope, claimed)

    async def close(self) -> None:
        await self._inner.close()


class FullAfterOne:
    """The Maildir outbox, whose one connection fails with a TransportError after a message."""

    def __init__(self, path: Path) -> None:
        self._inner = outreach.MaildirTransport(path)
        self.description = self._inner.description
        self.live = self._inner.live

    async def connect(self, *, login_turn: outreach.LoginTurn | None = None) -> _FullAfterOne:
        return _FullAfterOne(await self._inner.connect(login_turn=login_turn))


def test_a_transport_error_mid_batch_leaves_the_recipient_pending_with_its_attempt(
    campaign_dir: Path,
) -> None:
    """A send that raises after its claim stops the batch; that recipient is pending, tried once."""
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    options = outreach.SendOptions(allow_reserved=True)
    with outreach.prepare_send(campaign, options=options) as batch:
        summary = batch.run(FullAfterOne(campaign.default_outbox))
    assert summary.fatal is not None
    assert "no space left on device" in summary.fatal
    assert summary.sent == 1
    assert len(mailbox.Maildir(campaign.default_outbox, create=False)) == 1
    with outreach.open_log(batch.log_path) as log:
        rows = {r.id: (r.status, r.attempts) for r in log.recipients()}
    assert rows["c00001"] == ("sent", 1)
    assert rows["c00002"] == ("pending", 1)
    assert [rows[f"c{n:05d}"] for n in range(3, 6)] == [("pending", 0)] * 3


def test_the_api_loads_the_sinks_server_library_only_for_the_sink() -> None:
    """Importing the API leaves aiosmtpd out; SinkLogin, asked for, brings it in."""
    code = (
        "import sys\n"
        "import outreach.api\n"
        "print('aiosmtpd' in sys.modules)\n"
        "print(outreach.api.SinkLogin.parse('any'), 'aiosmtpd' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["False", "Login(user=None, password=None) True"]


def test_a_batch_prepared_live_refuses_the_outbox(campaign_dir: Path) -> None:
    """A batch prepared for a server records in the campaign's log: no Maildir letter counts there."""
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    options = outreach.SendOptions(allow_reserved=True)
    with (
        outreach.prepare_send(campaign, options=options, live=True) as batch,
        pytest.raises(outreach.ConfigError, match="given one that is not live") as caught,
    ):
        batch.run(outreach.MaildirTransport(campaign.default_outbox))
    assert "prepare it with live=False" in str(caught.value)
    assert not campaign.default_outbox.exists()
    with outreach.open_log(campaign.default_log) as log:
        assert {r.status for r in log.recipients()} == {outreach.Status.PENDING}


def test_one_log_never_holds_trial_runs_and_runs_to_a_server(campaign_dir: Path) -> None:
    """A log that recorded a trial refuses a live batch, and a live log refuses a trial."""
    campaign = outreach.load_campaign(campaign_dir / "campaign.toml")
    shared = campaign_dir / "shared.sqlite3"
    assert outreach.send(campaign, log=shared).sent == 5  # a trial into the outbox
    with pytest.raises(outreach.ConfigError, match="records trial runs into the outbox"):
        outreach.prepare_send(campaign, log=shared, live=True)
    live_log = campaign_dir / "live.sqlite3"
    options = outreach.SendOptions(allow_reserved=True, limit=1)
    with outreach.prepare_send(campaign, log=live_log, live=True, options=options) as batch:
        batch.run(WithoutLoginTurn(campaign_dir / "elsewhere"))  # taken as live
    with pytest.raises(outreach.ConfigError, match="records runs to a server"):
        outreach.prepare_send(campaign, log=live_log, live=False)


def test_the_call_a_changed_attachment_refusal_names_accepts_the_file(tmp_path: Path) -> None:
    """Made as the refusal says, the call accepts the changed file and the next send goes."""
    campaign_file = write_campaign(tmp_path, contacts=contacts_yaml(1))
    (tmp_path / "annex.txt").write_text("the annex\n", encoding="utf-8")
    campaign_file.write_text(
        campaign_file.read_text(encoding="utf-8") + 'attachments = ["annex.txt"]\n',
        encoding="utf-8",
    )
    log = tmp_path / "api.sqlite3"
    assert outreach.send(outreach.load_campaign(campaign_file), log=log).sent == 1
    (tmp_path / "annex.txt").write_text("the annex, edited\n", encoding="utf-8")
    write_campaign(tmp_path, contacts=contacts_yaml(2))  # a second contact, still to send
    campaign_file.write_text(
        campaign_file.read_text(encoding="utf-8") + 'attachments = ["annex.txt"]\n',
        encoding="utf-8",
    )
    campaign = outreach.load_campaign(campaign_file)
    with pytest.raises(outreach.InputError) as refused:
        outreach.send(campaign, log=log)
    named = (
        "outreach.note_attachments(campaign, outreach.check(campaign).attachments, by='check', "
        "log=...) with the same campaign and log"
    )
    assert f"then run {named} to accept this version" in str(refused.value)
    outreach.note_attachments(campaign, outreach.check(campaign).attachments, by="check", log=log)
    assert outreach.send(campaign, log=log).sent == 1
