"""The campaign file's schedule: time zone, send window, embargo and follow-up stages."""

import datetime as dt
import textwrap
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from helpers import add_follow_ups, contacts_yaml, run_cli, write_campaign

from outreach import api
from outreach.campaign import load_campaign
from outreach.errors import ConfigError
from outreach.model import Stage

REMINDER = "We wrote to you on {{ sent.first }} about {{ country }}.\n"


def campaign_with(folder: Path, extra: str, *, contacts: str | None = None) -> Path:
    """Write a campaign of two contacts, its file ending with ``extra``."""
    campaign = write_campaign(folder, contacts=contacts or contacts_yaml(2))
    (folder / "reminder.md.j2").write_text(REMINDER, encoding="utf-8")
    text = campaign.read_text(encoding="utf-8") + textwrap.dedent(extra)
    campaign.write_text(text, encoding="utf-8")
    return campaign


def refusal(folder: Path, extra: str) -> str:
    """Return the error that loading a campaign ending with ``extra`` raises."""
    path = campaign_with(folder, extra)
    with pytest.raises(ConfigError) as raised:
        load_campaign(path)
    return str(raised.value).removeprefix(f"{path}: ")


def test_the_schedule_fields_are_read_into_the_campaign(tmp_path: Path) -> None:
    """Zone, window, embargo and two stages are read as written, in order."""
    path = campaign_with(
        tmp_path,
        """\
        timezone = "America/New_York"
        send_window = "Mon-Fri 09:00-17:00"
        not_before = "2010-06-24T09:00:00-04:00"

        [[follow_up]]
        name = "reminder"
        template = "reminder.md.j2"
        after = "7d"

        [[follow_up]]
        name = "last-call"
        template = "reminder.md.j2"
        after = "48h"
        subject = "The Council meets on Thursday"
        quote = true
        """,
    )
    campaign = load_campaign(path)
    assert campaign.timezone == "America/New_York"
    assert campaign.send_window == "Mon-Fri 09:00-17:00"
    assert campaign.not_before == dt.datetime(
        2010, 6, 24, 9, tzinfo=dt.timezone(dt.timedelta(hours=-4))
    )
    assert campaign.follow_ups == (
        Stage(name="reminder", template=tmp_path / "reminder.md.j2", after=dt.timedelta(days=7)),
        Stage(
            name="last-call",
            template=tmp_path / "reminder.md.j2",
            after=dt.timedelta(hours=48),
            subject="The Council meets on Thursday",
            quote=True,
        ),
    )


def test_without_the_fields_a_campaign_has_no_schedule(tmp_path: Path) -> None:
    """A campaign file of before follow-ups loads with no zone, window, embargo or stage."""
    campaign = load_campaign(campaign_with(tmp_path, ""))
    assert (campaign.timezone, campaign.send_window, campaign.not_before) == (None, None, None)
    assert campaign.follow_ups == ()


def test_an_embargo_written_as_a_toml_datetime_is_read(tmp_path: Path) -> None:
    """not_before may be TOML's own offset date-time, unquoted."""
    campaign = load_campaign(campaign_with(tmp_path, "not_before = 2010-06-24T13:00:00Z\n"))
    assert campaign.not_before == dt.datetime(2010, 6, 24, 13, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (
            'timezone = "America/NewYork"\n',
            (
                "field 'timezone': 'America/NewYork' is not a time zone: use an IANA name such as "
                'Europe/Paris, e.g. timezone = "America/New_York"'
            ),
        ),
        (
            'send_window = "weekdays 9-5"\n',
            (
                "field 'send_window': 'weekdays' is not a day: use Mon, Tue, Wed, Thu, Fri, Sat or "
                'Sun; e.g. send_window = "Mon-Fri 09:00-17:00"'
            ),
        ),
        (
            'send_window = "Mon-Fri 17:00-09:00"\n',
            (
                "field 'send_window': '17:00-09:00' ends before it starts: a range lies within one "
                "day (up to 24:00); split one across midnight into two days; "
                'e.g. send_window = "Mon-Fri 09:00-17:00"'
            ),
        ),
        (
            'send_window = "Mon-Fri 9h-17h"\n',
            (
                "field 'send_window': '9h' is not a time of day: write it as 09:00 (24-hour, up "
                'to 24:00); e.g. send_window = "Mon-Fri 09:00-17:00"'
            ),
        ),
        (
            'send_window = "Mon-Fri"\n',
            (
                "field 'send_window': 'Mon-Fri' has no hours: write days, a space and hours; "
                'e.g. send_window = "Mon-Fri 09:00-17:00"'
            ),
        ),
        (
            'not_before = "2010-06-24T09:00:00"\n',
            (
                "field 'not_before': 2010-06-24T09:00:00 has no UTC offset, so the moment it names "
                "depends on where it is read; add one, e.g. "
                'not_before = "2010-06-24T09:00:00-04:00"'
            ),
        ),
        (
            "not_before = 2010-06-24T09:00:00\n",
            (
                "field 'not_before': 2010-06-24 09:00:00 has no UTC offset, so the moment it names "
                "depends on where it is read; add one, e.g. "
                'not_before = "2010-06-24T09:00:00-04:00"'
            ),
        ),
        (
            'not_before = "next Thursday"\n',
            (
                "field 'not_before': next Thursday is not a date and time; "
                'e.g. not_before = "2010-06-24T09:00:00-04:00"'
            ),
        ),
        (
            "not_before = 2010-06-24\n",
            (
                "field 'not_before': must be a date and time; "
                'e.g. not_before = "2010-06-24T09:00:00-04:00"'
            ),
        ),
    ],
)
def test_a_bad_schedule_field_is_refused_with_an_example(
    tmp_path: Path, extra: str, error: str
) -> None:
    """Each bad zone, window or embargo is named with its field and a good value."""
    assert refusal(tmp_path, extra) == error


