import ctypes
import dataclasses
import io
import os
import re
import shutil
import subprocess
import sys
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers import (
    DELEGATIONS,
    PRESIDENCY,
    REPO,
    missing,
    need_module,
    need_program,
    run_cli,
    seed_paragraphs,
)

from outreach.campaign import PLACEHOLDER_ADDRESS, load_campaign
from outreach.contacts import load_contacts
from outreach.drafts import Draft, Drafter
from outreach.errors import ConfigError

A4_POINTS = (595.28, 841.89)  # 210 mm x 297 mm
STEM = "open-letter-kyrgyzstan-2010-06-24"
PDF_SETTINGS = f'\npdf = true\npdf_name = "{STEM}"\n'
# What Pango puts where it breaks a word at the end of a line: U+2010, never the ASCII hyphen.
SOFT_HYPHEN_BREAK = re.compile("\u2010\n")
PAGE_NUMBER = re.compile(r"\d+ ?/ ?\d+")
SIGNER = "Dr. Mónica Serrano"


def copy_shipped(folder: Path, *, extra: str = "") -> Path:
    """Copy the repository's campaign into ``folder``, with lines added to campaign.toml."""
    for name in ("campaign.toml", "templates", "contacts", "seeds"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, folder / name)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, folder / name)
    toml = folder / "campaign.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return folder


