"""The results store: SQLite (standard library), versioned schema, one commit per row.

A run keeps its configuration, environment fingerprint, the CLI command that reproduces
it and its notes (what really ran); each measurement and note is committed as it is made,
so an interrupted sweep keeps what it measured and said. WAL mode lets readers read along.

A store carries its own ``application_id``; a SQLite file that is not ours (another
application's, or one that claims our schema but has no tables) is refused before anything
is written to it. The read-only commands open the file read-only: they never create or
convert it, and leave its folder as they found it (sqlite_guard.drop_side_files).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import glob
import io
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from engine.core.config import ResultRow
from engine.core.errors import BadInput, EngineError, Unavailable
from engine.core.paths import default_db
from engine.core.safeio import create_new, file_lock, json_text, write_text
from engine.core.text import csv_cell
from engine.hardware.env import machine_label
from engine.storage.migrations import MIGRATIONS, SCHEMA_VERSION
from engine.storage.notes import import_notes, insert_new, notes_of
from engine.storage.runend import STALE, process_gone, this_host
from engine.storage.sqlite_guard import (
    ANOTHER_DB,
    APPLICATION_ID,
    check_intact,
    check_ours,
    check_path,
    checkpoint,
    connect,
    db_error,
    drop_side_files,
    log_written,
    side_files,
    stored_record,
    stored_row,
    wal_identity,
)

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Store"]
SQLITE_INT = (-(2**63), 2**63 - 1)
RESERVE_BYTES = 256 * 1024  # room kept for recording how a run ended (a few WAL frames)
JSON_SCHEMA = 1
ROW_COLUMNS = ("model", "backend", "device", "precision", "batch", "provider", "status")


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _canonical(rows: list[ResultRow]) -> list[str]:
    """Rows as comparable text, in no particular order."""
    return sorted(json.dumps(r.to_dict(), sort_keys=True) for r in rows)


INSERT_ROW = (
    "INSERT INTO rows (run_id, created_at, model, backend, device, precision, batch,"
    " provider, status, p50_ms, throughput_ips, data_json, parity_status)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _row_values(run_id: int, r: ResultRow) -> tuple:
    """A row's SQL columns (the ones history filters on) and its whole record as JSON."""
    head = (r.model, r.backend, r.device, r.precision, r.batch, r.provider, r.status)
    tail = (r.p50_ms, r.throughput_ips, r.to_json(), r.parity_status)
    return (run_id, r.created_at or now(), *head, *tail)


