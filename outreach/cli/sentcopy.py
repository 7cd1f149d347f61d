"""The IMAP account of 'send': the reply check before follow-ups, and the Sent copy.

For --save-sent: its options, its account, what is said of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from outreach.cli.say import Again, plural
from outreach.cli.secrets import PasswordSource, imap_credentials
from outreach.errors import ConfigError

# The API is imported by the commands that use it: `outreach --help` stays quick.
if TYPE_CHECKING:
    from outreach.api import (
        Campaign,
        PreparedSend,
        Provider,
        ReplyCheck,
        SaveSent,
        SmtpSettings,
    )


# The options that say where the copies of --save-sent go, by parameter name.
COPY_OPTIONS = {
    "imap": "--imap",
    "sent_folder": "--sent-folder",
    "imap_password_command": "--imap-password-command",
}
# Those that also say which account is read for replies, in a campaign with follow-ups.
REPLY_OPTIONS = frozenset({"imap", "imap_password_command"})


def refuse_copy_options(ctx: typer.Context, *, follow_ups: bool = False) -> None:
    """Refuse an option of --save-sent typed without it; from the environment it may be there.

    OUTREACH_IMAP_URL and OUTREACH_IMAP_PASSWORD_COMMAND serve 'track' as well, so only what
    was typed on the command line is refused; with ``follow_ups``, --imap and its password
    command say which account is read for replies, and are not refused.
    """
    typed = []
    for name, option in COPY_OPTIONS.items():
        if follow_ups and name in REPLY_OPTIONS:
            continue
        source = ctx.get_parameter_source(name)
        # By its name: typer has the enum from click, or from a copy of click of its own.
        if source is not None and source.name == "COMMANDLINE":
            typed.append(option)
    if not typed:
        return
    names = " and ".join(typed)
    takes = "takes" if len(typed) == 1 else "take"
    msg = (
        f"{names} only {takes} effect with --save-sent (a copy of each letter sent in the IMAP "
        f"account's Sent folder): add --save-sent, or drop {names}. Nothing was sent."
    )
    raise ConfigError(msg)


def sent_copies(
    campaign: Campaign,
    smtp: SmtpSettings | None,
    imap: str | None,
    folder: str | None,
    sign_in: tuple[str, Provider | None, str | None, PasswordSource],
    *,
    test_to: str | None,
) -> SaveSent:
    """Say where the copies of the letters go: the IMAP account, its login, the folder."""
    from outreach import api, settings

    if test_to:
        msg = "--save-sent: test sends are not filed in the Sent folder; drop one of the two"
        raise ConfigError(msg)
    if smtp is None:
        msg = (
            "--save-sent: the letters go into the outbox Maildir, not to a server, so there is "
            "no sent letter to file; use it with --smtp. Nothing was sent."
        )
        raise ConfigError(msg)
    method, profile, token_command, password = sign_in
    if settings.files_sent_mail(smtp.host, profile=profile):
        typer.echo(
            "warning: Gmail and Microsoft 365 file the mail sent through them in Sent "
            "themselves; with --save-sent each letter would be there twice",
            err=True,
        )
    if settings.imap_url(campaign, imap=imap, profile=profile) is None:
        msg = (
            "--save-sent: no IMAP account to save the copies in: pass --imap "
            "imaps://user@host, set OUTREACH_IMAP_URL, or add a line such as imap = "
            f'"imaps://you@mail.your-organization.example" to {campaign.file}. Nothing was sent.'
        )
        raise ConfigError(msg)
    imap_settings = api.imap_settings(
        imap,
        campaign=campaign,
        profile=profile,
        verify=smtp.verify,
        timeout=smtp.timeout,
        require_tls=smtp.require_tls,
        credentials_hint=password.ways(),
    )
    credentials = imap_credentials(imap_settings, method, profile, token_command, password)
    return api.SaveSent(imap=imap_settings, credentials=credentials, folder=folder)


def say_copies(prepared: PreparedSend, *, again: Again) -> None:
    """Say where the copies go, or that copies of an earlier run are still to be saved."""
    left = prepared.count_unsaved_copies()
    if prepared.sent_folder is None:
        if left:
            typer.echo(
                f"note: {plural(left, 'copy')} of letters sent with --save-sent "
                f"{'is' if left == 1 else 'are'} not in the Sent folder yet; to save "
                f"{'it' if left == 1 else 'them'}: {again.send('--save-sent')}",
                err=True,
            )
        return
    earlier = f"; first the {left} an earlier run left unsaved" if left else ""
    typer.echo(f"A copy of each letter sent goes to the folder {prepared.sent_folder!r}{earlier}.")


def reply_check(
    campaign: Campaign,
    smtp: SmtpSettings,
    imap: str | None,
    sign_in: tuple[str, Provider | None, str | None, PasswordSource],
) -> ReplyCheck | None:
    """Say which account is read for replies before follow-ups; None if none is known.

    Nothing is asked or logged in to here: only when follow-ups are due is the account read.
    """
    from outreach import api, settings

    method, profile, token_command, password = sign_in
    if settings.imap_url(campaign, imap=imap, profile=profile) is None:
        return None
    imap_settings = api.imap_settings(
        imap,
        campaign=campaign,
        profile=profile,
        verify=smtp.verify,
        timeout=smtp.timeout,
        require_tls=smtp.require_tls,
        credentials_hint=password.ways(),
    )
    credentials = imap_credentials(imap_settings, method, profile, token_command, password)
    return api.ReplyCheck(imap=imap_settings, credentials=credentials)
