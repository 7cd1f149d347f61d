import base64
import dataclasses
import email.utils
import hashlib
import mailbox
import os
import sqlite3
import subprocess
import textwrap
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers import run_cli, write_campaign
from mailserver import PASSWORD, Server

from outreach.api import prepare_send
from outreach.attachments import BASE64_LINE, MAX_FILE_SIZE, base64_body, mime_part
from outreach.batch import SendOptions
from outreach.campaign import load_campaign
from outreach.drafts import Drafter, DraftPool, check
from outreach.errors import InputError
from outreach.model import Contact
from outreach.transport import MaildirTransport

ANNEX = b"%PDF-1.4 an annex, as bytes that are not text: \x00\x01\xfe\xff" * 40


def campaign_with(folder: Path, *, extra: str = "", contacts: str | None = None) -> Path:
    """Write a two-contact campaign into ``folder``, with extra lines in campaign.toml."""
    contacts = contacts or textwrap.dedent(
        """\
        contacts:
          - id: alpha
            email: alpha@mission.example
            name: Alpha
            country: Alphaland
          - id: beta
            email: beta@mission.example
            name: Beta
            country: Betaland
        """
    )
    path = write_campaign(folder, contacts=contacts)
    if extra:
        path.write_text(path.read_text(encoding="utf-8") + textwrap.dedent(extra), "utf-8")
    return path


def send_live(folder: Path, server: Server, ca_file: Path) -> subprocess.CompletedProcess[str]:
    """Run 'outreach send' in ``folder`` to ``server`` over TLS, as its user, asking nothing."""
    env = {
        "OUTREACH_SMTP_URL": server.url(),
        "OUTREACH_SMTP_PASSWORD": PASSWORD,
        "SSL_CERT_FILE": str(ca_file),
    }
    return run_cli("send", "--yes", "--allow-reserved-domains", cwd=folder, env=env)


def parse(data: bytes) -> EmailMessage:
    """Parse a message's bytes with the standard library."""
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def one_contact(attachments: tuple[str, ...], line: int = 3) -> Contact:
    """A contact naming ``attachments``, as the contact list would give it."""
    return Contact(
        id="gamma",
        email="gamma@mission.example",
        name="Gamma",
        data={"country": "Gammaland"},
        line=line,
        attachments=attachments,
    )


@pytest.fixture
def annexed(tmp_path: Path) -> Path:
    """A campaign whose every letter carries annexes/annex.pdf."""
    folder = tmp_path / "campaign"
    (folder / "annexes").mkdir(parents=True)
    (folder / "annexes" / "annex.pdf").write_bytes(ANNEX)
    campaign_with(folder, extra='attachments = ["annexes/annex.pdf"]\n')
    return folder


def test_base64_body_matches_the_standard_library_in_lines_of_76() -> None:
    """The body is the standard base64 of the file, in CRLF-separated lines of 76 characters."""
    data = os.urandom(10_000)
    body = base64_body(data)
    lines = body.split(b"\r\n")
    assert all(len(line) == BASE64_LINE for line in lines[:-1])
    assert 0 < len(lines[-1]) <= BASE64_LINE
    assert base64.b64decode(b"".join(lines)) == data
    assert body == base64.encodebytes(data).rstrip(b"\n").replace(b"\n", b"\r\n")


def test_letter_with_attachment_is_mixed_around_the_alternative(annexed: Path) -> None:
    """The message is multipart/mixed: the text and HTML alternative first, then the file intact."""
    drafter = Drafter(load_campaign(annexed / "campaign.toml"))
    message = parse(drafter.draft(one_contact(())).data)
    assert message.get_content_type() == "multipart/mixed"
    first, annex = message.get_payload()  # type: ignore[misc]
    assert first.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in first.get_payload()] == ["text/plain", "text/html"]
    assert "This is the letter for Gammaland." in message.get_body(("plain",)).get_content()
    assert annex.get_content_type() == "application/pdf"
    assert annex.get_content_disposition() == "attachment"
    assert annex.get_filename() == "annex.pdf"
    assert annex["Content-Transfer-Encoding"] == "base64"
    assert annex.get_payload(decode=True) == ANNEX
    assert message.defects == []


