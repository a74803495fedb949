"""Static-shape models: the shape subgraph folds away and the arithmetic is unchanged."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from engine.artifacts.static_shapes import shape_nodes, static_batch_model


def _dynamic_model(path) -> str:
    """x[N,3,8,8] → reshape to (N, -1) through Shape/Gather/Concat → MatMul → (N, 10)."""
    w = np.random.default_rng(0).standard_normal((192, 10)).astype(np.float32)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array([0], np.int64), "axes"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
        numpy_helper.from_array(w, "w"),
    ]
    graph = helper.make_graph(
        nodes,
        "dyn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_static_model_has_no_shape_nodes_and_the_same_outputs(tmp_path):
    src = _dynamic_model(str(tmp_path / "dyn.onnx"))
    assert shape_nodes(onnx.load(src)) == ["Shape"]
    static = static_batch_model(src, 4, "abc123")
    model = onnx.load(str(static))
    assert shape_nodes(model) == []
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [4, 3, 8, 8]
    x = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(_run(static, x), _run(src, x), rtol=1e-6, atol=1e-6)


def test_static_models_are_cached_per_batch(tmp_path):
    src = _dynamic_model(str(tmp_path / "dyn.onnx"))
    a = static_batch_model(src, 2, "k1")
    mtime = a.stat().st_mtime_ns
    assert static_batch_model(src, 2, "k1") == a and a.stat().st_mtime_ns == mtime
    b = static_batch_model(src, 8, "k1")
    assert b != a
    assert [d.dim_value for d in onnx.load(str(b)).graph.input[0].type.tensor_type.shape.dim][
        0
    ] == 8


def test_cpu_nodes_make_a_cuda_graph_not_applicable_with_the_nodes_named():
    import pytest

    from engine.backends.ort import check_graph_capture
    from engine.core.errors import NotApplicable

    check_graph_capture({"CUDAExecutionProvider": {"Conv": 20, "MatMul": 3}})
    with pytest.raises(NotApplicable) as err:
        check_graph_capture(
            {
                "CUDAExecutionProvider": {"Conv": 2},
                "CPUExecutionProvider": {"Shape": 1, "Gather": 2},
            }
        )
    assert err.value.row_status == "skipped"
    assert "2× Gather, 1× Shape" in err.value.user_message()


def test_a_cuda_graph_row_runs_on_the_static_model_for_its_batch(small_artifacts):
    from engine.backends import PrepareContext, get_backend
    from engine.core.config import RunnerSpec

    spec = RunnerSpec("ort", "cuda", "fp16").with_options(cuda_graph=True)
    path = get_backend("ort").model_path(spec, small_artifacts, PrepareContext(batches=(8,)))
    dims = [d.dim_value for d in onnx.load(path).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [8, 3, 64, 64]
    plain = get_backend("ort").model_path(
        RunnerSpec("ort", "cuda", "fp16"), small_artifacts, PrepareContext(batches=(8,))
    )
    assert plain != path


DATA = __import__("pathlib").Path(__file__).resolve().parent.parent / "data" / "onnx"


def test_symbolic_height_and_width_take_the_measured_size_not_the_batch(tmp_path):
    """A file with dynamic batch, height and width: the batch goes on the batch axis only,
    and the cache keeps one copy per size (the key used to hold the batch alone)."""
    src = DATA / "legacy_dynamic_hw.onnx"
    a = static_batch_model(src, 2, "hw", (3, 40, 56))
    b = static_batch_model(src, 2, "hw", (3, 64, 64))
    assert a != b
    dims = [d.dim_value for d in onnx.load(str(a)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 40, 56]
    x = np.random.default_rng(2).standard_normal((2, 3, 40, 56)).astype(np.float32)
    sess = ort.InferenceSession(str(a), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"input": x})[0].shape == (2, 10)


def test_the_placement_probe_feeds_the_measured_size():
    from engine.backends.ort import OrtOptions, session_options
    from engine.backends.ort_placement import probe_placement, probe_shape

    assert probe_shape(["batch", 3, "height", "width"], 1, (3, 40, 56)) == [1, 3, 40, 56]
    assert probe_shape([4, 1, 28, 28], 1, (1, 28, 28)) == [4, 1, 28, 28]
    path = str(DATA / "legacy_dynamic_hw.onnx")
    so = session_options(ort, OrtOptions())
    placement = probe_placement(ort, path, so, ["CPUExecutionProvider"], 1, (3, 40, 56))
    assert placement["CPUExecutionProvider"]["Conv"] == 1
