"""Limits and clear messages: sizes an ONNX file declares, outputs parity cannot judge,
cut-short external data, fine-tuned heads, stale int8 calibration, numeric flags (threads,
seeds, nan and inf), warm-up without end, NaN in JSON and a full disk during an export.

Every model is built here with onnx.helper or torchvision; every command runs for real.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.artifacts.models import build_torch_model, load_artifacts
from engine.artifacts.quantize import _calibration_source
from engine.backends import PrepareContext, get_backend
from engine.core.config import BenchSettings, ModelSpec, ResultRow, RunnerSpec
from engine.core.errors import BadInput
from engine.core.limits import available_memory_bytes
from engine.running.timing import time_runner
from engine.storage.store import Store
from tests.conftest import run_cli
from tests.reliability.test_reliability_paths import one_line, tmpfs


def _model(
    path: Path,
    in_shape: list,
    out_shape: list | None = None,
    out_type: int = TensorProto.FLOAT,
    node: str = "pool",
) -> Path:
    """input → GlobalAveragePool → Flatten (→ ArgMax or ReduceMean) with declared shapes."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)
    y = helper.make_tensor_value_info("logits", out_type, out_shape)
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f" if node != "pool" else "logits"]),
    ]
    if node == "argmax":
        nodes.append(helper.make_node("ArgMax", ["f"], ["logits"], axis=1, keepdims=1))
    if node == "scalar":
        nodes.append(helper.make_node("ReduceMean", ["f"], ["logits"], keepdims=0))
    graph = helper.make_graph(nodes, "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, path)
    return path


def _bench_onnx(path: Path, db: Path, *extra: str):
    return run_cli(
        "bench", "--onnx", str(path), "--backend", "ort", "--quiet", "--db", str(db), *extra
    )


def _no_runs(db: Path) -> bool:
    if not db.exists():
        return True
    with sqlite3.connect(db) as con:
        return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0


# -- item 14: sizes declared by an ONNX file ---------------------------------------------


def test_huge_declared_input_is_refused_before_anything_is_allocated(tmp_path):
    db = tmp_path / "r.sqlite"
    huge = _model(tmp_path / "huge.onnx", [1, 3, 60000, 60000], ["N", 3])
    res = _bench_onnx(huge, db, "--batch", "1")
    assert res.returncode == 2, res.stderr
    assert "60000×60000" in one_line(res) and "MemoryError" not in res.stderr
    assert _no_runs(db)


def test_largest_batch_at_largest_size_is_refused_when_it_cannot_fit(tmp_path):
    free = available_memory_bytes()
    need = 4096 * 3 * 1024 * 1024 * 4
    if free is None or need <= free // 2:
        pytest.skip("this machine has room for a 48 GiB input")
    db = tmp_path / "r.sqlite"
    big = _model(tmp_path / "big.onnx", [4096, 3, 1024, 1024], [4096, 3])
    res = _bench_onnx(big, db, "--batch", "4096")
    assert res.returncode == 2, res.stderr
    assert "GiB (input plus activations)" in one_line(res)
    assert _no_runs(db)
    res = run_cli(
        "bench", "--model", "resnet18", "--image-size", "1024", "--batch", "4096", "--db", str(db)
    )
    assert res.returncode == 2 and "GiB (input plus activations)" in one_line(res)
    assert _no_runs(db)


def test_negative_batch_dimension_gets_no_nonsense_advice(tmp_path):
    db = tmp_path / "r.sqlite"
    neg = _model(tmp_path / "neg.onnx", [-5, 3, 64, 64], [-5, 3])
    res = _bench_onnx(neg, db, "--batch", "1")
    assert res.returncode == 2, res.stderr
    err = one_line(res)
    assert "--batch -5" not in err and "below 1" in err


# -- item 17: outputs parity cannot judge, external data cut short -----------------------


def test_scalar_and_integer_outputs_are_refused_in_one_line(tmp_path):
    db = tmp_path / "r.sqlite"
    scalar = _model(tmp_path / "scalar.onnx", ["N", 3, 64, 64], [], node="scalar")
    res = _bench_onnx(scalar, db, "--batch", "1")
    assert res.returncode == 2, res.stderr
    assert "0 dimension(s)" in one_line(res) and "IndexError" not in res.stderr
    ints = _model(tmp_path / "ints.onnx", ["N", 3, 64, 64], ["N", 1], TensorProto.INT64, "argmax")
    res = _bench_onnx(ints, db, "--batch", "1")
    assert res.returncode == 2, res.stderr
    assert "holds INT64 values" in one_line(res) and "FAIL" not in res.stdout
    assert _no_runs(db)


def test_empty_external_data_file_is_refused_in_one_line(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 64, 64])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    w = numpy_helper.from_array(np.ones((3, 10), dtype=np.float32), "w")
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "w"], ["logits"]),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    path = folder / "ext.onnx"
    onnx.save(model, path, save_as_external_data=True, location="w.bin", size_threshold=0)
    (folder / "w.bin").write_bytes(b"")
    res = _bench_onnx(path, tmp_path / "r.sqlite", "--batch", "1")
    assert res.returncode == 2, res.stderr
    err = one_line(res)
    assert "cut short" in err and "needs 120" in err and ".cc:" not in err


