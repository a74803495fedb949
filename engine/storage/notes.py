"""A run's notes: what really ran, as the sweep said it, kept with the run.

"loaded the cached compiled engine … nothing compiled", "its fp32 rows run an FP32 copy",
auto mode's "left out because…": the CLI prints them and the Benchmark page shows them,
and the store keeps them (table ``run_notes``, schema 5), one row per note as the run
says it, so a run cut short keeps the notes said so far and a run reopened later, in
History, a report or another machine after an import, still says what ran. A note is
prose, never markup; one from an imported document is sanitised and cut like any string
of it (engine/storage/schema.py), and every surface escapes it for itself.

A run with no notes is one of two: it had nothing to note, or it was stored (or its
document made) before runs kept their notes. ``runs.notes_kept`` (schema 6) tells them
apart: set for every run stored since, and for an imported document that carries a
``notes`` list; a document exported from a run stored before has no ``notes`` key, so it
stays that in the next store too (:meth:`Store.document` leaves the key out).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

MAX_NOTE_CHARS = 2_000  # one note: the longest the sweep writes is a few hundred
MAX_NOTES = 500  # notes of one run


def capped_note(text: str) -> str:
    """A note of at most MAX_NOTE_CHARS characters, saying how long it was when cut.

    Idempotent (a cut note is short enough), so a note capped on import is not cut again
    when it is stored."""
    if len(text) <= MAX_NOTE_CHARS:
        return text
    tail = f"… (cut: {len(text)} characters)"
    return text[: MAX_NOTE_CHARS - len(tail)] + tail


def why_no_notes(kept: bool, source: str) -> str:
    """Why a run shows no notes, in words: the CLI, the History page and the reports say
    this same sentence (``source`` is the run's: local, import)."""
    if kept:
        return "this run had nothing to note"
    if source == "import":
        return "this run was imported from a document made before runs kept their notes"
    return "this run was stored before runs kept their notes"


def stored_notes(db: sqlite3.Connection, run_id: int) -> list[str]:
    """The notes of run ``run_id`` in the order it said them (none for older runs)."""
    cur = db.execute("SELECT text FROM run_notes WHERE run_id=? ORDER BY id", (run_id,))
    return [str(r[0]) for r in cur.fetchall()]


def insert_new(db: sqlite3.Connection, run_id: int, notes: Iterable[str]) -> int:
    """Insert the notes run ``run_id`` does not hold yet, in order, up to MAX_NOTES in
    all; how many were new. The caller holds the transaction."""
    held = set(stored_notes(db, run_id))
    new = [n for n in dict.fromkeys(capped_note(str(n)) for n in notes) if n not in held]
    new = new[: max(0, MAX_NOTES - len(held))]
    db.executemany("INSERT INTO run_notes (run_id, text) VALUES (?,?)", [(run_id, n) for n in new])
    return len(new)


def notes_of(db: sqlite3.Connection, run_id: int, run: sqlite3.Row) -> dict:
    """A stored run's notes and whether they were kept (``run``: its row in ``runs``)."""
    kept = "notes_kept" not in run.keys() or bool(run["notes_kept"])
    return {"notes": stored_notes(db, run_id), "notes_kept": kept}


def import_notes(db: sqlite3.Connection, run_id: int, run: dict) -> None:
    """The notes of a document's run into run ``run_id``; a document made before runs kept
    notes has no ``notes`` key, and its run is marked so. The caller holds the transaction."""
    insert_new(db, run_id, run.get("notes") or [])
    if "notes" not in run:
        db.execute("UPDATE runs SET notes_kept=0 WHERE id=?", (run_id,))