def test_letter_without_attachments_stays_alternative(campaign_dir: Path) -> None:
    """A campaign with no files keeps the plain multipart/alternative layout."""
    drafter = Drafter(load_campaign(campaign_dir / "campaign.toml"))
    message = parse(drafter.draft(one_contact(())).data)
    assert message.get_content_type() == "multipart/alternative"


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("annex.pdf", "application/pdf"),
        (
            "Déclaration du Conseil de sécurité \u2013 version révisée, 24 juin 2010.pdf",
            "application/pdf",
        ),
        ("Заявление Совета Безопасности.docx", None),
        ("声明.txt", "text/plain"),
        ('a "quoted" name; with=specials\\and a backslash.csv', "text/csv"),
        ("=?utf-8?q?looks_encoded?=.bin", "application/octet-stream"),
        ("x" * 300 + ".pdf", "application/pdf"),
    ],
)
def test_file_name_survives_as_written(filename: str, content_type: str | None) -> None:
    """Non-ASCII names (RFC 2231), quotes and specials come back exactly as the file's name."""
    data = b"content of the file"
    part = mime_part(data, filename=filename, content_type=content_type or "application/x-test")
    assert part.isascii()
    assert all(len(line) <= 78 for line in part.split(b"\r\n"))
    parsed = parse(part)
    assert parsed.get_filename() == filename
    assert parsed.get_param("name", header="content-type") == filename
    assert parsed.get_payload(decode=True) == data
    if not filename.isascii():
        assert b"filename*" in part  # RFC 2231, not an RFC 2047 encoded word
        assert b"=?utf-8?" not in part.lower()


@pytest.mark.parametrize(
    "bad", ["a\r\nBcc: victim@else.example.pdf", "a\nb.pdf", "a\rb.pdf", "a\x00b"]
)
def test_file_name_with_a_line_break_is_refused(bad: str) -> None:
    """A name that could end a header line is refused, never written into the headers."""
    with pytest.raises(ValueError, match="rename the file"):
        mime_part(b"x", filename=bad, content_type="application/pdf")


def test_file_named_with_a_newline_on_disk_is_refused_by_check(tmp_path: Path) -> None:
    """Check names the contact and the file when a file's own name holds a line break."""
    folder = tmp_path / "campaign"
    campaign_with(folder)
    (folder / "evil\nBcc: x@else.example.pdf").write_bytes(b"data")
    (folder / "annex.pdf").symlink_to(folder / "evil\nBcc: x@else.example.pdf")
    drafter = Drafter(load_campaign(folder / "campaign.toml"))
    with pytest.raises(InputError, match=r"control character U\+000A") as caught:
        drafter.draft(one_contact(("annex.pdf",)))
    assert "contact 'gamma', field 'attachments'" in str(caught.value)


def test_each_distinct_file_is_read_and_encoded_once(annexed: Path) -> None:
    """Every message carries the very same encoded part: the file was read once, not per letter."""
    (annexed / "own.txt").write_text("mine", encoding="utf-8")
    drafter = Drafter(load_campaign(annexed / "campaign.toml"))
    files = drafter.attachments
    first = files.for_contact(one_contact(("own.txt",)))
    second = files.for_contact(one_contact(("own.txt", "annexes/annex.pdf")))
    assert first[0] is second[0]
    assert first[1] is second[1]
    assert second[2] is first[0]  # the same file named twice: one part
    assert len(files.loaded()) == 2


