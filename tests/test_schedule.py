"""The schedule's rules: delays, send windows across zones and DST, embargo, stages, reasons."""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from outreach.model import Campaign, Contact, Sender, Stage
from outreach.schedule import (
    Next,
    SendWindow,
    Standing,
    ZoneError,
    due,
    next_letters,
    parse_after,
)

NEW_YORK = ZoneInfo("America/New_York")
BISHKEK = ZoneInfo("Asia/Bishkek")
UTC = dt.UTC
WEEKDAYS = SendWindow.parse("Mon-Fri 09:00-17:00")


def utc(*parts: int) -> dt.datetime:
    """Return a UTC moment."""
    return dt.datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def local(zone: ZoneInfo, *parts: int) -> dt.datetime:
    """Return a moment on ``zone``'s wall clock, as UTC."""
    return dt.datetime(*parts, tzinfo=zone).astimezone(UTC)  # type: ignore[misc]


@dataclass(frozen=True)
class Sent:
    """A letter of the send log, as the schedule reads it."""

    stage: str
    status: str = "sent"
    sent_at: dt.datetime | None = None


def campaign(**fields: object) -> Campaign:
    """Return a campaign with two follow-ups, 7 days and 3 days after the letter before."""
    stages = (
        Stage(name="reminder", template=Path("reminder.md.j2"), after=dt.timedelta(days=7)),
        Stage(name="last-call", template=Path("last.md.j2"), after=dt.timedelta(days=3)),
    )
    values: dict[str, object] = {
        "name": "c",
        "subject": "A letter",
        "template": Path("letter.md.j2"),
        "contacts": Path("contacts.yaml"),
        "sender": Sender("office@org.example"),
        "folder": Path(),
        "follow_ups": stages,
        **fields,
    }
    return Campaign(**values)  # type: ignore[arg-type]


def contact(contact_id: str = "kg", zone: str | None = None) -> Contact:
    """Return a contact, in ``zone`` if given."""
    data = {"timezone": zone} if zone else {}
    return Contact(id=contact_id, email=f"{contact_id}@mission.example", data=data)


def one(
    the_campaign: Campaign,
    letters: list[Sent],
    now: dt.datetime,
    *,
    standing: Standing | None = None,
    who: Contact | None = None,
) -> Next:
    """Return the next letter of one contact."""
    who = who or contact()
    found = next_letters(
        the_campaign,
        [who],
        {who.id: letters},
        {who.id: standing} if standing else {},
        now,
    )
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize(
    ("text", "delay"),
    [
        ("7d", dt.timedelta(days=7)),
        ("48h", dt.timedelta(hours=48)),
        ("2w", dt.timedelta(weeks=2)),
        ("90m", dt.timedelta(minutes=90)),
        (" 3 d ", dt.timedelta(days=3)),
    ],
)
def test_a_delay_is_a_number_and_a_unit(text: str, delay: dt.timedelta) -> None:
    """Minutes, hours, days and weeks are read."""
    assert parse_after(text) == delay


@pytest.mark.parametrize("text", ["7", "d", "7 days", "-1d", "1.5h", "7D", "1d12h", ""])
def test_anything_else_is_not_a_delay(text: str) -> None:
    """A delay without a unit, with a sign, a fraction or words is refused."""
    with pytest.raises(ValueError, match="is not a delay"):
        parse_after(text)


def test_a_delay_of_nothing_is_refused() -> None:
    """A delay of 0 is refused: a follow-up goes some time after the letter before."""
    with pytest.raises(ValueError, match="no delay at all"):
        parse_after("0h")


def test_a_window_lists_days_and_several_ranges() -> None:
    """Days by commas and ranges, hours by commas, clauses by ';'; ranges that touch are joined."""
    window = SendWindow.parse("Mon,Wed 10:00-12:00,14:00-16:00; sat 09:00-10:00, 10:00-11:00")
    assert window.days == (
        ((600, 720), (840, 960)),
        (),
        ((600, 720), (840, 960)),
        (),
        (),
        ((540, 660),),
        (),
    )


