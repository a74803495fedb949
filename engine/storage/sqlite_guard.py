"""The results database's SQLite file: opening it safely, and its errors as user messages.

A connection from :func:`connect` turns SQLite's "locked", "full", "read-only" and
"damaged" into :class:`EngineError` wherever they surface (a statement, a fetch, a commit);
before calling a file damaged it runs ``quick_check``, because SQLite says "disk I/O
error" for a full disk too. :func:`check_path` (before opening) and :func:`check_ours` / :func:`check_intact` (through
the new connection, before anything is written) refuse a device, a FIFO, another
application's SQLite file or a damaged store, untouched. Nothing here opens the database
file outside SQLite.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import urllib.parse
from pathlib import Path
from typing import Any

from engine.core.config import ResultRow
from engine.core.errors import BadInput, EngineError, Unavailable
from engine.core.paths import python_command
from engine.core.safeio import os_problem, unwritable_folder

APPLICATION_ID = 0x76626E63  # "vbnc": marks a file as a visionbench results store


# Where the store comes from differs by front end: the CLI's --db, the dashboard's folder.
ANOTHER_DB = (
    "pass another --db file (the dashboard: restart it with VISIONBENCH_DATA set to another folder)"
)

_LOCKED = ("locked", "busy")
_DAMAGED = ("malformed", "not a database", "disk i/o", "corrupt", "unable to open")
_FULL = ("database or disk is full", "disk is full")
_READ_ONLY = ("readonly", "read-only")


class StoreLocked(EngineError):
    """Another process held a write lock on the store for longer than SQLite's wait."""


class WalLost(EngineError):
    """Another program deleted or replaced the store's ``-wal`` file while it was in use."""


