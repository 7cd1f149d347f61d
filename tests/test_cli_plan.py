"""outreach plan: each contact's letters sent, the next one and when, or why none, from a real log."""

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

from helpers import add_follow_ups, contacts_yaml, run_cli, write_campaign

from outreach import api
from outreach.contacts import load_contacts
from outreach.model import Status
from outreach.sendlog import SendLog
from outreach.tracking import Kind, Sighting

LOG = "plan.sqlite3"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)  # the log keeps milliseconds
ZONE = 'timezone = "America/New_York"\n'


def campaign(folder: Path, count: int = 3, *, extra: str = ZONE) -> Path:
    """Write a campaign of ``count`` contacts, the second in Bishkek, with two follow-ups."""
    contacts = contacts_yaml(count).replace(
        "    country: Country 2\n", "    country: Country 2\n    timezone: Asia/Bishkek\n"
    )
    path = write_campaign(folder, contacts=contacts)
    return add_follow_ups(path, extra=extra, reminder="We wrote on {{ sent.first }}.\n")


def record_letters(folder: Path, letters: dict[str, list[tuple[str, dt.datetime, Status]]]) -> None:
    """Write a send log in which each letter was claimed and settled at the time given."""
    moment = [NOW]
    with SendLog(
        folder / LOG, campaign="test-campaign", write=True, clock=lambda: moment[0]
    ) as log:
        log.register(load_contacts(folder / "contacts.yaml"))
        log.start_run("smtp")
        for contact_id, thread in letters.items():
            for number, (stage, at, status) in enumerate(thread):
                moment[0] = at
                log.claim(
                    contact_id, message_id=f"<{contact_id}.{number}@x.example>",
                    content_hash="0" * 64, stage=stage,
                )  # fmt: skip
                if status != Status.SENDING:
                    log.settle(
                        contact_id, status=status, outcome=status, code=250, text="ok", stage=stage
                    )
        log.end_run("complete")


def plan_json(folder: Path, *extra: str) -> dict[str, dict[str, Any]]:
    """Run 'outreach plan --json' and return each contact's record by id."""
    done = run_cli("plan", "--json", "--log", LOG, *extra, cwd=folder)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    return {record["id"]: record for record in records}


def test_before_any_send_every_contact_gets_the_first_letter_now(tmp_path: Path) -> None:
    """Without a log, each contact's next letter is the first, due now, and the totals say so."""
    campaign(tmp_path)
    done = run_cli("plan", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["ID", "SENT", "NEXT", "DUE", "(THEIR", "TIME)", "DUE", "(YOURS)"]
    assert lines[1].split()[:4] == ["c00001", "-", "first", "(due"]
    assert lines[-1] == "3 contacts; 3 letters due now (3 first); 0 later"


def test_a_follow_up_is_due_its_delay_after_the_letter_before(tmp_path: Path) -> None:
    """The reminder is due 7 days after the first letter went; last-call 3 days after that."""
    campaign(tmp_path)
    first = NOW - dt.timedelta(days=2)
    reminder = NOW - dt.timedelta(days=1)
    record_letters(
        tmp_path,
        {
            "c00001": [("first", first, Status.SENT)],
            "c00002": [("first", first, Status.SENT), ("reminder", reminder, Status.SENT)],
        },
    )
    plans = plan_json(tmp_path)
    one = plans["c00001"]
    assert [letter["stage"] for letter in one["letters"]] == ["first"]
    assert dt.datetime.fromisoformat(one["letters"][0]["sent_at"]) == first
    assert one["next"]["stage"] == "reminder"
    assert dt.datetime.fromisoformat(one["next"]["due"]) == first + dt.timedelta(days=7)
    assert one["next"]["now"] is False
    assert one["reason"] is None
    two = plans["c00002"]
    assert two["next"]["stage"] == "last-call"
    assert dt.datetime.fromisoformat(two["next"]["due"]) == reminder + dt.timedelta(days=3)
    three = plans["c00003"]
    assert three["letters"] == [
        {"stage": "first", "status": "pending", "message_id": None, "sent_at": None}
    ]
    assert three["next"]["stage"] == "first"
    assert three["next"]["now"] is True


def test_the_due_time_is_said_on_the_contact_clock_and_on_yours(tmp_path: Path) -> None:
    """The contact's timezone field wins over the campaign's; 'yours' is the user's TZ."""
    campaign(tmp_path)
    first = dt.datetime(2030, 1, 7, 12, tzinfo=dt.UTC)  # a Monday; due on 14 January
    record_letters(
        tmp_path,
        {"c00001": [("first", first, Status.SENT)], "c00002": [("first", first, Status.SENT)]},
    )
    done = run_cli("plan", "--log", LOG, cwd=tmp_path, env={"TZ": "Europe/Paris"})
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:-1]}
    assert rows["c00001"].split() == [
        "c00001", "first", "2030-01-07", "reminder",
        "2030-01-14", "07:00", "America/New_York", "2030-01-14", "13:00", "CET",
    ]  # fmt: skip
    assert rows["c00002"].split() == [
        "c00002", "first", "2030-01-07", "reminder",
        "2030-01-14", "18:00", "Asia/Bishkek", "2030-01-14", "13:00", "CET",
    ]  # fmt: skip
    record = plan_json(tmp_path)["c00002"]
    assert record["timezone"] == "Asia/Bishkek"
    assert record["next"]["due_there"] == "2030-01-14T18:00:00.000+06:00"