def test_a_range_of_days_may_wrap_past_sunday() -> None:
    """Sun-Thu is Sunday to Thursday, the working week in some countries."""
    window = SendWindow.parse("Sun-Thu 08:00-24:00")
    assert [bool(hours) for hours in window.days] == [True, True, True, True, False, False, True]
    assert window.days[6] == ((480, 1440),)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "the window is empty"),
        ("Mon-Fri 09:00-17:00;", "has an empty clause"),
        ("Mon-Fri", "has no hours"),
        ("Mon-Fry 09:00-17:00", "'Fry' is not a day"),
        ("Mon 9-17", "'9' is not a time of day"),
        ("Mon 09:00-24:30", "'24:30' is not a time of day"),
        ("Mon 09:60-10:00", "'09:60' is not a time of day"),
        ("Mon 17:00-09:00", "ends before it starts"),
        ("Mon 09:00-09:00", "ends before it starts"),
        ("Mon 09:00", "is not a range of hours"),
    ],
)
def test_a_bad_window_is_refused_saying_why(text: str, error: str) -> None:
    """Each mistake in a window is named."""
    with pytest.raises(ValueError, match=error):
        SendWindow.parse(text)


def test_inside_the_window_a_moment_is_its_own_opening() -> None:
    """At 16:30 on a Friday in New York the weekday window is open."""
    at = local(NEW_YORK, 2010, 7, 2, 16, 30)
    assert WEEKDAYS.next_open(at, NEW_YORK) == at


def test_after_hours_on_friday_the_window_opens_on_monday() -> None:
    """At 17:30 on a Friday the next opening is 09:00 on Monday, in the same zone."""
    at = local(NEW_YORK, 2010, 7, 2, 17, 30)
    assert WEEKDAYS.next_open(at, NEW_YORK) == local(NEW_YORK, 2010, 7, 5, 9)


def test_one_moment_opens_differently_in_two_zones() -> None:
    """Friday 21:30 UTC is Saturday in Bishkek (Monday 09:00 there), Friday in New York."""
    at = utc(2010, 7, 2, 21, 30)
    assert WEEKDAYS.next_open(at, BISHKEK) == utc(2010, 7, 5, 3)  # UTC+6
    assert WEEKDAYS.next_open(at, NEW_YORK) == utc(2010, 7, 5, 13)  # EDT, UTC-4


def test_before_opening_on_a_weekday_it_is_that_morning() -> None:
    """At 07:00 on a Tuesday the window opens at 09:00 that day."""
    at = local(NEW_YORK, 2010, 7, 6, 7)
    assert WEEKDAYS.next_open(at, NEW_YORK) == local(NEW_YORK, 2010, 7, 6, 9)


def test_the_window_keeps_local_hours_across_the_spring_change() -> None:
    """After the clocks go forward (8 March 2026) Monday 09:00 in New York is 13:00 UTC."""
    at = local(NEW_YORK, 2026, 3, 6, 18)  # Friday, EST: 23:00 UTC
    assert at == utc(2026, 3, 6, 23)
    assert WEEKDAYS.next_open(at, NEW_YORK) == utc(2026, 3, 9, 13)


def test_a_window_time_skipped_in_spring_moves_to_the_next_minute_that_exists() -> None:
    """A window opening at 02:30 on 8 March 2026 in New York opens at 03:00 EDT."""
    window = SendWindow.parse("Sun 02:30-04:00")
    opened = window.next_open(local(NEW_YORK, 2026, 3, 7, 12), NEW_YORK)
    assert opened == utc(2026, 3, 8, 7)
    assert opened.astimezone(NEW_YORK).strftime("%H:%M %Z") == "03:00 EDT"


def test_the_window_keeps_local_hours_across_the_autumn_change() -> None:
    """After the clocks go back (1 November 2026) Monday 09:00 in New York is 14:00 UTC."""
    at = local(NEW_YORK, 2026, 10, 30, 18)  # Friday, EDT: 22:00 UTC
    assert WEEKDAYS.next_open(at, NEW_YORK) == utc(2026, 11, 2, 14)


def test_a_window_time_that_comes_twice_in_autumn_is_its_first() -> None:
    """01:00 comes twice on 1 November 2026 in New York: the window opens at the first, EDT."""
    window = SendWindow.parse("Sun 01:00-01:30")
    assert window.next_open(local(NEW_YORK, 2026, 10, 31, 12), NEW_YORK) == utc(2026, 11, 1, 5)


def test_a_follow_up_is_due_its_delay_after_the_letter_before() -> None:
    """Without a window, the reminder is due exactly 7 days after the first letter went."""
    sent = utc(2010, 6, 24, 13)
    found = one(campaign(), [Sent("first", sent_at=sent)], utc(2010, 6, 25))
    assert found == Next("kg", "reminder", utc(2010, 7, 1, 13))