@pytest.mark.parametrize(
    "path",
    [
        "../outside.pdf",
        "../../../../../../../../etc/passwd",
        "annexes/../../outside.pdf",
        "ABSOLUTE",
    ],
)
def test_contact_path_leaving_the_campaign_folder_is_refused(tmp_path: Path, path: str) -> None:
    """A contact's '../' or absolute path to a file outside the campaign's folder is refused."""
    folder = tmp_path / "campaign"
    campaign_with(folder)
    (tmp_path / "outside.pdf").write_bytes(b"secret")
    raw = str(tmp_path / "outside.pdf") if path == "ABSOLUTE" else path
    drafter = Drafter(load_campaign(folder / "campaign.toml"))
    with pytest.raises(InputError, match="outside the campaign's folder") as caught:
        drafter.draft(one_contact((raw,)))
    assert f"add its folder to attachment_folders in {folder / 'campaign.toml'}" in str(
        caught.value
    )


def test_symlink_pointing_out_of_the_campaign_folder_is_refused(tmp_path: Path) -> None:
    """A link inside the folder whose target is outside it is refused like the target's path."""
    folder = tmp_path / "campaign"
    campaign_with(folder)
    (tmp_path / "secret.txt").write_bytes(b"secret")
    (folder / "innocent.pdf").symlink_to(tmp_path / "secret.txt")
    drafter = Drafter(load_campaign(folder / "campaign.toml"))
    with pytest.raises(InputError, match=r"secret\.txt', outside the campaign's folder"):
        drafter.draft(one_contact(("innocent.pdf",)))


def test_symlink_inside_the_campaign_folder_is_followed(tmp_path: Path) -> None:
    """A link to another file of the campaign's folder is attached under the target's name."""
    folder = tmp_path / "campaign"
    campaign_with(folder)
    (folder / "annex.pdf").write_bytes(ANNEX)
    (folder / "link.pdf").symlink_to(folder / "annex.pdf")
    drafter = Drafter(load_campaign(folder / "campaign.toml"))
    message = parse(drafter.draft(one_contact(("link.pdf",))).data)
    [annex] = message.iter_attachments()
    assert annex.get_payload(decode=True) == ANNEX


def test_folder_allowed_in_campaign_file_lets_contacts_point_there(tmp_path: Path) -> None:
    """attachment_folders in campaign.toml lets a contact name a file in that folder."""
    folder = tmp_path / "campaign"
    shared = tmp_path / "shared annexes"
    shared.mkdir()
    (shared / "annex.pdf").write_bytes(ANNEX)
    campaign_with(folder, extra='attachment_folders = ["../shared annexes"]\n')
    drafter = Drafter(load_campaign(folder / "campaign.toml"))
    message = parse(drafter.draft(one_contact((str(shared / "annex.pdf"),))).data)
    [annex] = message.iter_attachments()
    assert annex.get_payload(decode=True) == ANNEX
    with pytest.raises(InputError, match="outside the campaign's folder"):
        drafter.draft(one_contact(("../elsewhere.pdf",)))


def test_contacts_paths_are_relative_to_the_contact_list(tmp_path: Path) -> None:
    """A contact list in a subfolder names files relative to itself."""
    folder = tmp_path / "campaign"
    campaign_with(folder)
    (folder / "lists").mkdir()
    (folder / "lists" / "note.txt").write_text("beside the list", encoding="utf-8")
    toml = folder / "campaign.toml"
    toml.write_text(toml.read_text("utf-8").replace('"contacts.yaml"', '"lists/c.yaml"'), "utf-8")
    (folder / "lists" / "c.yaml").write_text(
        "contacts:\n  - id: a\n    email: a@b.example\n    name: A\n    country: C\n"
        "    attachments: [note.txt]\n",
        encoding="utf-8",
    )
    report = check(load_campaign(toml))
    assert report.problems == []
    assert [f.filename for f in report.attachments] == ["note.txt"]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing", "no such file"),
        ("empty", "is empty"),
        ("folder", "is a folder"),
        ("fifo", "not a regular file"),
        ("unreadable", "permission denied"),
    ],
)
def test_check_refuses_a_file_that_cannot_be_attached(
    tmp_path: Path, setup: str, expected: str
) -> None:
    """Check names the campaign field and what is wrong with the file, and fails."""
    folder = tmp_path / "campaign"
    campaign_with(folder, extra='attachments = ["annex.pdf"]\n')
    path = folder / "annex.pdf"
    if setup == "empty":
        path.write_bytes(b"")
    elif setup == "folder":
        path.mkdir()
    elif setup == "fifo":
        os.mkfifo(path)
    elif setup == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads any file; permissions cannot make one unreadable")
        path.write_bytes(b"x")
        path.chmod(0)
    report = check(load_campaign(folder / "campaign.toml"))
    assert report.rendered == 0
    assert report.problems
    assert all("campaign.toml: field 'attachments'" in p.where for p in report.problems)
    assert all(expected in p.message for p in report.problems)