def test_the_window_moves_a_due_letter_to_the_contact_working_hours(tmp_path: Path) -> None:
    """With a window, a reminder due Monday 07:00 in New York is due at 09:00 there."""
    campaign(tmp_path, extra=ZONE + 'send_window = "Mon-Fri 09:00-17:00"\n')
    first = dt.datetime(2030, 1, 7, 12, tzinfo=dt.UTC)
    record_letters(tmp_path, {"c00001": [("first", first, Status.SENT)]})
    record = plan_json(tmp_path)["c00001"]
    assert record["next"]["due_there"] == "2030-01-14T09:00:00.000-05:00"


def test_each_reason_none_will_go_is_said(tmp_path: Path) -> None:
    """Replied, bounced, stopped, uncertain, failed and all stages sent are each said."""
    campaign(tmp_path, count=6)
    past = NOW - dt.timedelta(days=20)
    sent = [("first", past, Status.SENT)]
    record_letters(
        tmp_path,
        {
            "c00001": sent,
            "c00002": sent,
            "c00003": sent,
            "c00004": [*sent, ("reminder", past, Status.UNCERTAIN)],
            "c00005": [("first", past, Status.FAILED)],
            "c00006": [*sent, ("reminder", past, Status.SENT), ("last-call", past, Status.SENT)],
        },
    )
    with SendLog(tmp_path / LOG, campaign=None, write=True) as log:
        sightings = [
            Sighting(Kind.REPLIED, 1, "<r1@mission.example>", past.isoformat(), "c00001"),
            Sighting(
                Kind.BOUNCED,
                2,
                "<b2@mission.example>",
                past.isoformat(),
                "c00002",
                address="c00002@mission.example",
                status_code="5.1.1",
            ),
        ]
        log.record_track(sightings, folder="INBOX", uidvalidity=1, last_uid=2)
        log.stop(["c00003"], reason="answered by phone")
    reasons = {key: value["reason"] for key, value in plan_json(tmp_path).items()}
    assert reasons == {
        "c00001": "replied",
        "c00002": "bounced",
        "c00003": "stopped: answered by phone",
        "c00004": "waiting: letter uncertain",
        "c00005": "first letter not sent",
        "c00006": "all stages sent",
    }
    done = run_cli("plan", "--log", LOG, cwd=tmp_path)
    assert "none: stopped: answered by phone" in done.stdout
    assert done.stdout.splitlines()[-1] == (
        "6 contacts; 0 letters due now; 0 later; 6 contacts with none (1 replied, 1 bounced, "
        "1 stopped: answered by phone, 1 waiting: letter uncertain, 1 first letter not sent, "
        "1 all stages sent)"
    )


def test_an_automatic_reply_does_not_stop_the_follow_up(tmp_path: Path) -> None:
    """An out-of-office without a return date leaves the reminder due as before."""
    campaign(tmp_path, count=1)
    first = NOW - dt.timedelta(days=8)
    record_letters(tmp_path, {"c00001": [("first", first, Status.SENT)]})
    with SendLog(tmp_path / LOG, campaign=None, write=True) as log:
        auto = Sighting(Kind.AUTO_REPLIED, 1, "<a1@mission.example>", NOW.isoformat(), "c00001")
        log.record_track([auto], folder="INBOX", uidvalidity=1, last_uid=1)
    record = plan_json(tmp_path)["c00001"]
    assert record["next"]["stage"] == "reminder"
    assert record["next"]["now"] is True


def test_an_announced_return_moves_the_follow_up(tmp_path: Path) -> None:
    """An out-of-office's return date, as the tracker records it, moves the reminder after it."""
    campaign(tmp_path, count=1)
    first = NOW - dt.timedelta(days=8)
    record_letters(tmp_path, {"c00001": [("first", first, Status.SENT)]})
    back = (NOW + dt.timedelta(days=10)).date()
    with SendLog(tmp_path / LOG, campaign=None, write=True) as log:
        auto = Sighting(Kind.AUTO_REPLIED, 1, "<a1@mission.example>", NOW.isoformat(), "c00001")
        log.record_track([auto], folder="INBOX", uidvalidity=1, last_uid=1)
    # The return date read from the out-of-office, as the tracker stores it (events.back_at).
    with sqlite3.connect(tmp_path / LOG) as db:
        db.execute("UPDATE events SET back_at = ?", (back.isoformat(),))
    db.close()
    record = plan_json(tmp_path)["c00001"]
    assert record["next"]["due_there"].startswith(f"{back.isoformat()}T00:00:00")


def test_plan_reads_the_log_send_wrote(tmp_path: Path) -> None:
    """After a trial send, plan (with no --log) shows the first letter sent, the reminder next."""
    campaign(tmp_path, count=2)
    sent = run_cli("send", "--yes", cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    plans = api.plan(api.load_campaign(tmp_path / "campaign.toml"))
    assert [entry.next.stage for entry in plans] == ["reminder", "reminder"]
    assert [[letter.stage for letter in entry.sent] for entry in plans] == [["first"], ["first"]]
    done = run_cli("plan", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "2 contacts; 0 letters due now; 2 later"


def test_a_contact_zone_that_names_none_is_refused(tmp_path: Path) -> None:
    """Plan refuses a contact whose timezone field names no zone, naming the entry."""
    campaign(tmp_path, count=2)
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text(
        contacts.read_text(encoding="utf-8").replace("Asia/Bishkek", "Asia/Bishkeck"),
        encoding="utf-8",
    )
    done = run_cli("plan", cwd=tmp_path)
    assert done.returncode == 1
    assert (
        "contacts.yaml:6: contact 'c00002': field 'timezone': 'Asia/Bishkeck' is not a time "
        in (done.stderr)
    )
