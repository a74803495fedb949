"""A user's ONNX file exported in FP16: its rows say what ran, and parity compares it with
FP32 math, not with itself.

Before 2026-12-07 an FP16 file ran as it was under the label "fp32", and its parity compared
the file with itself ("ok", proving nothing). Now its fp32 rows and the FP32 reference run a
copy whose every FP16 tensor is widened (engine/artifacts/widen.py), and its fp16 rows run the
file as it is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.artifacts.float_mix import weights_precision
from engine.artifacts.models import load_artifacts
from engine.artifacts.widen import widen_to_fp32
from engine.cli.main import main
from engine.core.config import ModelSpec

DATA = Path(__file__).resolve().parent.parent / "data" / "onnx"
FP16_FILE = DATA / "legacy_fp16_32.onnx"  # FP16 input, weights and output (torch export)
FP32_FILE = DATA / "legacy_fixed_48.onnx"


def _fp16_types(model) -> list[str]:
    """Every place an FP16 element type is still named in ``model``."""
    found = []

    def walk(g):
        found.extend(f"init {t.name}" for t in g.initializer if t.data_type == TensorProto.FLOAT16)
        for vi in (*g.input, *g.output, *g.value_info):
            if vi.type.tensor_type.elem_type == TensorProto.FLOAT16:
                found.append(f"type {vi.name}")
        for n in g.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT16:
                    found.append(f"const {n.name}")
                if a.name == "to" and a.i == TensorProto.FLOAT16:
                    found.append(f"cast {n.name}")
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)

    walk(model.graph)
    return found


def test_the_fp32_rows_of_an_fp16_file_run_a_widened_copy_and_its_fp16_rows_the_file(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path))
    art = load_artifacts(ModelSpec(FP16_FILE.stem, onnx_path=str(FP16_FILE), image_size=32))
    assert art.onnx_info.weights == "fp16"
    assert any("holds FP16 weights" in n for n in art.notes)
    assert art.onnx_path("fp16") == FP16_FILE  # as it is
    wide = art.onnx_path("fp32")
    assert wide != FP16_FILE and _fp16_types(onnx.load(str(wide))) == []
    # Same weights, FP32 math: close to the file's own outputs, and not the same numbers.
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    name = art.onnx_info.input_name
    y16 = ort.InferenceSession(str(FP16_FILE)).run(None, {name: x.astype(np.float16)})[0]
    y32 = ort.InferenceSession(str(wide)).run(None, {name: x})[0]
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y16.astype(np.float32), y32, rtol=2e-2, atol=2e-2)


def test_an_fp32_file_runs_as_it_is_in_fp32():
    art = load_artifacts(ModelSpec(FP32_FILE.stem, onnx_path=str(FP32_FILE), image_size=48))
    assert art.onnx_info.weights == "fp32" and art.onnx_path("fp32") == FP32_FILE
    assert not any("FP16 weights" in n for n in art.notes)


def test_the_cli_says_so_and_parity_is_judged_against_fp32_math(tmp_path, capsys):
    args = ["bench", "--onnx", str(FP16_FILE), "--backend", "ort", "--batch", "2"]
    args += ["--iters", "2", "--warmup", "1", "--inline", "--quiet"]
    code = main([*args, "--db", str(tmp_path / "r.sqlite"), "--json", str(tmp_path / "o.json")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "note: legacy_fp16_32.onnx holds FP16 weights" in err


def _tiny_fp16_graph():
    """FP16 in, a Constant and an initializer added, then a Cast to FP16."""
    c = numpy_helper.from_array(np.full((1, 4), 0.5, np.float16), "c")
    w = numpy_helper.from_array(np.full((1, 4), 0.25, np.float16), "w")
    nodes = [
        helper.make_node("Constant", [], ["k"], value=c),
        helper.make_node("Add", ["x", "k"], ["a"]),
        helper.make_node("Add", ["a", "w"], ["b"]),
        helper.make_node("Cast", ["b"], ["y"], to=TensorProto.FLOAT16),
    ]
    g = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 4])],
        [w],
    )  # fmt: skip
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_widening_reaches_constants_casts_and_declared_types():
    model = _tiny_fp16_graph()
    assert weights_precision(model.graph) == "fp16"
    wide = widen_to_fp32(model)
    assert _fp16_types(wide) == []
    onnx.checker.check_model(wide)
    sess = ort.InferenceSession(wide.SerializeToString())
    y = sess.run(None, {"x": np.ones((1, 4), np.float32)})[0]
    assert y.dtype == np.float32 and np.allclose(y, 1.75)


@pytest.mark.parametrize("fp16, fp32, expected", [(10, 5, "fp16"), (5, 10, "fp32"), (0, 0, "fp32")])
def test_the_file_is_fp16_when_most_float_weights_are(fp16, fp32, expected):
    inits = []
    if fp16:
        inits.append(numpy_helper.from_array(np.zeros(fp16, np.float16), "h"))
    if fp32:
        inits.append(numpy_helper.from_array(np.zeros(fp32, np.float32), "f"))
    g = helper.make_graph([], "g", [], [], inits)
    assert weights_precision(g) == expected
