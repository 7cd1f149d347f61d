"""'send' writes again: follow-ups due, in the thread, never after a reply, a bounce or a stop."""

import dataclasses
import datetime as dt
import ssl
import textwrap
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers import FAST, Clock, contacts_yaml, dsn, reply, write_campaign
from imapserver import PASSWORD as IMAP_PASSWORD
from imapserver import Dovecot
from mailserver import PASSWORD, USERNAME, Server

from outreach import api
from outreach.contacts import load_contacts
from outreach.errors import ConfigError, MailboxError, SendLogError
from outreach.mailbox import Auth, Credentials
from outreach.sendlog import SendLog

T0 = dt.datetime(2010, 6, 24, 13, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
OPTIONS = dataclasses.replace(FAST, allow_reserved=True)
STAGES = """
    [[follow_up]]
    name = "reminder"
    template = "reminder.md.j2"
    after = "7d"

    [[follow_up]]
    name = "last-call"
    template = "last-call.md.j2"
    after = "3d"
    subject = "The Council meets on Thursday"
    """


def campaign_with_stages(folder: Path, *, count: int = 3, extra: str = "") -> api.Campaign:
    """Write a campaign of ``count`` contacts with two follow-up stages, and load it."""
    path = write_campaign(folder, contacts=contacts_yaml(count))
    (folder / "reminder.md.j2").write_text(
        "We wrote to you on {{ sent.first }} about {{ country }}.\n", encoding="utf-8"
    )
    (folder / "last-call.md.j2").write_text(
        "Our letters of {{ sent.first }} and {{ sent.reminder }} await an answer.\n",
        encoding="utf-8",
    )
    path.write_text(
        path.read_text() + textwrap.dedent(extra) + textwrap.dedent(STAGES), encoding="utf-8"
    )
    return api.load_campaign(path)


class Sender:
    """Send a campaign through the API to the test server, on a clock the test moves."""

    def __init__(self, folder: Path, server: Server, tls: ssl.SSLContext) -> None:
        self.campaign = campaign_with_stages(folder)
        self.folder = folder
        self.server = server
        self.clock = Clock(T0)
        self.transport = api.SmtpTransport(
            api.SmtpSettings(
                host="127.0.0.1", port=server.port, implicit_tls=False, username=USERNAME,
                password=PASSWORD,
            ),
            tls_context=tls,
        )  # fmt: skip

    @property
    def log(self) -> Path:
        """Return the send log's path."""
        return self.folder / "send.sqlite3"

    def send(self, **more: object) -> api.Summary:
        """Run 'send' as of the clock's time, the mailbox unread unless ``reply_check`` says."""
        more.setdefault("check_replies", False)
        more.setdefault("options", OPTIONS)
        return api.send(
            self.campaign, transport=self.transport, log=self.log, clock=self.clock,
            **more,  # type: ignore[arg-type]
        )  # fmt: skip

    def received(self, to: str) -> list[EmailMessage]:
        """Return the messages the server took for ``to``, in order."""
        return [m.message for m in self.server.handler.received if to in m.rcpt_tos]

    def stages(self) -> dict[str, list[str]]:
        """Return each contact's letters sent, by stage, in order."""
        with SendLog(self.log, campaign=None, write=False) as log:
            letters = log.letters()
        found: dict[str, list[str]] = {}
        for letter in letters:
            if letter.status == "sent":
                found.setdefault(letter.contact_id, []).append(letter.stage)
        return found


@pytest.fixture
def sender(tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext) -> Sender:
    """A campaign of three contacts and two stages, sending to the test server."""
    return Sender(tmp_path / "campaign", smtp_server, client_tls)


def test_two_stages_go_in_order_each_once_and_only_when_due(sender: Sender) -> None:
    """First letters, then the reminder after 7 days, the last call 3 days later; reruns send none."""
    assert sender.send().stages == {"first": 3}
    sender.clock.now = T0 + 7 * DAY - dt.timedelta(minutes=1)
    assert sender.send().sent == 0  # a minute early
    sender.clock.now = T0 + 7 * DAY
    assert sender.send().stages == {"reminder": 3}
    assert sender.send().sent == 0
    sender.clock.now = T0 + 9 * DAY
    assert sender.send().sent == 0
    sender.clock.now = T0 + 10 * DAY
    summary = sender.send()
    assert summary.stages == {"last-call": 3}
    assert summary.ok
    sender.clock.now = T0 + 40 * DAY
    assert sender.send().sent == 0
    assert sender.stages() == {f"c0000{n}": ["first", "reminder", "last-call"] for n in (1, 2, 3)}
    first, reminder, last = sender.received("c00002@mission.example")
    assert reminder["In-Reply-To"] == first["Message-ID"]
    assert reminder["References"] == first["Message-ID"]
    assert reminder["Subject"] == "Re: A test letter"
    assert last["In-Reply-To"] == reminder["Message-ID"]
    assert last["References"].split() == [first["Message-ID"], reminder["Message-ID"]]
    assert last["Subject"] == "The Council meets on Thursday"
    assert last["Thread-Topic"] == "A test letter"
    body = last.get_body(("plain",)).get_content()
    assert "Our letters of 24 June 2010 and 1 July 2010 await an answer." in body


def test_follow_ups_due_without_a_mailbox_are_refused_and_nothing_goes(sender: Sender) -> None:
    """With follow-ups due and no account to read replies from, 'send' says how to give one."""
    sender.send()
    sender.clock.now = T0 + 8 * DAY
    before = len(sender.server.handler.received)
    with pytest.raises(ConfigError) as refused:
        sender.send(check_replies=True)
    message = str(refused.value)
    assert "3 follow-ups are due" in message
    assert 'imap = "imaps://' in message
    assert "check_replies=False" in message
    assert len(sender.server.handler.received) == before


def test_a_stopped_contact_gets_no_follow_up(sender: Sender) -> None:
    """'stop' with a reason holds every later letter to that contact; the others go."""
    sender.send()
    assert api.stop(sender.campaign, ["c00002"], reason="answered by phone", log=sender.log) == [
        "c00002"
    ]
    sender.clock.now = T0 + 8 * DAY
    summary = sender.send()
    assert summary.stages == {"reminder": 2}
    assert summary.left_out == {"stopped": 1}
    assert sender.stages()["c00002"] == ["first"]


def test_an_unknown_id_is_refused_by_stop(sender: Sender) -> None:
    """'stop' names the ids the log does not know and stops none."""
    sender.send()
    with pytest.raises(SendLogError, match="nobody is not in the send log"):
        api.stop(sender.campaign, ["c00001", "nobody"], reason="x", log=sender.log)
    with SendLog(sender.log, campaign=None, write=False) as log:
        assert log.stops() == {}


def test_a_reply_or_a_bounce_in_the_mailbox_stops_the_follow_up(
    sender: Sender, dovecot: Dovecot
) -> None:
    """The mailbox is read right before the follow-ups are chosen: no reminder after a reply."""
    sender.send()
    with SendLog(sender.log, campaign=None, write=False) as log:
        ids = log.message_ids()
    # An automatic reply does not stop a follow-up; a person's reply and a bounce do.
    dovecot.append(
        reply("c00001@mission.example", ids["c00001"], 1),
        dsn("c00002@mission.example", ids["c00002"], 2),
        reply("c00003@mission.example", ids["c00003"], 3, auto=True),
    )
    check = api.ReplyCheck(
        imap=api.imap_settings(dovecot.url()),
        credentials=Credentials(Auth.PASSWORD, lambda: IMAP_PASSWORD),
        tls_context=dovecot.tls_context(),
    )
    sender.clock.now = T0 + 8 * DAY
    summary = sender.send(reply_check=check, check_replies=True)
    assert summary.stages == {"reminder": 1}
    assert sender.stages() == {
        "c00001": ["first"],
        "c00002": ["first"],
        "c00003": ["first", "reminder"],
    }


def test_a_dry_run_renders_the_follow_ups_due_and_sends_nothing(sender: Sender) -> None:
    """'send --dry-run' counts the first letters and the follow-ups due, as the send chooses them."""
    sender.send()
    sent = len(sender.server.handler.received)
    sender.clock.now = T0 + 8 * DAY
    count = api.dry_run(
        sender.campaign, options=OPTIONS, log=sender.log, live=True, clock=sender.clock
    )
    assert count == 3
    assert len(sender.server.handler.received) == sent
    assert sender.stages() == {f"c0000{n}": ["first"] for n in (1, 2, 3)}


def test_a_first_letter_waits_for_the_send_window(
    tmp_path: Path, smtp_server: Server, client_tls: ssl.SSLContext
) -> None:
    """Outside the campaign's window the first letters are held as not due, not failed."""
    sender = Sender(tmp_path / "campaign", smtp_server, client_tls)
    path = sender.campaign.folder / "campaign.toml"
    text = path.read_text().replace(
        "[[follow_up]]", 'send_window = "Mon-Fri 09:00-17:00"\n\n[[follow_up]]', 1
    )
    path.write_text(text, encoding="utf-8")
    sender.campaign = api.load_campaign(path)
    sender.clock.now = dt.datetime(2010, 6, 26, 12, 0, tzinfo=dt.UTC)  # a Saturday
    held = sender.send()
    assert (held.sent, held.left_out, held.ok) == (0, {"not due yet": 3}, True)
    sender.clock.now = dt.datetime(2010, 6, 28, 9, 0, tzinfo=dt.UTC)  # Monday 09:00
    assert sender.send().stages == {"first": 3}


def test_an_uncertain_reminder_holds_the_last_call_until_resent(sender: Sender) -> None:
    """A reminder left in flight is uncertain: no last call goes until --resend-uncertain settles it."""
    sender.send()
    sender.clock.now = T0 + 8 * DAY
    log = SendLog(sender.log, campaign="test-campaign", write=True, clock=sender.clock)
    log.start_run("a run that dies")
    log.claim("c00001", message_id="<r1@outreach.example>", content_hash="x", stage="reminder")
    log.close()  # as if killed while the reminder was being handed over
    summary = sender.send()
    assert summary.stages == {"reminder": 2}
    assert summary.left_out["uncertain"] == 1
    assert not summary.ok
    sender.clock.now = T0 + 20 * DAY
    assert sender.send().stages == {"last-call": 2}
    assert sender.stages()["c00001"] == ["first"]
    again = sender.send(options=dataclasses.replace(OPTIONS, resend_uncertain=True))
    assert again.stages == {"reminder": 1}
    (resent,) = [m for m in sender.received("c00001@mission.example") if "Re:" in m["Subject"]]
    assert resent["Message-ID"] == "<r1@outreach.example>"  # the id it may already have
    sender.clock.now = T0 + 24 * DAY
    assert sender.send().stages == {"last-call": 1}


def rewrite_stages(sender: Sender, old: str, new: str) -> None:
    """Edit the campaign file (``old`` becomes ``new``) and load it again, as the next run does."""
    path = sender.folder / "campaign.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    sender.campaign = api.load_campaign(path)


def test_a_stage_renamed_after_its_letters_went_is_refused_by_send_check_and_plan(
    sender: Sender,
) -> None:
    """Renamed once the reminders went, the stage would send them again: send, check and plan refuse, naming the log, the stage, the count and the way back."""
    sender.send()
    sender.clock.now = T0 + 7 * DAY
    assert sender.send().stages == {"reminder": 3}
    rewrite_stages(sender, 'name = "reminder"', 'name = "nudge"')
    sender.clock.now = T0 + 8 * DAY
    before = len(sender.server.handler.received)
    with pytest.raises(ConfigError) as refused:
        sender.send()
    message = str(refused.value)
    assert f"{sender.log} holds 3 letters of the stage 'reminder'" in message
    assert 'name = "reminder"' in message
    assert "a renamed stage is a new letter" in message
    assert message.endswith("Nothing was sent.")
    assert len(sender.server.handler.received) == before
    # (The last call's template names sent.reminder too: check says so as well.)
    problems = api.check(sender.campaign, log=sender.log).problems
    (logged,) = [p for p in problems if p.where == str(sender.log)]
    assert "3 letters of the stage 'reminder'" in logged.message
    with pytest.raises(ConfigError, match="3 letters of the stage 'reminder'"):
        api.plan(sender.campaign, log=sender.log, now=sender.clock.now)
    with pytest.raises(ConfigError, match="Nothing was sent"):
        api.dry_run(sender.campaign, log=sender.log, clock=sender.clock)
    rewrite_stages(sender, 'name = "nudge"', 'name = "reminder"')
    assert api.check(sender.campaign, log=sender.log).problems == []
    assert sender.send().sent == 0  # back under its name: nothing goes twice
    assert sender.stages() == {f"c0000{n}": ["first", "reminder"] for n in (1, 2, 3)}


def test_a_stage_added_before_one_sent_is_due_from_the_latest_letter_that_went(
    sender: Sender,
) -> None:
    """A stage inserted before the reminder already sent counts its delay from the reminder, not from the first letter."""
    sender.send()
    sender.clock.now = T0 + 7 * DAY
    assert sender.send().stages == {"reminder": 3}
    note = '[[follow_up]]\nname = "note"\ntemplate = "reminder.md.j2"\nafter = "2d"\n\n'
    first_stage = '[[follow_up]]\nname = "reminder"'
    rewrite_stages(sender, first_stage, note + first_stage)
    (plan, *_) = api.plan(sender.campaign, log=sender.log, now=T0 + 8 * DAY)
    assert plan.next.stage == "note"
    assert plan.next.due == T0 + 9 * DAY
    sender.clock.now = T0 + 9 * DAY - dt.timedelta(minutes=1)
    assert sender.send().sent == 0
    sender.clock.now = T0 + 9 * DAY
    assert sender.send().stages == {"note": 3}


def test_a_reply_in_the_mailbox_stops_the_resend_of_an_uncertain_reminder(
    sender: Sender, dovecot: Dovecot
) -> None:
    """--resend-uncertain reads the mailbox first: an uncertain reminder is not resent after a reply."""
    sender.send()
    sender.clock.now = T0 + 8 * DAY
    log = SendLog(sender.log, campaign="test-campaign", write=True, clock=sender.clock)
    log.start_run("a run that dies")
    log.claim("c00001", message_id="<r1@outreach.example>", content_hash="x", stage="reminder")
    log.close()  # as if killed while the reminder was being handed over
    assert sender.send().stages == {"reminder": 2}
    with SendLog(sender.log, campaign=None, write=False) as log:
        ids = log.message_ids()
    dovecot.append(reply("c00001@mission.example", ids["c00001"], 1))
    check = api.ReplyCheck(
        imap=api.imap_settings(dovecot.url()),
        credentials=Credentials(Auth.PASSWORD, lambda: IMAP_PASSWORD),
        tls_context=dovecot.tls_context(),
    )
    resend = dataclasses.replace(OPTIONS, resend_uncertain=True)
    sender.clock.now = T0 + 9 * DAY
    with pytest.raises(ConfigError, match="no mailbox is read for replies first"):
        sender.send(options=resend, check_replies=True)
    summary = sender.send(options=resend, reply_check=check, check_replies=True)
    assert summary.sent == 0
    assert [m["Subject"] for m in sender.received("c00001@mission.example")] == ["A test letter"]
    assert sender.stages()["c00001"] == ["first"]


def test_an_address_corrected_after_its_reminder_bounced_gets_the_whole_thread_again(
    sender: Sender, dovecot: Dovecot
) -> None:
    """A correction starts the contact's thread again: the new address gets each stage, in order."""
    sender.send()
    sender.clock.now = T0 + 8 * DAY
    assert sender.send().stages == {"reminder": 3}
    with SendLog(sender.log, campaign=None, write=False) as log:
        reminders = log.message_ids(stage="reminder")
    dovecot.append(dsn("c00002@mission.example", reminders["c00002"], 1))
    api.track(
        sender.campaign,
        imap=api.imap_settings(dovecot.url()),
        credentials=Credentials(Auth.PASSWORD, lambda: IMAP_PASSWORD),
        log=sender.log,
        tls_context=dovecot.tls_context(),
    )
    sender.campaign.contacts.write_text(
        contacts_yaml(3).replace("c00002@mission.example", "c00002@fixed-mission.example"),
        encoding="utf-8",
    )
    sender.clock.now = T0 + 9 * DAY
    assert sender.send().stages == {"first": 1}
    for days in (12, 16, 19, 40):  # the others' last call; the new thread's reminder, last call
        sender.clock.now = T0 + days * DAY
        sender.send()
    letters = sender.received("c00002@fixed-mission.example")
    assert [m["Subject"] for m in letters] == [
        "A test letter",
        "Re: A test letter",
        "The Council meets on Thursday",
    ]
    first, reminder, last = letters
    assert reminder["References"] == first["Message-ID"]
    assert last["References"].split() == [first["Message-ID"], reminder["Message-ID"]]
    assert reminder["Message-ID"] != reminders["c00002"]  # not the one that bounced


def test_an_uncertain_first_letter_whose_reply_is_in_the_log_is_not_resent(
    sender: Sender, dovecot: Dovecot
) -> None:
    """--resend-uncertain sends no first letter again to a contact who replied or was stopped."""
    log = SendLog(sender.log, campaign="test-campaign", write=True, clock=sender.clock)
    log.register(load_contacts(sender.campaign.contacts))
    log.start_run("a run that dies")
    log.claim("c00001", message_id="<f1@outreach.example>", content_hash="x")
    log.claim("c00002", message_id="<f2@outreach.example>", content_hash="x")
    log.close()  # as if killed while both first letters were being handed over
    assert sender.send().stages == {"first": 1}
    api.stop(sender.campaign, ["c00002"], reason="answered by phone", log=sender.log)
    dovecot.append(reply("c00001@mission.example", "<f1@outreach.example>", 1))
    api.track(
        sender.campaign,
        imap=api.imap_settings(dovecot.url()),
        credentials=Credentials(Auth.PASSWORD, lambda: IMAP_PASSWORD),
        log=sender.log,
        tls_context=dovecot.tls_context(),
    )
    sender.clock.now = T0 + DAY
    again = sender.send(options=dataclasses.replace(OPTIONS, resend_uncertain=True))
    assert (again.sent, again.left_out["replied"], again.left_out["stopped"]) == (0, 1, 1)
    assert sender.received("c00001@mission.example") == []
    assert sender.received("c00002@mission.example") == []


def test_the_daily_limit_counts_follow_ups_and_a_stage_it_splits_goes_later_once(
    sender: Sender,
) -> None:
    """Follow-ups count against the daily limit, after the first letters; those held go a day on."""
    limited = dataclasses.replace(OPTIONS, daily_limit=4)
    assert sender.send(options=limited).stages == {"first": 3}
    sender.campaign.contacts.write_text(contacts_yaml(5), encoding="utf-8")
    sender.clock.now = T0 + 7 * DAY
    split = sender.send(options=limited)
    assert split.stages == {"first": 2, "reminder": 2}
    assert split.left_out["over the daily limit"] == 1
    assert split.resume_at == T0 + 8 * DAY
    sender.clock.now = T0 + 7 * DAY + dt.timedelta(hours=23)
    assert sender.send(options=limited).sent == 0
    sender.clock.now = T0 + 8 * DAY + dt.timedelta(minutes=1)
    assert sender.send(options=limited).stages == {"reminder": 1}
    assert sender.stages() == {
        **{f"c0000{n}": ["first", "reminder"] for n in (1, 2, 3)},
        **{f"c0000{n}": ["first"] for n in (4, 5)},
    }


def test_unstop_takes_a_stop_back_but_not_a_complaints(sender: Sender) -> None:
    """'unstop' lets the reminder go to a contact stopped by hand; a stop for a spam complaint stays."""
    sender.send()
    api.stop(sender.campaign, ["c00001"], reason="by mistake", log=sender.log)
    with SendLog(sender.log, campaign=None, write=False) as log:
        log.stop(["c00002"], reason="complaint: marked the letter as spam")  # as 'track' records
    with pytest.raises(SendLogError, match="c00002 marked a letter as spam"):
        api.unstop(sender.campaign, ["c00001", "c00002"], log=sender.log)
    assert api.unstop(sender.campaign, ["c00001"], log=sender.log) == ["c00001"]
    sender.clock.now = T0 + 8 * DAY
    summary = sender.send()
    assert summary.stages == {"reminder": 2}
    assert summary.left_out == {"stopped": 1}
    assert sender.stages()["c00002"] == ["first"]


def test_a_reply_in_the_mailbox_stops_the_resend_of_an_uncertain_first_letter(
    sender: Sender, dovecot: Dovecot
) -> None:
    """With an account to read, --resend-uncertain reads it first: no first letter after a reply."""
    log = SendLog(sender.log, campaign="test-campaign", write=True, clock=sender.clock)
    log.register(load_contacts(sender.campaign.contacts))
    log.start_run("a run that dies")
    log.claim("c00001", message_id="<f1@outreach.example>", content_hash="x")
    log.close()  # as if killed while the first letter was being handed over
    assert sender.send().stages == {"first": 2}
    dovecot.append(reply("c00001@mission.example", "<f1@outreach.example>", 1))
    check = api.ReplyCheck(
        imap=api.imap_settings(dovecot.url()),
        credentials=Credentials(Auth.PASSWORD, lambda: IMAP_PASSWORD),
        tls_context=dovecot.tls_context(),
    )
    sender.clock.now = T0 + DAY
    resend = dataclasses.replace(OPTIONS, resend_uncertain=True)
    again = sender.send(options=resend, reply_check=check, check_replies=True)
    assert (again.sent, again.left_out["replied"]) == (0, 1)
    assert sender.received("c00001@mission.example") == []


def test_a_mailbox_that_fails_half_way_through_sends_no_follow_up(
    sender: Sender, dovecot: Dovecot
) -> None:
    """A reply check that reads INBOX then fails on the next folder stops the send: nothing goes."""
    sender.send()
    with SendLog(sender.log, campaign=None, write=False) as log:
        ids = log.message_ids()
    dovecot.append(reply("c00001@mission.example", ids["c00001"], 1))
    check = api.ReplyCheck(
        imap=api.imap_settings(dovecot.url()),
        credentials=Credentials(Auth.PASSWORD, lambda: IMAP_PASSWORD),
        folders=("INBOX", "No-such-folder"),
        tls_context=dovecot.tls_context(),
    )
    sender.clock.now = T0 + 8 * DAY
    sent = len(sender.server.handler.received)
    with pytest.raises(MailboxError, match="could not be read for replies first"):
        sender.send(reply_check=check, check_replies=True)
    assert len(sender.server.handler.received) == sent
    check = dataclasses.replace(check, folders=("INBOX",))
    assert sender.send(reply_check=check, check_replies=True).stages == {"reminder": 2}
    assert sender.stages()["c00001"] == ["first"]


def test_a_run_long_after_both_stages_were_due_sends_one_letter_a_contact(sender: Sender) -> None:
    """Weeks late, a run sends the reminder alone; the last call waits its 3 days after it."""
    sender.send()
    sender.clock.now = T0 + 40 * DAY
    assert sender.send().stages == {"reminder": 3}
    assert sender.send().sent == 0
    sender.clock.now = T0 + 43 * DAY - dt.timedelta(minutes=1)
    assert sender.send().sent == 0
    sender.clock.now = T0 + 43 * DAY
    assert sender.send().stages == {"last-call": 3}


def test_an_address_changed_without_a_bounce_keeps_the_thread_where_it_went(
    sender: Sender,
) -> None:
    """A follow-up goes to the address its thread went to, as the log records it, not a new one."""
    sender.send()
    sender.campaign.contacts.write_text(
        contacts_yaml(3).replace("c00002@mission.example", "c00002@new.example"),
        encoding="utf-8",
    )
    sender.clock.now = T0 + 8 * DAY
    assert sender.send().stages == {"reminder": 3}
    first, reminder = sender.received("c00002@mission.example")
    assert reminder["In-Reply-To"] == first["Message-ID"]
    assert sender.received("c00002@new.example") == []
    with SendLog(sender.log, campaign=None, write=False) as log:
        went = [(a.stage, a.email) for a in log.history("c00002")]
    assert went == [("first", "c00002@mission.example"), ("reminder", "c00002@mission.example")]
