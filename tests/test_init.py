import mailbox
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from helpers import need_module, need_program, run_cli


def test_init_writes_a_campaign_that_checks_and_sends_into_the_outbox(tmp_path: Path) -> None:
    """'outreach init DIR' writes a campaign whose check passes with placeholder warnings and whose send fills the outbox."""
    done = run_cli("init", "spring-appeal", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "wrote campaign.toml, letter.md.j2, contacts.yaml, templates/letterhead.html.j2, "
        ".gitignore into spring-appeal\n"
        "next: cd spring-appeal && outreach check, then outreach send: the letters go into the "
        "Maildir outbox/ and nothing leaves this machine\n"
    )
    folder = tmp_path / "spring-appeal"
    assert 'name = "spring-appeal"' in (folder / "campaign.toml").read_text(encoding="utf-8")
    checked = run_cli("check", cwd=folder)
    assert checked.returncode == 0, checked.stderr
    assert (
        checked.stdout
        == "check passed: 2 contacts valid, 2 drafts rendered, 0 problems, 2 warnings\n"
    )
    assert checked.stderr == (
        "warning: contacts.yaml: 2 contacts have placeholder addresses on reserved domains "
        "(.example, .invalid, .test, .localhost), which cannot receive mail: ada-example, grace-example\n"
        "warning: campaign: the sender you@your-organization.example is a placeholder; set --from or 'from'\n"
    )
    sent = run_cli("send", cwd=folder)
    assert sent.returncode == 0, sent.stderr
    letters = [message for _, message in mailbox.Maildir(folder / "outbox", create=False).items()]
    assert sorted(str(message["To"]) for message in letters) == [
        "Ada Example <ada@partner-one.example>",
        "Grace Example <grace@partner-two.example>",
    ]


