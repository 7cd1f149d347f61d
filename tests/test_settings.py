"""Settings are resolved once, in the library: a script gets what the command line gets."""

from pathlib import Path

import pytest
from helpers import contacts_yaml, run_cli, write_campaign

import outreach
from outreach import api, settings
from outreach.batch import DAILY, SendOptions
from outreach.ratelimit import Rate

# Each case: lines added to campaign.toml, the send options given, and the plan expected.
CASES = [
    pytest.param(
        "daily_limit = 2\n",
        [],
        "to the outbox Maildir (a trial run); at most 2 recipients in any 24 hours; "
        "no rate limit; send log logs/test-campaign-trial.sqlite3",
        id="campaign-daily-limit",
    ),
    pytest.param(
        "daily_limit = 2\n",
        ["--daily-limit", "4"],
        "to the outbox Maildir (a trial run); at most 4 recipients in any 24 hours; "
        "no rate limit; send log logs/test-campaign-trial.sqlite3",
        id="option-beats-campaign",
    ),
    pytest.param(
        'provider = "microsoft365"\n',
        [],
        "to smtp://sender%40outreach.example@smtp.office365.com:587; at most 10000 recipients "
        "in any 24 hours; at most 30/min; send log logs/test-campaign.sqlite3",
        id="provider-server-and-limits",
    ),
    pytest.param(
        'provider = "microsoft365"\ndaily_limit = 50\n',
        ["--rate", "5/min", "--smtp", "smtp://sender@relay.example"],
        "to smtp://sender@relay.example; at most 50 recipients in any 24 hours; at most 5/min; "
        "send log logs/test-campaign.sqlite3",
        id="option-and-campaign-beat-provider",
    ),
    pytest.param(
        "",
        ["--log", "elsewhere.sqlite3"],
        "to the outbox Maildir (a trial run); no daily limit; no rate limit; "
        "send log elsewhere.sqlite3",
        id="caller-log",
    ),
]


def _api_settings(campaign: api.Campaign, args: list[str]) -> settings.SendSettings:
    """Resolve through the library the options the command line was given as ``args``."""
    given = dict(zip(args[::2], args[1::2], strict=True))
    rate = given.get("--rate")
    limit = given.get("--daily-limit")
    log = given.get("--log")
    return settings.resolve_send(
        campaign,
        options=SendOptions(
            daily_limit=int(limit) if limit else None,
            rate=api.parse_rate(rate) if rate else None,
        ),
        smtp=given.get("--smtp"),
        log=Path(log) if log else None,
    )


@pytest.mark.parametrize(("extra", "args", "plan"), CASES)
def test_the_command_line_and_the_api_resolve_the_same_plan(
    tmp_path, monkeypatch, extra, args, plan
):
    """A dry run on the command line states the plan the library resolves from the same input."""
    campaign_file = write_campaign(tmp_path, contacts=contacts_yaml(3))
    campaign_file.write_text(campaign_file.read_text() + extra, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # as the command line, which finds campaign.toml here
    campaign = outreach.load_campaign("campaign.toml")
    expected = plan
    assert _api_settings(campaign, args).describe() == expected
    result = run_cli("send", "--dry-run", "--allow-reserved-domains", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"dry run: {expected}" in result.stdout.splitlines()


def test_a_script_keeps_the_campaign_files_daily_limit(tmp_path):
    """outreach.send on a campaign with daily_limit = 2 sends 2 and leaves the rest for later."""
    campaign_file = write_campaign(tmp_path, contacts=contacts_yaml(5))
    campaign_file.write_text(campaign_file.read_text() + "daily_limit = 2\n", encoding="utf-8")
    summary = outreach.send(outreach.load_campaign(campaign_file))
    assert (summary.sent, summary.left_out[DAILY]) == (2, 3)
    assert summary.resume_at is not None


def test_the_providers_rate_applies_to_a_script(tmp_path):
    """prepare_send fills the rate and daily limit a campaign's provider allows."""
    campaign_file = write_campaign(tmp_path, contacts=contacts_yaml(2))
    extra = 'provider = "microsoft365"\n'
    campaign_file.write_text(campaign_file.read_text() + extra, encoding="utf-8")
    with outreach.prepare_send(outreach.load_campaign(campaign_file)) as batch:
        assert (batch.options.rate, batch.options.daily_limit) == (Rate(30, 60.0), 10_000)


@pytest.mark.parametrize(
    ("given", "in_file", "provider", "expected"),
    [
        ("imaps://given@imap.example", "imaps://file@imap.example", "gmail", "given"),
        (None, "imaps://file@imap.example", "gmail", "file"),
        (None, None, "gmail", "provider"),
        (None, None, None, None),
    ],
    ids=["option", "campaign-file", "provider", "none"],
)
def test_the_imap_account_falls_back_from_option_to_file_to_provider(
    tmp_path, given, in_file, provider, expected
):
    """The IMAP URL is the caller's, else the campaign file's, else the provider's server."""
    campaign_file = write_campaign(tmp_path, contacts=contacts_yaml(1))
    lines = (f'imap = "{in_file}"\n' if in_file else "") + (
        f'provider = "{provider}"\n' if provider else ""
    )
    campaign_file.write_text(campaign_file.read_text() + lines, encoding="utf-8")
    campaign = outreach.load_campaign(campaign_file)
    profile = settings.campaign_profile(campaign)
    urls = {
        "given": given,
        "file": in_file,
        "provider": "imaps://sender%40outreach.example@imap.gmail.com:993",
        None: None,
    }
    assert settings.imap_url(campaign, imap=given, profile=profile) == urls[expected]


def test_an_unknown_sign_in_method_names_the_parameter_to_a_script(tmp_path):
    """The library names its own parameter ('auth'), never an option a script does not have."""
    campaign = outreach.load_campaign(write_campaign(tmp_path, contacts=contacts_yaml(1)))
    with pytest.raises(outreach.ConfigError) as caught:
        settings.sign_in(campaign, auth="kerberos")
    assert str(caught.value) == "auth 'kerberos': use password or xoauth2"
    assert caught.value.said({"auth": "--auth"}) == "--auth 'kerberos': use password or xoauth2"


def test_a_trial_run_keeps_a_log_of_its_own(tmp_path):
    """A run into the outbox records in the trial log; the campaign's log stays for live runs."""
    campaign = outreach.load_campaign(write_campaign(tmp_path, contacts=contacts_yaml(2)))
    summary = outreach.send(campaign)
    assert summary.sent == 2
    assert settings.trial_log(campaign).exists()
    assert not campaign.default_log.exists()
    assert api.log_to_read(campaign) == settings.LogChoice(settings.trial_log(campaign), trial=True)