def test_a_file_too_large_for_any_server_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A sparse file over the cap is refused from its size alone, before it is read."""
    folder = tmp_path / "campaign"
    campaign_with(folder, extra='attachments = ["huge.bin"]\n')
    with (folder / "huge.bin").open("wb") as handle:
        handle.truncate(MAX_FILE_SIZE + 1)
    report = check(load_campaign(folder / "campaign.toml"))
    [problem] = report.problems
    assert "no mail server takes a file over 100 MiB" in problem.message


def test_check_warns_when_a_message_would_exceed_10_mb(tmp_path: Path) -> None:
    """A letter over 10 MB with its files passes check with a warning naming the contact."""
    folder = tmp_path / "campaign"
    campaign_with(folder, extra='attachments = ["big.bin"]\n')
    (folder / "big.bin").write_bytes(os.urandom(8 * 2**20))  # 10.8 MiB once in base64
    report = check(load_campaign(folder / "campaign.toml"))
    assert report.problems == []
    big = [w for w in report.warnings if "over the 10 MiB" in w.message]
    assert [w.where.rsplit(" ", 1)[-1] for w in big] == ["'alpha'", "'beta'"]


def test_contact_attachments_field_must_be_a_list_of_paths(tmp_path: Path) -> None:
    """A contact's attachments given as text, or holding a number, are named by entry and field."""
    folder = tmp_path / "campaign"
    contacts = textwrap.dedent(
        """\
        contacts:
          - id: alpha
            email: alpha@mission.example
            country: A
            attachments: annex.pdf
          - id: beta
            email: beta@mission.example
            country: B
            attachments: [annex.pdf, [42]]
        """
    )
    campaign_with(folder, contacts=contacts)
    messages = [str(p) for p in check(load_campaign(folder / "campaign.toml")).problems]
    assert messages == [
        f"{folder / 'contacts.yaml'}:5: entry 1 (id 'alpha'), field 'attachments': must be a list of file paths, not the text 'annex.pdf'",
        f"{folder / 'contacts.yaml'}:9: entry 2 (id 'beta'), field 'attachments': item 2: must be a file path, not a list",
    ]


def test_send_delivers_the_attachment_intact_over_smtp(
    annexed: Path, smtp_server: Server, ca_file: Path
) -> None:
    """Each recipient receives the letter with the file, byte for byte, through a real server."""
    result = send_live(annexed, smtp_server, ca_file)
    assert result.returncode == 0, result.stderr
    received = smtp_server.handler.received
    assert sorted(r.rcpt_tos[0] for r in received) == [
        "alpha@mission.example",
        "beta@mission.example",
    ]
    for record in received:
        [annex] = record.message.iter_attachments()
        assert annex.get_filename() == "annex.pdf"
        assert annex.get_payload(decode=True) == ANNEX
    # The connection opened to read the server's SIZE before the first letter carries them all.
    assert smtp_server.handler.auth_attempts == ["PLAIN"]


