"""int8 of an old ONNX file (opset below 13), brought as a user's file (engine/artifacts/opset.py).

A held-out attack: an opset-9 file with an ``Upsample`` node failed its int8 rows
("int8 quantisation failed: ... No Adapter From Version $9 for Resize"): ONNX Runtime's
quantiser swaps the Upsample for a Resize and then cannot convert the file. The quantiser
now reads an opset-13 copy that the parity check finds equal to the file, and the rows say
so; a file no converter can bring forward is "not applicable" with the reason, never
failed. Tiny files made by hand with onnx.helper, run through the real CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import run_cli


def opset9_file(path: Path, mode: str = "nearest", scaler: bool = False) -> Path:
    """Conv → Relu → Upsample (×2) → Conv → pool: a classifier at opset 9, as old exporters
    wrote it; ``scaler`` puts an ImageScaler (an experimental operator of theirs) first."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal((10, 4, 1, 1)).astype(np.float32), "w2"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
    ]
    nodes = []
    first = "input"
    if scaler:
        nodes.append(helper.make_node("ImageScaler", ["input"], ["s"], scale=0.5, bias=[0.1] * 3))
        first = "s"
    nodes += [
        helper.make_node("Conv", [first, "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Upsample", ["r", "scales"], ["u"], mode=mode),
        helper.make_node("Conv", ["u", "w2"], ["c2"]),
        helper.make_node("GlobalAveragePool", ["c2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "opset9",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 4
    onnx.save(model, str(path))
    return path


def _bench(tmp_path: Path, model: Path) -> tuple[int, str, list[dict]]:
    out = tmp_path / "run.json"
    res = run_cli(
        "bench", "--onnx", str(model), "--backend", "ort", "--precision", "fp32,int8",
        "--batch", "1,2", "--iters", "2", "--warmup", "0", "--db", str(tmp_path / "r.sqlite"),
        "--json", str(out), timeout=300,
        env={"VISIONBENCH_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert "Traceback" not in res.stderr, res.stderr
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    return res.returncode, res.stderr, rows


def _int8(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["precision"] == "int8"]


def test_an_opset_9_upsample_file_is_quantised_from_a_copy_that_agrees(tmp_path):
    code, err, rows = _bench(tmp_path, opset9_file(tmp_path / "up9.onnx"))
    assert code == 0, err
    assert [r["status"] for r in rows] == ["ok"] * 4, rows
    said = "int8 of ONNX file up9.onnx: quantised from an opset-13 copy of the file (it is opset 9"
    assert f"note: {said}" in err, err
    for row in _int8(rows):  # the row says what ran, stored with it
        assert row["reason"].startswith(said) and "agree with the file's" in row["reason"]
    for row in rows:
        if row["precision"] == "fp32":
            assert row["reason"] == ""  # the file itself, unchanged
    # A second run takes the cached int8 model and says the same.
    code, err, rows = _bench(tmp_path, tmp_path / "up9.onnx")
    assert code == 0 and all(r["reason"].startswith(said) for r in _int8(rows)), err


def test_a_linear_upsample_keeps_its_coordinates_in_the_copy(tmp_path):
    """ONNX's converter turns a linear Upsample into a Resize half a pixel off (a max
    difference of 0.083 on this file): the copy gets Upsample's coordinates back and
    agrees exactly."""
    code, err, rows = _bench(tmp_path, opset9_file(tmp_path / "lin.onnx", mode="linear"))
    assert code == 0, err
    assert [r["status"] for r in _int8(rows)] == ["ok", "ok"], rows
    assert "(max relative error 0.0e+00, cosine 1.000000)" in _int8(rows)[0]["reason"]


def test_an_opset_9_file_no_converter_can_read_is_not_applicable_to_int8(tmp_path):
    code, err, rows = _bench(tmp_path, opset9_file(tmp_path / "scaled.onnx", scaler=True))
    assert code == 0, err  # skipped as not applicable: not a failure
    assert [r["status"] for r in rows if r["precision"] == "fp32"] == ["ok", "ok"]
    for row in _int8(rows):
        assert row["status"] == "skipped", row
        assert row["reason"].startswith("int8 quantisation cannot read ONNX file scaled.onnx")
        assert "its ImageScaler operator no longer exists in ONNX" in row["reason"]
        assert "Fix: export the model at opset 13 or newer for int8" in row["reason"]
    assert "failed" not in err and "Assertion" not in err, err


@pytest.mark.parametrize("opset", [11, 12])
def test_an_opset_11_or_12_file_is_quantised_from_an_opset_13_copy(tmp_path, opset):
    """A TorchScript export at opset 11 (its default for years) failed every int8 row:
    ONNX Runtime's quantiser wrote per-channel DequantizeLinear nodes (their axis is opset
    13) into the file as it was, and the model did not load ("Unrecognized attribute: axis
    for operator DequantizeLinear"). Now it reads the opset-13 copy older files get."""
    rng = np.random.default_rng(1)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("GlobalAveragePool", ["r"], ["p"]),
            helper.make_node("Flatten", ["p"], ["logits"]),
        ],
        f"opset{opset}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 8])],
        [
            numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
            numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.save(model, str(tmp_path / "old.onnx"))
    code, err, rows = _bench(tmp_path, tmp_path / "old.onnx")
    assert code == 0, err
    assert [(r["precision"], r["status"]) for r in rows] == [("fp32", "ok")] * 2 + [
        ("int8", "ok")
    ] * 2, rows
    said = f"quantised from an opset-13 copy of the file (it is opset {opset};"
    assert all(said in r["reason"] for r in _int8(rows)), rows
