"""The batch as it runs: the progress bar, what Ctrl-C does, and the summary after."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from outreach.cli.say import Again, kinds, plural, said
from outreach.model import FIRST_STAGE, RefusedCc, Status

# The API is imported by the commands that use it: `outreach --help` stays quick.
if TYPE_CHECKING:
    from outreach.api import Event, PreparedSend, Summary, Transport


EXIT_INTERRUPTED = 130


def run_with_progress(
    prepared: PreparedSend, transport: Transport, *, again: Again, timeout: float | None
) -> Summary:
    """Run the batch with a progress bar on a terminal; Ctrl-C and SIGTERM stop it cleanly.

    The bar is drawn on stderr, where the warnings go too, through the bar's own console: each
    warning then stands on a line of its own above the bar. Elsewhere (a pipe, a file, a job
    scheduler) the warnings are plain lines and no bar is built.
    """
    if not sys.stderr.isatty():
        return _run_reporting(prepared, transport, again=again, timeout=timeout)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True, highlight=False)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("sending", total=prepared.count)
        return _run_reporting(
            prepared,
            transport,
            again=again,
            timeout=timeout,
            say=lambda line: console.print(line, markup=False, soft_wrap=True),
            advance=lambda: progress.advance(task),
        )


def _run_reporting(
    prepared: PreparedSend,
    transport: Transport,
    *,
    again: Again,
    timeout: float | None,
    say: Callable[[str], None] | None = None,
    advance: Callable[[], None] | None = None,
) -> Summary:
    """Run the batch, saying its warnings with ``say`` (on stderr if None); ``advance`` counts."""
    if say is None:
        say = functools.partial(typer.echo, err=True)

    def on_event(event: Event) -> None:
        if advance is not None and event.status is not Status.PENDING:
            advance()
        for line in _event_lines(event):
            say(line)

    def on_signal(count: int) -> None:
        in_flight = prepared.in_flight
        if count == 1:
            say(_stopping(in_flight, timeout))
            return
        say(_quitting(in_flight, again))
        sys.stdout.flush()
        sys.stderr.flush()
        # The claims on disk make this safe, as a crash is: the next run finds them.
        os._exit(EXIT_INTERRUPTED)

    return prepared.run(transport, on_event=on_event, on_signal=on_signal)


def _stopping(in_flight: int, timeout: float | None) -> str:
    """Say, at the first Ctrl-C, what the batch still does and how long it may take."""
    first = "Stopping: no new message will start"
    if not in_flight:
        return f"{first}, and none is in flight. Ctrl-C again to quit at once."
    those = "The 1 in flight is" if in_flight == 1 else f"The {in_flight} in flight are"
    if timeout is None:  # a Maildir: the files being written
        wait = f"{those} finished"
    else:
        wait = f"{those} waited for (each server reply at most {timeout:g} s, --timeout)"
    return f"{first}. {wait} and recorded. Ctrl-C again to quit at once."


def _quitting(in_flight: int, again: Again) -> str:
    """Say, at the second Ctrl-C, what becomes of the messages in flight."""
    if not in_flight:
        return "Quitting now; no message was in flight, so the send log is complete."
    one = in_flight == 1
    those = "The 1 message in flight stays" if one else f"The {in_flight} messages in flight stay"
    it, they = ("it", "it") if one else ("them", "they")
    return (
        f"Quitting now. {those} 'sending' in the send log; the next run reports {it} as "
        f"uncertain ({they} may have arrived). To send {it} again then: "
        f"{again.send('--resend-uncertain')}"
    )


def _event_lines(event: Event) -> list[str]:
    """Return the lines that report an attempt that did not simply succeed."""
    if event.status is Status.SENT and not event.handover.refused:
        return []
    reply = f"{event.handover.code or ''} {event.handover.text}".strip()
    line = f"{event.contact.id} <{event.contact.email}>: {event.status} (attempt {event.attempt}): "
    lines = [line + reply]
    for address, why in event.handover.refused.items():
        cc = RefusedCc(event.contact.id, address, why)
        lines.append(f"  cc {address} refused{' for now' if cc.for_now else ''}: {why}")
    return lines


def print_summary(
    summary: Summary,
    *,
    again: Again,
    destination: str | None,
    outbox: Path | None,
    log_file: Path,
    later: bool,
) -> None:
    """Say what happened, where the letters went, and the true next steps, options repeated.

    ``later``: the batch stopped because the server refused the login for now, so the next
    step is to wait and run the same command, not to fix something first. Each part says its
    lines as it comes, in reading order, and returns its next steps, said last.
    """
    _say_summary(summary, again, destination=destination, outbox=outbox)
    steps = _retry_steps(summary, again)
    steps.extend(_daily_steps(summary, again))
    steps.extend(_rest_steps(summary, again, later=later))
    steps.extend(_copy_lines(summary, again))
    steps.extend(_log_steps(summary, again, outbox=outbox, log_file=log_file))
    for step in steps:
        typer.echo(f"next: {step}")


def _say_summary(
    summary: Summary, again: Again, /, *, destination: str | None, outbox: Path | None
) -> None:
    """Say the counts, the error that stopped the batch, and where the letters went."""
    left_out = ", ".join(f"{n} {s}" for s, n in sorted(summary.left_out.items()))
    typer.echo(
        f"sent {summary.sent}, failed {summary.failed}, uncertain {summary.uncertain}, "
        f"not sent {summary.not_sent}" + (f"; left out: {left_out}" if left_out else "")
    )
    if set(summary.stages) - {FIRST_STAGE}:
        typer.echo(f"letters sent: {kinds(summary.stages)}")
    if summary.error is not None:
        typer.echo(f"error: {said(summary.error, again=again)}", err=True)
    for cc in summary.refused_cc:
        typer.echo(str(cc))
    if summary.interrupted:
        typer.echo("Stopped on request; messages in flight were settled and recorded.")
    if summary.sent and outbox is not None:
        typer.echo(f"The letters are in the Maildir {outbox}: nothing left this machine.")
    elif summary.sent:
        typer.echo(f"The letters went to {destination}.")
    if summary.selected and summary.ok and not summary.sent:
        _say_nothing_sent(summary)


def _say_nothing_sent(summary: Summary) -> None:
    """Say why a run that went well sent nothing: letters not due yet, or none will be."""
    from outreach.batch import ALL_SENT, BOUNCED, LATER, NOT_DUE, REPLIED, STOPPED

    waiting = summary.left_out.get(NOT_DUE, 0)
    later = summary.left_out.get(LATER, 0)
    if waiting or later:
        held = []
        if waiting:
            held.append(
                f"{plural(waiting, 'letter')} not due yet (outside the send window or before "
                "not_before)"
            )
        if later:
            held.append(f"{plural(later, 'follow-up')} not due yet")
        typer.echo(
            f"Nothing to send now: {' and '.join(held)}; 'outreach plan' says when each is due."
        )
    elif set(summary.left_out) <= {Status.SENT}:
        typer.echo("Nothing to send: every selected recipient is already sent.")
    elif set(summary.left_out) <= {Status.SENT, STOPPED, REPLIED, BOUNCED, ALL_SENT}:
        typer.echo(
            "Nothing to send: no letter is due to any selected contact, nor will be (see "
            "'left out'); 'outreach plan' says why for each."
        )


def _retry_steps(summary: Summary, again: Again) -> list[str]:
    """Return the steps for the failed and the uncertain, of this run or of earlier ones."""
    steps = []
    if summary.failed or summary.left_out.get(Status.FAILED):
        steps.append(f"see why: {again.log('--status', 'failed')}")
        steps.append(f"try them again: {again.send('--retry-failed')}")
    if summary.uncertain or summary.left_out.get(Status.UNCERTAIN):
        steps.append(
            "uncertain messages may have arrived: check with the server's operator, then send "
            f"them again: {again.send('--resend-uncertain')}"
        )
    return steps


def _daily_steps(summary: Summary, again: Again) -> list[str]:
    """Say that the daily limit left recipients for later, and when the next can go."""
    from outreach.api import DAILY

    if not summary.left_out.get(DAILY):
        return []
    when = (
        f"from {summary.resume_at:%Y-%m-%d %H:%M} UTC"
        if summary.resume_at is not None
        else "once a day has passed since the first of today's"
    )
    typer.echo(
        f"Daily limit reached: {plural(summary.left_out[DAILY], 'recipient')} left for "
        f"later. The next can go {when}."
    )
    return [f"send the rest {when} (none is sent twice): {again.send()}"]


def _rest_steps(summary: Summary, again: Again, *, later: bool) -> list[str]:
    """Return the step for those not sent yet: wait, fix what stopped the batch, or go on."""
    from outreach.api import LIMITED

    rest = summary.not_sent + summary.left_out.get(LIMITED, 0)
    if not rest:
        return []
    if summary.error is not None and later:
        step = (
            "the server refused the login for now: wait a while, then run the same command to "
            f"send the {rest} not sent yet (none is sent twice): {again.send()}"
        )
        return [step]
    if summary.error is not None:
        return [
            f"once that is fixed, send the {rest} not sent yet (none is sent twice): {again.send()}"
        ]
    return [f"go on with the {rest} not sent yet (none is sent twice): {again.send()}"]


def _log_steps(summary: Summary, again: Again, *, outbox: Path | None, log_file: Path) -> list[str]:
    """Return the steps to see the log and, after a run into the outbox, to send for real."""
    steps = []
    if summary.selected:
        steps.append(f"see what happened to each recipient: {again.log()}")
    if outbox is not None and summary.sent:
        # A trial's log is its own: the live run records in the campaign's, where none is sent.
        real = again.command(
            "send",
            drop=frozenset({"--dry-run", "--outbox", "--log"}),
            add=("--smtp", "smtp://you@mail.your-organization.example"),
        )
        steps.append(f"to send for real (the trial's log, {log_file}, holds no one back): {real}")
    return steps


def _copy_lines(summary: Summary, again: Again) -> list[str]:
    """Say how many copies were saved in the Sent folder and how many not; return next steps."""
    copies = summary.copies
    if copies is None:
        return []
    line = f"copies in the folder {copies.folder!r}: {copies.saved} saved"
    if copies.found:
        line += f", {copies.found} found there already (not saved twice)"
    line += f", {copies.missing} not saved"
    typer.echo(line)
    if not copies.missing:
        return []
    if copies.reason:
        typer.echo(f"copies not saved: {copies.reason}", err=True)
    them = "it" if copies.missing == 1 else f"the {copies.missing}"
    step = (
        f"the letters themselves were sent; once the mailbox can be reached, save {them} "
        f"(nothing is sent again, no copy is saved twice): {again.send('--save-sent')}"
    )
    return [step]
