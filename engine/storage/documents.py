"""Bench documents from other machines: read, checked against the schema, imported.

A ``bench --json`` document (``{schema, run, rows}``) travels between machines and
people, so every byte of it is untrusted. This module is the one boundary it crosses:
files are read with a hard cap and only when they are regular files (``/dev/zero`` has a
reported size of 0 and no end; a FIFO blocks), JSON too deep for the parser is refused,
and :func:`validate_document` checks every field's type and range against the schema
declared once in :mod:`engine.storage.schema` (pydantic) and sanitises every string once, so nothing
later (store, history, reports, pages) meets a number it cannot format, a list where a
string belongs or a terminal escape. Imports are keyed on a hash of the canonical
document, so the same file never lands twice; a multi-file import checks every file
before it stores any. The CLI command is :mod:`engine.cli.imports`; the History
page's uploader calls the same functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.commands import engine_command
from engine.core.config import ResultRow
from engine.core.errors import BadInput
from engine.core.text import safe_text
from engine.hardware.env import machine_label
from engine.storage import schema
from engine.storage.store import JSON_SCHEMA, Store

MAX_IMPORT_BYTES = 50 * 1024 * 1024


def _bad(name: str, why: str) -> BadInput:
    return BadInput(f"{safe_text(name)} is not a bench JSON document", why, _fix())


def _fix() -> str:
    return f"pass a file written by {engine_command('bench --json')}"


# -- reading ---------------------------------------------------------------------------------


def check_size(n_bytes: int, name: str) -> None:
    if n_bytes > MAX_IMPORT_BYTES:
        raise BadInput(
            f"{safe_text(name)} is {n_bytes / 2**20:.0f} MB",
            f"bench documents larger than {MAX_IMPORT_BYTES // 2**20} MB are not imported",
            f"import the document of one run, written by {engine_command('bench --json')}",
        )


def _unreadable(p: Path, exc: OSError) -> BadInput:
    why = exc.strerror or str(exc)
    return BadInput(f"{safe_text(p.name)} cannot be read", why, "check the path")


def _not_regular(p: Path) -> BadInput:
    return BadInput(
        f"{safe_text(p.name)} is not a regular file",
        "a device, pipe, socket or folder has no document to read (and may never end)",
        "pass the .json file itself",
    )


def read_capped(path: str | Path) -> bytes:
    """A regular file's bytes, reading at most MAX_IMPORT_BYTES + 1 whatever its size says.

    Files in /proc report a size of 0 and still have content; the cap does not trust it.
    """
    p = Path(path)
    try:
        if not stat.S_ISREG(os.stat(p).st_mode):
            raise _not_regular(p)
        # Non-blocking, so a FIFO put in the file's place after the check cannot hang us.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise _unreadable(p, exc) from exc
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise _not_regular(p)
        try:
            data = f.read(MAX_IMPORT_BYTES + 1)
        except OSError as exc:
            raise _unreadable(p, exc) from exc
    check_size(len(data), p.name)
    return data


def parse_document(data: bytes | str, name: str = "document") -> Any:
    """The JSON of a bench document; BadInput when it is not JSON or nested too deep to read."""
    check_size(len(data), name)
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise _bad(name, "it is nested too deeply for a JSON parser to read") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{safe_text(name)} is not valid JSON", _json_problem(exc), _fix()) from exc


# The parser's own reasons, by the start of its message, in our words: its text after that
# start may quote a character of the file ("Invalid \\escape: 'q'"), which is not ours.
_JSON_REASONS = (
    ("Expecting value", "a value is missing"),
    ("Expecting ',' delimiter", "a comma is missing"),
    ("Expecting ':' delimiter", "a colon is missing"),
    ("Expecting property name", "a key is not a string in double quotes"),
    ("Unterminated string", "a string is not closed"),
    ("Invalid control character", "a raw control character inside a string"),
    ("Invalid \\uXXXX escape", "a \\u escape without four hex digits"),
    ("Invalid \\escape", "a backslash escape that JSON does not have"),
    ("Extra data", "more text after the document"),
)


def _json_problem(exc: ValueError) -> str:
    """Where and why the JSON parser stopped, in one line of our own words."""
    if isinstance(exc, UnicodeDecodeError):
        return f"byte {exc.start} is not {exc.encoding} text"
    if isinstance(exc, json.JSONDecodeError):
        reason = next((ours for start, ours in _JSON_REASONS if exc.msg.startswith(start)), "")
        return f"{reason or 'it stops being JSON'} at line {exc.lineno}, column {exc.colno}"
    return safe_text(str(exc)[:200])


def read_document_file(path: str | Path) -> Any:
    """Read and parse one document file, refusing non-regular files and oversize ones."""
    return parse_document(read_capped(path), Path(path).name)


# -- checking --------------------------------------------------------------------------------


def _newer(doc: Any, name: str) -> None:
    """A document from a newer visionbench: say so rather than fail on a field it added."""
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if isinstance(schema, int) and not isinstance(schema, bool) and schema > JSON_SCHEMA:
        raise BadInput(
            f"{safe_text(name)} has document schema {schema}",
            f"this version of visionbench reads schema {JSON_SCHEMA} and older",
            "upgrade visionbench to import it",
        )


def validate_document(doc: Any, name: str = "document") -> tuple[dict[str, Any], list[ResultRow]]:
    """The run and rows of a ``{schema, run, rows}`` document, checked and sanitised.

    The checks are :class:`engine.storage.schema.BenchDocument`'s. Raises BadInput naming
    the first field that is off; what it returns is safe to store, print and render.
    """
    _newer(doc, name)
    checked, why = schema.check_document(doc)
    if checked is None:
        raise _bad(name, why)
    run = schema.fields_given(checked.run)
    rows = []
    for raw in checked.rows:
        row = ResultRow.from_dict(schema.fields_given(raw))
        row.created_at = row.created_at or run["created_at"]
        rows.append(row)
    return run, rows


# -- storing ---------------------------------------------------------------------------------


@dataclass
class CheckedDocument:
    """A document that passed :func:`validate_document`, ready to store."""

    name: str
    run: dict[str, Any]
    rows: list[ResultRow]

    @property
    def machine(self) -> str:
        return machine_label(self.run["environment"])


def check_document(doc: Any, name: str = "document") -> CheckedDocument:
    return CheckedDocument(name, *validate_document(doc, name))


def document_key(run: dict[str, Any], rows: list[ResultRow]) -> str:
    """A hash of the canonical document: the same run gives the same key wherever it is.

    The store-local id and source are left out, so a document exported again from the
    store it was imported into is still recognised.
    """
    canon = {
        "run": {
            k: run.get(k)
            for k in ("created_at", "label", "status", "configuration", "environment", "reproduce")
        },
        "rows": [r.to_dict() for r in rows],
    }
    text = json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def store_document(store: Store, checked: CheckedDocument) -> tuple[int, bool]:
    """Store a checked document as a run with source ``import``: (run id, created).

    ``created`` is False when the same document (or the local run it was exported from)
    is already in the store; nothing is written then.
    """
    run, rows = checked.run, checked.rows
    key = document_key(run, rows)
    existing = store.run_id_by_source_key(key)
    if existing is None:
        existing = store.same_run_id(
            run["created_at"],
            run["configuration"],
            run["environment"],
            run.get("label") or "",
            rows,
        )
    if existing is not None:
        return existing, False
    try:
        return store.import_run(run, rows, key), True
    except sqlite3.IntegrityError:
        # Another process imported the same document between the lookup and the insert.
        again = store.run_id_by_source_key(key)
        if again is None:
            raise
        return again, False


def import_document(store: Store, doc: Any, name: str = "document") -> tuple[int, bool]:
    """Check a parsed document and store it: (run id, created)."""
    return store_document(store, check_document(doc, name))


def import_file(store: Store, path: str | Path) -> tuple[int, bool]:
    return import_document(store, read_document_file(path), Path(path).name)


def check_files(paths: Iterable[str | Path]) -> list[CheckedDocument]:
    """Read and check every file; BadInput for the first bad one, before anything is stored."""
    return [check_document(read_document_file(p), Path(p).name) for p in paths]
