"""Faults: a backend that cannot build, corrupt cache entries, a locked or damaged store,
and sweeps interrupted by Ctrl-C or killed outright. Real libraries and processes only.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from engine.artifacts.export import export_onnx
from engine.artifacts.models import file_sha256, load_artifacts
from engine.artifacts.quantize import quantize_int8
from engine.backends import get_backend
from engine.backends.ort import OrtRunner
from engine.core.config import BenchSettings, ModelSpec, ResultRow, RunnerSpec, SweepConfig
from engine.core.errors import BadInput, EngineError
from engine.running.sweep import run_sweep
from engine.storage.store import Store
from tests.conftest import default_sigint, stored, wait_for_rows

ROOT = Path(__file__).resolve().parents[2]
QUICK = BenchSettings(warmup=1, iters=2, max_time_s=5.0, min_iters=1)


@pytest.fixture(scope="module")
def art():
    return load_artifacts(ModelSpec("resnet18", image_size=64))


def _bad_op_model(path: Path) -> Path:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 64, 64])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3, 1, 1])
    graph = helper.make_graph([helper.make_node("NoSuchOp", ["input"], ["logits"])], "g", [x], [y])
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), path
    )
    return path


# -- a backend that fails to build ----------------------------------------------------


def test_backend_failing_to_build_is_shown_and_the_others_go_on(tmp_path, art):
    bad = _bad_op_model(tmp_path / "bad.onnx")
    built = []

    def factory(spec, a, ctx):  # the ONNX Runtime runner gets the broken file, for real
        runner = (
            OrtRunner(spec, str(bad), ctx)
            if spec.backend == "ort"
            else get_backend(spec.backend).prepare(spec, a, ctx)
        )
        built.append(runner)
        return runner

    config = SweepConfig(
        art.spec, [RunnerSpec("ort"), RunnerSpec("torch")], [1, 2], QUICK, parity=False
    )
    store = Store(tmp_path / "r.sqlite")
    out = run_sweep(config, store=store, runner_factory=factory, artifacts=art)
    for r in built:
        r.close()
    got = [(r.backend, r.batch, r.status) for r in store.rows(out.run_id)]
    assert got == [
        ("ort", 1, "failed"),
        ("ort", 2, "failed"),
        ("torch", 1, "ok"),
        ("torch", 2, "ok"),
    ]
    assert "ONNX Runtime cannot load bad.onnx" in out.rows[0].reason
    assert "NoSuchOp" in out.rows[0].reason
    assert any(isinstance(e, BadInput) for e in out.errors)
    assert all(r.p50_ms > 0 for r in out.rows[2:])


def test_session_errors_that_are_not_the_models_fault_stay_what_they_are():
    from engine.backends.ort import session_error

    exc = RuntimeError("CUDA failure 2: out of memory ; GPU=0")
    assert session_error(exc, "m.onnx") is exc
    with pytest.raises(Exception) as info:
        ort.InferenceSession(b"garbage", providers=["CPUExecutionProvider"])
    assert isinstance(session_error(info.value, "m.onnx"), BadInput)


# -- corrupt cache entries ------------------------------------------------------------


def test_truncated_or_altered_cached_onnx_is_detected_and_rebuilt(tmp_path, monkeypatch, art):
    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
    first = export_onnx(art, "fp32")
    assert not first.reused
    good_hash = file_sha256(first.path)
    assert export_onnx(art, "fp32").reused

    data = first.path.read_bytes()
    first.path.write_bytes(data[: len(data) // 3])  # a crash mid-copy, a full disk
    again = export_onnx(art, "fp32")
    assert not again.reused and file_sha256(again.path) == good_hash

    flipped = bytearray(again.path.read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF  # same size, one bit pattern changed
    again.path.write_bytes(bytes(flipped))
    third = export_onnx(art, "fp32")
    assert not third.reused and file_sha256(third.path) == good_hash
    onnx.checker.check_model(str(third.path))


def test_truncated_int8_model_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
    small = load_artifacts(ModelSpec("resnet18", image_size=64))
    path = quantize_int8(small)
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:1000])
    small.notes.clear()
    rebuilt = quantize_int8(small)
    assert "reused the cached int8 model" not in small.notes
    assert rebuilt.stat().st_size == size
    sess = ort.InferenceSession(str(rebuilt), providers=["CPUExecutionProvider"])
    assert sess.run(None, {sess.get_inputs()[0].name: small.sample_input(1)})[0].shape == (1, 1000)


# -- the results database -------------------------------------------------------------


def _store_with_rows(path: Path, art, n: int = 2) -> tuple[int, list]:
    config = SweepConfig(
        art.spec, [RunnerSpec("torch")], list(range(1, n + 1)), QUICK, parity=False
    )
    store = Store(path)
    out = run_sweep(config, store=store, artifacts=art)
    rows = [r.to_dict() for r in store.rows(out.run_id)]
    store.close()
    return out.run_id, rows


def test_locked_database_gives_a_clear_message_and_keeps_rows(tmp_path, art):
    db = tmp_path / "r.sqlite"
    run_id, rows = _store_with_rows(db, art)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program writing, and not letting go
    try:
        store = Store(db, timeout_s=0.5)
        assert [r.to_dict() for r in store.rows(run_id)] == rows  # readers still read (WAL)
        with pytest.raises(EngineError, match="is locked.*stored rows are safe"):
            run_sweep(
                SweepConfig(art.spec, [RunnerSpec("torch")], [1], QUICK, parity=False),
                store=store,
                artifacts=art,
            )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store = Store(db)
    assert [r.to_dict() for r in store.rows(run_id)] == rows
    store.create_run({"model": {"name": "x"}}, {}, "")  # writable again once released


def test_a_writer_waits_for_a_short_lock_instead_of_failing(tmp_path, art):
    db = tmp_path / "r.sqlite"
    run_id, _ = _store_with_rows(db, art, n=1)
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    threading.Timer(1.0, lambda: holder.execute("COMMIT")).start()
    store = Store(db, timeout_s=20)
    new = store.create_run({"model": {"name": "x"}}, {}, "")
    assert new > run_id
    holder.close()


def test_damaged_database_is_refused_clearly_and_left_untouched(tmp_path, art):
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database, just bytes " * 500)
    before = garbage.read_bytes()
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "bench",
            "--model",
            "resnet18",
            "--image-size",
            "64",
            "--batch",
            "1",
            "--db",
            str(garbage),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0 and "garbage.sqlite" in res.stderr
    assert "left untouched" in res.stderr
    assert garbage.read_bytes() == before

    # A store damaged inside (valid header, torn pages): reading says so, no traceback.
    db = tmp_path / "torn.sqlite"
    store = Store(db)
    run_id = store.create_run({"model": {"name": "x"}}, {}, "")
    _, rows = _store_with_rows(db, art, n=1)

    for i in range(200):
        store.add_row(run_id, ResultRow.from_dict({**rows[0], "reason": "x" * 300, "batch": i + 1}))
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = bytearray(db.read_bytes())
    for off in range(4096 * 3, len(data) - 4096, 4096):
        data[off + 100 : off + 600] = b"\xde\xad" * 250
    db.write_bytes(bytes(data))
    with pytest.raises(EngineError, match="torn.sqlite is damaged"):
        Store(db).rows(run_id)


@pytest.mark.parametrize(
    "garbage, why",
    [(b"\xde\xad" * 10 + b"!", "not readable JSON"), (b"\xff" * 21, "Could not decode")],
    ids=["text-not-json", "bytes-not-text"],
)
def test_a_garbled_record_in_an_intact_file_is_a_damaged_database(tmp_path, art, garbage, why):
    # A torn page can garble a stored value and leave SQLite's structure sound: the file
    # still opens and reads, and only the record is broken (as text, or as bytes).
    db = tmp_path / "garbled.sqlite"
    run_id, rows = _store_with_rows(db, art, n=1)
    store = Store(db)
    store.add_row(run_id, ResultRow.from_dict({**rows[0], "reason": "torn here", "batch": 2}))
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = db.read_bytes()
    marker = b'"reason": "torn here"'
    assert data.count(marker) == 1
    db.write_bytes(data.replace(marker, garbage))  # same length: the page stays sound
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with pytest.raises(EngineError, match=f"garbled.sqlite is damaged.*{why}"):
        Store(db).rows(run_id)


# -- interrupted sweeps ---------------------------------------------------------------


def _start_long_sweep(db: Path) -> subprocess.Popen:
    batches = ",".join(str(b) for b in range(1, 41))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "bench",
            "--model",
            "resnet18",
            "--image-size",
            "64",
            "--backend",
            "torch",
            "--batch",
            batches,
            "--iters",
            "5",
            "--warmup",
            "1",
            "--no-parity",
            "--quiet",
            "--db",
            str(db),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,  # as in a terminal
    )


def _runs(db: Path) -> tuple[list, list]:
    runs, rows = stored(db)
    return [run[:2] for run in runs], rows  # (id, status): the end's reason is not asked


@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_interrupted_sweep_keeps_every_measured_point(tmp_path, how):
    db = tmp_path / "r.sqlite"
    proc = _start_long_sweep(db)
    seen = wait_for_rows(proc, db, 2)
    proc.send_signal(signal.SIGINT if how == "ctrl-c" else signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    runs, rows = _runs(db)
    assert rows[: len(seen)] == seen  # nothing measured before the signal is lost
    assert 2 <= len(rows) < 40 and all(s == "ok" and p50 > 0 for _, s, p50 in rows)
    if how == "ctrl-c":
        assert proc.returncode == 130 and "Traceback" not in err
        assert "interrupted: the points measured so far are stored" in err
        assert runs == [(1, "interrupted")]
    else:
        assert proc.returncode == -signal.SIGKILL
        # The CLI could not say goodbye, but its worker sees its stdin close, stops after
        # the point it is on and ends the run itself; every row is there.
        deadline = time.monotonic() + 120
        while runs == [(1, "running")] and time.monotonic() < deadline:
            time.sleep(0.2)
            runs, rows = _runs(db)
        assert runs == [(1, "interrupted")]
        assert len(Store(db).rows(1)) == len(rows) and rows[: len(seen)] == seen


# -- model faults in ONNX Runtime's words become one line and exit 2 (issue 26.13) -----------


def _fault_models(folder: Path) -> dict[str, Path]:
    """An initializer whose raw bytes disagree with its dims, and a MatMul whose weight
    fits only 32×32 inputs (found when the model runs at 64×64)."""
    import numpy as np
    from onnx import numpy_helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, "H", "W"])
    w = numpy_helper.from_array(np.ones((3, 1, 1), np.float32), "w")
    w.raw_data = w.raw_data[:8]  # 2 floats for 3
    g = helper.make_graph([helper.make_node("Mul", ["input", "w"], ["out"])], "g", [x], [y], [w])
    models = {"raw_data size": helper.make_model(g)}
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 10])
    w = numpy_helper.from_array(np.ones((3 * 32 * 32, 10), np.float32), "w")
    nodes = [helper.make_node("Flatten", ["input"], ["f"], axis=1),
             helper.make_node("MatMul", ["f", "w"], ["out"])]  # fmt: skip
    models["dimension mismatch"] = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w]))
    out = {}
    for name, model in models.items():
        model.opset_import[0].version, model.ir_version = 18, 9
        out[name] = folder / f"{name.replace(' ', '_')}.onnx"
        out[name].write_bytes(model.SerializeToString())
    return out


def test_model_faults_are_one_line_without_source_locations_and_exit_2(tmp_path, capsys):
    from engine.cli import main as cli

    for name, path in _fault_models(tmp_path).items():
        spec = ModelSpec(path.stem, image_size=64, onnx_path=str(path))
        config = SweepConfig(spec, [RunnerSpec("ort")], [1], QUICK, parity=False)
        out = run_sweep(config)
        (row,) = out.rows
        assert row.status == "failed" and isinstance(out.errors[0], BadInput), row.reason
        assert "\n" not in row.reason and "::" not in row.reason, row.reason
        assert ".cc:" not in row.reason and ".h:" not in row.reason, row.reason
        assert "[ONNXRuntimeError]" not in row.reason and name in row.reason.lower()
    argv = ["bench", "--onnx", str(path), "--image-size", "64", "--batch", "1", "--iters", "1",
            "--warmup", "0", "--no-parity", "--backend", "ort", "--db", str(tmp_path / "r.sqlite")]  # fmt: skip
    assert cli.main(argv) == 2
    errors = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error: ")]
    assert len(errors) == 1 and "dimension mismatch" in errors[0] and ".h:" not in errors[0]
