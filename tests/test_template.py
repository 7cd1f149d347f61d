import html
import textwrap
from pathlib import Path

import pytest
from helpers import REPO, run_cli, write_campaign

from outreach.errors import InputError
from outreach.model import Contact
from outreach.render import Letter

CONTACT = Contact(
    id="mexico",
    email="mexico@un-missions.example",
    name="Claude Heller",
    data={"country": "Mexico"},
)


def letter(tmp_path: Path, source: str) -> Letter:
    """Compile a template written from ``source``."""
    path = tmp_path / "letter.md.j2"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return Letter(path, subject="Subject")


def render_error(tmp_path: Path, source: str, contact: Contact = CONTACT) -> str:
    """Return the one problem that rendering ``source`` reports."""
    with pytest.raises(InputError) as caught:
        letter(tmp_path, source).render(contact)
    assert len(caught.value.problems) == 1
    return str(caught.value.problems[0])


def test_undefined_variable_names_variable_line_and_contact(tmp_path: Path) -> None:
    """A variable the contact lacks is an error naming it, the template line and the contact."""
    message = render_error(tmp_path, "Dear {{ name }},\n\nAs {{ council_role }} you...\n")
    assert message == (
        f"{tmp_path / 'letter.md.j2'}:3: contact 'mexico': undefined variable: "
        "'council_role' is undefined; add the field to the contact, or guard it with "
        "'is defined' in the template"
    )


def test_template_syntax_error_names_the_line(tmp_path: Path) -> None:
    """A syntax error in the template names the file and line."""
    with pytest.raises(InputError) as caught:
        letter(tmp_path, "Dear {{ name },\n\n{% if %}\n")
    assert str(caught.value.problems[0]).startswith(f"{tmp_path / 'letter.md.j2'}:1: ")
    assert "template syntax error" in str(caught.value.problems[0])


@pytest.mark.parametrize(
    "expression",
    [
        "{{ name.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__.__base__.__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.environ }}",
        "{{ name.format.__globals__ }}",
        "{{ '{0.__class__.__mro__}'.format(name) }}",
        "{{ lipsum.__globals__['os'].environ }}",
        "{{ self.__init__.__globals__ }}",
        "{{ range.__self__ }}",
        "{{ namespace.__init__.__globals__ }}",
    ],
)
def test_template_cannot_reach_python_internals_or_the_environment(
    tmp_path: Path, expression: str
) -> None:
    """Attribute paths, format strings and globals reach no class, module or environment."""
    message = render_error(tmp_path, f"Hello {expression}\n")
    refused = "tries to reach Python internals" in message or "undefined variable" in message
    assert refused, message
    assert "<class" not in message
    assert "PATH" not in message


def test_contact_data_is_never_evaluated_as_a_template(tmp_path: Path) -> None:
    """A contact value holding template syntax is printed as it is, not run."""
    contact = Contact(id="x", email="x@y.example", name="{{ 7 * 7 }} {% if 1 %}yes{% endif %}")
    rendered = letter(tmp_path, "Dear {{ name }},\n").render(contact)
    assert "Dear {{ 7 * 7 }} {% if 1 %}yes{% endif %}," in rendered.text
    assert "49" not in rendered.text


@pytest.mark.parametrize(
    ("value", "html_fragment"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        (
            "**bold** _em_ [link](https://evil.example)",
            "**bold** _em_ [link](https://evil.example)",
        ),
        ("# Heading", "# Heading"),
        ("A & B <b>", "A &amp; B &lt;b&gt;"),
    ],
)
def test_contact_data_is_escaped_in_html_and_kept_in_text(
    tmp_path: Path, value: str, html_fragment: str
) -> None:
    """Markup in contact data is shown literally in both bodies, never interpreted."""
    contact = Contact(id="x", email="x@y.example", name=value)
    rendered = letter(tmp_path, "Dear {{ name }},\n").render(contact)
    assert f"Dear {value}," in rendered.text
    assert f"Dear {html_fragment}," in rendered.html
    assert "<script>" not in rendered.html
    assert "<strong>" not in rendered.html


