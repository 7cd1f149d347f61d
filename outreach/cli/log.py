"""Show the send log: a table, JSON Lines, CSV, or one recipient's whole history."""

from __future__ import annotations

import csv
import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from outreach.cli.history import Thread, show_history
from outreach.cli.options import CampaignChoice, ReadLogOption, campaign_reader
from outreach.cli.say import fail, when
from outreach.errors import OutreachError
from outreach.model import Status

# The API is imported by the commands that use it: `outreach --help` stays quick.
if TYPE_CHECKING:
    from outreach.api import LogChoice, NotedTestSend, Recipient, SendLog, TrackEvent
    from outreach.logview import Shown


def _state(value: str | None) -> str | None:
    """Read --status by the library's words (earlier spellings too); refuse others as usage."""
    if value is None:
        return None
    from outreach import logview

    try:
        return logview.parse_shown(value).value
    except OutreachError:
        words = ", ".join(repr(shown.value) for shown in logview.Shown)
        msg = f"{value!r} is not one of {words}"
        raise typer.BadParameter(msg) from None


@campaign_reader(contacts=True)
def show(
    contact_id: Annotated[
        str | None, typer.Argument(help="Show this recipient's whole history.")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            metavar="STATE",
            callback=_state,
            help="Only recipients in this state: a send status (pending, sending, sent, failed, "
            "uncertain), what came back (replied, bounced, auto-replied, delivered, delayed, "
            "no-news), or stopped (no follow-up goes to them: 'outreach stop').",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON Lines, one per recipient, with its events.")
    ] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV, one row per recipient.")] = False,
    log_path: ReadLogOption = None,
    trial: Annotated[
        bool,
        typer.Option("--trial", help="Show the log of the trial runs into the outbox."),
    ] = False,
    *,
    choice: CampaignChoice,
) -> None:
    """Show what happened to each recipient.

    Its status, what came back (delivery, bounces, replies) and the server's last reply.
    """
    from outreach import api, logview

    if as_json and as_csv:
        typer.echo("error: --json and --csv cannot be used together; choose one", err=True)
        raise typer.Exit(code=2)
    try:
        shown = logview.Shown(status) if status is not None else None
        # With --log, no campaign is needed: that file is read (and no next letter is said).
        campaign = None
        if log_path is not None:
            chosen = api.LogChoice(log_path, trial=False)
        else:
            campaign = choice.load()
            chosen = api.log_to_read(campaign, trial=trial)
        with api.open_log(chosen.path) as log:
            # Said once the log is open: a log not made yet is an error, not announced.
            if not (as_json or as_csv or contact_id):
                typer.echo(_which(chosen, log, given=log_path is not None))
            thread = Thread(log, campaign)
            if contact_id is not None:
                show_history(log, contact_id, as_json=as_json, thread=thread)
                return
            everyone = log.recipients()
            stopped = set(log.stops())
            test_sends = log.test_sends()
            events: dict[str, list[TrackEvent]] = {}
            if as_json:
                for event in log.events():
                    events.setdefault(event.contact_id, []).append(event)
    except OutreachError as exc:
        raise fail(exc) from None
    rows = [
        row for row in everyone if shown is None or logview.selects(shown, row, stopped=stopped)
    ]
    if as_json or as_csv:
        _print_records(rows, events if as_json else None, thread)
        return
    _print_shown(rows, everyone, shown, thread, stopped=stopped)
    _print_test_sends(test_sends)


def _print_shown(
    rows: list[Recipient],
    everyone: list[Recipient],
    shown: Shown | None,
    thread: Thread,
    *,
    stopped: set[str],
) -> None:
    """Print the table of the recipients shown, how many matched the filter, and the totals."""
    from outreach import logview

    if rows:
        _print_table(rows, thread)
    if shown is not None and rows:
        typer.echo(f"{len(rows)} of {len(everyone)} match --status {shown.value}")
    elif shown is not None:
        typer.echo(f"no recipient matches --status {shown.value} ({len(everyone)} in the log)")
    _print_wrapped(logview.totals(everyone, stopped=stopped))


def _which(chosen: LogChoice, log: SendLog, /, *, given: bool) -> str:
    """Say which log is shown: the trial runs', or the live runs'.

    A log ``given`` by --log is told by the runs it records (a log holds one kind), if any.
    """
    trial = chosen.trial
    if given and log.has_runs(into_maildir=False):
        trial = False
    elif given and log.has_runs(into_maildir=True):
        trial = True
    elif given:
        return f"log {chosen.path}: no run recorded yet"
    if trial:
        return f"trial log {chosen.path}: runs into the outbox; nothing in it left this machine"
    return f"live log {chosen.path}: runs to a server"


def _print_test_sends(test_sends: list[NotedTestSend]) -> None:
    """Count the test sends on a line of their own: they are no recipient's delivery."""
    if not test_sends:
        return
    last = test_sends[-1]
    _print_wrapped(
        f"test sends (--test-to, no recipient's status): {len(test_sends)}; the last, "
        f"{last.contact_id}'s letter to {last.address}, {when(last.sent_at)} UTC: {last.outcome}"
    )