def _serial(method):
    """One call at a time per store: a transaction, or a read and its fetch, is never
    interleaved with another thread's statements on the same connection."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with self.lock:
            self._follow_wal()
            return method(self, *args, **kwargs)

    return call


class Store:
    """The results database. ``readonly`` opens an existing store without writing to it
    (history, report); a missing file is then an error, not a new empty store."""

    def __init__(
        self, path: str | Path | None = None, timeout_s: float = 30.0, readonly: bool = False
    ) -> None:
        self.path = Path(path) if path else default_db()
        self.readonly = readonly
        self.timeout_s = timeout_s
        # One connection may serve several threads (the dashboard's tabs): one transaction
        # at a time on it, or two threads' statements would land in one commit.
        self.lock = threading.RLock()
        check_path(self.path, readonly)
        self._tidy = readonly and not side_files(self.path)  # leave the folder as found
        try:
            self.db = connect(self.path, readonly, timeout_s)
            check_ours(self.db, self.path, readonly, SCHEMA_VERSION)
            self._refuse_newer()
            if readonly and self._version() < SCHEMA_VERSION:
                self.db.close()  # our own older store: upgrade it once, as a writer would
                self.db = connect(self.path, False, timeout_s)
                self.readonly = readonly = False
            if not readonly:
                check_intact(self.db, self.path)
                self._enable_wal()
            self.db.execute("PRAGMA foreign_keys=ON")
            if not readonly:
                self._migrate()
            self._wal = wal_identity(self.path)  # the WAL this connection opened
            self.wal_lost = False
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise db_error(exc, self.path.name, self.path) or EngineError(
                f"the results database {self.path.name} cannot be opened",
                str(exc),
                f"{ANOTHER_DB}; the existing file was left untouched",
            ) from exc
        except BaseException:
            self._close_quietly()
            raise

    def _close_quietly(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()
        if self._tidy:
            drop_side_files(self.path)

    def _version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate_lock(self):
        return file_lock(f"{self.path}.migrate.lock", "the store's lock file")

    def _enable_wal(self) -> None:
        # WAL is stored in the file, so only a new store switches; switching fails at once
        # (no busy wait) while another connection has the file open, so openers of a new
        # store take turns under the same file lock as the migrations.
        if self.db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            return
        with self._migrate_lock():
            self.db.execute("PRAGMA journal_mode=WAL")

    def _refuse_newer(self) -> None:
        version = self._version()
        if version > SCHEMA_VERSION:
            raise EngineError(
                f"the results database {self.path.name} has schema {version}",
                f"this version of the tool reads schema {SCHEMA_VERSION} and older",
                "upgrade the tool, or use another --db file",
            )

    def _migrate(self) -> None:
        version = self._version()
        if version == SCHEMA_VERSION:
            if self.db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                self.db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            return
        # Two sweeps opening a new store at once must not both create its tables (SQLite's
        # executescript commits, so a transaction cannot hold the others off): a file lock.
        with self._migrate_lock():
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            # The mark goes first, so a process opening the file meanwhile sees ours.
            self.db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            for step in range(version, SCHEMA_VERSION):
                with self.db:
                    MIGRATIONS[step](self.db)
                    self.db.execute(f"PRAGMA user_version={step + 1}")

    def close(self) -> None:
        with self.lock:
            if self.wal_lost:  # the log was replaced once: what is in it goes to the file now
                with contextlib.suppress(sqlite3.Error):
                    checkpoint(self.db)
            self._wal = None  # the last close deletes the WAL: that is no loss to follow
            self._close_quietly()  # a reader's -wal and -shm too, when no one else uses them

    def _follow_wal(self) -> None:
        """Notice when another program deleted or replaced the WAL this connection opened,
        and go on with a fresh connection on the log beside the store.

        Until another process writes, the shared-memory index beside the store (``-shm``,
        kept while any connection is open) still describes the log this connection holds
        open: a checkpoint through it copies what it wrote into the database file (a new
        connection had read holes where frames should be and its checkpoint copied them
        in: issue 25's held-out attack). Once another process wrote a log of its own there,
        the index describes that one: this connection read its frames at those offsets
        from the deleted log, and its checkpoint (or SQLite's, on the last close) copied
        them into the file, which was left malformed. So the held log is copied only while
        no other log has been written, and the connection is then replaced, the fresh one
        opened before the old closes (closing the last connection checkpoints)."""
        if self._wal is None or wal_identity(self.path) == self._wal:
            return
        self.wal_lost = True  # the sweep stops and says so (engine/running/sweep.py)
        if not log_written(self.path):
            with contextlib.suppress(sqlite3.Error):
                checkpoint(self.db)
        self._reconnect()

    def _reconnect(self) -> None:
        fresh = connect(self.path, self.readonly, self.timeout_s)
        try:
            fresh.execute("PRAGMA foreign_keys=ON")
            fresh.execute("PRAGMA user_version").fetchone()  # opens the log beside the store
        except BaseException:
            fresh.close()
            raise
        old, self.db = self.db, fresh
        with contextlib.suppress(sqlite3.Error):
            old.close()
        self._wal = wal_identity(self.path)

    @_serial
    def lost_wal(self) -> bool:
        """True once the store's WAL was deleted or replaced while this store was open."""
        return self.wal_lost

    @_serial
    def checkpoint(self) -> bool:
        """Copy the WAL into the database file (see sqlite_guard.checkpoint)."""
        return checkpoint(self.db)

    # -- writing -------------------------------------------------------------------
    @_serial
    def create_run(
        self,
        config: dict[str, Any],
        env: dict[str, Any],
        command: str = "",
        label: str = "",
        source: str = "local",
        source_key: str | None = None,
        created_at: str | None = None,
    ) -> int:
        model = config.get("model", {})
        model_name = model.get("name", "") if isinstance(model, dict) else str(model)
        if isinstance(model, dict) and model.get("onnx_path"):  # older configs kept "resnet50"
            model_name = Path(str(model["onnx_path"])).stem
        with self.db:
            cur = self.db.execute(
                "INSERT INTO runs (created_at, label, model, source, source_key, config_json,"
                " env_json, command, machine, pid, host) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    created_at or now(),
                    label,
                    model_name,
                    source,
                    source_key,
                    json.dumps(config),
                    json.dumps(env),
                    command,
                    machine_label(env),
                    os.getpid(),
                    this_host(),
                ),
            )
        run_id = int(cur.lastrowid)
        self._drop_orphan_reserves()
        self._hold_reserve(run_id)
        return run_id

    @_serial
    def add_row(self, run_id: int, row: ResultRow) -> int:
        if not row.created_at:
            row.created_at = now()
        with self.db:
            cur = self.db.execute(INSERT_ROW, _row_values(run_id, row))
        return int(cur.lastrowid)

    @_serial
    def add_notes(self, run_id: int, notes: list[str]) -> int:
        """Store the notes run ``run_id`` lacks, as it goes (engine/storage/notes.py)."""
        with self.db:
            return insert_new(self.db, run_id, notes)

    @_serial
    def finish_run(self, run_id: int, status: str = "done", reason: str = "") -> None:
        """Record how run ``run_id`` ended (see engine/storage/runend.py), even on a full disk."""

        def update() -> None:
            with self.db:
                self.db.execute(
                    "UPDATE runs SET status=?, end_reason=? WHERE id=?", (status, reason, run_id)
                )

        reserve = self._reserve(run_id)
        try:
            update()
        except Unavailable:  # the disk is full: give back the room kept for this moment
            reserve.unlink(missing_ok=True)
            update()
        finally:
            reserve.unlink(missing_ok=True)

    def _reserve(self, run_id: int) -> Path:
        return self.path.with_name(f"{self.path.name}.run{run_id}.reserve")

    def _drop_orphan_reserves(self) -> None:
        """Free the room held for runs that can no longer use it: a run killed outright
        (SIGKILL, --inline) never reached :meth:`finish_run`, and its reserve stayed."""
        for path in self.path.parent.glob(f"{glob.escape(self.path.name)}.run*.reserve"):
            number = path.name[len(self.path.name) + 4 : -len(".reserve")]
            if not number.isdigit():
                continue
            got = self.db.execute(
                "SELECT status, pid, host FROM runs WHERE id=?", (int(number),)
            ).fetchone()
            if got is None or got[0] != "running" or process_gone(got[1], got[2]):
                with contextlib.suppress(OSError):
                    path.unlink()

    def _hold_reserve(self, run_id: int) -> None:
        # A run that ends because the disk filled up still has to record that it ended:
        # a little room is set aside while it runs and freed for that last update.
        # Created new, never through a link: a name beside the store is guessable.
        with contextlib.suppress(OSError), os.fdopen(create_new(self._reserve(run_id)), "wb") as f:
            f.write(b"\0" * RESERVE_BYTES)

    @_serial
    def import_run(
        self,
        run: dict[str, Any],
        rows: list[ResultRow],
        source_key: str,
        source: str = "import",
    ) -> int:
        """Store a whole run from another store in one transaction: all of it or nothing.

        ``run`` has the keys of :meth:`document`'s ``run``; raises ``sqlite3.IntegrityError``
        when ``source_key`` is already stored.
        """
        config, env = run["configuration"], run["environment"]
        model = config.get("model", {})
        model_name = model.get("name", "") if isinstance(model, dict) else str(model)
        if isinstance(model, dict) and model.get("onnx_path"):  # older configs kept "resnet50"
            model_name = Path(str(model["onnx_path"])).stem
        with self.db:
            cur = self.db.execute(
                "INSERT INTO runs (created_at, label, model, status, source, source_key,"
                " config_json, env_json, command, machine) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    run.get("created_at") or now(),
                    run.get("label") or "",
                    model_name,
                    run.get("status") or "done",
                    source,
                    source_key,
                    json.dumps(config),
                    json.dumps(env),
                    run.get("reproduce") or "",
                    machine_label(env),
                ),
            )
            run_id = int(cur.lastrowid)
            self.db.executemany(INSERT_ROW, [_row_values(run_id, r) for r in rows])
            import_notes(self.db, run_id, run)
        return run_id

    # -- reading -------------------------------------------------------------------
    @_serial
    def runs(self, limit: int = 1000) -> list[dict[str, Any]]:
        cur = self.db.execute(
            "SELECT r.*, (SELECT COUNT(*) FROM rows WHERE run_id=r.id) AS n_rows"
            " FROM runs r ORDER BY r.id DESC LIMIT ?",
            (limit,),
        )
        return [self._run_dict(r) for r in cur.fetchall()]

    @_serial
    def run(self, run_id: int) -> dict[str, Any]:
        if not SQLITE_INT[0] <= int(run_id) <= SQLITE_INT[1]:  # SQLite would overflow
            raise BadInput(f"run {run_id} is not in {self.path.name}", fix="see its run ids")
        r = self.db.execute("SELECT *, 0 AS n_rows FROM runs WHERE id=?", (run_id,)).fetchone()
        if r is None:
            check_intact(self.db, self.path)  # a lost page hides runs: say damaged, not absent
            raise EngineError(f"run {run_id} is not in {self.path.name}")
        return {**self._run_dict(r), **notes_of(self.db, run_id, r)}

    @_serial
    def run_id_by_source_key(self, source_key: str) -> int | None:
        r = self.db.execute("SELECT id FROM runs WHERE source_key=?", (source_key,)).fetchone()
        return None if r is None else int(r[0])

    @_serial
    def same_run_id(
        self,
        created_at: str,
        config: dict[str, Any],
        env: dict[str, Any],
        label: str | None = None,
        rows: list[ResultRow] | None = None,
    ) -> int | None:
        """A stored run with this start time, configuration and fingerprint, if any (and,
        when given, this label and these rows: a different document that shares the first
        three is another run, not a copy).

        Catches a document re-imported into the store that measured it, whose local run
        carries no source key. Compared as data, not text: the same document written again
        by another JSON tool (keys sorted, rows in another order) was imported as a copy.
        """
        found = self.db.execute(
            "SELECT id, label, config_json, env_json FROM runs WHERE created_at=? ORDER BY id",
            (created_at,),
        ).fetchall()
        wanted = None if rows is None else _canonical(rows)
        for run_id, stored_label, stored_config, stored_env in found:
            if label is not None and (stored_label or "") != label:
                continue
            stored = [stored_record(text, self.path.name) for text in (stored_config, stored_env)]
            if stored != [config, env]:
                continue
            if wanted is not None and _canonical(self.rows(run_id)) != wanted:
                continue
            return int(run_id)
        return None

    @_serial
    def run_facets(self) -> dict[int, dict[str, list[str]]]:
        """Per run: the distinct backends, precisions and devices of its rows."""
        out: dict[int, dict[str, list[str]]] = {}
        cur = self.db.execute(
            "SELECT run_id, GROUP_CONCAT(DISTINCT backend), GROUP_CONCAT(DISTINCT precision),"
            " GROUP_CONCAT(DISTINCT device) FROM rows GROUP BY run_id"
        )
        for run_id, backends, precisions, devices in cur.fetchall():
            out[int(run_id)] = {
                "backends": sorted(set((backends or "").split(",")) - {""}),
                "precisions": sorted(set((precisions or "").split(",")) - {""}),
                "devices": sorted(set((devices or "").split(",")) - {""}),
            }
        return out

    def _run_dict(self, r: sqlite3.Row) -> dict[str, Any]:
        d = dict(r)
        d["configuration"] = stored_record(d.pop("config_json"), self.path.name)
        d["environment"] = stored_record(d.pop("env_json"), self.path.name)
        if d.get("status") == "running" and process_gone(d.get("pid"), d.get("host")):
            d["status"] = STALE  # killed outright (SIGKILL, power): it cannot say so itself
        return d

    @_serial
    def rows(self, run_id: int | None = None) -> list[ResultRow]:
        where, args = ("", ()) if run_id is None else ("WHERE run_id=? ", (run_id,))
        cur = self.db.execute(f"SELECT data_json FROM rows {where}ORDER BY id", args)
        return [stored_row(r[0], self.path.name) for r in cur.fetchall()]

    @_serial
    def document(self, run_id: int) -> dict[str, Any]:
        """The portable JSON document of one run: ``{schema, run, rows}``."""
        run = self.run(run_id)
        return {
            "schema": JSON_SCHEMA,
            "run": {
                "id": run["id"],
                "created_at": run["created_at"],
                "label": run["label"],
                "status": run["status"],
                "source": run["source"],
                "configuration": run["configuration"],
                "environment": run["environment"],
                "reproduce": run["command"],
                **({"notes": run["notes"]} if run["notes_kept"] else {}),  # see notes.py
            },
            "rows": [r.to_dict() for r in self.rows(run_id)],
        }

    def export_json(self, run_id: int, path: str | Path) -> None:
        write_text(path, json_text(self.document(run_id), indent=1), "--json")

    def export_csv(self, run_id: int | None, path: str | Path) -> None:
        rows = [r.to_dict() for r in self.rows(run_id)]
        text = io.StringIO(newline="")
        if rows:
            writer = csv.DictWriter(text, fieldnames=list(rows[0]))
            writer.writeheader()
            for r in rows:
                r["options"] = json.dumps(r["options"])
                writer.writerow({k: csv_cell(v) for k, v in r.items()})
        write_text(path, text.getvalue(), "the CSV")
