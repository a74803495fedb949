"""Bench documents from other machines: read, checked against the schema, imported.

A ``bench --json`` document (``{schema, run, rows}``) travels between machines and
people, so every byte of it is untrusted. This module is the one boundary it crosses:
files are read with a hard cap and only when they are regular files (``/dev/zero`` has a
reported size of 0 and no end; a FIFO blocks), JSON too deep for the parser is refused,
and :func:`validate_document` checks every field's type and range against the schema
(``ResultRow``'s own annotations for rows) and sanitises every string once, so nothing
later (store, history, reports, pages) meets a number it cannot format, a list where a
string belongs or a terminal escape. Imports are keyed on a hash of the canonical
document, so the same file never lands twice; a multi-file import checks every file
before it stores any. The CLI command is :mod:`engine.cli.imports`; the History
page's uploader calls the same functions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import sqlite3
import stat
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from engine.core.config import MAX_BATCH, ResultRow
from engine.core.errors import BadInput
from engine.core.stability import SAMPLE_CAP
from engine.core.text import safe_text
from engine.hardware.env import machine_label
from engine.storage.store import JSON_SCHEMA, Store

MAX_IMPORT_BYTES = 50 * 1024 * 1024
MAX_ROWS = 100_000
MAX_TEXT = 20_000  # characters in one string: a long reproduce command fits
MAX_DEPTH = 8  # nesting of configuration and environment objects
MAX_IMAGE_SIZE = 16_384
MAX_MS = 1e9  # eleven days for one batch: anything larger is not a measurement
MAX_NUMBER = 1e15  # any other figure (images/s, MiB, iterations)
_FIX = "pass a file written by python -m engine bench --json"
# Per-field ranges beyond "a finite number"; every other number must be within ±MAX_NUMBER.
_RANGES: dict[str, tuple[float, float]] = {
    "batch": (1, MAX_BATCH),
    "image_size": (1, MAX_IMAGE_SIZE),
    "iters": (0, MAX_NUMBER),
    "threads": (1, 1_000_000),
    "cosine": (-1.001, 1.001),
    "top1_agree": (0.0, 1.0),
    **{k: (0.0, MAX_MS) for k in ("p50_ms", "p90_ms", "p99_ms", "p10_ms", "mean_ms")},
    **{k: (0.0, MAX_MS) for k in ("std_ms", "min_ms")},
}
# Text that names the machine: it feeds machine_label, filters and every title.
_ENV_TEXT = ("host", "gpu", "cpu", "machine", "os")
_MODEL_TYPES: dict[str, type] = {
    "name": str,
    "weights": str,
    "onnx_path": str,
    "image_size": int,
    "seed": int,
}


def _bad(name: str, why: str) -> BadInput:
    return BadInput(f"{safe_text(name)} is not a bench JSON document", why, _FIX)


# -- reading ---------------------------------------------------------------------------------


def check_size(n_bytes: int, name: str) -> None:
    if n_bytes > MAX_IMPORT_BYTES:
        raise BadInput(
            f"{safe_text(name)} is {n_bytes / 2**20:.0f} MB",
            f"bench documents larger than {MAX_IMPORT_BYTES // 2**20} MB are not imported",
            "import the document of one run, written by python -m engine bench --json",
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
        raise BadInput(
            f"{safe_text(name)} is not valid JSON", safe_text(str(exc)[:200]), _FIX
        ) from exc


def read_document_file(path: str | Path) -> Any:
    """Read and parse one document file, refusing non-regular files and oversize ones."""
    return parse_document(read_capped(path), Path(path).name)


# -- checking --------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    """A value quoted for a message: strings in quotes and sanitised, all of it short."""
    if isinstance(value, (list, dict)):  # never str() a container: it may be nested deep
        return "an array" if isinstance(value, list) else "an object"
    text = repr(safe_text(value)) if isinstance(value, str) else safe_text(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any, where: str, name: str, whole: bool = False) -> int | float:
    """A finite number within its field's range; ``where`` reads "row 3 has p50_ms"."""
    low, high = _RANGES.get(where.rsplit(" ", 1)[-1], (-MAX_NUMBER, MAX_NUMBER))
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        kind = ("positive whole number" if low >= 1 else "whole number") if whole else "number"
        raise _bad(name, f"{where} {_shown(value)}, not a {kind}")
    if not math.isfinite(value):
        raise _bad(name, f"{where} {_shown(value)}, not a finite number")
    if not low <= value <= high:
        raise _bad(name, f"{where} {_shown(value)}, outside {low:g}..{high:g}")
    return value


def _scalar(value: Any, where: str, name: str) -> Any:
    """A JSON scalar made safe: strings sanitised and bounded, numbers finite and bounded."""
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise _bad(name, f"{where} a string of {len(value)} characters (at most {MAX_TEXT})")
        return safe_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return _number(value, where, name)
    raise _bad(name, f"{where} {_shown(value)}, not a single value")


