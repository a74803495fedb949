"""Paths, files and how runs end: a full disk, a SQLite file that is not ours, output
paths that are folders or devices, SIGTERM, stale runs, and the cache's odd entries.

Real SQLite, real processes, real file systems: a full disk is a small tmpfs mounted for
the test (root only; skipped elsewhere) or SQLite's own ``max_page_count`` limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.core.config import BenchSettings, ModelSpec, RunnerSpec, SweepConfig
from engine.core.errors import BadInput, EngineError, Unavailable
from engine.running.plan import Callbacks
from engine.running.sweep import run_sweep
from engine.storage.runend import STALE
from engine.storage.sqlite_guard import APPLICATION_ID
from engine.storage.store import Store
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
QUICK = BenchSettings(warmup=1, iters=2, max_time_s=5.0, min_iters=1)
TINY = ["--model", "resnet18", "--image-size", "64", "--backend", "torch", "--quiet"]
TINY += ["--iters", "2", "--warmup", "1", "--no-parity"]


def one_line(res) -> str:
    """The CLI's error: one line, no traceback."""
    err = res.stderr.strip()
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "256k", ro: bool = False):
    """A real small file system; skips the test where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if ro else "")
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> None:
    """Use up every free byte of the file system holding ``folder``."""
    with contextlib.suppress(OSError), open(folder / "filler", "wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 4096)


def _runs(db: Path) -> list[tuple]:
    uri = f"file:{db}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as con:
        return con.execute("SELECT id, status, end_reason FROM runs").fetchall()


# -- item 5: a full disk ---------------------------------------------------------------


def test_disk_full_mid_sweep_ends_failed_and_keeps_the_points(tmp_path, small_artifacts):
    store = Store(tmp_path / "r.sqlite")
    seen = []

    def on_row(row):  # after the second point, the database may not grow any more
        seen.append(row)
        if len(seen) == 2:
            pages = store.db.execute("PRAGMA page_count").fetchone()[0]
            store.db.execute(f"PRAGMA max_page_count={pages}")

    config = SweepConfig(
        ModelSpec("resnet18", image_size=64),
        [RunnerSpec("torch")],
        list(range(1, 41)),
        QUICK,
        parity=False,
    )
    with pytest.raises(Unavailable, match="disk is full") as info:
        run_sweep(
            config, store=store, callbacks=Callbacks(on_row=on_row), artifacts=small_artifacts
        )
    assert "damaged" not in str(info.value)
    run = store.run(1)
    assert run["status"] == "failed" and run["end_reason"] == "disk full"
    kept = store.rows(1)
    assert len(kept) >= 2 and [r.p50_ms for r in kept[:2]] == [r.p50_ms for r in seen[:2]]


def test_disk_full_mid_sweep_through_the_cli(tmp_path):
    db_dir = tmp_path / "disk"
    with tmpfs(db_dir, "512k"):
        db = db_dir / "r.sqlite"
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "bench", *TINY, "--batch", "1,2,3,4,5,6,7,8"]
            + ["--db", str(db)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(sqlite3.Error):
                if db.exists() and _n_rows(db) >= 1:
                    break
            time.sleep(0.05)
        fill(db_dir)
        _, err = proc.communicate(timeout=300)
        assert "Traceback" not in err, err
        assert proc.returncode == 3, err
        assert "disk is full" in err and "opset" not in err and "damaged" not in err
        (db_dir / "filler").unlink()
        assert _runs(db) == [(1, "failed", "disk full")] and _n_rows(db) >= 1
        assert sorted(p.name for p in db_dir.iterdir() if "reserve" in p.name) == []


def _n_rows(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        return con.execute("SELECT COUNT(*) FROM rows").fetchone()[0]


def test_no_room_at_open_is_not_called_damaged(tmp_path):
    disk = tmp_path / "disk"
    with tmpfs(disk, "256k"):
        good = Store(disk / "r.sqlite")
        good.create_run({"model": {"name": "m"}}, {})
        good.close()
        fill(disk)
        with pytest.raises(EngineError) as info:
            s = Store(disk / "r.sqlite")
            s.create_run({"model": {"name": "m"}}, {})
        text = str(info.value)
        assert "damaged" not in text and ".recover" not in text
        assert "disk is full" in text or "checks out" in text


# -- item 6: a SQLite file that is not ours, and read-only commands ----------------------


def _foreign(path: Path, app_id: int = 0, version: int = 0) -> bytes:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    con.execute("INSERT INTO notes (body) VALUES ('shopping list')")
    con.execute(f"PRAGMA application_id={app_id}")
    con.execute(f"PRAGMA user_version={version}")
    con.commit()
    con.close()
    return path.read_bytes()


@pytest.mark.parametrize("app_id", [0, 0x0F0F0F0F])
def test_another_applications_database_is_refused_untouched(tmp_path, app_id):
    other = tmp_path / "notes.db"
    before = _foreign(other, app_id)
    for args in (
        ["history", "--db", str(other)],
        ["report", "--db", str(other), "--out", str(tmp_path / "r.md")],
        ["bench", *TINY, "--batch", "1", "--db", str(other)],
    ):
        res = run_cli(*args)
        assert res.returncode == 2, res.stderr
        assert "not a visionbench results database" in one_line(res)
        assert other.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_read_only_commands_create_nothing(tmp_path):
    typo = tmp_path / "resluts.sqlite"
    for args in (["history", "--db", str(typo)], ["report", "--db", str(typo), "--out", "x.md"]):
        res = run_cli(*args)
        assert res.returncode == 2 and "does not exist" in one_line(res)
    assert list(tmp_path.iterdir()) == []
    dev_before = set(os.listdir("/dev"))
    res = run_cli("history", "--db", "/dev/null")
    assert res.returncode == 2 and "not a regular file" in one_line(res)
    res = run_cli("bench", *TINY, "--batch", "1", "--db", "/dev/null")
    assert res.returncode == 2 and "not a regular file" in one_line(res)
    assert set(os.listdir("/dev")) == dev_before  # no null-journal, null-wal, lock files


def test_stores_carry_an_application_id_and_old_ones_are_recognised(tmp_path):
    new = Store(tmp_path / "new.sqlite")
    assert new.db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    new.close()
    # A store written before the mark existed: recognised by its tables, then marked.
    old = tmp_path / "old.sqlite"
    Store(old).close()
    con = sqlite3.connect(old)
    con.execute("PRAGMA application_id=0")
    con.close()
    s = Store(old, readonly=True)
    assert s.runs() == []
    s.close()
    assert Store(old).db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_user_version_2_without_tables_is_refused(tmp_path):
    db = tmp_path / "claims.sqlite"
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version=2")
    con.close()
    before = db.read_bytes()
    for args in (["history", "--db", str(db)], ["import", "--db", str(db), str(db)]):
        res = run_cli(*args)
        assert res.returncode == 2, res.stderr
        one_line(res)
    with pytest.raises(BadInput, match="not a visionbench results database"):
        Store(db)
    assert db.read_bytes() == before


# -- item 9: how a run ends --------------------------------------------------------------


def test_sigterm_ends_the_run_like_ctrl_c(tmp_path):
    db = tmp_path / "r.sqlite"
    batches = ",".join(str(b) for b in range(1, 41))
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "bench", *TINY, "--batch", batches, "--db", str(db)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.Error):
            if db.exists() and _n_rows(db) >= 2:
                break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert _runs(db) == [(1, "interrupted", "terminated by SIGTERM")]
    assert 2 <= _n_rows(db) < 40


def test_a_run_whose_process_is_gone_is_shown_stale(tmp_path):
    db = tmp_path / "r.sqlite"
    code = (
        "import sys; from engine.storage.store import Store; "
        "Store(sys.argv[1]).create_run({'model': {'name': 'resnet18'}}, {})"
    )
    subprocess.run([sys.executable, "-c", code, str(db)], cwd=ROOT, check=True)
    res = run_cli("history", "--db", str(db), "--no-reference")
    assert res.returncode == 0 and STALE in res.stdout
    res = run_cli("history", "--db", str(db), "--no-reference", "--json")
    assert json.loads(res.stdout)[0]["status"] == STALE
    # A live run is not stale: this process created it.
    s = Store(db)
    live = s.create_run({"model": {"name": "resnet18"}}, {})
    assert s.run(live)["status"] == "running"


# -- item 13: output paths and database paths --------------------------------------------


def _one_run_store(path: Path) -> Path:
    s = Store(path)
    s.create_run({"model": {"name": "resnet18"}}, {})
    s.close()
    return path


def test_report_into_a_folder_a_device_or_a_long_name(tmp_path):
    db = _one_run_store(tmp_path / "r.sqlite")
    (tmp_path / "folder.md").mkdir()
    (tmp_path / "full.md").symlink_to("/dev/full")
    cases = {
        tmp_path / "folder.md": "is a folder",
        tmp_path / "full.md": "is a symbolic link",  # never followed, even to a device
        tmp_path / ("d" * 300) / "r.md": "",
        tmp_path / ("n" * 300 + ".md"): "longer than the file system allows",
        db / "r.md": "",
    }
    for out, words in cases.items():
        res = run_cli("report", "--db", str(db), "--no-diagnostics", "--out", str(out))
        assert res.returncode == 2, (out, res.stderr)
        assert words in one_line(res)
    assert Path("/dev/full").is_char_device()


def test_outputs_refuse_folders_and_devices(tmp_path):
    db = _one_run_store(tmp_path / "r.sqlite")
    folder = tmp_path / "out.md"
    folder.mkdir()
    res = run_cli("report", "--db", str(db), "--no-diagnostics", "--out", str(folder))
    assert res.returncode == 2 and "is a folder" in one_line(res)
    res = run_cli("diagnose", "--no-probe", "--json", "/dev/full")
    assert res.returncode == 2 and "not a regular file" in res.stderr
    assert "Traceback" not in res.stderr
    res = run_cli("diagnose", "--no-probe", "--json", str(tmp_path))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    res = run_cli("bench", *TINY, "--batch", "1", "--db", str(db), "--json", "/dev/full")
    assert res.returncode == 2 and "not a regular file" in one_line(res)
    assert len(Store(db).runs()) == 1  # refused before anything ran
    res = run_cli("export", "--model", "resnet18", "--image-size", "64", "--out", str(tmp_path))
    assert res.returncode == 2 and "is a folder" in one_line(res)


def test_bench_json_on_a_full_disk_keeps_the_run(tmp_path):
    db = tmp_path / "r.sqlite"
    disk = tmp_path / "disk"
    with tmpfs(disk, "64k"):
        fill(disk)
        out = disk / "run.json"
        res = run_cli("bench", *TINY, "--batch", "1", "--db", str(db), "--json", str(out))
        assert res.returncode == 3, res.stderr
        assert "disk is full" in res.stderr and "The run is kept: run 1" in res.stderr
        assert "Traceback" not in res.stderr
        assert not out.exists() and not [p for p in disk.iterdir() if p.name != "filler"]
    assert Store(db).run(1)["status"] == "done" and len(Store(db).rows(1)) == 1


def test_unwritable_folders(tmp_path):
    ro = tmp_path / "ro"
    with tmpfs(ro, "64k", ro=True):
        db = _one_run_store(tmp_path / "r.sqlite")
        res = run_cli("report", "--db", str(db), "--no-diagnostics", "--out", f"{ro}/r.md")
        assert res.returncode == 2 and "read-only" in one_line(res)
        res = run_cli("bench", *TINY, "--batch", "1", "--db", f"{ro}/x.sqlite")
        assert res.returncode == 2 and "read-only" in one_line(res)
        res = run_cli("bench", *TINY, "--batch", "1", "--cache-dir", str(ro))
        assert res.returncode == 2 and "not writable" in one_line(res)


def test_database_paths_that_cannot_work(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    res = run_cli("bench", *TINY, "--batch", "1", "--db", f"{afile}/x.sqlite")
    assert res.returncode == 2 and "not a folder" in one_line(res)
    long_dir = tmp_path / ("d" * 300)
    res = run_cli("bench", *TINY, "--batch", "1", "--db", f"{long_dir}/x.sqlite")
    assert res.returncode == 2 and "longer than" in one_line(res)
    res = run_cli("history", env={"VISIONBENCH_DATA": str(afile)})
    assert res.returncode == 2 and "is a file" in one_line(res)
    res = run_cli("bench", *TINY, "--batch", "1", "--cache-dir", str(afile))
    assert res.returncode == 2 and "is a file" in one_line(res)
    db = _one_run_store(tmp_path / "r.sqlite")
    res = run_cli("history", "--db", str(db), "--compare", "1", str(10**24))
    assert res.returncode == 2 and "is not in" in one_line(res)


def test_immutable_database_is_a_clear_message(tmp_path):
    db = _one_run_store(tmp_path / "r.sqlite")
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        res = run_cli("bench", *TINY, "--batch", "1", "--db", str(db))
        assert res.returncode == 2, res.stderr
        err = one_line(res)
        assert "read-only" in err and "damaged" not in err
        res = run_cli("history", "--db", str(db), "--no-reference")
        assert res.returncode == 0, res.stderr
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=False)


# -- item 16: the cache commands ---------------------------------------------------------


def test_cache_with_a_fifo_a_bad_date_and_bad_amounts(tmp_path):
    cache = tmp_path / "cache"
    (cache / "onnx" / "k1").mkdir(parents=True)
    (cache / "onnx" / "k1" / "meta.json").write_text(json.dumps({"created": -1e18}))
    (cache / "onnx" / "k1" / "model.onnx").write_bytes(b"x" * 10)
    os.mkfifo(cache / "onnx" / "pipe")
    os.mkfifo(cache / "onnx" / "k1" / "inner-pipe")
    res = run_cli("cache", "list", "--cache-dir", str(cache), timeout=60)
    assert res.returncode == 0, res.stderr
    for bad in (["--max-size", "nan"], ["--max-size", "inf"], ["--older-than", "nan"]):
        res = run_cli("cache", "prune", *bad, "--cache-dir", str(cache), timeout=60)
        assert res.returncode == 2, (bad, res.stderr)
        one_line(res)
    res = run_cli("cache", "prune", "--all", "--cache-dir", str(cache), timeout=60)
    assert res.returncode == 0, res.stderr
    assert list((cache / "onnx").iterdir()) == []