def _print_records(
    rows: list[Recipient], events: dict[str, list[TrackEvent]] | None, thread: Thread
) -> None:
    """Print JSON Lines with each recipient's events and letters, or CSV when ``events`` is None."""
    from outreach import logview

    if events is not None:
        for row in rows:
            record = logview.record(row)
            record["events"] = [logview.event_record(e) for e in events.get(row.id, [])]
            record.update(thread.record(row.id))
            typer.echo(json.dumps(record, ensure_ascii=False))
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=logview.CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(logview.csv_row(row))


def _print_wrapped(line: str) -> None:
    """Print a line of text folded at spaces to the terminal's width, as the table is."""
    from rich.console import Console
    from rich.text import Text

    Console(highlight=False).print(Text(line))


# Columns of 'outreach log', in order; those that go first when the terminal is narrow last.
_COLUMNS = (
    "ID",
    "STATUS",
    "TRIES",
    "DELIVERY",
    "REPLIED",
    "UPDATED (UTC)",
    "LAST REPLY",
    "MESSAGE-ID",
)
# With follow-ups, what the next letter is (and why none goes: stopped, replied) is kept longest.
_DROPPED_FIRST = (
    "MESSAGE-ID", "TRIES", "UPDATED (UTC)", "LAST REPLY", "REPLIED", "LATEST", "NEXT DUE (UTC)",
)  # fmt: skip
# With follow-ups: each contact's latest letter, after STATUS, and its next one, after REPLIED.
_THREAD_COLUMNS = ("LATEST", "NEXT DUE (UTC)")
# Their narrowest; the next letter's keeps a stage and its date: "reminder 2010-07-01 13:00".
_SHRINKING = {"ID": 20, "LATEST": 16, "NEXT DUE (UTC)": 26, "LAST REPLY": 16, "MESSAGE-ID": 20}
# Where room left goes, in turn, and up to what width: the ids up to a readable length, why no
# letter goes next, the server's reply, then the rest.
_GROWING = (
    ("ID", 24), ("NEXT DUE (UTC)", 60), ("LATEST", 30), ("LAST REPLY", 80), ("ID", 64),
    ("MESSAGE-ID", 80),
)  # fmt: skip
_GAP = 2


def _widths(cells: list[dict[str, str]], width: int) -> tuple[dict[str, int], list[str]]:
    """Choose the columns that fit ``width`` and their widths; some shrink, none wraps.

    Return the widths and the columns left out, for a line to say so.
    """
    columns = [name for name in _COLUMNS if name in cells[0]]
    for name, after in zip(_THREAD_COLUMNS, ("STATUS", "REPLIED"), strict=True):
        if name in cells[0]:
            columns.insert(columns.index(after) + 1, name)
    natural = {name: max(len(name), *(len(c[name]) for c in cells)) for name in columns}
    least = {name: min(natural[name], _SHRINKING.get(name, natural[name])) for name in columns}
    shown = list(columns)

    def needed(names: list[str]) -> int:
        return sum(least[n] for n in names) + _GAP * (len(names) - 1)

    # A column empty in every row says nothing the totals do not: it goes before the others.
    empty = [name for name in _DROPPED_FIRST if name in shown and not any(c[name] for c in cells)]
    for name in [*empty, *_DROPPED_FIRST]:
        if needed(shown) <= width:
            break
        if name in shown:
            shown.remove(name)
    widths = {name: least[name] for name in shown}
    room = width - needed(shown)
    for name, upto in _GROWING:
        if name in widths and room > 0:
            grow = max(0, min(room, min(natural[name], upto) - widths[name]))
            widths[name] += grow
            room -= grow
    # An empty column left out is not said: it held nothing.
    return widths, [name for name in columns if name not in shown and name not in empty]


def _print_table(rows: list[Recipient], thread: Thread) -> None:
    """Draw the recipients to fit the terminal: columns shrink or go, rows never wrap."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from outreach import logview

    cells = []
    for row in rows:
        delivery = logview.delivery(row)
        if row.status not in {Status.SENT, Status.UNCERTAIN} and delivery == logview.NO_NEWS:
            delivery = ""
        replied = when(row.replied_at)[5:]
        if not replied and row.auto_replied_at:
            replied = f"auto {when(row.auto_replied_at)[5:10]}"
        cells.append(
            {
                "ID": row.id,
                "STATUS": row.status,
                "TRIES": str(row.attempts),
                "DELIVERY": delivery,
                "REPLIED": replied,
                "UPDATED (UTC)": when(row.updated_at),
                # A recipient refused before sending has no reply: why it was refused instead.
                "LAST REPLY": " ".join((row.reply or row.refused or "").split()),
                "MESSAGE-ID": row.message_id or "",
            }
        )
        if thread.shown:
            cells[-1].update(thread.cells(row.id))
    console = Console(highlight=False, soft_wrap=False)
    widths, left_out = _widths(cells, console.width)
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, _GAP // 2),
        collapse_padding=True,
    )
    for name, size in widths.items():
        table.add_column(name, width=size, no_wrap=True, overflow="ellipsis")
    for line in cells:
        table.add_row(*(Text(line[name]) for name in widths))
    console.print(table)
    if left_out:
        _print_wrapped(
            f"not shown: {', '.join(n.removesuffix(' (UTC)') for n in left_out)} "
            "(see 'outreach log ID')"
        )
