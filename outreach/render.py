"""Render a letter template for one contact into a plain-text and an HTML body.

A letter template is Markdown with Jinja2 in it. Jinja2 runs first, in its sandbox, with every
contact value escaped for Markdown, so that data stays data; Markdown then gives the HTML body,
and the same parse gives the plain-text body.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import string
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
import jinja2.exceptions
import jinja2.nodes
import jinja2.sandbox
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

from outreach.errors import InputError, Problem, named
from outreach.model import Contact, Rendered

# Blocks are separated by lines that are empty or hold only spaces and tabs.
_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")
_SIMPLE_BLOCKS = frozenset(
    {"paragraph_open", "paragraph_close", "heading_open", "heading_close", "inline", "hr"}
)
_CACHE_SIZE = 4096
# Any ASCII punctuation may be backslash-escaped in CommonMark, and then stands for itself.
# A translation table does it in C, where a regular expression's replacement template is
# expanded in Python at each mark: every value of every letter goes through it (figures in
# docs/performance.md).
_MARKDOWN_ESCAPES = str.maketrans({mark: "\\" + mark for mark in string.punctuation})

# Slots: while a letter is rendered for sending, a value shaped like a name stands in the
# Markdown as a numbered slot of private-use characters, so that a paragraph which differs from
# copy to copy only by such values is parsed once. A value qualifies if it is letters and
# digits, with spaces and . , ' - only inside, and starts with a letter: escaped or not, it is
# plain text wherever it stands, and nothing in it can join the Markdown around it.
_MARK, _END = "\ue000", "\ue001"
_SLOT = re.compile("\ue000([0-9]+)\ue001")
_PLAIN_VALUE = re.compile(r"[^\W\d_](?:[^\W_]|[ .,'-])*(?<=[^\W_])|[^\W\d_]")
# What may stand next to a slot in a block that is parsed as a shape.
_LEFT = frozenset({"", "\n", " ", "*", "_", "("})
_RIGHT = frozenset({"", "\n", " ", ",", ".", ";", ":", "!", "?", "*", "_", ")", "'", "\\"})
# Statements that capture output to change or move it: a slot could lose its value's meaning.
_CAPTURING = (
    jinja2.nodes.Macro, jinja2.nodes.CallBlock, jinja2.nodes.FilterBlock,
    jinja2.nodes.AssignBlock, jinja2.nodes.Block, jinja2.nodes.Include, jinja2.nodes.Import,
    jinja2.nodes.FromImport, jinja2.nodes.Extends,
)  # fmt: skip


_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
NOT_SENT = "[not yet sent]"


@dataclass(frozen=True, slots=True)
class SentDate:
    """Show when an earlier letter went, in a follow-up: ``24 June 2010``; or that it has not.

    A follow-up's template gets one per earlier letter as ``sent.first``, ``sent.reminder``:
    ``{{ sent.first }}`` is the day in the contact's zone, in English whatever the machine's
    locale; ``{{ sent.first.strftime("%d/%m/%Y") }}`` any other form. A preview before the
    letter went shows ``[not yet sent]`` in either form.
    """

    at: dt.datetime | None  # in the contact's zone; None: not sent yet

    def __str__(self) -> str:
        """Return the day as ``24 June 2010``."""
        if self.at is None:
            return NOT_SENT
        return f"{self.at.day} {_MONTHS[self.at.month - 1]} {self.at.year}"

    def strftime(self, form: str, /) -> str:
        """Return the moment in ``form`` (``datetime.strftime``'s codes)."""
        return NOT_SENT if self.at is None else self.at.strftime(form)


@dataclass(slots=True)
class _Slots:
    """The values put in slots during one rendering, each with its escaped form."""

    values: list[tuple[str, str]] = field(default_factory=list)
    clean: bool = True  # False if a value or markup holds a slot character itself


_recording: ContextVar[_Slots | None] = ContextVar("outreach_slots", default=None)

_STYLES = {
    "p": "margin:0 0 1em 0;",
    "h1": "font-size:1.3em;margin:1.2em 0 1em 0;",
    "h2": "font-size:1.2em;margin:1.2em 0 1em 0;",
    "h3": "font-size:1.1em;margin:1.2em 0 1em 0;",
    "ul": "margin:0 0 1em 1.5em;padding:0;",
    "ol": "margin:0 0 1em 1.5em;padding:0;",
    "blockquote": "margin:0 0 1em 1em;padding-left:1em;border-left:3px solid #ccc;",
}
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
</head>
<body style="margin:0;padding:0;background:#ffffff;">
<div style="max-width:640px;margin:0 auto;padding:24px;font-family:Georgia,'Times New Roman',\
serif;font-size:16px;line-height:1.5;color:#1a1a1a;">
{body}</div>
</body>
</html>
"""


def escape_markdown(value: Any) -> Any:
    """Escape a value so that Markdown shows it as it is; leave trusted markup alone."""
    slots = _recording.get()
    text = str(value)
    if slots is not None and (_MARK in text or _END in text):
        slots.clean = False
    if isinstance(value, Markup):
        return value
    escaped = text.translate(_MARKDOWN_ESCAPES)
    if slots is not None and _PLAIN_VALUE.fullmatch(text):
        slots.values.append((text, escaped))
        return f"{_MARK}{len(slots.values) - 1}{_END}"
    return escaped


def _style_blocks(state: Any) -> None:
    """Give each block element an inline style: mail clients ignore style sheets."""
    for token in state.tokens:
        if token.nesting == 1 and token.tag in _STYLES:
            token.attrSet("style", _STYLES[token.tag])


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True, "typographer": False})
    md.core.ruler.push("inline_styles", _style_blocks)
    return md


class Letter:
    """Hold a compiled letter template, ready to render for any contact."""

    def __init__(self, path: Path, /, *, subject: str) -> None:
        """Compile the template at ``path``; raise ``InputError`` if it cannot be used."""
        self.path = path
        self.subject = subject
        self._env = jinja2.sandbox.ImmutableSandboxedEnvironment(
            loader=jinja2.FileSystemLoader(path.parent),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            finalize=escape_markdown,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,
        )
        self._md = _markdown()
        self._shaping = False  # set by _compile for templates that slots are safe in
        self._template = self._compile()
        self._cache: dict[str, tuple[str, str] | None] = {}
        self._shapes: dict[str, tuple[str, str] | None] = {}

    def _compile(self) -> jinja2.Template:
        if self.path.is_dir():
            raise InputError([Problem(str(self.path), "is a folder, not a template file")])
        try:
            source = self.path.read_bytes()
        except FileNotFoundError:
            msg = f"no such template; check {named('template')} or the campaign file"
            raise InputError([Problem(str(self.path), msg)]) from None
        except OSError as exc:
            msg = f"cannot be read: {exc.strerror}"
            raise InputError([Problem(str(self.path), msg)]) from None
        try:
            text = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = source[: exc.start].count(b"\n") + 1
            msg = f"is not UTF-8 (byte 0x{source[exc.start]:02x}); save the file as UTF-8"
            raise InputError([Problem(f"{self.path}:{line}", msg)]) from None
        if not text.strip():
            raise InputError([Problem(str(self.path), "the template is empty")])
        try:
            template = self._env.from_string(text, globals={"__file__": str(self.path)})
            tree = self._env.parse(text)
        except jinja2.TemplateSyntaxError as exc:
            where = f"{self.path}:{exc.lineno}"
            raise InputError([Problem(where, f"template syntax error: {exc.message}")]) from None
        self._shaping = (
            _MARK not in text and _END not in text and next(tree.find_all(_CAPTURING), None) is None
        )
        return template

    def render(
        self, contact: Contact, /, *, sent: Mapping[str, SentDate] | None = None
    ) -> Rendered:
        """Render both bodies for ``contact``; raise ``InputError`` naming line and contact.

        The same as ``render_whole(source(contact))``, from caches: of the letter's blocks, and
        of blocks whose values are in slots (see ``_shaped``). ``sent``: a follow-up's earlier
        letters, the template's ``sent``.
        """
        slots = _Slots()
        token = _recording.set(slots if self._shaping else None)
        try:
            source = self.source(contact, sent=sent)
        finally:
            _recording.reset(token)
        shaping = slots.clean and bool(slots.values)
        if not slots.clean:  # a slot character in the data: no slots this time
            source = self.source(contact, sent=sent)
            slots.values.clear()
        pieces: list[tuple[str, str]] = []
        for block in _BLANK_LINES.split(source):
            if not block.strip(" \t\n"):  # str.strip() would also drop U+001C to U+001F
                continue
            in_slots = shaping and _MARK in block
            piece = self._shaped(block, slots) if in_slots else self._block(block)
            if piece is None:
                return self.render_whole(self._fill(source, slots))
            pieces.append(piece)
        body = "".join(piece[0] for piece in pieces)
        text = "\n\n".join(piece[1] for piece in pieces if piece[1])
        return self._page(body, text + "\n")

    @staticmethod
    def _fill(markdown: str, slots: _Slots) -> str:
        """Put the values back in their slots, escaped: the Markdown ``source`` would give."""
        if not slots.values:
            return markdown
        return _SLOT.sub(lambda slot: slots.values[int(slot.group(1))][1], markdown)

    def _shaped(self, block: str, slots: _Slots) -> tuple[str, str] | None:
        """Render a block with values in slots, parsing each shape of block once.

        The shape (the block with its slots numbered from 0) is parsed as Markdown with the slots
        in it, and kept if each slot stands between safe neighbours and comes out once, intact,
        in plain text in both bodies; then any block of that shape renders as the shape with
        the values put in. Otherwise the block is rendered with its values, as any other.
        """
        numbers = [int(number) for number in _SLOT.findall(block)]
        shape = _SLOT.sub(_Renumber(), block)
        if shape in self._shapes:
            learned = self._shapes[shape]
        else:
            learned = self._learn(shape, len(numbers))
            if len(self._shapes) < _CACHE_SIZE:
                self._shapes[shape] = learned
        if learned is None:
            return self._block(self._fill(block, slots))
        values = [slots.values[number][0] for number in numbers]

        def value(slot: re.Match[str]) -> str:
            return values[int(slot.group(1))]

        return _SLOT.sub(value, learned[0]), _SLOT.sub(value, learned[1])

    def _learn(self, shape: str, count: int) -> tuple[str, str] | None:
        if "<" in shape or "`" in shape:  # raw HTML, autolinks, code: there text is not text
            return None
        for slot in _SLOT.finditer(shape):
            left = shape[slot.start() - 1 : slot.start()]
            right = shape[slot.end() : slot.end() + 1]
            if left not in _LEFT or right not in _RIGHT:
                return None
        piece = self._parse_block(shape)  # kept in _shapes, not in the cache of blocks
        if piece is None:
            return None
        for number in range(count):
            mark = f"{_MARK}{number}{_END}"
            if piece[0].count(mark) != 1 or piece[1].count(mark) != 1:
                return None
        return piece

    def render_whole(self, source: str, /) -> Rendered:
        """Render Markdown as one document: the reference for ``render``'s block cache."""
        tokens = self._md.parse(source)
        body = self._md.renderer.render(tokens, self._md.options, {})
        return self._page(body, markdown_to_text(tokens))

    def _page(self, body: str, text: str) -> Rendered:
        page = _PAGE.format(title=html.escape(self.subject), body=body)
        return Rendered(text=text, html=page, body=body)

    def _block(self, block: str) -> tuple[str, str] | None:
        """Render one block between blank lines, from the cache when it was seen before.

        Most of a letter's paragraphs are the same in every copy. A paragraph, heading or rule
        renders the same alone as in its document, so those are cached; anything whose meaning
        can reach past a blank line (lists, code, HTML blocks, link definitions) returns None,
        and the message is rendered whole.
        """
        if block in self._cache:
            return self._cache[block]
        piece = self._parse_block(block)
        if len(self._cache) < _CACHE_SIZE:
            self._cache[block] = piece
        return piece

    def _parse_block(self, block: str) -> tuple[str, str] | None:
        """Render one block alone: its HTML and text, or None if it is not a simple block."""
        env: dict[str, Any] = {}
        tokens = self._md.parse(block, env)
        simple = not env.get("references") and all(
            token.type in _SIMPLE_BLOCKS for token in tokens if token.level == 0
        )
        if not simple:
            return None
        html_part = self._md.renderer.render(tokens, self._md.options, env)
        return html_part, markdown_to_text(tokens).removesuffix("\n")

    def source(self, contact: Contact, /, *, sent: Mapping[str, SentDate] | None = None) -> str:
        """Run the template for ``contact``, giving Markdown; this is the step that can fail."""
        variables: dict[str, Any] = dict(contact.data)
        variables.update(id=contact.id, email=contact.email, name=contact.name, cc=contact.cc)
        if sent is not None:
            variables["sent"] = dict(sent)
        try:
            source = self._template.render(variables)
        except jinja2.UndefinedError as exc:
            line = self._template_line(exc.__traceback__)
            where = f"{self.path}:{line}: contact {contact.id!r}"
            hint = "add the field to the contact, or guard it with 'is defined' in the template"
            msg = f"undefined variable: {exc.message}; {hint}"
            raise InputError([Problem(where, msg)]) from None
        except jinja2.exceptions.SecurityError as exc:
            line = self._template_line(exc.__traceback__)
            where = f"{self.path}:{line}: contact {contact.id!r}"
            msg = f"the template tries to reach Python internals, which is not allowed: {exc}"
            raise InputError([Problem(where, msg)]) from None
        except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
            line = self._template_line(exc.__traceback__)
            where = f"{self.path}:{line}: contact {contact.id!r}"
            raise InputError([Problem(where, f"template error: {exc}")]) from None
        return source

    def _template_line(self, tb: TracebackType | None) -> int | str:
        """Find the template line an error was raised on, from Jinja's rewritten traceback."""
        line: int | str = "?"
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<template>":
                line = tb.tb_lineno
            tb = tb.tb_next
        return line


class _Renumber:
    """Number a block's slots from 0, in order: the block's shape, whatever came before it."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self, _slot: re.Match[str]) -> str:
        number = self._next
        self._next += 1
        return f"{_MARK}{number}{_END}"


def markdown_to_text(tokens: list[Token]) -> str:  # noqa: C901 - one branch per token type
    """Turn parsed Markdown into plain text: one paragraph per block, hard breaks kept."""
    blocks: list[str] = []
    prefixes: list[str] = []
    for token in tokens:
        if token.type == "list_item_open":
            if token.info:  # ordered: markdown-it puts the number in info
                prefixes.append(f"{token.info}{token.markup} ")
            else:
                prefixes.append("- ")
        elif token.type == "list_item_close":
            prefixes.pop()
        elif token.type == "blockquote_open":
            prefixes.append("> ")
        elif token.type == "blockquote_close":
            prefixes.pop()
        elif token.type == "hr":
            blocks.append("* * *")
        elif token.type in {"code_block", "fence"}:
            blocks.append(token.content.rstrip("\n"))
        elif token.type == "inline":
            text = _inline_text(token.children or [])
            blocks.append("".join(prefixes) + text)
        elif token.type == "html_block":
            blocks.append(re.sub(r"<[^>]*>", "", token.content).strip())
    return "\n\n".join(block for block in blocks if block) + "\n"


def _inline_text(children: list[Token]) -> str:  # noqa: C901 - one branch per token type
    parts: list[str] = []
    links: list[tuple[str, int]] = []
    for child in children:
        if child.type in {"text", "code_inline"}:
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        elif child.type == "html_inline":
            if re.fullmatch(r"<br\s*/?>", child.content, flags=re.IGNORECASE):
                parts.append("\n")
        elif child.type == "image":  # its description, as the HTML's alt text has it
            parts.append(_inline_text(child.children or []))
        elif child.type == "link_open":
            links.append((str(child.attrGet("href") or ""), len(parts)))
        elif child.type == "link_close":
            href, start = links.pop()
            label = "".join(parts[start:])
            if href and href != label and not href.startswith("mailto:"):
                parts.append(f" <{href}>")
    return "".join(parts)
