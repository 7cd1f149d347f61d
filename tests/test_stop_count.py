"""What a stop counts as in flight: an answer counts until its record is on disk."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from helpers import contacts_yaml, write_campaign

from outreach import drafts
from outreach.batch import Batch, SendOptions, choose
from outreach.campaign import load_campaign
from outreach.sendlog import SendLog, Status
from outreach.transport import MaildirTransport


def test_an_answer_whose_record_waits_for_the_disk_still_counts_as_in_flight(
    tmp_path: Path,
) -> None:
    """A settle queued behind a busy send log keeps the message in flight until it is committed."""
    write_campaign(tmp_path, contacts=contacts_yaml(1))
    campaign = load_campaign(tmp_path / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    path = tmp_path / "send.sqlite3"
    with SendLog(path, campaign=campaign.name, write=True) as log:
        log.register(contacts)
        batch = Batch(drafter, log, MaildirTransport(tmp_path / "outbox"), options=SendOptions())
        recorder = batch._recorder
        recorder.start()
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the log: the settle must wait
        try:
            recorder.settle(contacts[0], Status.SENT, outcome="sent", code=250, text="ok")
            assert batch.in_flight == 1
        finally:
            other.execute("ROLLBACK")
            other.close()
        recorder.journal.close()  # commits what is queued
        assert batch.in_flight == 0
        assert log.statuses() == {contacts[0].id: Status.SENT}


async def test_a_batch_that_has_ended_leaves_nothing_in_flight(tmp_path: Path) -> None:
    """After a batch of three, every claimed message was answered and recorded: none is in flight."""
    write_campaign(tmp_path, contacts=contacts_yaml(3))
    campaign = load_campaign(tmp_path / "campaign.toml")
    drafter, contacts = drafts.load(campaign)
    with SendLog(tmp_path / "send.sqlite3", campaign=campaign.name, write=True) as log:
        log.register(contacts)
        options = SendOptions()
        batch = Batch(drafter, log, MaildirTransport(tmp_path / "outbox"), options=options)
        summary = await batch.run(choose(contacts, log.statuses(), options))
        assert (summary.sent, batch.in_flight, batch._recorder.awaiting) == (3, 0, 0)
