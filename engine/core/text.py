"""One sanitiser per surface for text that came from a file: terminal, page, CSV, chart.

Results travel between machines (``import``, the History uploader), and ONNX files carry
names of their own, so every string in them is untrusted. Printed raw,
``"\\x1b]52;c;…\\x07"`` writes to the reader's clipboard (OSC 52) and other escapes
rewrite what the terminal shows; rendered as markdown, ``![p](http://host/t.png)`` makes a
browser fetch a URL; opened in a spreadsheet, ``=HYPERLINK(…)`` is a formula.

- terminal: :func:`safe_text` makes control, bidirectional-override and lone-surrogate
  characters visible as ``\\x1b``-style escapes (nothing silently dropped, the text stays
  readable); :func:`safe_stdio` puts stdout and stderr through it. It is idempotent.
- page (Streamlit markdown, captions, ``st.error``): :func:`markdown_text` also
  backslash-escapes every character markdown gives a meaning to, and breaks what GFM
  turns into a link by itself (``http://``, ``www.``, ``a@b.c``): Streamlit's markdown
  autolinks those in text that escaping already made literal.
- CSV cells: :func:`csv_cell`. Charts: :func:`chart_text`. The HTML report escapes through
  its Jinja2 template (autoescape), after :func:`safe_text`.
"""

from __future__ import annotations

import contextlib
import html
import re
import sys
from collections.abc import Iterable, Iterator
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


# What GFM turns into a link with no markup: a scheme, "www." and an e-mail's "@". The
# join goes after the scheme's name / "www" / "@", where no autolink pattern can bridge it.
_AUTOLINK = re.compile(r"((?:https?|ftps?|mailto|xmpp)(?=:)|www(?=\.)|@)", re.IGNORECASE)
# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets.
_PLAIN_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\Z|-\Z")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


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
    """``value`` as one line of page text: renders as its characters, links nothing.

    GFM's literal autolinks are found in the text after escapes are resolved, so a
    word joiner (invisible, and no word character to GFM) goes inside each trigger.
    """
    text = _AUTOLINK.sub("\\1\u2060", safe_text(value))
    return _LINE_START.sub(r"\1\\\2", _MARKDOWN.sub(r"\\\1", text))


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not read as a formula (``=``, ``+``, ``-``, ``@``…).

    Controls are shown as escapes first (a bare carriage return, unquoted by pandas,
    starts a new row in a spreadsheet, and a formula with it); text then starting with a
    formula prefix gets a leading apostrophe (OWASP's advice: the spreadsheet shows the
    text, the apostrophe visibly there). Numbers, and text that is only a number, stay.
    """
    if not isinstance(value, str):
        return value
    text = safe_text(value)
    if text[:1] in _FORMULA_START and not _PLAIN_NUMBER.match(text):
        return "'" + text
    return text


def csv_rows(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Each row with every cell through :func:`csv_cell`."""
    for row in rows:
        yield {k: csv_cell(v) for k, v in row.items()}


def chart_text(value: Any) -> str:
    """Text for a Plotly label or hover: its tags (<a href>, <b>, <br>) shown, not applied."""
    return html.escape(safe_text(value), quote=False)


def code_fence(text: str) -> str:
    """A backtick fence longer than any run of backticks in ``text``: it cannot be closed."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


class _SafeStream:
    """A text stream whose writes go through :func:`safe_text` (line feeds kept).

    ``raw`` is the stream underneath, for the few escapes we write ourselves (a
    progress bar's carriage return); nothing read from a file may go there.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.raw = stream

    def write(self, text: str) -> int:
        self._stream.write(safe_text(text, newlines=True))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def raw_stream(stream: Any) -> TextIO:
    """The stream under a sanitised one (itself if it is not): for our own escapes only."""
    return getattr(stream, "raw", stream) if isinstance(stream, _SafeStream) else stream


def write_terminal(stream: TextIO, data: bytes) -> None:
    """Bytes another process wrote (ONNX Runtime's log lines) onto ``stream``, sanitised."""
    stream.write(safe_text(data.decode("utf-8", "replace"), newlines=True))
    stream.flush()


@contextlib.contextmanager
def safe_stdio() -> Iterator[None]:
    """Everything printed to stdout or stderr inside the block is sanitised: Python's
    writes through :class:`_SafeStream`, and, when stderr is the process's own, what
    native code writes to file descriptor 2 (ONNX Runtime's log lines of an in-process
    run name the model's nodes) through :func:`native_stderr_sanitised`."""
    out, err = sys.stdout, sys.stderr
    with native_stderr_sanitised() as py_err:
        sys.stdout = _SafeStream(out)  # type: ignore[assignment]
        sys.stderr = _SafeStream(py_err or err)  # type: ignore[assignment]
        try:
            yield
        finally:
            sys.stdout, sys.stderr = out, err


_process_wide: contextlib.ExitStack | None = None


def sanitise_stderr_for_good() -> bool:
    """For a long-lived process (the dashboard's server): from now on, everything written to
    file descriptor 2, Python's logging and ONNX Runtime's log lines alike, reaches the
    terminal sanitised. Once per process; False when stderr is not the process's own."""
    global _process_wide
    if _process_wide is None:
        stack = contextlib.ExitStack()
        if stack.enter_context(native_stderr_sanitised()) is None:
            return False
        _process_wide = stack  # Python's own stderr writes go to descriptor 2 as well
        import atexit

        atexit.register(stack.close)  # drain what was written last before the process ends
    return True


@contextlib.contextmanager
def native_stderr_sanitised() -> Iterator[TextIO | None]:
    """File descriptor 2 becomes a pipe whose reader writes the sanitised bytes to the real
    stderr; yields a text stream on the real stderr for Python's own (already sanitised)
    writes, or None when stderr is not this process's own (a test's capture)."""
    import codecs
    import os
    import threading

    if sys.stderr is not sys.__stderr__ or sys.__stderr__ is None:
        yield None
        return
    sys.stderr.flush()
    saved = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)

    def pump() -> None:
        decode = codecs.getincrementaldecoder("utf-8")("replace")
        while chunk := os.read(read_fd, 65536):
            os.write(saved, safe_text(decode.decode(chunk), newlines=True).encode())
        os.close(read_fd)

    thread = threading.Thread(target=pump, name="stderr-sanitiser", daemon=True)
    thread.start()
    py_err = open(os.dup(saved), "w", encoding="utf-8", errors="backslashreplace", buffering=1)
    try:
        yield py_err
    finally:
        py_err.flush()
        os.dup2(saved, 2)  # the pipe's last writer closes: the pump drains and stops
        thread.join(5)
        py_err.close()
        os.close(saved)


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
