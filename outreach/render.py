"""Render a letter template for one contact into a plain-text and an HTML body.

A letter template is Markdown with Jinja2 in it. Jinja2 runs first, in its sandbox, with every
contact value escaped for Markdown, so that data stays data; Markdown then gives the HTML body,
and the same parse gives the plain-text body.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
import jinja2.exceptions
import jinja2.sandbox
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

from outreach.errors import InputError, Problem
from outreach.model import Contact, Rendered

# Blocks are separated by lines that are empty or hold only spaces and tabs.
_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")
_SIMPLE_BLOCKS = frozenset(
    {"paragraph_open", "paragraph_close", "heading_open", "heading_close", "inline", "hr"}
)
_CACHE_SIZE = 4096
# Any ASCII punctuation may be backslash-escaped in CommonMark, and then stands for itself.
_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")

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
    if isinstance(value, Markup):
        return value
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", str(value))


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
        self._template = self._compile()
        self._cache: dict[str, tuple[str, str] | None] = {}

    def _compile(self) -> jinja2.Template:
        if self.path.is_dir():
            raise InputError([Problem(str(self.path), "is a folder, not a template file")])
        try:
            source = self.path.read_bytes()
        except FileNotFoundError:
            msg = "no such template; check --template or the campaign file"
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
            return self._env.from_string(text, globals={"__file__": str(self.path)})
        except jinja2.TemplateSyntaxError as exc:
            where = f"{self.path}:{exc.lineno}"
            raise InputError([Problem(where, f"template syntax error: {exc.message}")]) from None

    def render(self, contact: Contact, /) -> Rendered:
        """Render both bodies for ``contact``; raise ``InputError`` naming line and contact."""
        source = self.source(contact)
        pieces = [self._block(block) for block in _BLANK_LINES.split(source) if block.strip()]
        if all(piece is not None for piece in pieces):
            body = "".join(piece[0] for piece in pieces if piece is not None)
            text = "\n\n".join(piece[1] for piece in pieces if piece is not None and piece[1])
            return self._page(body, text + "\n")
        return self.render_whole(source)

    def render_whole(self, source: str, /) -> Rendered:
        """Render Markdown as one document: the reference for ``render``'s block cache."""
        tokens = self._md.parse(source)
        body = self._md.renderer.render(tokens, self._md.options, {})
        return self._page(body, markdown_to_text(tokens))

    def _page(self, body: str, text: str) -> Rendered:
        return Rendered(text=text, html=_PAGE.format(title=html.escape(self.subject), body=body))

    def _block(self, block: str) -> tuple[str, str] | None:
        """Render one block between blank lines, from the cache when it was seen before.

        Most of a letter's paragraphs are the same in every copy. A paragraph, heading or rule
        renders the same alone as in its document, so those are cached; anything whose meaning
        can reach past a blank line (lists, code, HTML blocks, link definitions) returns None,
        and the message is rendered whole.
        """
        if block in self._cache:
            return self._cache[block]
        env: dict[str, Any] = {}
        tokens = self._md.parse(block, env)
        simple = not env.get("references") and all(
            token.type in _SIMPLE_BLOCKS for token in tokens if token.level == 0
        )
        piece = None
        if simple:
            html_part = self._md.renderer.render(tokens, self._md.options, env)
            piece = (html_part, markdown_to_text(tokens).removesuffix("\n"))
        if len(self._cache) < _CACHE_SIZE:
            self._cache[block] = piece
        return piece

    def source(self, contact: Contact, /) -> str:
        """Run the template for ``contact``, giving Markdown; this is the step that can fail."""
        variables: dict[str, Any] = dict(contact.data)
        variables.update(id=contact.id, email=contact.email, name=contact.name, cc=contact.cc)
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
        elif child.type == "image":
            parts.append(child.content)
        elif child.type == "link_open":
            links.append((str(child.attrGet("href") or ""), len(parts)))
        elif child.type == "link_close":
            href, start = links.pop()
            label = "".join(parts[start:])
            if href and href != label and not href.startswith("mailto:"):
                parts.append(f" <{href}>")
    return "".join(parts)
