"""The results store's schema: one migration per version, applied in order.

Index i of :data:`MIGRATIONS` upgrades a store from ``user_version`` i to i + 1; a
migration that shipped is never edited, and each is idempotent, since SQLite commits
``ALTER TABLE`` at once and a crash may stop a step half-way.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from engine.core.config import ResultRow
from engine.hardware.env import machine_label

SCHEMA_VERSION = 6


def _v1(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            label TEXT NOT NULL DEFAULT '',
            model TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'running',
            source TEXT NOT NULL DEFAULT 'local',
            source_key TEXT UNIQUE,
            config_json TEXT NOT NULL,
            env_json TEXT NOT NULL,
            command TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE rows (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            model TEXT, backend TEXT, device TEXT, precision TEXT, batch INTEGER,
            provider TEXT, status TEXT,
            p50_ms REAL, throughput_ips REAL,
            data_json TEXT NOT NULL
        );
        CREATE INDEX rows_run ON rows(run_id);
        """
    )


def _v2(db: sqlite3.Connection) -> None:
    # The machine a run measured on, filled from each run's fingerprint, so history can
    # filter by machine in SQL; indexes for the history page's filters and its date order.
    # Idempotent: SQLite commits ALTER TABLE at once, so a crash before user_version moves
    # on must not leave a store that fails this step again on the next open.
    columns = {r[1] for r in db.execute("PRAGMA table_info(runs)").fetchall()}
    if "machine" not in columns:
        db.execute("ALTER TABLE runs ADD COLUMN machine TEXT NOT NULL DEFAULT ''")
    for run_id, env_json in db.execute("SELECT id, env_json FROM runs").fetchall():
        try:
            env = json.loads(env_json)
        except ValueError:
            env = {}
        label = machine_label(env) if isinstance(env, dict) else ""
        db.execute("UPDATE runs SET machine=? WHERE id=?", (label, run_id))
    db.execute("CREATE INDEX IF NOT EXISTS runs_created ON runs(created_at)")
    db.execute("CREATE INDEX IF NOT EXISTS rows_point ON rows(backend, precision, device, batch)")


def _v3(db: sqlite3.Connection) -> None:
    # Who runs a run (pid, host), so History can tell a live run from one whose process is
    # gone, and why it ended. Idempotent for the same reason as _v2.
    columns = {r[1] for r in db.execute("PRAGMA table_info(runs)").fetchall()}
    for name, decl in (
        ("pid", "INTEGER"),
        ("host", "TEXT NOT NULL DEFAULT ''"),
        ("end_reason", "TEXT NOT NULL DEFAULT ''"),
    ):
        if name not in columns:
            db.execute(f"ALTER TABLE runs ADD COLUMN {name} {decl}")


def _v4(db: sqlite3.Connection) -> None:
    # Parity's third outcome, "not judged", as its own column; older rows had only
    # parity_ok in their JSON: True → ok, False → failed, None → off. Idempotent like _v2.
    columns = {r[1] for r in db.execute("PRAGMA table_info(rows)").fetchall()}
    if "parity_status" not in columns:
        db.execute("ALTER TABLE rows ADD COLUMN parity_status TEXT NOT NULL DEFAULT ''")
    for row_id, data_json in db.execute("SELECT id, data_json FROM rows").fetchall():
        try:
            status = ResultRow.from_dict(json.loads(data_json)).parity_status
        except (ValueError, TypeError, KeyError):
            status = "off"
        db.execute("UPDATE rows SET parity_status=? WHERE id=?", (status, row_id))


def _v5(db: sqlite3.Connection) -> None:
    # A run's notes (what really ran: a cached engine loaded, an FP32 copy of a mixed file,
    # auto mode's left-out settings), one row per note as the run says it, so a run cut
    # short keeps the notes said so far. Older runs have none. Idempotent like _v2.
    db.execute(
        "CREATE TABLE IF NOT EXISTS run_notes ("
        " id INTEGER PRIMARY KEY,"
        " run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
        " text TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS run_notes_run ON run_notes(run_id)")


def _v6(db: sqlite3.Connection) -> None:
    # Whether a run's notes were kept: a run with none may have said none, or have been
    # stored (or its document made) before notes were kept, and History says which. A run
    # written from now on keeps them (the default: no older tool writes to this schema);
    # one stored already without a note cannot be told apart, so it counts as before.
    # Idempotent like _v2.
    columns = {r[1] for r in db.execute("PRAGMA table_info(runs)").fetchall()}
    if "notes_kept" not in columns:
        db.execute("ALTER TABLE runs ADD COLUMN notes_kept INTEGER NOT NULL DEFAULT 1")
    db.execute(
        "UPDATE runs SET notes_kept=0 WHERE id NOT IN (SELECT DISTINCT run_id FROM run_notes)"
    )


# Index i upgrades a store from user_version i to i + 1. Never edit one that shipped.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6]
