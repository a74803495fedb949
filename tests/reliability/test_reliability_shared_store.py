"""The dashboard and the CLI on one store at once, as a user runs them side by side.

The History page (Streamlit's AppTest, in this process, as the dashboard would hold it) is
open on a store while real ``python -m engine bench`` processes write to it; the page must
still list every run, never call the store damaged, and this process must hold no deleted
store file afterwards (a WAL or -shm removed under it means its locks were lost).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("streamlit", reason="the dashboard pages need Streamlit")

from streamlit.testing.v1 import AppTest  # noqa: E402

from pages.common import ENTRY_KEY  # noqa: E402
from tests.conftest import ROOT, run_cli  # noqa: E402

PAGE = str(ROOT / "pages" / "history.py")
TINY = ("--model", "resnet18", "--image-size", "32", "--batch", "1", "--backend", "ort")
FAST = ("--device", "cpu", "--precision", "fp32", "--iters", "2", "--warmup", "1", "--quiet")


def bench(db: Path):
    done = run_cli("bench", *TINY, *FAST, "--db", str(db))
    assert done.returncode == 0, done.stderr
    return done


def deleted_store_files(db: Path) -> list[str]:
    gone = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(db)) and target.endswith("(deleted)"):
            gone.append(target)
    return gone


def page_text(at: AppTest) -> str:
    parts = [e.value for e in at.subheader] + [e.value for e in at.error]
    return "\n".join(str(p) for p in parts)


def test_history_page_and_cli_share_one_store(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONBENCH_DATA", str(tmp_path))
    db = tmp_path / "results.sqlite"
    bench(db)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state[ENTRY_KEY] = True
    at.run()
    assert "Runs (1 stored)" in page_text(at), page_text(at)
    at.run()  # every rerun of the page reaches the store again
    bench(db)
    at.run()
    text = page_text(at)
    assert "damaged" not in text and not at.error, text
    assert "Runs (2 stored)" in text, text
    bench(db)
    at.run()
    assert "Runs (3 stored)" in page_text(at), page_text(at)
    assert deleted_store_files(db) == []


def test_a_second_open_in_this_process_keeps_the_first_connections_locks(tmp_path):
    """The dashboard opens the store more than once (a sweep's end, an import) while its
    long-lived connection stays open; the CLI closing last must not delete the WAL."""
    from engine.storage.store import Store

    db = tmp_path / "results.sqlite"
    bench(db)
    held = Store(db)
    assert len(held.runs()) == 1
    Store(db).close()  # opened and closed beside the held connection
    bench(db)
    assert len(held.runs()) == 2
    assert deleted_store_files(db) == []
    held.close()


def _zeroed_store(db: Path) -> bytes:
    from engine.core.config import ResultRow
    from engine.storage.store import Store

    store = Store(db)
    run_id = store.create_run({"model": {"name": "x"}}, {}, "")
    row = {"model": "x", "backend": "torch", "device": "cpu", "precision": "fp32"}
    for i in range(300):
        store.add_row(run_id, ResultRow.from_dict({**row, "batch": i + 1, "reason": "x" * 300}))
    for _ in range(3):
        store.create_run({"model": {"name": "y"}}, {}, "")
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = bytearray(db.read_bytes())
    page = 4096
    data[page * 4 : page * 5] = bytes(page)  # a page lost to a torn write
    db.write_bytes(bytes(data))
    return bytes(data)


def test_a_damaged_store_is_never_written_to(tmp_path):
    db = tmp_path / "zeroed.sqlite"
    before = _zeroed_store(db)
    done = run_cli("bench", *TINY, *FAST, "--db", str(db))
    assert done.returncode == 1, done.stderr
    assert "zeroed.sqlite is damaged" in done.stderr and "Traceback" not in done.stderr
    assert "VISIONBENCH_DATA" in done.stderr  # the advice fits the dashboard too
    assert db.read_bytes() == before
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    gone = run_cli("report", "--db", str(db), "--run", "3", "--out", str(tmp_path / "r.md"))
    assert gone.returncode == 1 and "damaged" in gone.stderr, gone.stderr


def _sweep_under_a_lock(db: Path, small_artifacts, release_on_the_note: bool):
    import sqlite3

    from engine.core.config import BenchSettings, RunnerSpec, SweepConfig
    from engine.running.plan import Callbacks
    from engine.running.sweep import run_sweep
    from engine.storage.store import Store

    store = Store(db, timeout_s=0.3)
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    notes: list[str] = []
    taken: list[bool] = []

    def on_row(_row) -> None:  # another program takes the write lock after the first point
        if not taken:
            taken.append(True)
            holder.execute("BEGIN EXCLUSIVE")

    def progress(_done, _total, message: str) -> None:
        notes.append(message)
        # The other program lets go once the sweep has said it waits (not after a fixed
        # time: a slow machine may measure the next point for longer than any delay).
        if release_on_the_note and "locked by another program" in message:
            if holder.in_transaction:
                holder.execute("COMMIT")

    config = SweepConfig(
        small_artifacts.spec,
        [RunnerSpec("torch")],
        [1, 2, 3],
        BenchSettings(warmup=0, iters=2, min_iters=1, max_time_s=5.0),
        parity=False,
    )
    callbacks = Callbacks(progress=progress, on_row=on_row)
    try:
        return run_sweep(config, store=store, artifacts=small_artifacts, callbacks=callbacks), notes
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
        store.close()


def test_a_lock_held_elsewhere_is_waited_for_with_a_note(tmp_path, small_artifacts):
    from engine.storage.store import Store

    db = tmp_path / "r.sqlite"
    out, notes = _sweep_under_a_lock(db, small_artifacts, release_on_the_note=True)
    assert [r.status for r in out.rows] == ["ok"] * 3
    assert any("locked by another program" in n for n in notes), notes
    assert len(Store(db).rows(out.run_id)) == 3


def test_a_lock_never_released_stops_cleanly_keeping_the_measured(tmp_path, small_artifacts):
    from engine.core.errors import EngineError
    from engine.storage.store import Store

    db = tmp_path / "r.sqlite"
    with pytest.raises(EngineError, match="stayed locked.*1 point.*stored.*batch 2.*was not"):
        _sweep_under_a_lock(db, small_artifacts, release_on_the_note=False)
    assert [r.batch for r in Store(db).rows(1)] == [1]


def test_a_wal_deleted_mid_sweep_loses_at_most_the_point_in_flight(tmp_path, small_artifacts):
    """Another program deletes ``<db>-wal`` between two points while a second connection
    (the dashboard, or the CLI's parent process) holds the store: before, the run and its
    committed rows vanished and the healthy store was called "damaged: disk I/O error"."""
    from engine.core.config import BenchSettings, RunnerSpec, SweepConfig
    from engine.running.plan import Callbacks
    from engine.running.sweep import run_sweep
    from engine.storage.sqlite_guard import WalLost
    from engine.storage.store import Store

    db = tmp_path / "r.sqlite"
    dashboard, store = Store(db), Store(db)
    measured: list[int] = []

    def on_row(row) -> None:
        measured.append(row.batch)
        if len(measured) == 2:
            os.unlink(f"{db}-wal")

    config = SweepConfig(
        small_artifacts.spec,
        [RunnerSpec("torch")],
        [1, 2, 3, 4],
        BenchSettings(warmup=0, iters=2, min_iters=1, max_time_s=5.0),
        parity=False,
    )
    callbacks = Callbacks(on_row=on_row)
    with pytest.raises(WalLost) as lost:
        run_sweep(config, store=store, artifacts=small_artifacts, callbacks=callbacks)
    said = lost.value.user_message()
    assert "damaged" not in said
    assert "run 1 keeps the 2 point(s)" in said and "(torch fp32 batch 3) was not stored" in said
    # The other connection, still open, reads every measured point and how the run ended.
    assert [r.batch for r in dashboard.rows(1)] == measured == [1, 2]
    assert dashboard.run(1)["status"] == "failed"
    assert "write-ahead log" in dashboard.run(1)["end_reason"]
    store.close()
    dashboard.close()
    assert [r.batch for r in Store(db, readonly=True).rows(1)] == [1, 2]
    assert deleted_store_files(db) == []


def test_a_store_held_open_when_its_wal_is_deleted_survives_another_process_writing(tmp_path):
    """The dashboard holds the store (idle) when another program deletes ``<db>-wal``; a
    ``bench`` then stores a run in it. Before: the bench wrote a new log the shared-memory
    index (``-shm``) then described, and the held connection's next call copied frames
    from its own deleted log at that index's offsets into the database file ("NUMERIC
    value in runs.created_at"): the held store said "damaged" and so did every later
    ``history``, both runs' rows unreadable."""
    import sqlite3

    from engine.core.config import ResultRow
    from engine.storage.store import Store

    db = tmp_path / "r.sqlite"
    held = Store(db)
    run = held.create_run({"model": {"name": "resnet18"}}, {})
    for batch in (1, 2):
        point = {"model": "resnet18", "backend": "ort", "device": "cpu", "precision": "fp32"}
        held.add_row(run, ResultRow.from_dict({**point, "batch": batch, "p50_ms": 1.0}))
    held.checkpoint()  # as a sweep does after each point
    os.unlink(f"{db}-wal")
    stored = run_cli("bench", *TINY, *FAST, "--db", str(db))
    assert stored.returncode == 0, stored.stderr
    assert [(r["id"], r["n_rows"]) for r in held.runs()] == [(2, 1), (1, 2)]
    held.finish_run(run, "done")
    held.close()
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    listed = run_cli("history", "--db", str(db), "--json", "--no-reference")
    assert listed.returncode == 0, listed.stderr
    assert [(r["id"], r["n_rows"], r["status"]) for r in json.loads(listed.stdout)] == [
        (2, 1, "done"),
        (1, 2, "done"),
    ]


def test_a_log_deleted_before_it_was_copied_is_said_so_not_called_damage(tmp_path):
    """A process holds the store with rows only in its log (nothing copied into the file
    yet) when ``<db>-wal`` is deleted: ``history`` and ``bench`` from another process
    said "damaged: disk I/O error" and advised another --db and a recovery, while the
    holder still had every row and copies them in on its next call."""
    from engine.core.config import ResultRow
    from engine.storage.store import Store

    db = tmp_path / "r.sqlite"
    held = Store(db)
    run = held.create_run({"model": {"name": "resnet18"}}, {})
    point = {"model": "resnet18", "backend": "ort", "device": "cpu", "precision": "fp32"}
    held.add_row(run, ResultRow.from_dict({**point, "batch": 1, "p50_ms": 1.0}))
    os.unlink(f"{db}-wal")
    for argv in (("history", "--no-reference"), ("bench", *TINY, *FAST)):
        refused = run_cli(*argv, "--db", str(db))
        assert refused.returncode == 1, refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert "damaged" not in line and "Traceback" not in line, line
        assert "write-ahead log (-wal) was deleted while another process" in line, line
        assert "Fix: let that sweep end or close that dashboard" in line, line
    assert [r["n_rows"] for r in held.runs()] == [1]  # noticed: copied, and goes on
    held.close()
    listed = run_cli("history", "--db", str(db), "--json", "--no-reference")
    assert listed.returncode == 0, listed.stderr
    assert [r["n_rows"] for r in json.loads(listed.stdout)] == [1]


def test_a_store_whose_log_went_before_its_first_copy_is_said_so(tmp_path):
    """A process killed before anything was copied from its log into the store's file,
    then ``<db>-wal`` deleted (the stale ``-shm`` stays): ``history`` called the file "not
    a visionbench results database ... pass a file written by this tool"."""
    import signal
    import subprocess
    import sys

    db = tmp_path / "r.sqlite"
    killed = subprocess.run(
        [sys.executable, "-c", "import os, signal, sys; from engine.storage.store import Store;"
         " Store(sys.argv[1]).create_run({'model': {'name': 'resnet18'}}, {});"
         " os.kill(os.getpid(), signal.SIGKILL)", str(db)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert Path(f"{db}-shm").exists()
    os.unlink(f"{db}-wal")
    listed = run_cli("history", "--db", str(db), "--no-reference")
    assert listed.returncode == 2, listed.stderr
    (line,) = listed.stderr.strip().splitlines()
    assert "all it held was still in its write-ahead log (-wal), which is gone" in line, line
    assert "not a visionbench results database" not in line, line
    stored = run_cli("bench", *TINY, *FAST, "--db", str(db))  # stores into it afresh
    assert stored.returncode == 0, stored.stderr
    listed = run_cli("history", "--db", str(db), "--json", "--no-reference")
    assert [r["n_rows"] for r in json.loads(listed.stdout)] == [1]


def _stored_run(db: Path, batches: tuple[int, ...] = (1,)) -> None:
    from engine.core.config import ResultRow
    from engine.storage.store import Store

    store = Store(db)
    run = store.create_run({"model": {"name": "resnet18"}}, {})
    point = {"model": "resnet18", "backend": "ort", "device": "cpu", "precision": "fp32"}
    for batch in batches:
        store.add_row(run, ResultRow.from_dict({**point, "batch": batch, "p50_ms": 1.0}))
    store.finish_run(run)
    store.close()


def test_a_read_only_look_leaves_the_folder_as_it_found_it(tmp_path):
    """Before: ``history``, ``history --run``, ``report`` (read-only, ``mode=ro``) left
    ``results.sqlite-wal`` and ``-shm`` in the data folder after they ended: a read-only
    connection cannot checkpoint, so SQLite never removes them at its close."""
    db = tmp_path / "results.sqlite"
    _stored_run(db)
    found = sorted(os.listdir(tmp_path))
    assert not [name for name in found if name.endswith(("-wal", "-shm"))]
    for argv in (
        ("history", "--no-reference"),
        ("history", "--run", "1"),
        ("history", "--run", "7"),  # ends on an error: the folder is still left as found
        ("report", "--run", "1", "--no-diagnostics", "--out", str(tmp_path / "r.md")),
    ):
        done = run_cli(*argv, "--db", str(db))
        assert done.returncode == (2 if "7" in argv else 0), done.stderr
        left = sorted(set(os.listdir(tmp_path)) - {"r.md"})
        assert left == found, argv


def test_a_reader_leaves_a_log_another_process_still_uses(tmp_path):
    """A reader that found no ``-wal`` ends while another process (opened after it) holds
    the store and has written to its log: that log stays, and what it holds is stored."""
    import subprocess
    import sys

    from engine.storage.store import Store

    db = tmp_path / "results.sqlite"
    _stored_run(db)
    reader = Store(db, readonly=True)
    assert [r["n_rows"] for r in reader.runs()] == [1]
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys; from engine.core.config import ResultRow;"
         " from engine.storage.store import Store; s = Store(sys.argv[1]);"
         " p = dict(model='resnet18', backend='ort', device='cpu', precision='fp32');"
         " s.add_row(1, ResultRow.from_dict({**p, 'batch': 2, 'p50_ms': 1.0}));"
         " print('held', flush=True); sys.stdin.readline();"
         " s.add_row(1, ResultRow.from_dict({**p, 'batch': 4, 'p50_ms': 1.0})); s.close()",
         str(db)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert writer.stdout.readline().strip() == "held"
        wal = os.stat(f"{db}-wal")
        reader.close()
        assert os.stat(f"{db}-wal")[:2] == wal[:2] and os.stat(f"{db}-wal").st_size > 0
        assert Path(f"{db}-shm").exists()
        writer.communicate("go\n", timeout=60)
    finally:
        writer.kill()
    assert writer.returncode == 0
    assert sorted(os.listdir(tmp_path)) == ["results.sqlite", "results.sqlite.migrate.lock"]
    listed = run_cli("history", "--db", str(db), "--json", "--no-reference")
    assert [r["n_rows"] for r in json.loads(listed.stdout)] == [3]