def test_send_refuses_before_any_message_when_one_exceeds_the_server_size(
    tmp_path: Path, make_server, ca_file: Path
) -> None:
    """A server advertising SIZE below one contact's message gets no message at all."""
    folder = tmp_path / "campaign"
    contacts = textwrap.dedent(
        """\
        contacts:
          - id: alpha
            email: alpha@mission.example
            country: A
          - id: beta
            email: beta@mission.example
            country: B
            attachments: [big.bin]
        """
    )
    campaign_with(folder, contacts=contacts)
    (folder / "big.bin").write_bytes(os.urandom(300_000))
    server = make_server(size_limit=200_000)
    result = send_live(folder, server, ca_file)
    assert result.returncode == 1
    assert "1 messages are larger than the server accepts (200000 bytes" in result.stderr
    assert "beta (0.4 MiB)" in result.stderr
    assert "Nothing was sent." in result.stderr
    assert server.handler.received == []
    with sqlite3.connect(folder / "logs" / "test-campaign.sqlite3") as db:
        statuses = dict(db.execute("SELECT contact_id, status FROM recipients"))
    assert statuses == {"alpha": "pending", "beta": "pending"}


@pytest.mark.parametrize(("count", "more"), [(5, ""), (6, " and 1 more")])
def test_the_refusal_of_many_messages_too_large_names_five_and_counts_the_rest(
    tmp_path: Path, make_server, ca_file: Path, count: int, more: str
) -> None:
    """Letters over the server's SIZE: the refusal names the first five and counts any more."""
    folder = tmp_path / "campaign"
    contacts = "contacts:\n" + "".join(
        f"  - id: c{n}\n    email: c{n}@mission.example\n    country: C\n"
        for n in range(1, count + 1)
    )
    campaign_with(folder, extra='attachments = ["big.bin"]\n', contacts=contacts)
    (folder / "big.bin").write_bytes(os.urandom(300_000))
    server = make_server(size_limit=200_000)
    result = send_live(folder, server, ca_file)
    assert result.returncode == 1
    shown = ", ".join(f"c{n} (0.4 MiB)" for n in range(1, 6))
    assert (
        f"{count} messages are larger than the server accepts (200000 bytes, 0.2 MiB, its "
        f"SIZE): {shown}{more}. Nothing was sent. Make the attachments smaller or fewer, or "
        "share them by a link."
    ) in " ".join(result.stderr.split())
    assert server.handler.received == []


def test_send_takes_a_message_with_a_file_that_fits_the_server_size(
    tmp_path: Path, make_server, ca_file: Path
) -> None:
    """Under the server's SIZE, a first letter with a large file and a second without both go."""
    folder = tmp_path / "campaign"
    contacts = textwrap.dedent(
        """\
        contacts:
          - id: alpha
            email: alpha@mission.example
            country: A
            attachments: [big.bin]
          - id: beta
            email: beta@mission.example
            country: B
        """
    )
    campaign_with(folder, contacts=contacts)
    (folder / "big.bin").write_bytes(os.urandom(100_000))  # about 137,000 bytes as base64
    server = make_server(size_limit=200_000)
    result = send_live(folder, server, ca_file)
    assert result.returncode == 0, result.stderr
    assert sorted(r.rcpt_tos[0] for r in server.handler.received) == [
        "alpha@mission.example",
        "beta@mission.example",
    ]