# -- item 12: fine-tuned weights -----------------------------------------------------------


def test_fine_tuned_head_runs_with_its_own_class_count(tmp_path):
    import torch
    import torchvision

    weights = tmp_path / "five.pt"
    torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), weights)
    db = tmp_path / "r.sqlite"
    res = run_cli(
        "bench",
        "--model",
        "resnet18",
        "--weights",
        str(weights),
        "--image-size",
        "64",
        "--backend",
        "torch",
        "--batch",
        "1",
        "--iters",
        "2",
        "--warmup",
        "1",
        "--quiet",
        "--db",
        str(db),
    )
    assert res.returncode == 0, res.stderr
    (row,) = Store(db).rows(1)
    assert row.status == "ok" and row.parity_ok
    model = build_torch_model(ModelSpec("resnet18", str(weights), 64))
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 5)
    # A body that does not fit is one line naming the tensors, not torch's traceback.
    state = torchvision.models.resnet18().state_dict()
    state["conv1.weight"] = torch.zeros(64, 4, 7, 7)
    torch.save(state, tmp_path / "four.pt")
    with pytest.raises(BadInput, match="conv1.weight"):
        build_torch_model(ModelSpec("resnet18", str(tmp_path / "four.pt"), 64))


# -- item 7: the int8 calibration key -----------------------------------------------------


def test_calibration_key_follows_image_content(tmp_path):
    from PIL import Image

    folder = tmp_path / "calib"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.bmp")
    first = _calibration_source(str(folder))
    sizes = [p.stat().st_size for p in sorted(folder.iterdir())]
    for i in range(3):  # other images, same names, same sizes (BMP: size set by shape)
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.bmp")
    assert [p.stat().st_size for p in sorted(folder.iterdir())] == sizes
    assert _calibration_source(str(folder)) != first


# -- item 15: numeric flags, warm-up, NaN ------------------------------------------------


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--threads", "999"], "--threads 999 is too many"),
        (["--seed", str(2**64)], "--seed"),
        (["--seed", "-1"], "--seed"),
        (["--max-time", "nan"], "--max-time nan"),
        (["--max-time", "inf"], "--max-time inf"),
        (["--max-time", "0"], "--max-time"),
        (["--until-stable", "--stable-budget", "nan"], "--stable-budget nan"),
    ],
)
def test_numeric_flags_out_of_range_are_refused_at_once(tmp_path, flags, words):
    db = tmp_path / "r.sqlite"
    t0 = time.monotonic()
    res = run_cli(
        "bench", "--model", "resnet18", "--image-size", "64", "--backend", "torch", "--db", str(db),
        *flags, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert words in one_line(res)
    assert time.monotonic() - t0 < 120 and _no_runs(db)


def test_settings_validate_for_every_caller():
    for bad in (
        {"max_time_s": float("nan")},
        {"max_time_s": float("inf")},
        {"iters": 0},
        {"warmup": -1},
        {"threads": 0},
    ):
        with pytest.raises(BadInput):
            BenchSettings(**bad)
    with pytest.raises(BadInput, match="--seed"):
        ModelSpec(seed=2**64)


def test_warmup_shares_the_time_budget(tmp_path):
    path = _model(tmp_path / "tiny.onnx", ["N", 3, 32, 32], ["N", 3])
    art = load_artifacts(ModelSpec(onnx_path=str(path)))
    spec = RunnerSpec("ort")
    with get_backend("ort").prepare(spec, art, PrepareContext(batches=(1,))) as runner:
        t0 = time.monotonic()
        timing = time_runner(
            runner,
            art.sample_input(1),
            BenchSettings(warmup=10**7, iters=3, max_time_s=0.3, min_iters=1),
        )
        elapsed = time.monotonic() - t0
    assert timing.iters >= 1
    assert elapsed < 30  # ten million warm-up steps would take minutes


def test_no_nan_or_infinity_in_written_json(tmp_path):
    store = Store(tmp_path / "r.sqlite")
    run_id = store.create_run({"model": {"name": "m"}}, {})
    store.add_row(
        run_id, ResultRow("m", "torch", "cpu", "fp32", 1, p50_ms=float("nan"), p90_ms=float("inf"))
    )
    store.finish_run(run_id)
    out = tmp_path / "run.json"
    store.export_json(run_id, out)

    def refuse(name):
        raise AssertionError(f"{name} in JSON")

    doc = json.loads(out.read_text(), parse_constant=refuse)
    assert doc["rows"][0]["p50_ms"] is None and doc["rows"][0]["p90_ms"] is None


# -- item 17: a full disk while exporting -------------------------------------------------


def test_full_disk_during_export_says_so(tmp_path):
    cache = tmp_path / "cache"
    with tmpfs(cache, "256k"):  # resnet18's ONNX file needs about 45 MB
        res = run_cli(
            "export", "--model", "resnet18", "--image-size", "64", "--cache-dir", str(cache),
            "--out", str(tmp_path / "m.onnx"),
        )  # fmt: skip
        assert res.returncode == 3, res.stderr
        err = one_line(res)
        assert "full" in err and "opset" not in err
