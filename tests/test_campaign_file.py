import textwrap
from pathlib import Path

import pytest
from helpers import contacts_yaml, run_cli, write_campaign


def test_check_names_every_missing_field_at_once(tmp_path: Path) -> None:
    """With both 'contacts' and 'from' missing, check names both in one run."""
    (tmp_path / "campaign.toml").write_text(
        'name = "trial"\nsubject = "A letter"\ntemplate = "letter.md.j2"\n', encoding="utf-8"
    )
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == textwrap.dedent(
        """\
        error: campaign.toml: 2 problems:
          field 'contacts' is missing; add a line such as contacts = "contacts.yaml"
          field 'from' is missing; add a line such as from = "Your Name <you@your-organization.example>"
        """
    )


@pytest.mark.parametrize("name", ["a/b", "../escape", "two..dots", "a b", "c:d", "-dash", "é"])
def test_a_name_that_cannot_name_a_file_is_refused(tmp_path: Path, name: str) -> None:
    """A campaign name with a slash, '..' or unsafe characters is refused before any file is made."""
    campaign = write_campaign(tmp_path, contacts=contacts_yaml(1))
    text = campaign.read_text(encoding="utf-8").replace('"test-campaign"', f'"{name}"')
    campaign.write_text(text, encoding="utf-8")
    done = run_cli("send", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (
        f"error: campaign.toml: field 'name': {name!r} cannot name the send log file: use "
        "letters, digits, '.', '-' and '_' (at most 100, starting with a letter or digit, "
        "no '..')\n"
    )
    assert not (tmp_path / "logs").exists()
    assert not (tmp_path / "outbox").exists()


def test_unknown_fields_are_named_in_words(tmp_path: Path) -> None:
    """Misspelt fields are named, with the known ones, as words rather than a Python list."""
    campaign = write_campaign(tmp_path, contacts=contacts_yaml(1))
    text = campaign.read_text(encoding="utf-8")
    campaign.write_text(text + 'reply_too = "a@b.example"\ndaly_limit = 5\n', encoding="utf-8")
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (
        "error: campaign.toml: unknown fields 'daly_limit', 'reply_too'; known: "
        "attachment_folders, attachments, auth, contacts, daily_limit, dkim_key, dkim_selector, "
        "follow_up, from, imap, letterhead, name, not_before, organization, organization_address, pdf, pdf_name, "
        "provider, reply_to, return_path, send_window, sent_folder, subject, template, "
        "timezone\n"
    )


def other_campaign_file(folder: Path, extra: str) -> Path:
    """Write a campaign whose file is c2.toml, not campaign.toml, with ``extra`` appended."""
    default = write_campaign(folder, contacts=contacts_yaml(1))
    other = default.rename(folder / "c2.toml")
    other.write_text(other.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return other


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('dkim_key = "key.pem"\ndkim_selector = "s1"\n', "dkim_key"),
        ('attachments = ["annex.pdf"]\n', "attachments"),
        ('provider = "nowhere"\n', "provider"),
    ],
)
def test_an_error_names_the_campaign_file_given_not_campaign_toml(
    tmp_path: Path, extra: str, field: str
) -> None:
    """With --campaign c2.toml, a bad field of it is reported against c2.toml."""
    (tmp_path / "key.pem").write_text("not a key\n", encoding="utf-8")
    (tmp_path / "key.pem").chmod(0o600)
    other_campaign_file(tmp_path, extra)
    done = run_cli("check", "--campaign", "c2.toml", cwd=tmp_path)
    assert done.returncode == 1
    assert f"error: c2.toml: field '{field}': " in done.stderr
    assert "campaign.toml" not in done.stderr


def test_an_unknown_stage_is_named_against_the_campaign_file_given(tmp_path: Path) -> None:
    """A preview of a stage c2.toml lacks says c2.toml has no such stage."""
    other_campaign_file(tmp_path, "")
    done = run_cli("preview", "--campaign", "c2.toml", "--stage", "remind", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (
        "error: c2.toml: no follow-up stage 'remind'; stages: none: the campaign file has no "
        "[[follow_up]]\n"
    )
