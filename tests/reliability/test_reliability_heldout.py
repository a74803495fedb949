"""Issue 25's held-out variants: attacks on the fixes by someone who did not write them.

Each test here failed on the code before its fix (what it did then is said in the test).
Real CLI processes, real stores, real files; a refusal is exit 2 with one line and the
file it would have replaced keeps its bytes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from engine.storage.store import Store
from tests.conftest import ROOT, run_cli, stored, wait_for_rows
from tests.reliability.test_reliability_clobber import _refused

TINY = ("--model", "resnet18", "--image-size", "32", "--batch", "1", "--backend", "ort")
FAST = ("--device", "cpu", "--precision", "fp32", "--iters", "2", "--warmup", "0", "--quiet")


def _bytes(*paths: Path) -> list[bytes]:
    return [p.read_bytes() for p in paths]


def test_an_output_is_never_a_file_sqlite_keeps_beside_the_store(tmp_path):
    """Before: ``bench --json STORE-wal`` replaced the WAL under a connection that held it
    (exit 0): that connection's locks went with the old file and the run's last update
    was lost (History then showed the run as stale). ``diagnose --json`` did the same."""
    db = tmp_path / "s.sqlite"
    store = Store(db)
    store.create_run({"model": {"name": "resnet18"}}, {})
    store.close()
    # Another process of the dashboard's kind holds the store: its -wal and -shm exist.
    holder = sqlite3.connect(db)
    holder.execute("SELECT COUNT(*) FROM runs").fetchall()
    wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
    assert wal.exists() and shm.exists()
    before = _bytes(wal, shm)
    (tmp_path / "sub").mkdir()
    bench = ("bench", *TINY, *FAST, "--db", str(db), "--json")
    _refused(run_cli(*bench, str(wal)), "write-ahead log of the --db store")
    _refused(run_cli(*bench, f"{tmp_path}/sub/../s.sqlite-shm"), "shared-memory index")
    _refused(run_cli(*bench, f"{db}.run7.reserve"), "reserve file of the --db store")
    # Any SQLite database's side files, not only the store's.
    _refused(run_cli(*bench[:-3], "--db", str(tmp_path / "o.sqlite"), "--json", str(wal)))
    for flag, side in (("--json", wal), ("--markdown", shm)):
        done = run_cli("diagnose", "--no-probe", flag, str(side))
        _refused(done, "SQLite keeps it beside the database s.sqlite")
    assert _bytes(wal, shm) == before
    holder.close()
    assert [r["status"] for r in Store(db).runs()] == ["running"]  # no run was added
    assert not (tmp_path / "o.sqlite").exists()


def test_an_output_is_never_an_input_weights_file_or_calibration_image(tmp_path):
    """Before: ``bench --weights W --json W`` and ``export --weights W --out W`` replaced
    the user's weights file with JSON or ONNX (exit 0)."""
    import torch
    import torchvision

    weights = tmp_path / "w.pt"  # real weights: before the fix the sweep ran, then wrote
    torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), weights)
    kept = weights.read_bytes()
    images = tmp_path / "calib"
    images.mkdir()
    (images / "a.png").write_bytes(b"\x89PNG an image")
    done = run_cli("bench", *TINY, *FAST, "--weights", str(weights), "--json", str(weights))
    _refused(done, "is the --weights file")
    done = run_cli(
        "export", "--model", "resnet18", "--weights", str(weights), "--out", f"{tmp_path}/w.pt"
    )
    _refused(done, "is the --weights file")
    done = run_cli(
        "bench", *TINY, *FAST, "--precision", "int8", "--calibration-dir", str(images),
        "--json", str(images / "a.png"),
    )  # fmt: skip
    _refused(done, "inside the --calibration-dir folder")
    assert weights.read_bytes() == kept
    assert (images / "a.png").read_bytes() == b"\x89PNG an image"


def test_trt_build_out_never_replaces_its_input_nor_follows_a_tmp_link(tmp_path):
    """Before: ``trt-build --out`` had no output check (the input model, the store or a
    link at the target were written over once the build ended) and wrote the plan first
    to ``.NAME.PID.tmp`` beside the target, following a link planted there."""
    from engine.backends.tensorrt.standalone import _write

    model = tmp_path / "m.onnx"
    model.write_bytes(b"an onnx model")
    done = run_cli("trt-build", "--onnx", str(model), "--out", str(model))
    _refused(done, "is the --onnx model")
    assert model.read_bytes() == b"an onnx model"

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    out = tmp_path / "plan.engine"
    os.symlink(victim, tmp_path / f".plan.engine.{os.getpid()}.tmp")
    assert _write(str(out), b"plan bytes") == str(out)
    assert out.read_bytes() == b"plan bytes" and victim.read_text() == "keep me\n"