def pdf_text(pdf: bytes) -> str:
    """Extract a PDF's text with poppler's pdftotext, words broken at line ends joined again."""
    program = need_program("pdftotext", package="poppler-utils")
    done = subprocess.run(
        [program, "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True
    )
    text = done.stdout.decode("utf-8").replace("\f", "")
    # The page numbers in the footer ("1/3") stand between the lines of a paragraph cut by a page.
    lines = [line for line in text.split("\n") if not PAGE_NUMBER.fullmatch(line.strip())]
    return SOFT_HYPHEN_BREAK.sub("", "\n".join(lines))


def page_texts(pdf: bytes) -> list[str]:
    """Extract each page's text with poppler's pdftotext, in page order."""
    program = need_program("pdftotext", package="poppler-utils")
    done = subprocess.run(
        [program, "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True
    )
    return done.stdout.decode("utf-8").split("\f")[:-1]  # a form feed ends every page


def signed_page(pdf: bytes) -> str:
    """Return the text of the one page that holds the signer's name."""
    [page] = [page for page in page_texts(pdf) if SIGNER in page]
    return page


def words(text: str) -> str:
    """Fold all whitespace to single spaces."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def pdf_drafts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Draft]:
    """The fifteen drafts of the shipped campaign with pdf = true."""
    need_module("weasyprint", install="pip install 'outreach[pdf]' (and Pango from the system)")
    folder = copy_shipped(tmp_path_factory.mktemp("pdf") / "shipped", extra=PDF_SETTINGS)
    campaign = load_campaign(folder / "campaign.toml")
    drafter = Drafter(campaign)
    return {contact.id: drafter.draft(contact) for contact in load_contacts(campaign.contacts)}


@pytest.fixture(scope="module")
def texts(pdf_drafts: dict[str, Draft]) -> dict[str, str]:
    """The text of each contact's PDF, as pdftotext reads it."""
    result = {}
    for contact_id, draft in pdf_drafts.items():
        assert draft.pdf is not None
        result[contact_id] = pdf_text(draft.pdf)
    return result


def test_every_delegation_gets_a_pdf(pdf_drafts: dict[str, Draft]) -> None:
    """With pdf = true each of the fifteen drafts carries a PDF that starts like one."""
    assert set(pdf_drafts) == set(DELEGATIONS)
    for draft in pdf_drafts.values():
        assert draft.pdf is not None
        assert draft.pdf.startswith(b"%PDF-")


@pytest.mark.parametrize("contact_id", sorted(DELEGATIONS))
def test_pdf_holds_every_paragraph_of_the_seed_letter(
    texts: dict[str, str], contact_id: str
) -> None:
    """Every paragraph of the published letter is in each PDF's text, word for word."""
    text = words(texts[contact_id])
    for paragraph in seed_paragraphs():
        assert paragraph in text, paragraph[:80]


@pytest.mark.parametrize("contact_id", sorted(DELEGATIONS))
def test_pdf_is_personalized_for_its_delegation(texts: dict[str, str], contact_id: str) -> None:
    """Each PDF has its own addressee block and salutation; only Mexico's names the presidency."""
    addressee, country, salutation = DELEGATIONS[contact_id]
    text = words(texts[contact_id])
    role = f" {PRESIDENCY}" if contact_id == "mexico" else ""
    block = (
        f"June 24, 2010 {addressee} Permanent Representative of {country} to the United "
        f"Nations{role} Permanent Mission of {country} to the United Nations New York"
    )
    assert block in text
    assert f"{salutation}," in text
    assert (PRESIDENCY in text) == (contact_id == "mexico")
    for other, (other_addressee, _, _) in DELEGATIONS.items():
        if other != contact_id:
            assert other_addressee not in text


def test_pdf_carries_the_letterhead_and_the_signature(texts: dict[str, str]) -> None:
    """The organization's name and address head the letter; the signature closes it."""
    lines = [line.strip() for line in texts["mexico"].splitlines() if line.strip()]
    assert lines[0] == "Global Centre for the Responsibility to Protect"
    assert lines[1] == PLACEHOLDER_ADDRESS[0]
    text = words(texts["mexico"])
    assert text.index("Sincerely,") < text.index("Dr. Mónica Serrano, Executive Director")


def test_the_closing_stays_on_the_page_of_the_signature(pdf_drafts: dict[str, Draft]) -> None:
    """In each shipped PDF the page that holds the signer's name also holds "Sincerely,"."""
    for contact_id, draft in pdf_drafts.items():
        assert draft.pdf is not None
        assert "Sincerely," in signed_page(draft.pdf), contact_id


def test_the_closing_follows_the_signature_across_a_page_break(tmp_path: Path) -> None:
    """However many lines the letterhead's address pushes the letter down, the closing is on the signature's page."""
    need_module("weasyprint", install="pip install 'outreach[pdf]'")
    folder = copy_shipped(tmp_path / "c", extra=PDF_SETTINGS)
    campaign = load_campaign(folder / "campaign.toml")
    assert campaign.letterhead is not None
    contact = load_contacts(campaign.contacts)[0]
    page_counts = set()
    for lines in range(16):
        address = tuple(f"Address line {number}" for number in range(lines))
        letterhead = dataclasses.replace(campaign.letterhead, address=address)
        draft = Drafter(dataclasses.replace(campaign, letterhead=letterhead)).draft(contact)
        assert draft.pdf is not None
        assert "Sincerely," in signed_page(draft.pdf), f"{lines} address lines"
        page_counts.add(len(page_texts(draft.pdf)))
    # The letter's end crossed a page break: each step (one address line) is shorter than the
    # signature, so some step put the break between the closing and the signer's name unless
    # the letterhead keeps them together.
    assert len(page_counts) > 1


def test_every_page_is_a4(pdf_drafts: dict[str, Draft]) -> None:
    """Every page of every PDF is A4, 210 by 297 mm."""
    pypdf = need_module("pypdf", install="pip install '.[test]'")
    for contact_id, draft in pdf_drafts.items():
        assert draft.pdf is not None
        reader = pypdf.PdfReader(io.BytesIO(draft.pdf))
        assert len(reader.pages) >= 2, contact_id
        for page in reader.pages:
            size = (float(page.mediabox.width), float(page.mediabox.height))
            assert size == pytest.approx(A4_POINTS, abs=0.5), contact_id


def test_pdf_metadata_names_the_letter_and_the_organization(pdf_drafts: dict[str, Draft]) -> None:
    """The PDF's title is the subject and its author the organization."""
    pypdf = need_module("pypdf", install="pip install '.[test]'")
    draft = pdf_drafts["china"]
    assert draft.pdf is not None
    info = pypdf.PdfReader(io.BytesIO(draft.pdf)).metadata
    assert info.title == (
        "Open Letter to the United Nations Security Council on the situation in Kyrgyzstan"
    )
    assert info.author == "Global Centre for the Responsibility to Protect"


def test_pdf_is_attached_under_a_readable_name(pdf_drafts: dict[str, Draft]) -> None:
    """The email carries the PDF as open-letter-...-<id>.pdf, the same bytes as the draft's."""
    for contact_id, draft in pdf_drafts.items():
        message = message_from_bytes(draft.data, policy=policy.default)
        assert isinstance(message, EmailMessage)
        [attached] = message.iter_attachments()
        assert attached.get_content_type() == "application/pdf"
        assert attached.get_filename() == f"{STEM}-{contact_id}.pdf"
        assert attached.get_payload(decode=True) == draft.pdf
        assert draft.pdf_name == f"{STEM}-{contact_id}.pdf"


def test_organization_address_from_the_campaign_file(tmp_path: Path) -> None:
    """Organization and organization_address replace the defaults on the letterhead."""
    need_module("weasyprint", install="pip install 'outreach[pdf]'")
    extra = PDF_SETTINGS + (
        'organization = "The Sending Organization"\n'
        'organization_address = ["1 Example Street", "Example City"]\n'
    )
    folder = copy_shipped(tmp_path / "c", extra=extra)
    campaign = load_campaign(folder / "campaign.toml")
    contact = load_contacts(campaign.contacts)[0]
    draft = Drafter(campaign).draft(contact)
    assert draft.pdf is not None
    lines = [line.strip() for line in pdf_text(draft.pdf).splitlines() if line.strip()]
    assert lines[:3] == ["The Sending Organization", "1 Example Street", "Example City"]


def test_preview_out_writes_the_pdfs(tmp_path: Path) -> None:
    """Preview --out writes <id>.pdf beside <id>.eml and <id>.html."""
    need_module("weasyprint", install="pip install 'outreach[pdf]'")
    folder = copy_shipped(tmp_path / "c", extra=PDF_SETTINGS)
    result = run_cli("preview", "mexico", "japan", "--out", "drafts", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "wrote 2 drafts (.eml, .html and .pdf)" in result.stdout
    assert sorted(p.name for p in (folder / "drafts").iterdir()) == [
        "japan.eml", "japan.html", "japan.pdf", "mexico.eml", "mexico.html", "mexico.pdf",
    ]  # fmt: skip
    text = words(pdf_text((folder / "drafts" / "japan.pdf").read_bytes()))
    assert "Dear Ambassador Takasu," in text


def test_preview_lists_the_attachments(tmp_path: Path) -> None:
    """Preview shows each attachment's name, type and size among the headers."""
    need_module("weasyprint", install="pip install 'outreach[pdf]'")
    folder = copy_shipped(tmp_path / "c", extra=PDF_SETTINGS)
    result = run_cli("preview", "gabon", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert re.search(
        rf"Attachment: {STEM}-gabon\.pdf \(application/pdf, \d+ bytes\)", result.stdout
    )


def without_weasyprint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a Python where WeasyPrint cannot be imported."""
    code = (
        "import sys; sys.modules['weasyprint'] = None; "
        "from outreach.cli import main; sys.argv = ['outreach', *sys.argv[1:]]; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_pdf_without_weasyprint_names_the_extra(tmp_path: Path) -> None:
    """Pdf = true without WeasyPrint fails check and send saying which extra to install."""
    folder = copy_shipped(tmp_path / "c", extra=PDF_SETTINGS)
    for command in ("check", "send"):
        result = without_weasyprint(command, cwd=folder)
        assert result.returncode == 1
        assert "pip install 'outreach[pdf]', or set pdf = false" in result.stderr
    assert not (folder / "outbox").exists()


def test_shipped_campaign_runs_without_weasyprint(tmp_path: Path) -> None:
    """The campaign as shipped (no pdf) sends its fifteen letters where WeasyPrint is missing."""
    folder = copy_shipped(tmp_path / "c")
    assert load_campaign(folder / "campaign.toml").letterhead is None
    result = without_weasyprint("send", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "sent 15, failed 0" in result.stdout


def pango_library() -> Path:
    """Return the file the system's Pango library is loaded from, as this process maps it."""
    try:
        ctypes.CDLL("libpango-1.0.so.0")
    except OSError:
        missing("Pango is not installed (Debian package libpango-1.0-0)")
    maps = Path("/proc/self/maps").read_text(encoding="utf-8").splitlines()
    paths = [line.split()[-1] for line in maps if "/libpango-1.0.so" in line]
    if not paths:
        missing("no libpango-1.0.so file in /proc/self/maps (not Linux?)")
    return Path(paths[0])


@pytest.mark.parametrize("command", [("check",), ("preview", "china")])
def test_missing_pango_is_said_in_one_error_without_weasyprint_banner(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Where Pango's library cannot be loaded, the command prints outreach's one error and not WeasyPrint's banner."""
    need_module("weasyprint", install="pip install 'outreach[pdf]'")
    unshare = need_program("unshare", package="util-linux")
    if subprocess.run([unshare, "-rm", "true"], capture_output=True, check=False).returncode:
        pytest.skip("this kernel lets no unprivileged user make a mount namespace (unshare -rm)")
    folder = copy_shipped(tmp_path / "c", extra=PDF_SETTINGS)
    # In a mount namespace of its own, the command finds an empty file where Pango's library is.
    hide = 'mount --bind /dev/null "$1" && shift && exec "$@"'
    result = subprocess.run(
        [unshare, "-rm", "sh", "-c", hide, "sh", str(pango_library()),
         sys.executable, "-m", "outreach", *command],
        cwd=folder,
        env={k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    error = result.stderr.splitlines()[0]
    assert error.startswith("error: ")
    assert "WeasyPrint is installed but cannot load the system's Pango library (" in error
    assert error.endswith(
        "Install Pango (Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0), or set "
        "pdf = false in campaign.toml"
    )
    assert "WeasyPrint could not import" not in result.stderr
    assert "-----" not in result.stderr


def test_missing_letterhead_template_is_named(tmp_path: Path) -> None:
    """A letterhead path that leads nowhere is named with the field to set."""
    need_module("weasyprint", install="pip install 'outreach[pdf]'")
    folder = copy_shipped(tmp_path / "c", extra=PDF_SETTINGS + 'letterhead = "nowhere.html"\n')
    result = run_cli("check", cwd=folder)
    assert result.returncode == 1
    assert "nowhere.html: no letterhead template here; set 'letterhead'" in result.stderr


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "https://tracker.example/pixel.png", "file:///proc/self/environ"],
)
def test_letterhead_cannot_reach_outside_its_folder(tmp_path: Path, url: str) -> None:
    """The letterhead's resources come from its own folder only: no other file, no network."""
    need_module("weasyprint", install="pip install 'outreach[pdf]'")
    from outreach.pdf import LetterPdf  # noqa: PLC0415 - only where WeasyPrint is

    folder = copy_shipped(tmp_path / "c", extra=PDF_SETTINGS)
    letterhead = load_campaign(folder / "campaign.toml").letterhead
    assert letterhead is not None
    renderer = LetterPdf(letterhead, subject="s")
    with pytest.raises(ValueError, match="may only use files in its own folder"):
        renderer._fetch(url)
    inside = renderer._fetch((folder / "templates" / "letterhead.html.j2").as_uri())
    assert b"@page" in inside["string"]


def test_pdf_field_must_be_true_or_false(tmp_path: Path) -> None:
    """Pdf = "yes" is refused by name, with the other problems of the file."""
    folder = copy_shipped(tmp_path / "c", extra='pdf = "yes"\nattachments = "annex.pdf"\n')
    with pytest.raises(ConfigError) as caught:
        load_campaign(folder / "campaign.toml")
    assert "field 'pdf' must be true or false" in str(caught.value)
    assert "field 'attachments' must be a list of paths" in str(caught.value)


def test_the_repository_letterhead_is_the_one_the_package_ships() -> None:
    """Templates/letterhead.html.j2 beside campaign.toml is the same text as the letterhead 'init' writes."""
    shipped = REPO / "outreach" / "templates" / "letterhead.html.j2"
    assert (REPO / "templates" / "letterhead.html.j2").read_bytes() == shipped.read_bytes()


def test_check_warns_of_the_placeholder_postal_address(tmp_path: Path) -> None:
    """Check passes but warns, naming organization_address, while the letterhead shows the placeholder."""
    need_module("weasyprint", install="pip install 'outreach[pdf]'")
    folder = copy_shipped(tmp_path / "c", extra=PDF_SETTINGS)
    result = run_cli("check", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert (
        "warning: campaign: the letterhead's postal address is a placeholder: every PDF shows "
        "'[postal address: set organization_address in campaign.toml]'; set "
        "organization_address to the address's lines, e.g. organization_address = [\"Street and "
        'number", "City"]\n'
    ) in result.stderr


def test_check_is_silent_about_a_postal_address_that_is_set(tmp_path: Path) -> None:
    """With organization_address set, check says nothing of the letterhead's address."""
    need_module("weasyprint", install="pip install 'outreach[pdf]'")
    extra = PDF_SETTINGS + 'organization_address = ["1 Example Street", "Example City"]\n'
    folder = copy_shipped(tmp_path / "c", extra=extra)
    result = run_cli("check", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "postal address" not in result.stderr
    assert "organization_address" not in result.stderr