def test_every_ascii_mark_in_contact_data_is_shown_as_itself(tmp_path: Path) -> None:
    """Each printable ASCII character, and letters beyond ASCII, arrive literally in both bodies."""
    value = "".join(chr(code) for code in range(0x21, 0x7F)) + " é — ü"
    contact = Contact(id="x", email="x@y.example", name="N", data={"marks": value})
    rendered = letter(tmp_path, "Marks: {{ marks }} end\n").render(contact)
    assert f"Marks: {value} end" in rendered.text
    assert f"Marks: {value} end" in html.unescape(rendered.html)
    assert "<=>" not in rendered.html  # shown as text, not read as markup


def test_template_markup_becomes_html_and_plain_text(tmp_path: Path) -> None:
    """The template's own Markdown gives a heading, a superscript and line breaks."""
    rendered = letter(
        tmp_path,
        """\
        ### **Title**

        On June 10<sup>th</sup> it began.

        Line one\\
        Line two
        """,
    ).render(CONTACT)
    assert rendered.text == "Title\n\nOn June 10th it began.\n\nLine one\nLine two\n"
    assert "<h3 style=" in rendered.html
    assert "<strong>Title</strong>" in rendered.html
    assert "10<sup>th</sup>" in rendered.html
    assert "Line one<br />" in rendered.html


def test_check_reports_every_problem_and_fails(tmp_path: Path) -> None:
    """Check reports contact and template problems together and exits non-zero."""
    folder = tmp_path / "c"
    write_campaign(
        folder,
        contacts=textwrap.dedent(
            """\
            contacts:
              - id: good
                email: good@mission.example
                name: Good
                country: Goodland
              - id: bad
                email: not-an-address
              - id: nocountry
                email: nocountry@mission.example
                name: No Country
            """
        ),
    )
    result = run_cli("check", cwd=folder)
    assert result.returncode == 1
    assert "field 'email': 'not-an-address' is not a valid email address" in result.stderr
    assert "contact 'nocountry': undefined variable: 'country' is undefined" in result.stderr
    assert "check failed: 2 of 3 contacts valid, 1 draft rendered, 2 problems" in result.stderr


def test_check_passes_on_the_shipped_campaign_with_placeholder_warnings() -> None:
    """Check passes on the shipped campaign and warns that its addresses are placeholders."""
    result = run_cli("check", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "check passed: 15 contacts valid, 15 drafts rendered, 0 problems" in result.stdout
    assert "placeholder" in result.stderr


@pytest.mark.parametrize(
    "source",
    [
        '{% include "../secret.txt" %}',
        '{% include "/etc/passwd" %}',
        '{% import "/etc/hostname" as h %}',
    ],
)
def test_template_cannot_read_files_outside_its_folder(tmp_path: Path, source: str) -> None:
    """Includes cannot leave the template's folder: no '..', no absolute paths."""
    (tmp_path / "secret.txt").write_text("TOP SECRET", encoding="utf-8")
    folder = tmp_path / "templates"
    folder.mkdir()
    with pytest.raises(InputError) as caught:
        letter(folder, source + "\n").render(CONTACT)
    assert "TOP SECRET" not in str(caught.value)
    assert "template error" in str(caught.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "is a folder, not a template file"),
        (b"", "the template is empty"),
        ("Dear {{ name }}\n".encode("utf-16"), "is not UTF-8 (byte 0xff)"),
    ],
)
def test_unusable_template_file_is_a_clear_error(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    """A template that is a folder, empty or not UTF-8 is refused, naming the file."""
    path = tmp_path / "letter.md.j2"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        Letter(path, subject="S")
    (problem,) = caught.value.problems
    assert problem.where.startswith(str(path))
    assert expected in problem.message