def wal_identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) of the store's write-ahead log; None when there is none.

    A connection keeps the WAL it opened until it closes, and SQLite deletes the WAL only
    when the last connection closes, so while ours is open a different identity (or none)
    means another program removed it: our connection would go on writing into a deleted
    file that no other connection reads.
    """
    try:
        st = os.stat(f"{path}-wal")
    except OSError:
        return None
    return st.st_dev, st.st_ino


WAL_HEADER_BYTES = 32


def log_written(path: Path) -> bool:
    """True when a log beside the store holds a header: a connection wrote to it (an empty
    one is made by a connection that only opened the store, and describes nothing)."""
    try:
        return os.stat(f"{path}-wal").st_size >= WAL_HEADER_BYTES
    except OSError:
        return False


def checkpoint(db: sqlite3.Connection) -> bool:
    """Copy what the WAL holds into the database file; True when all of it went.

    A sweep calls this after each committed point, so the store's file itself, not only
    its WAL, holds every measured point: a WAL deleted later loses nothing already
    measured. FULL waits for readers (the dashboard's are milliseconds long) for at most
    0.2 s, then copies what it can; the next point copies the rest. Measured on a loaded
    2-core CI-like machine (ext4): 5-10 ms more per stored row (mostly one fsync of the
    database file), lost in the noise of a tiny 8-point resnet18 sweep at 32 px (1.0-2.9 s
    with or without it); a real point takes far longer.
    """
    (wait_ms,) = db.cursor(sqlite3.Cursor).execute("PRAGMA busy_timeout").fetchone()
    try:
        db.execute("PRAGMA busy_timeout=200")
        busy, log, done = db.execute("PRAGMA wal_checkpoint(FULL)").fetchone()
    finally:
        db.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
    return not busy and log == done


def side_files(path: Path) -> bool:
    """True when SQLite's ``-wal`` or ``-shm`` sits beside the store: a connection has the
    store open, or one ended without removing them."""
    real = os.path.realpath(path)
    return any(os.path.lexists(f"{real}{suffix}") for suffix in ("-wal", "-shm"))


def drop_side_files(path: Path) -> None:
    """Have SQLite remove the ``-wal`` and ``-shm`` a read-only connection made beside the
    store, once no connection uses them.

    A read-only connection cannot checkpoint, so SQLite leaves both behind at its close even
    when it was the last one (``history`` and ``report`` left them in the data folder). A
    read-write connection removes them when it closes as the last one, which SQLite tells
    by an exclusive lock on the file that any other open connection, of any process, holds
    off; so one that only reads is opened and closed here. It never creates the store
    (``mode=rw``), and a log another process still uses stays with that process.
    """
    if not side_files(path):
        return
    uri = f"file:{urllib.parse.quote(os.path.realpath(path))}?mode=rw"
    with contextlib.suppress(sqlite3.Error, OSError):
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=0.2)) as db:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()


def db_error(exc: sqlite3.Error, name: str, path: Path | None = None) -> EngineError | None:
    """SQLite's "locked", "full", "read-only" and "damaged" as a user message; None for
    anything else (our bug)."""
    text = str(exc).lower()
    damaged = any(t in text for t in _DAMAGED)
    # A stored value whose bytes are not text: damage inside a page that SQLite's own
    # checks pass (Python's sqlite3 says "Could not decode to UTF-8 column ...").
    garbled = "could not decode" in text
    if any(t in text for t in _FULL) or (damaged and path is not None and _no_room(path)):
        return Unavailable(
            f"the results database {name} cannot grow",
            "the disk is full",
            "free some space on that disk (or pass another --db); every row stored so far is kept",
        )
    if "disk i/o" in text and path is not None and _log_held_elsewhere(path):
        return WalLost(
            f"the results database {name} cannot be read now",
            "its write-ahead log (-wal) was deleted while another process (the dashboard or"
            " a sweep) had the store open, and what that log held is still only in that"
            " process",
            "let that sweep end or close that dashboard (it copies what it holds into the"
            " store), then retry; nothing stored is lost",
        )
    if any(t in text for t in _READ_ONLY):
        return BadInput(
            f"the results database {name} cannot be written",
            "the file or its folder is read-only (or immutable)",
            "pass another --db, or make the file writable",
        )
    if damaged and path is not None and _intact(path):
        return EngineError(
            f"the results database {name} could not be read or written",
            f"SQLite said '{exc}', yet the file checks out (integrity_check: ok)",
            "check the disk and the permissions of its folder, then retry",
        )
    if any(t in text for t in _LOCKED):
        return StoreLocked(
            f"the results database {name} is locked",
            "another program or sweep has held a write lock on it for longer than the wait",
            "let it finish (or close it) and retry, or pass another --db; stored rows are safe",
        )
    if damaged or garbled:
        return EngineError(
            f"the results database {name} is damaged",
            str(exc),
            f"{ANOTHER_DB}; this one is left untouched for recovery (sqlite3 FILE .recover)",
        )
    return None


def _log_held_elsewhere(path: Path) -> bool:
    """The shared-memory index is there but the log it describes is not (or is empty):
    SQLite then fails reading frames with "disk I/O error", though nothing is damaged.
    Only a process still holding the deleted log keeps the index in use (a stale index
    left by a killed one is rebuilt by the next connection without an error)."""
    real = Path(os.path.realpath(path))
    return Path(f"{real}-shm").exists() and not log_written(real)


def _no_room(path: Path) -> bool:
    try:
        st = os.statvfs(path.parent if path.parent != Path("") else Path("."))
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def _intact(path: Path) -> bool:
    # Before calling a file damaged: SQLite says "disk I/O error" or "unable to open" for a
    # full disk or a folder it cannot write its journal into, too.
    try:
        uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=1)) as db:
            return db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    except (sqlite3.Error, OSError):
        return False


def _guard(conn, call, *args):
    try:
        return call(*args)
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
            raise
        err = db_error(exc, conn.db_name, conn.db_path)
        if err is None:
            raise
        raise err from exc


class _GuardedCursor(sqlite3.Cursor):
    """Damage can surface while rows are fetched, not only when a statement starts."""

    def execute(self, *args):  # type: ignore[override]
        return _guard(self.connection, super().execute, *args)

    def executemany(self, *args):  # type: ignore[override]
        return _guard(self.connection, super().executemany, *args)

    def fetchone(self):  # type: ignore[override]
        return _guard(self.connection, super().fetchone)

    def fetchmany(self, *args):  # type: ignore[override]
        return _guard(self.connection, super().fetchmany, *args)

    def fetchall(self):  # type: ignore[override]
        return _guard(self.connection, super().fetchall)

    def __next__(self):
        return _guard(self.connection, super().__next__)


class _GuardedConnection(sqlite3.Connection):
    """A connection whose locked / damaged errors reach users as EngineError, not a traceback.

    Integrity errors (a duplicate import key) and SQL mistakes pass through unchanged.
    """

    db_name = "results database"
    db_path: Path | None = None

    def cursor(self, factory=None):  # type: ignore[override]
        return super().cursor(factory or _GuardedCursor)

    def execute(self, *args):  # type: ignore[override]
        return self.cursor().execute(*args)

    def executemany(self, *args):  # type: ignore[override]
        return self.cursor().executemany(*args)

    def executescript(self, script):  # type: ignore[override]
        return _guard(self, super().executescript, script)

    def commit(self) -> None:
        _guard(self, super().commit)

    def __exit__(self, *exc):  # type: ignore[override]
        return _guard(self, super().__exit__, *exc)


def check_path(path: Path, readonly: bool) -> None:
    """A regular file, or (for a writer) a new one whose folder can be made; no link or
    other odd file where SQLite keeps its own files beside it."""
    check_side_files(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        if readonly:
            raise BadInput(
                f"the results database {path} does not exist",
                "nothing has been stored there",
                f"check --db, or store a run first with {python_command()} -m engine bench",
            ) from None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_problem(exc, path.parent, "create the folder") from exc
        why = unwritable_folder(path.parent)
        if why:
            raise BadInput(
                f"the results database {path} cannot be created",
                f"{why} in its folder",
                "pass a --db path in a folder you can write",
            ) from None
        return
    except OSError as exc:
        raise os_problem(exc, path, "open") from exc
    if not stat.S_ISREG(st.st_mode):
        raise BadInput(
            f"the results database {path} is not a regular file",
            "a results database is a SQLite file",
            "pass a .sqlite file with --db",
        )


def check_side_files(path: Path) -> None:
    """SQLite's ``-wal``, ``-shm`` and ``-journal`` beside the store are regular files or
    absent. A link planted there (a store in a shared folder) made the open fail, and the
    store was then called damaged."""
    real = Path(os.path.realpath(path))  # SQLite keeps them beside the file a --db link names
    for suffix in ("-wal", "-shm", "-journal"):
        side = real.with_name(real.name + suffix)
        try:
            mode = side.lstat().st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise os_problem(exc, side, "open") from exc
        if not stat.S_ISREG(mode):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
            raise BadInput(
                f"{side.name} beside the results database {path} is {kind}",
                "SQLite keeps the store's latest writes there and never writes through a link",
                f"remove {side} (nothing of the store is in it; the store was not changed)",
            )


def connect(path: Path, readonly: bool, timeout_s: float) -> sqlite3.Connection:
    """A guarded connection; ``readonly`` (mode=ro): SQLite itself refuses every write and
    creates no journal beside the file."""
    target = str(path)
    if readonly:
        target = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
    db = sqlite3.connect(
        target,
        timeout=timeout_s,
        check_same_thread=False,
        factory=_GuardedConnection,
        uri=readonly,
    )
    db.db_name = path.name
    db.db_path = path
    db.row_factory = sqlite3.Row
    return db


def _read(db: sqlite3.Connection, sql: str):
    # A plain cursor: the caller tells "not ours" and "damaged" apart itself.
    return db.cursor(sqlite3.Cursor).execute(sql).fetchone()


def check_ours(db: sqlite3.Connection, path: Path, readonly: bool, newest: int) -> None:
    """Refuse, before anything is written, a file another application (or nobody) made.

    Asked through ``db`` itself, never by opening the file outside SQLite: POSIX locks
    belong to the process, and closing any descriptor of the file drops every lock this
    process's other connections hold on it (SQLite's "How To Corrupt", 2.2), after which
    another process may delete the WAL under them. One statement, one snapshot.
    """
    try:
        app, version, names = _read(
            db,
            "SELECT (SELECT application_id FROM pragma_application_id),"
            " (SELECT user_version FROM pragma_user_version),"
            " (SELECT group_concat(name, char(10)) FROM sqlite_master WHERE type='table')",
        )
    except sqlite3.DatabaseError as exc:
        if "not a database" not in str(exc).lower():
            raise  # damaged, locked or full: the caller's message says which
        raise EngineError(
            f"the results database {path.name} cannot be opened",
            "it is not a SQLite file",
            f"{ANOTHER_DB}; the existing file was left untouched",
        ) from None
    if app == APPLICATION_ID:
        return
    tables = sorted(names.split("\n")) if names else []
    if app == 0 and not tables and version == 0 and not readonly:
        return  # a new (or empty) file: ours to create
    if app == 0 and version > newest:
        return  # perhaps a later version of ours: the store says which schema it has
    if app == 0 and {"runs", "rows"} <= set(tables) and version >= 1:
        return  # a store written before stores carried the application id
    if app == 0 and not tables and version == 0 and _read(db, "PRAGMA journal_mode")[0] == "wal":
        # Only a store switches a file to WAL before its tables exist: they and every row
        # were still in the log (a process killed before its first checkpoint).
        raise BadInput(
            f"the results database {path.name} holds no tables",
            "it is in WAL mode, and all it held was still in its write-ahead log (-wal),"
            " which is gone (deleted after the process writing it was killed)",
            "nothing can be read back from it; a bench with this --db stores into it"
            " afresh, or pass another --db",
        )
    if app == 0 and not tables and version == 0:
        _refuse(path, "it is empty" if _size(path) == 0 else "it holds no tables")
    shown = ", ".join(tables[:6]) or "no tables"
    _refuse(path, f"it holds {shown} (application_id {app}, user_version {version})")


def check_intact(db: sqlite3.Connection, path: Path) -> None:
    """Refuse to write into a damaged store: a new run there would be one more thing to
    recover. ``quick_check`` reads every page once (milliseconds for a results store)."""
    try:
        found = _read(db, "PRAGMA quick_check(1)")[0]
    except sqlite3.DatabaseError as exc:
        err = db_error(exc, path.name, path)
        if err is None:
            raise
        raise err from exc
    if found != "ok":
        raise EngineError(
            f"the results database {path.name} is damaged",
            f"SQLite's quick_check says: {found}",
            f"{ANOTHER_DB}; this one is left untouched for recovery (sqlite3 FILE .recover)",
        )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _refuse(path: Path, why: str) -> None:
    raise BadInput(
        f"{path.name} is not a visionbench results database",
        why,
        "pass a file written by this tool, or a new file name, with --db; this file was"
        " not changed",
    )


def stored_record(text: str, name: str) -> Any:
    """A stored JSON record. Damage inside a page (a torn write, a bad sector) can leave
    SQLite's structure intact and garble only a value; that is a damaged file, not our bug.
    A run's configuration or environment that reads as another JSON value is told per run
    (engine/storage/history); a row must be an object (:func:`stored_row`)."""
    try:
        return json.loads(text)
    except (ValueError, TypeError) as exc:
        raise _damaged(name, f"a stored record is not readable JSON ({exc})") from exc


def stored_row(text: str, name: str) -> ResultRow:
    """A stored result row. A record garbled into another JSON value (a number, an object
    without its fields) is damage: ``report`` and ``history --compare`` once failed with a
    traceback on it."""
    record = stored_record(text, name)
    if not isinstance(record, dict):
        raise _damaged(name, f"a stored row is {type(record).__name__} JSON, not an object")
    try:
        return ResultRow.from_dict(record)
    except (TypeError, ValueError, KeyError) as exc:
        raise _damaged(name, f"a stored row is not a result row ({str(exc)[:200]})") from exc


def _damaged(name: str, why: str) -> EngineError:
    return EngineError(
        f"the results database {name} is damaged",
        why,
        f"{ANOTHER_DB}; this one is left untouched for recovery (sqlite3 FILE .recover)",
    )