def _tree(value: Any, where: str, name: str, path: str = "", depth: int = 0) -> Any:
    """A nested object of scalars, at most MAX_DEPTH levels, with every string sanitised."""
    if depth > MAX_DEPTH:
        raise _bad(name, f"{where} {path} nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = _scalar(k, f"{where} a key", name)
            out[key] = _tree(v, where, name, f"{path}.{key[:40]}" if path else key[:40], depth + 1)
        return out
    if isinstance(value, list):
        return [_tree(v, where, name, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    return _scalar(value, f"{where} {path}", name)


def _object(value: Any, where: str, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(name, f"{where} is not an object")
    return value


def _date(value: Any, where: str, name: str, empty_ok: bool = False) -> str:
    if empty_ok and value in ("", None):
        return ""
    if not isinstance(value, str):
        raise _bad(name, f"{where} {_shown(value)}, not a date string")
    try:
        dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise _bad(name, f"{where} {_shown(value)}, not an ISO date") from exc
    return value


def _typed(value: Any, kind: str, where: str, name: str) -> Any:
    """``value`` checked against one annotation (``int``, ``float | None``, ``str``, ...)."""
    base = kind.split("|")[0].strip()
    if value is None and "None" in kind:
        return None
    if base == "str":
        if not isinstance(value, str):
            raise _bad(name, f"{where} {_shown(value)}, not a string")
        return _scalar(value, where, name)
    if base == "bool":
        if not isinstance(value, bool):
            raise _bad(name, f"{where} {_shown(value)}, not true or false")
        return value
    if base.startswith("list"):  # samples_ms: numbers, at most the stored cap
        if not isinstance(value, list) or len(value) > SAMPLE_CAP:
            raise _bad(name, f"{where} {_shown(value)}, not a list of ≤ {SAMPLE_CAP} numbers")
        return [_number(v, where, name) for v in value]
    if base.startswith("dict"):  # options: one flat level of settings
        items = _object(value, where, name).items()
        return {
            _scalar(k, f"{where} a key", name): _scalar(v, f"{where}.{safe_text(k)[:40]}", name)
            for k, v in items
        }
    return _number(value, where, name, whole=base == "int")


_ROW_TYPES = {f.name: str(f.type) for f in fields(ResultRow)}
_ROW_REQUIRED = ("model", "backend", "device", "precision", "batch")


def _row(raw: Any, i: int, created_at: str, name: str) -> ResultRow:
    raw = _object(raw, f"row {i}", name)
    missing = [k for k in _ROW_REQUIRED if k not in raw]
    if missing:
        raise _bad(name, f"row {i} has no {', '.join(missing)}")
    clean = {
        k: _typed(raw[k], kind, f"row {i} has {k}", name)
        for k, kind in _ROW_TYPES.items()
        if k in raw and k not in ("created_at", "machine_state")
    }
    if "machine_state" in raw:  # NVML readings nest one level (clock-event reasons)
        where = f"row {i} has machine_state"
        clean["machine_state"] = _tree(_object(raw["machine_state"], where, name), where, name)
    clean["created_at"] = _date(raw.get("created_at"), f"row {i} has created_at", name, True)
    row = ResultRow.from_dict(clean)
    row.created_at = row.created_at or created_at
    return row


def _schema(doc: Any, name: str) -> None:
    if not isinstance(doc, dict):
        raise _bad(name, f"its top level is a JSON {type(doc).__name__}, not an object")
    missing = [k for k in ("schema", "run", "rows") if k not in doc]
    if missing:
        raise _bad(name, f"it has no {', '.join(missing)} key")
    schema = doc["schema"]
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise _bad(name, f"its schema is {_shown(schema)}, not a positive whole number")
    if schema > JSON_SCHEMA:
        raise BadInput(
            f"{safe_text(name)} has document schema {schema}",
            f"this version of visionbench reads schema {JSON_SCHEMA} and older",
            "upgrade visionbench to import it",
        )


def _run(raw: Any, name: str) -> dict[str, Any]:
    raw = _object(raw, "its run", name)
    missing = [k for k in ("created_at", "configuration", "environment") if k not in raw]
    if missing:
        raise _bad(name, f"its run has no {', '.join(missing)}")
    run = {"created_at": _date(raw["created_at"], "its run has created_at", name)}
    for k in ("label", "status", "reproduce"):
        if raw.get(k) is not None:
            run[k] = _typed(raw[k], "str", f"its run has {k}", name)
    config = _object(raw["configuration"], "its run's configuration", name)
    config = _tree(config, "its configuration has", name)
    model = config.get("model")
    if isinstance(model, dict):
        for k, kind in _MODEL_TYPES.items():
            if model.get(k) is not None:
                _typed(model[k], kind.__name__, f"its configuration's model has {k}", name)
    elif model is not None and not isinstance(model, str):
        raise _bad(name, "its configuration's model is neither an object nor a name")
    env = _tree(
        _object(raw["environment"], "its run's environment", name), "its environment has", name
    )
    for k in _ENV_TEXT:
        if env.get(k) is not None and not isinstance(env[k], str):
            raise _bad(name, f"its environment has {k} {_shown(env[k])}, not a string")
    run.update(configuration=config, environment=env)
    return run


def validate_document(doc: Any, name: str = "document") -> tuple[dict[str, Any], list[ResultRow]]:
    """The run and rows of a ``{schema, run, rows}`` document, checked and sanitised.

    Raises BadInput naming the first field that is off; what it returns is safe to store,
    print and render.
    """
    _schema(doc, name)
    run = _run(doc["run"], name)
    rows = doc["rows"]
    if not isinstance(rows, list):
        raise _bad(name, "its rows are not a list")
    if len(rows) > MAX_ROWS:
        raise _bad(name, f"it has {len(rows)} rows; one run has at most {MAX_ROWS}")
    return run, [_row(raw, i, run["created_at"], name) for i, raw in enumerate(rows)]


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