STAGE = """\
[[follow_up]]
name = "reminder"
template = "reminder.md.j2"
after = "7d"
"""


@pytest.mark.parametrize(
    ("stage", "error"),
    [
        (
            STAGE.replace('"7d"', '"7 days"'),
            (
                "[[follow_up]] 1 ('reminder'), field 'after': '7 days' is not a delay: write a whole "
                'number and a unit, m, h, d or w; e.g. after = "7d"'
            ),
        ),
        (
            STAGE.replace('"7d"', '"0h"'),
            (
                "[[follow_up]] 1 ('reminder'), field 'after': '0h' is no delay at all: a follow-up "
                'goes some time after the letter before; e.g. after = "7d"'
            ),
        ),
        (
            STAGE.replace('after = "7d"\n', ""),
            (
                "[[follow_up]] 1 ('reminder'), field 'after': missing: how long after the letter "
                'before this one goes; e.g. after = "7d"'
            ),
        ),
        (
            STAGE.replace('"reminder"', '"first"'),
            (
                "[[follow_up]] 1 ('first'), field 'name': 'first' names the first letter; give the "
                'follow-up another name; e.g. name = "reminder"'
            ),
        ),
        (
            STAGE.replace('"reminder"', '"second letter"'),
            (
                "[[follow_up]] 1, field 'name': 'second letter' must be letters, digits, '-' and '_' "
                '(at most 64); e.g. name = "reminder"'
            ),
        ),
        (
            STAGE.replace('"reminder.md.j2"', '"missing.md.j2"'),
            (
                "[[follow_up]] 1 ('reminder'), field 'template': {folder}/missing.md.j2: no such "
                'file; write the letter there; e.g. template = "templates/reminder.md.j2"'
            ),
        ),
        (
            STAGE + "quote = 1\n",
            "[[follow_up]] 1 ('reminder'), field 'quote': must be true or false; e.g. quote = true",
        ),
        (
            STAGE + "wait = 3\n",
            (
                "[[follow_up]] 1 ('reminder'): unknown field 'wait'; known: name, template, after, "
                "subject, quote"
            ),
        ),
    ],
)
def test_a_bad_stage_is_refused_naming_it(tmp_path: Path, stage: str, error: str) -> None:
    """A stage's bad field is named with the stage's number, its name and a good value."""
    assert refusal(tmp_path, stage) == error.format(folder=tmp_path)


def test_two_stages_of_one_name_are_refused(tmp_path: Path) -> None:
    """A second stage named as the first is refused, naming both by number."""
    error = refusal(tmp_path, STAGE + "\n" + STAGE.replace('"reminder"', '"Reminder"', 1))
    assert error == (
        "[[follow_up]] 2 ('Reminder'), field 'name': 'Reminder' is also the name of "
        '[[follow_up]] 1; e.g. name = "reminder"'
    )


def test_a_follow_up_that_is_not_a_table_array_is_refused(tmp_path: Path) -> None:
    """A single [follow_up] table is refused, saying to write [[follow_up]]."""
    error = refusal(tmp_path, STAGE.replace("[[follow_up]]", "[follow_up]"))
    assert error == (
        "field 'follow_up' must be tables written [[follow_up]], one for each stage, "
        'e.g. [[follow_up]] then name = "reminder"'
    )


def test_check_names_every_problem_of_every_stage_at_once(tmp_path: Path) -> None:
    """Problems of two stages and of the window are reported together by 'check'."""
    campaign_with(
        tmp_path,
        'send_window = "Mon-Fri 09:00"\n'
        + STAGE.replace('"7d"', '"soon"')
        + STAGE.replace('name = "reminder"', 'name = "last"').replace("reminder.md", "x.md"),
    )
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (
        "error: campaign.toml: 3 problems:\n"
        "  field 'send_window': '09:00' is not a range of hours: write it as 09:00-17:00; "
        'e.g. send_window = "Mon-Fri 09:00-17:00"\n'
        "  [[follow_up]] 1 ('reminder'), field 'after': 'soon' is not a delay: write a whole "
        'number and a unit, m, h, d or w; e.g. after = "7d"\n'
        "  [[follow_up]] 2 ('last'), field 'template': x.md.j2: no such file; write the letter "
        'there; e.g. template = "templates/reminder.md.j2"\n'
    )