def test_a_follow_up_is_moved_into_the_window_in_the_contact_zone() -> None:
    """7 days after a Thursday-evening letter is Thursday 20:00 in Bishkek: due Friday 09:00."""
    sent = local(BISHKEK, 2010, 6, 24, 20)
    found = one(
        campaign(send_window="Mon-Fri 09:00-17:00", timezone="America/New_York"),
        [Sent("first", sent_at=sent)],
        utc(2010, 6, 25),
        who=contact(zone="Asia/Bishkek"),
    )
    assert found == Next("kg", "reminder", local(BISHKEK, 2010, 7, 2, 9))


def test_without_its_own_zone_a_contact_has_the_campaign_zone() -> None:
    """A letter due Saturday in New York is moved to Monday 09:00 New York time."""
    sent = local(NEW_YORK, 2010, 6, 26, 10)  # a Saturday
    found = one(
        campaign(send_window="Mon-Fri 09:00-17:00", timezone="America/New_York"),
        [Sent("first", sent_at=sent)],
        utc(2010, 6, 27),
    )
    assert found.due == local(NEW_YORK, 2010, 7, 5, 9)


def test_a_due_letter_waits_while_the_window_is_shut() -> None:
    """A reminder due last Thursday is not due on Saturday: it waits for Monday's opening."""
    sent = local(NEW_YORK, 2010, 6, 24, 10)  # due Thursday 1 July 10:00
    now = local(NEW_YORK, 2010, 7, 3, 12)  # Saturday
    the_campaign = campaign(send_window="Mon-Fri 09:00-17:00", timezone="America/New_York")
    found = one(the_campaign, [Sent("first", sent_at=sent)], now)
    assert found.due == local(NEW_YORK, 2010, 7, 5, 9)
    assert due([found], now) == []
    assert due([found], local(NEW_YORK, 2010, 7, 5, 9)) == [found]


def test_an_overdue_letter_in_an_open_window_keeps_its_time() -> None:
    """A reminder due last Thursday is due at once on Monday at 10:00, shown from Thursday."""
    sent = local(NEW_YORK, 2010, 6, 24, 10)
    now = local(NEW_YORK, 2010, 7, 5, 10)
    the_campaign = campaign(send_window="Mon-Fri 09:00-17:00", timezone="America/New_York")
    found = one(the_campaign, [Sent("first", sent_at=sent)], now)
    assert found.due == local(NEW_YORK, 2010, 7, 1, 10)
    assert due([found], now) == [found]


def test_the_first_letter_waits_for_the_embargo_and_the_window() -> None:
    """A contact with no letter gets the first one at the embargo's end, inside the window."""
    embargo = dt.datetime.fromisoformat("2010-06-26T09:00:00-04:00")  # a Saturday
    the_campaign = campaign(
        not_before=embargo, send_window="Mon-Fri 09:00-17:00", timezone="America/New_York"
    )
    now = utc(2010, 6, 20)
    found = one(the_campaign, [], now)
    assert found == Next("kg", "first", local(NEW_YORK, 2010, 6, 28, 9))
    assert due([found], now) == []


def test_the_first_letter_is_due_now_without_embargo_or_window() -> None:
    """With neither an embargo nor a window, a contact with no letter is due at once."""
    now = utc(2010, 6, 24, 3)
    assert one(campaign(), [Sent("first", status="pending")], now) == Next("kg", "first", now)


def test_no_follow_up_goes_before_the_embargo() -> None:
    """A reminder due before the embargo ends is due when it ends."""
    embargo = utc(2010, 7, 10, 12)
    sent = utc(2010, 6, 24, 13)
    found = one(campaign(not_before=embargo), [Sent("first", sent_at=sent)], utc(2010, 7, 2))
    assert found.due == embargo


def test_the_second_stage_follows_the_first_follow_up() -> None:
    """With the first letter and the reminder sent, last-call is due 3 days after the reminder."""
    letters = [
        Sent("first", sent_at=utc(2010, 6, 24, 13)),
        Sent("reminder", sent_at=utc(2010, 7, 1, 14)),
    ]
    found = one(campaign(), letters, utc(2010, 7, 2))
    assert found == Next("kg", "last-call", utc(2010, 7, 4, 14))


def test_once_every_stage_went_none_is_left() -> None:
    """With all three letters sent, the reason is 'all stages sent'."""
    letters = [
        Sent("first", sent_at=utc(2010, 6, 24)),
        Sent("reminder", sent_at=utc(2010, 7, 1)),
        Sent("last-call", sent_at=utc(2010, 7, 4)),
    ]
    assert one(campaign(), letters, utc(2010, 7, 9)) == Next("kg", None, None, "all stages sent")