def test_a_closed_terminal_ends_the_run_interrupted(tmp_path):
    """Before: SIGHUP (a closed terminal or SSH session, sent to the whole group) killed the
    CLI and its worker at once; the run stayed ``running`` with no reason (History: stale),
    and the exit code was the bare signal. Now as SIGTERM: ``interrupted``, exit 129."""
    from tests.reliability.test_reliability_exits import _start

    for target in ("group", "parent"):
        db = tmp_path / f"{target}.sqlite"
        proc = _start(db, ",".join(str(b) for b in range(1, 41)))
        wait_for_rows(proc, db, 1)
        if target == "group":
            os.killpg(proc.pid, signal.SIGHUP)
        else:
            proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 129, err
        assert "Traceback" not in err and "interrupted" in err, err
        runs, rows = stored(db)
        assert runs == [(1, "interrupted", "terminated by SIGHUP")] and rows, runs


def test_a_link_where_sqlite_keeps_its_files_is_refused_not_called_damaged(tmp_path):
    """Before: a link planted at ``STORE-wal`` or ``STORE-shm`` (a store in a shared
    folder) made the open fail and every command said the store was "damaged … left
    untouched for recovery" (exit 1); the store was sound."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    db = tmp_path / "s.sqlite"
    store = Store(db)
    run_id = store.create_run({"model": {"name": "resnet18"}}, {})
    store.finish_run(run_id, "done")
    doc = tmp_path / "x.json"
    doc.write_text(json.dumps(store.document(run_id)))
    store.close()
    before = db.read_bytes()
    for suffix in ("-shm", "-wal"):
        side = Path(f"{db}{suffix}")
        side.unlink(missing_ok=True)
        side.symlink_to(victim)
        for argv in (("bench", *TINY, *FAST), ("history",), ("import", str(tmp_path / "x.json"))):
            done = run_cli(*argv, "--db", str(db))
            _refused(done, f"s.sqlite{suffix} beside the results database", "symbolic link")
            assert "damaged" not in done.stderr
        side.unlink()
    assert db.read_bytes() == before and victim.read_text() == "keep me\n"
    assert len(Store(db).runs()) == 1


def test_a_wal_deleted_or_renamed_under_a_cli_sweep_never_damages_the_store(tmp_path):
    """Before: with the WAL deleted or renamed between two points of a real ``bench`` (its
    parent and worker both hold the store), the sweep reopened on a new WAL while the
    shared-memory index still described the old one; its next checkpoint copied holes
    into the database file. The store was left malformed (``integrity_check``: "NUMERIC
    value in runs.created_at", ``history`` a traceback) in 4 of 5 tries."""
    for how in ("delete", "rename"):
        db = tmp_path / f"{how}.sqlite"
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "bench", *TINY[:4], "--backend", "ort",
             "--batch", "1,2,4,8,16,32", "--device", "cpu", "--iters", "50", "--quiet",
             "--db", str(db)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_for_rows(proc, db, 2)
        wal = Path(f"{db}-wal")
        wal.unlink() if how == "delete" else wal.rename(f"{db}-wal.old")
        _, err = proc.communicate(timeout=300)
        assert proc.returncode in (0, 1), err  # 1: it noticed and stopped, saying so
        assert "damaged" not in err and "Traceback" not in err, err
        if proc.returncode == 1:
            assert "lost its write-ahead log" in err and "was not stored" in err, err
        con = sqlite3.connect(db)
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            rows = con.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
            status, reason = con.execute("SELECT status, end_reason FROM runs").fetchone()
        finally:
            con.close()
        assert rows >= 2
        if proc.returncode == 1:  # and how it ended is recorded, not left "running"
            assert status == "failed" and "write-ahead log" in reason, (status, reason)
        listed = run_cli("history", "--db", str(db), "--json", "--no-reference")
        assert listed.returncode == 0, listed.stderr
        assert [r["n_rows"] for r in json.loads(listed.stdout)] == [rows]


def test_a_garbled_row_record_is_damaged_not_a_traceback(tmp_path):
    """Before: a torn page that leaves a row's JSON readable but not a row (a number, an
    object without its fields) made ``report`` and ``history --compare`` end in a
    traceback (``AttributeError``, ``TypeError``)."""
    from engine.core.config import ResultRow

    for garbled in ("7", '{"batch": "x", "samples_ms": 5}'):
        db = tmp_path / f"g{len(garbled)}.sqlite"
        store = Store(db)
        run_id = store.create_run({"model": {"name": "resnet18"}}, {})
        for batch in (1, 2):
            row = {"model": "resnet18", "backend": "ort", "device": "cpu", "precision": "fp32"}
            store.add_row(run_id, ResultRow.from_dict({**row, "batch": batch, "p50_ms": 1.0}))
        store.finish_run(run_id, "done")
        with store.db:
            store.db.execute("UPDATE rows SET data_json=? WHERE id=1", (garbled,))
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        before = db.read_bytes()
        for argv in (
            ("report", "--out", str(tmp_path / "r.md"), "--no-diagnostics"),
            ("history", "--compare", "1", "1"),
        ):
            done = run_cli(*argv, "--db", str(db))
            assert done.returncode == 1, done.stderr
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and f"{db.name} is damaged" in lines[0], done.stderr
        assert db.read_bytes() == before


def test_a_prune_keeps_an_entry_a_live_process_took_for_a_run(tmp_path, monkeypatch):
    """Before: the build marker went when the export (or quantisation) finished, so a prune
    in the moment before ONNX Runtime opened the file removed it; the sweep failed with
    "File doesn't exist" and advice about the model's operators, exit 2 (seen with
    ``prune --older-than 0`` and ``--max-size 0`` looping beside an int8 sweep)."""
    import onnxruntime as ort

    from engine.artifacts.models import load_artifacts
    from engine.core.config import ModelSpec

    cache = tmp_path / "cache"
    monkeypatch.setenv("VISIONBENCH_CACHE", str(cache))
    env = {"VISIONBENCH_CACHE": str(cache)}
    path = load_artifacts(ModelSpec("resnet18", image_size=32)).onnx_path("fp32")
    for criterion in (("--older-than", "0"), ("--max-size", "0"), ("--all",)):
        done = run_cli("cache", "prune", *criterion, env=env)
        assert done.returncode == 0, done.stderr
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # still there

    # An entry whose user has exited is pruned as before.
    old = cache / "onnx" / ("f" * 32)
    old.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (old / f"use.{dead.pid}.tmp").write_text("")
    done = run_cli("cache", "prune", "--all", env=env)
    assert done.returncode == 0 and not old.exists() and path.exists(), done.stdout


def test_the_same_document_rewritten_by_another_json_tool_is_not_imported_twice(tmp_path):
    """Before: a run's document with its keys in another order (``jq -S``, any JSON
    library) or its rows in another order was imported as a second copy of the run that
    measured it (History listed the run twice). A document differing in one latency is
    still another run."""
    from engine.core.config import ResultRow

    db = tmp_path / "s.sqlite"
    store = Store(db)
    run_id = store.create_run({"model": {"name": "resnet18"}, "batches": [1, 2]}, {"cpu": "x"})
    for batch in (1, 2):
        row = {"model": "resnet18", "backend": "ort", "device": "cpu", "precision": "fp32"}
        store.add_row(run_id, ResultRow.from_dict({**row, "batch": batch, "p50_ms": 1.5}))
    store.finish_run(run_id, "done")
    doc = store.document(run_id)
    store.close()

    def reordered(value):
        if isinstance(value, dict):
            return {k: reordered(value[k]) for k in sorted(value, reverse=True)}
        return [reordered(v) for v in value] if isinstance(value, list) else value

    rows_turned = {**doc, "rows": doc["rows"][::-1]}
    one_latency = json.loads(json.dumps(doc))
    one_latency["rows"][1]["p50_ms"] = 1.5000001
    files = []
    for name, variant in (
        ("keys", reordered(doc)),
        ("rows", rows_turned),
        ("latency", one_latency),
    ):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(variant))
    said = [run_cli("import", "--db", str(db), str(f)) for f in files]
    assert [s.returncode for s in said] == [0, 0, 0], [s.stderr for s in said]
    assert "already run 1" in said[0].stdout and "already run 1" in said[1].stdout, said
    assert "imported latency.json as run 2" in said[2].stdout, said[2].stdout
    assert len(Store(db, readonly=True).runs()) == 2


def test_sigterm_to_the_worker_alone_ends_the_run_interrupted(tmp_path):
    """Before: ``kill`` on the sweep worker's pid (SIGTERM, not SIGKILL) was a crash: the
    run ``failed``, a failed row for the point in flight, exit 4. Now it is a stop: the
    point in flight finishes, the run is ``interrupted`` with the reason, exit 143."""
    from tests.reliability.test_reliability_exits import _start

    db = tmp_path / "w.sqlite"
    proc = _start(db, ",".join(str(b) for b in range(1, 41)))
    wait_for_rows(proc, db, 1)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert len(children) == 1, children  # the worker
    os.kill(int(children[0]), signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "interrupted" in err, err
    runs, rows = stored(db)
    assert runs == [(1, "interrupted", "the sweep worker was terminated by SIGTERM")], runs
    con = sqlite3.connect(db)
    try:
        statuses = {s for (s,) in con.execute("SELECT status FROM rows")}
    finally:
        con.close()
    assert rows and statuses == {"ok"}, statuses
