"""One sanitiser for text that reaches a terminal, a markdown file or a page.

Results travel between machines (``import``, the History uploader), so every string in
them is untrusted. Printed raw, ``"\\x1b]52;c;…\\x07"`` writes to the reader's clipboard
(OSC 52) and other escapes rewrite what the terminal shows; rendered as markdown,
``![p](http://host/t.png)`` makes a browser fetch a URL. :func:`safe_text` makes control,
bidirectional-override and lone-surrogate characters visible as ``\\x1b``-style escapes
(so nothing is silently dropped and the text stays readable); :func:`markdown_text` also
backslash-escapes every character markdown gives a meaning to, so the text renders as
itself. :func:`safe_text` is idempotent: cleaning clean text changes nothing.
"""

from __future__ import annotations

import contextlib
import html
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO

# C0 and C1 controls, DEL, bidirectional overrides and isolates (which reorder what a
# reader sees), line/paragraph separators and lone surrogates (which cannot be encoded).
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE_LINE = re.compile(f"[{_UNSAFE}\t\n]")
_UNSAFE_TEXT = re.compile(f"[{_UNSAFE}]")
# The characters that give inline markdown a meaning anywhere in a line: links and images
# need "[", HTML and autolinks "<" or ":", Streamlit's directives ":red[...]", math "$".
# A backslash makes each literal (CommonMark escapes any ASCII punctuation).
_MARKDOWN = re.compile(r"([\\`*_\[\]<>#|~$&:])")
# Block markers that only act at the start of a line: "- item", "+ item", "1. item".
_LINE_START = re.compile(r"^(\d{0,9})([-+]|(?<=\d)[.)])(?=\s|$)")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(value: Any, newlines: bool = False) -> str:
    """``value`` as text with no character a terminal or a page would act on.

    With ``newlines`` True, line feeds and tabs stay (for multi-line output); otherwise
    they are escaped too, so one field is always one line.
    """
    text = value if isinstance(value, str) else str(value)
    return (_UNSAFE_TEXT if newlines else _UNSAFE_LINE).sub(_escape, text)


def markdown_text(value: Any) -> str:
    """``value`` as one line of markdown that renders as exactly its characters."""
    return _LINE_START.sub(r"\1\\\2", _MARKDOWN.sub(r"\\\1", safe_text(value)))


def chart_text(value: Any) -> str:
    """Text for a Plotly label or hover: its tags (<a href>, <b>, <br>) shown, not applied."""
    return html.escape(safe_text(value), quote=False)


def code_fence(text: str) -> str:
    """A backtick fence longer than any run of backticks in ``text``: it cannot be closed."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


class _SafeStream:
    """A text stream whose writes go through :func:`safe_text` (line feeds kept)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(safe_text(text, newlines=True))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def safe_stdout() -> Iterator[None]:
    """Everything printed to stdout inside the block is sanitised: tables, lists, messages."""
    original = sys.stdout
    sys.stdout = _SafeStream(original)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout = original


def short_clause(text: str, limit: int = 60) -> str:
    """``text`` for a table cell: whole when it fits, else its first clause (up to ``:``,
    ``;`` or ``.``) when that fits, else cut at a word with ``…`` - never mid-word."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    for sep in (": ", "; ", ". "):
        head = text.split(sep, 1)[0]
        if 12 <= len(head) <= limit:
            return head + ("" if sep == ". " else "…")
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"