def test_a_campaign_without_stages_has_nothing_after_the_letter() -> None:
    """Without [[follow_up]], a contact whose letter went has all stages sent."""
    letters = [Sent("first", sent_at=utc(2010, 6, 24))]
    found = one(campaign(follow_ups=()), letters, utc(2010, 7, 9))
    assert found.reason == "all stages sent"


def test_an_out_of_office_moves_the_follow_up_after_its_return() -> None:
    """Back on 12 July (in the contact's zone): the reminder is due that Monday at 09:00."""
    letters = [Sent("first", sent_at=utc(2010, 6, 24, 13))]
    the_campaign = campaign(send_window="Mon-Fri 09:00-17:00")
    found = one(
        the_campaign,
        letters,
        utc(2010, 7, 1),
        standing=Standing(back_at=dt.date(2010, 7, 12)),
        who=contact(zone="Asia/Bishkek"),
    )
    assert found.due == local(BISHKEK, 2010, 7, 12, 9)


def test_an_out_of_office_back_before_the_delay_changes_nothing() -> None:
    """A return before the reminder is due leaves its time as it was."""
    letters = [Sent("first", sent_at=utc(2010, 6, 24, 13))]
    found = one(
        campaign(), letters, utc(2010, 6, 25), standing=Standing(back_at=dt.date(2010, 6, 26))
    )
    assert found.due == utc(2010, 7, 1, 13)


@pytest.mark.parametrize(
    ("standing", "reason"),
    [
        (Standing(replied=True), "replied"),
        (Standing(bounced=True), "bounced"),
        (Standing(stopped="answered by phone"), "stopped: answered by phone"),
        (Standing(uncertain=True), "waiting: letter uncertain"),
        (Standing(replied=True, stopped="by hand"), "stopped: by hand"),
    ],
)
def test_tracking_holds_every_further_letter(standing: Standing, reason: str) -> None:
    """A reply, a bounce for good, a stop or an uncertain letter leaves no letter due."""
    letters = [Sent("first", sent_at=utc(2010, 6, 24))]
    assert one(campaign(), letters, utc(2010, 7, 9), standing=standing) == Next(
        "kg", None, None, reason
    )


@pytest.mark.parametrize("status", ["uncertain", "sending"])
def test_an_unsettled_letter_holds_the_later_stages(status: str) -> None:
    """A reminder whose fate is unknown holds last-call until it is settled."""
    letters = [Sent("first", sent_at=utc(2010, 6, 24)), Sent("reminder", status=status)]
    found = one(campaign(), letters, utc(2010, 7, 9))
    assert found == Next("kg", None, None, "waiting: letter uncertain")


def test_a_first_letter_refused_for_good_has_no_follow_up() -> None:
    """A first letter that failed leaves the reason 'first letter not sent'."""
    found = one(campaign(), [Sent("first", status="failed")], utc(2010, 7, 9))
    assert found == Next("kg", None, None, "first letter not sent")


def test_a_follow_up_refused_for_good_ends_the_thread() -> None:
    """A reminder that failed is named as the reason, and last-call does not go."""
    letters = [Sent("first", sent_at=utc(2010, 6, 24)), Sent("reminder", status="failed")]
    assert one(campaign(), letters, utc(2010, 7, 9)).reason == "failed: reminder"


def test_due_keeps_only_the_letters_due_by_now() -> None:
    """Of three contacts, the one due now and the one overdue are due; not the later one."""
    now = utc(2010, 7, 1, 13)
    nexts = [
        Next("a", "reminder", now),
        Next("b", "reminder", now - dt.timedelta(days=1)),
        Next("c", "reminder", now + dt.timedelta(minutes=1)),
        Next("d", None, None, "replied"),
    ]
    assert [n.contact_id for n in due(nexts, now)] == ["a", "b"]


def test_a_contact_zone_that_names_none_is_refused_naming_the_contact() -> None:
    """A timezone field check would report stops the schedule, naming contact and field."""
    with pytest.raises(ZoneError, match="contact 'kg': field 'timezone': 'Mars/Base'"):
        one(campaign(), [], utc(2010, 7, 9), who=contact(zone="Mars/Base"))


def test_contacts_come_back_in_their_order_with_their_own_letters() -> None:
    """Each contact's next letter is computed from its own letters, in the contacts' order."""
    now = utc(2010, 6, 25)
    people = [contact("b"), contact("a")]
    letters = {"a": [Sent("first", sent_at=utc(2010, 6, 24))]}
    found = next_letters(campaign(), people, letters, {}, now)
    assert found == [Next("b", "first", now), Next("a", "reminder", utc(2010, 7, 1))]