def test_file_changed_after_check_is_refused_by_send(annexed: Path) -> None:
    """Check notes the file's SHA-256 in the log; send refuses the file once it has changed."""
    checked = run_cli("check", cwd=annexed)
    assert checked.returncode == 0, checked.stderr
    log_file = annexed / "logs" / "test-campaign.sqlite3"
    with sqlite3.connect(log_file) as db:
        [(path, sha256, by)] = db.execute("SELECT path, sha256, recorded_by FROM attachment_files")
    assert (path, sha256, by) == (
        str((annexed / "annexes" / "annex.pdf").resolve()),
        hashlib.sha256(ANNEX).hexdigest(),
        "check",
    )
    (annexed / "annexes" / "annex.pdf").write_bytes(ANNEX + b"an edit")
    refused = run_cli("send", cwd=annexed)
    assert refused.returncode == 1
    assert "annex.pdf' has changed since it was checked or sent at" in refused.stderr
    assert "(check)" in refused.stderr
    assert "run 'outreach check' to accept this version" in refused.stderr
    assert not (annexed / "outbox").exists()
    rechecked = run_cli("check", cwd=annexed)
    assert "changed since" in rechecked.stderr
    sent = run_cli("send", cwd=annexed)
    assert sent.returncode == 0, sent.stderr
    for key, message in mailbox.Maildir(annexed / "outbox", create=False).items():
        [annex] = parse(message.as_bytes()).iter_attachments()
        assert annex.get_payload(decode=True) == ANNEX + b"an edit", key


def test_file_changed_in_the_middle_of_a_campaign_stops_the_resume(annexed: Path) -> None:
    """Once some recipients got a file, a changed file is refused for the rest until checked."""
    first = run_cli("send", "--limit", "1", cwd=annexed)
    assert first.returncode == 0, first.stderr
    (annexed / "annexes" / "annex.pdf").write_bytes(b"another annex")
    resumed = run_cli("send", cwd=annexed)
    assert resumed.returncode == 1
    assert "has changed since it was checked or sent at" in resumed.stderr
    assert "(send)" in resumed.stderr
    assert len(mailbox.Maildir(annexed / "outbox", create=False)) == 1


def test_message_date_and_id_are_unchanged_by_attachments(annexed: Path) -> None:
    """Attachments change the body only: Date and Message-ID are what was asked."""
    drafter = Drafter(load_campaign(annexed / "campaign.toml"))
    date = email.utils.formatdate(0)
    draft = drafter.draft(one_contact(()), message_id="<1@outreach.example>", date=date)
    message = parse(draft.data)
    assert message["Message-ID"] == "<1@outreach.example>"
    assert message["Date"] == date
    assert (
        draft.data
        == drafter.draft(one_contact(()), message_id="<1@outreach.example>", date=date).data
    )


def test_the_rendering_process_reuses_the_files_read_by_the_sender(annexed: Path) -> None:
    """A large batch's rendering process attaches the bytes checked before the batch, not the disk's."""
    campaign = load_campaign(annexed / "campaign.toml")
    drafter = Drafter(campaign)
    contacts = [one_contact(()), dataclasses.replace(one_contact(()), id="delta")]
    drafter.validate(contacts)
    (annexed / "annexes" / "annex.pdf").unlink()  # read once, before the batch: not again
    ids = {contact.id: f"<{contact.id}@outreach.example>" for contact in contacts}
    with DraftPool(campaign) as pool:
        chunks = pool.drafts(contacts, ids, files=drafter.attachments.loaded())
        pooled = [draft for chunk in chunks for draft in chunk.result()]
    assert [d.contact.id for d in pooled] == ["gamma", "delta"]
    for draft in pooled:
        [annex] = parse(draft.data).iter_attachments()
        assert annex.get_payload(decode=True) == ANNEX


def test_a_batch_rendered_in_another_process_attaches_the_bytes_checked_before_it(
    annexed: Path,
) -> None:
    """A file changed once the batch is prepared goes in every letter as it was checked."""
    campaign = load_campaign(annexed / "campaign.toml")
    with prepare_send(campaign, options=SendOptions(parallel_render=True)) as batch:
        (annexed / "annexes" / "annex.pdf").write_bytes(b"changed after the check")
        summary = batch.run(MaildirTransport(campaign.default_outbox))
    assert summary.sent == 2
    outbox = mailbox.Maildir(campaign.default_outbox, create=False)
    annexes = [
        annex.get_payload(decode=True)
        for message in outbox
        for annex in parse(message.as_bytes()).iter_attachments()
    ]
    assert annexes == [ANNEX, ANNEX]