def test_check_renders_each_stage_for_every_contact(tmp_path: Path) -> None:
    """A stage's template that uses a field one contact lacks fails 'check' for that contact."""
    campaign_with(tmp_path, STAGE)
    (tmp_path / "reminder.md.j2").write_text(
        "On {{ sent.first }}, we wrote about {{ region }}.\n", encoding="utf-8"
    )
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 1
    assert "reminder.md.j2:1: contact 'c00001': undefined variable: 'region' is undefined" in (
        done.stderr
    )
    assert "contact 'c00002': undefined variable" in done.stderr


def test_a_stage_may_not_name_a_later_stage_date(tmp_path: Path) -> None:
    """The first stage's template cannot use the date of the stage after it."""
    campaign_with(tmp_path, STAGE + "\n" + STAGE.replace('"reminder"', '"last"', 1))
    (tmp_path / "reminder.md.j2").write_text("Last sent {{ sent.last }}.\n", encoding="utf-8")
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 1
    assert "'dict object' has no attribute 'last'" in done.stderr


def test_check_names_a_contact_with_an_unknown_zone(tmp_path: Path) -> None:
    """A contact's timezone field that names no zone fails check, naming file, entry, field."""
    contacts = contacts_yaml(2).replace(
        "    country: Country 2\n", "    country: Country 2\n    timezone: Europe/Pariss\n"
    )
    campaign_with(tmp_path, STAGE, contacts=contacts)
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 1
    assert (
        "error: contacts.yaml:6: contact 'c00002', field 'timezone': 'Europe/Pariss' is not a "
        "time zone: use an IANA name such as Europe/Paris, e.g. timezone: Europe/Paris\n"
    ) in done.stderr
    assert "1 problem" in done.stderr


def test_check_passes_with_stages_and_zones(tmp_path: Path) -> None:
    """A campaign with a stage and a contact in its own zone passes check."""
    contacts = contacts_yaml(2).replace(
        "    country: Country 2\n", "    country: Country 2\n    timezone: Asia/Bishkek\n"
    )
    campaign_with(tmp_path, 'timezone = "America/New_York"\n' + STAGE, contacts=contacts)
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "check passed: 2 contacts valid, 2 drafts and 2 follow-ups rendered, 0 problems" in (
        done.stdout
    )


def test_check_counts_each_stage_rendered_to_each_contact(tmp_path: Path) -> None:
    """Two stages to two contacts: check says 2 drafts and 4 follow-ups rendered."""
    add_follow_ups(write_campaign(tmp_path, contacts=contacts_yaml(2)))
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "check passed: 2 contacts valid, 2 drafts and 4 follow-ups rendered, 0 problems"
    )


def test_preview_shows_a_stage_with_its_earlier_letters_not_yet_sent(tmp_path: Path) -> None:
    """A preview with --stage shows the follow-up's subject and text, the first letter's date unsent."""
    campaign_with(tmp_path, STAGE)
    done = run_cli("preview", "c00001", "--stage", "reminder", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Subject: Re: A test letter\n" in done.stdout
    assert "We wrote to you on [not yet sent] about Country 1.\n" in done.stdout
    assert "This is the letter for" not in done.stdout


def test_preview_of_an_unknown_stage_names_the_stages(tmp_path: Path) -> None:
    """A preview with --stage and a name no stage has is refused, listing the stages."""
    campaign_with(tmp_path, STAGE)
    done = run_cli("preview", "--stage", "remind", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == ("error: campaign.toml: no follow-up stage 'remind'; stages: reminder\n")


def test_a_preview_after_the_first_letter_shows_its_day_and_replies_in_its_thread(
    tmp_path: Path,
) -> None:
    """Once the first letter went, preview --stage shows its day and is a reply to it."""
    campaign_with(tmp_path, 'timezone = "Asia/Bishkek"\n' + STAGE)
    sent = run_cli("send", "--yes", cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    plans = {
        entry.contact_id: entry for entry in api.plan(load_campaign(tmp_path / "campaign.toml"))
    }
    first = plans["c00001"].sent[0]
    assert first.sent_at is not None
    day = first.sent_at.astimezone(ZoneInfo("Asia/Bishkek"))
    drafts = list(
        api.preview(load_campaign(tmp_path / "campaign.toml"), ["c00001"], stage="reminder")
    )
    message = drafts[0].message
    assert message["In-Reply-To"] == first.message_id
    assert f"We wrote to you on {day.day} {day:%B} {day.year} about Country 1." in (
        message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    )
    done = run_cli("preview", "c00001", "--stage", "reminder", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"We wrote to you on {day.day} {day:%B} {day.year} about Country 1.\n" in done.stdout