def test_init_never_overwrites_a_file(tmp_path: Path) -> None:
    """'outreach init' in a folder that holds a campaign file writes nothing and says why."""
    (tmp_path / "campaign.toml").write_text("# mine\n", encoding="utf-8")
    done = run_cli("init", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (
        "error: this folder already holds campaign.toml; nothing was written. "
        "Choose an empty folder: outreach init NEW-FOLDER\n"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["campaign.toml"]
    assert (tmp_path / "campaign.toml").read_text(encoding="utf-8") == "# mine\n"


def test_init_names_the_campaign_safely_after_an_odd_folder(tmp_path: Path) -> None:
    """A folder name with spaces and accents gives a campaign name that can name the send log."""
    done = run_cli("init", "Lettre d'été 2026", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "Lettre d'été 2026" / "campaign.toml").read_text(encoding="utf-8")
    assert 'name = "Lettre-d-t-2026"' in text


@pytest.mark.parametrize("provider", ["microsoft365", "gmail", "google-workspace"])
def test_each_commented_provider_example_is_a_working_line(tmp_path: Path, provider: str) -> None:
    """Uncommenting a provider example of the written campaign.toml gives a campaign that loads and sends live."""
    run_cli("init", cwd=tmp_path)
    campaign = tmp_path / "campaign.toml"
    text = campaign.read_text(encoding="utf-8")
    line = f'# provider = "{provider}"'
    assert line in text
    campaign.write_text(text.replace(line, line[2:]), encoding="utf-8")
    assert run_cli("check", cwd=tmp_path).returncode == 0
    done = run_cli("send", "--dry-run", cwd=tmp_path)
    assert done.returncode == 1  # a provider sends for real: placeholders are refused
    assert "placeholder addresses on reserved domains" in done.stderr


def test_the_commented_plain_server_examples_parse(tmp_path: Path) -> None:
    """The plain-server --smtp examples in the written campaign.toml are URLs send accepts."""
    run_cli("init", cwd=tmp_path)
    text = (tmp_path / "campaign.toml").read_text(encoding="utf-8")
    urls = [line.split()[2] for line in text.splitlines() if line.startswith("#   --smtp ")]
    assert urls == [
        "smtp://user@mail.your-organization.example",
        "smtps://user@mail.your-organization.example",
    ]
    for url in urls:
        done = run_cli("send", "--dry-run", "--smtp", url, "--allow-reserved-domains", cwd=tmp_path)
        assert (done.returncode, done.stdout.splitlines()) == (
            0,
            [
                (
                    f"dry run: to {url}; no daily limit; no rate limit; send log "
                    f"logs/{tmp_path.name}.sqlite3"
                ),
                "dry run: 2 drafts rendered and checked; nothing sent or logged",
            ],
        )


def test_the_commented_pdf_line_makes_a_pdf_on_the_written_letterhead(tmp_path: Path) -> None:
    """Uncommenting 'pdf = true' in the written campaign.toml gives a campaign that checks and previews as PDFs."""
    need_module("weasyprint", install="pip install 'outreach[pdf]' (and Pango from the system)")
    assert run_cli("init", cwd=tmp_path).returncode == 0
    assert (tmp_path / "templates" / "letterhead.html.j2").is_file()
    campaign = tmp_path / "campaign.toml"
    text = campaign.read_text(encoding="utf-8")
    assert "\n# pdf = true\n" in text
    campaign.write_text(text.replace("\n# pdf = true\n", "\npdf = true\n"), encoding="utf-8")
    checked = run_cli("check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == (
        "check passed: 2 contacts valid, 2 drafts rendered, 0 problems, 3 warnings\n"
    )
    assert "warning: campaign: the letterhead's postal address is a placeholder" in checked.stderr
    previewed = run_cli("preview", "ada-example", "--out", "drafts", cwd=tmp_path)
    assert previewed.returncode == 0, previewed.stderr
    pdf = (tmp_path / "drafts" / "ada-example.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-")
    program = need_program("pdftotext", package="poppler-utils")
    done = subprocess.run([program, "-", "-"], input=pdf, capture_output=True, check=True)
    assert "Dear Ada Example," in done.stdout.decode("utf-8")


def test_init_writes_a_gitignore_for_the_key_the_logs_the_outbox_and_the_reports(
    tmp_path: Path,
) -> None:
    """The .gitignore init writes leaves keys/, logs/, outbox/ and reports/ out of git."""
    assert run_cli("init", cwd=tmp_path).returncode == 0
    lines = (tmp_path / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert [line for line in lines if not line.startswith("#")] == [
        "keys/",
        "logs/",
        "outbox/",
        "reports/",
    ]


def test_init_leaves_a_gitignore_there_as_it_is(tmp_path: Path) -> None:
    """In a folder with its own .gitignore, init writes the campaign and leaves that file alone."""
    (tmp_path / ".gitignore").write_text("*.pyc\n", encoding="utf-8")
    done = run_cli("init", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "wrote campaign.toml, letter.md.j2, contacts.yaml, templates/letterhead.html.j2 into "
    )
    assert (tmp_path / ".gitignore").read_text(encoding="utf-8") == "*.pyc\n"


def test_the_commented_dkim_and_follow_up_examples_are_working_lines(tmp_path: Path) -> None:
    """Uncommenting the DKIM and [[follow_up]] examples, with a key and a reminder, checks clean."""
    assert run_cli("init", cwd=tmp_path).returncode == 0
    campaign = tmp_path / "campaign.toml"
    text = campaign.read_text(encoding="utf-8")
    examples = (
        '# dkim_key = "keys/outreach.private"',
        '# dkim_selector = "outreach"',
        "# [[follow_up]]",
        '# name = "reminder"',
        '# template = "reminder.md.j2"',
        '# after = "7d"',
    )
    for line in examples:
        assert f"\n{line}" in text, line
        text = text.replace(f"\n{line}", f"\n{line[2:]}")
    campaign.write_text(text, encoding="utf-8")
    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "outreach.private").write_bytes(key)
    (tmp_path / "keys" / "outreach.private").chmod(0o600)
    (tmp_path / "reminder.md.j2").write_text("Dear {{ name }}, a reminder.\n", encoding="utf-8")
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "check passed: 2 contacts valid, 2 drafts and 2 follow-ups rendered, 0 problems, "
        "2 warnings\n"
    )
