"""A follow-up stage goes through the same batch as the first letter: claimed, settled, once."""

import datetime as dt
import ssl
import textwrap
from collections import defaultdict
from pathlib import Path

from helpers import FAST, Clock, contacts_yaml, write_campaign
from mailserver import PASSWORD, USERNAME, Server

from outreach import drafts
from outreach.batch import Batch, SendOptions, choose
from outreach.campaign import load_campaign
from outreach.model import Campaign
from outreach.sendlog import Letter, SendLog
from outreach.threads import parse_thread_index
from outreach.transport import SmtpSettings, SmtpTransport

T0 = dt.datetime(2010, 6, 24, 13, 0, tzinfo=dt.UTC)
OPTIONS = SendOptions(max_attempts=FAST.max_attempts, backoff=FAST.backoff, allow_reserved=True)


def follow_up_campaign(folder: Path) -> Campaign:
    """Write a campaign of three contacts with one follow-up stage, 'reminder', and load it."""
    path = write_campaign(folder, contacts=contacts_yaml(3))
    (folder / "reminder.md.j2").write_text(
        "We wrote to you on {{ sent.first }} about {{ country }}.\n", encoding="utf-8"
    )
    extra = """
        [[follow_up]]
        name = "reminder"
        template = "reminder.md.j2"
        after = "7d"
        """
    path.write_text(path.read_text() + textwrap.dedent(extra), encoding="utf-8")
    return load_campaign(path)


def threads_of(letters: list[Letter]) -> dict[str, list[Letter]]:
    """Group the log's letters by contact, in the order sent."""
    threads: dict[str, list[Letter]] = defaultdict(list)
    for letter in letters:
        threads[letter.contact_id].append(letter)
    return threads


async def test_a_stage_is_claimed_and_settled_once_as_a_reply_in_the_thread(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """The reminder goes once to each contact, threaded under the first letter; a rerun sends none."""
    campaign = follow_up_campaign(tmp_path)
    drafter, contacts = drafts.load(campaign)
    settings = SmtpSettings(
        host="127.0.0.1", port=smtp_server.port, implicit_tls=False, username=USERNAME,
        password=PASSWORD,
    )  # fmt: skip
    clock = Clock(T0)
    with SendLog(tmp_path / "send.sqlite3", campaign=campaign.name, write=True, clock=clock) as log:
        log.register(contacts)
        first = choose(contacts, log.statuses(), OPTIONS)
        transport = SmtpTransport(settings, tls_context=client_tls)
        assert (await Batch(drafter, log, transport, options=OPTIONS).run(first)).sent == 3
        clock.now = T0 + dt.timedelta(days=8)
        for _ in range(2):  # the second run finds every reminder sent
            letters = log.letters()
            statuses = {le.contact_id: le.status for le in letters if le.stage == "reminder"}
            plan = choose(contacts, statuses, OPTIONS, stage="reminder")
            stage = drafter.for_stage("reminder", threads=threads_of(letters))
            summary = await Batch(stage, log, transport, options=OPTIONS).run(plan)
        letters = log.letters()
    assert summary.sent == 0
    assert summary.left_out == {"sent": 3}
    assert [(le.contact_id, le.stage, le.status) for le in letters] == [
        (c.id, stage, "sent") for c in contacts for stage in ("first", "reminder")
    ]
    received = {m.message["Message-ID"]: m.message for m in smtp_server.handler.received}
    assert len(received) == 6
    for contact_id, (letter, reminder) in threads_of(letters).items():
        assert reminder.sent_at == clock.now
        sent = received[reminder.message_id]
        assert sent["To"].addresses[0].addr_spec == f"{contact_id}@mission.example"
        assert sent["Subject"] == "Re: A test letter"
        assert sent["In-Reply-To"] == letter.message_id
        assert sent["References"] == letter.message_id
        assert sent["Thread-Topic"] == "A test letter"
        assert "We wrote to you on 24 June 2010" in sent.get_body(("plain",)).get_content()
        index = parse_thread_index(sent["Thread-Index"])
        assert index.children == 1
        assert reminder.thread_index == sent["Thread-Index"]
        assert parse_thread_index(reminder.thread_index).guid == index.guid
