"""A contact's letters are one thread to a real mail indexer: notmuch, which threads by headers."""

import datetime as dt
import json
import os
import subprocess
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest
from helpers import IMAP_USER, Clock, contacts_yaml, need_program, write_campaign

from outreach import drafts
from outreach.batch import Batch, SendOptions, choose
from outreach.campaign import load_campaign
from outreach.model import Campaign
from outreach.sendlog import Letter, SendLog
from outreach.transport import MaildirTransport

T0 = dt.datetime(2010, 6, 24, 13, 0, tzinfo=dt.UTC)
OPTIONS = SendOptions(max_attempts=1, backoff=0.01, allow_reserved=True)
STAGES = ("reminder", "last-call")


def two_stage_campaign(folder: Path) -> Campaign:
    """Two contacts, a reminder after 7 days, and a last call with a subject of its own."""
    path = write_campaign(folder, contacts=contacts_yaml(2))
    (folder / "reminder.md.j2").write_text(
        "We wrote to you on {{ sent.first }} about {{ country }}.\n", encoding="utf-8"
    )
    (folder / "last-call.md.j2").write_text(
        "The Council meets on Thursday; we wrote on {{ sent.reminder }}.\n", encoding="utf-8"
    )
    extra = """
        [[follow_up]]
        name = "reminder"
        template = "reminder.md.j2"
        after = "7d"

        [[follow_up]]
        name = "last-call"
        template = "last-call.md.j2"
        after = "7d"
        subject = "The Council meets on Thursday"
        quote = true
        """
    path.write_text(path.read_text() + textwrap.dedent(extra), encoding="utf-8")
    return load_campaign(path)


def threads_of(letters: list[Letter]) -> dict[str, list[Letter]]:
    """Group the log's letters by contact, in the order sent."""
    threads: dict[str, list[Letter]] = defaultdict(list)
    for letter in letters:
        threads[letter.contact_id].append(letter)
    return threads


async def send_the_thread(folder: Path, outbox: Path) -> list[Letter]:
    """Send the first letter, then each follow-up a week apart, into the Maildir ``outbox``."""
    campaign = two_stage_campaign(folder)
    drafter, contacts = drafts.load(campaign)
    clock = Clock(T0)
    transport = MaildirTransport(outbox)
    with SendLog(folder / "send.sqlite3", campaign=campaign.name, write=True, clock=clock) as log:
        log.register(contacts)
        plan = choose(contacts, log.statuses(), OPTIONS)
        assert (await Batch(drafter, log, transport, options=OPTIONS).run(plan)).sent == 2
        for stage in STAGES:
            clock.now += dt.timedelta(days=8)
            letters = log.letters()
            statuses = {le.contact_id: le.status for le in letters if le.stage == stage}
            plan = choose(contacts, statuses, OPTIONS, stage=stage)
            staged = drafter.for_stage(stage, threads=threads_of(letters))
            assert (await Batch(staged, log, transport, options=OPTIONS).run(plan)).sent == 2
        return log.letters()


def notmuch(home: Path, *args: str) -> str:
    """Run the notmuch command line with the configuration in ``home``; return its output."""
    program = need_program("notmuch", package="notmuch")
    env = {**os.environ, "HOME": str(home), "NOTMUCH_CONFIG": str(home / "notmuch-config")}
    done = subprocess.run(
        [program, *args], env=env, capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def index(home: Path, maildir: Path) -> None:
    """Configure notmuch on ``maildir`` and index it."""
    (home / "notmuch-config").write_text(
        textwrap.dedent(
            f"""\
            [database]
            path={maildir}
            [user]
            name=Sender Name
            primary_email={IMAP_USER}
            [new]
            tags=inbox;
            ignore=
            [search]
            exclude_tags=
            """
        ),
        encoding="utf-8",
    )
    notmuch(home, "new", "--quiet")


def flattened(tree: list) -> list[tuple[dict, int]]:
    """Return the messages of one notmuch JSON thread depth first, each with its depth."""
    found: list[tuple[dict, int]] = []

    def walk(nodes: list, depth: int) -> None:
        for message, replies in nodes:
            found.append((message, depth))
            walk(replies, depth + 1)

    walk(tree, 0)
    return found


async def test_the_first_letter_and_two_follow_ups_are_one_thread_to_notmuch(
    tmp_path: Path,
) -> None:
    """To notmuch, each contact's three letters are one thread, each a reply to the one before."""
    outbox = tmp_path / "outbox"
    letters = await send_the_thread(tmp_path / "campaign", outbox)
    home = tmp_path / "home"
    home.mkdir()
    index(home, outbox)
    assert int(notmuch(home, "count", "*")) == 6
    assert len(notmuch(home, "search", "--output=threads", "*").split()) == 2  # one per contact
    for contact_id, thread in threads_of(letters).items():
        assert [letter.stage for letter in thread] == ["first", *STAGES]
        found = notmuch(home, "search", "--output=threads", f"to:{contact_id}@mission.example")
        (thread_id,) = found.split()
        (shown,) = json.loads(notmuch(home, "show", "--format=json", thread_id))
        messages = flattened(shown)
        # In order, each one level under the one before: a chain of replies.
        assert [f"<{m['id']}>" for m, _ in messages] == [le.message_id for le in thread]
        assert [depth for _, depth in messages] == [0, 1, 2]
        subjects = [m["headers"]["Subject"] for m, _ in messages]
        assert subjects == [
            "A test letter",
            "Re: A test letter",
            "The Council meets on Thursday",  # threaded by its headers, not by its subject
        ]
        last = messages[-1][0]
        assert "The Council meets on Thursday" in json.dumps(last["body"])
        assert "wrote:" in json.dumps(last["body"])  # the reminder, quoted below it


@pytest.fixture(autouse=True)
def _no_user_notmuch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep any notmuch configuration of the user's out of the test."""
    monkeypatch.delenv("NOTMUCH_DATABASE", raising=False)
    monkeypatch.delenv("NOTMUCH_PROFILE", raising=False)
