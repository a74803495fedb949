"""ONNX Runtime's CUDA execution provider: options read back from the session, I/O binding,
CUDA graphs really replayed, node placement reported, FP16 input cast on the GPU."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backends import PrepareContext, get_backend
from engine.core.config import RunnerSpec
from engine.core.errors import ProviderFallback
from engine.core.parity import compare
from engine.running.reference import reference_outputs

pytestmark = pytest.mark.gpu


def _runner(art, precision="fp32", batches=(4,), **options):
    spec = RunnerSpec("ort", "cuda", precision).with_options(**options)
    return get_backend("ort").prepare(spec, art, PrepareContext(batches=tuple(batches)))


def _cuda_options(runner) -> dict[str, str]:
    return runner.session.get_provider_options()["CUDAExecutionProvider"]


def test_plain_row_is_onnx_runtime_as_shipped(ort_cuda, art):
    """Only the device id is set: ORT's own defaults (exhaustive search, TF32 allowed)."""
    with _runner(art, "fp32") as r:
        opts = _cuda_options(r)
        assert r.provider == "CUDAExecutionProvider"
        assert r.session.get_providers()[0] == "CUDAExecutionProvider"
    probe = ort_cuda.InferenceSession(
        str(art.onnx_path("fp32")), providers=[("CUDAExecutionProvider", {"device_id": 0})]
    )
    shipped = probe.get_provider_options()["CUDAExecutionProvider"]
    for key in ("cudnn_conv_algo_search", "use_tf32", "prefer_nhwc", "enable_cuda_graph"):
        assert opts[key] == shipped[key], key


def test_session_is_not_profiling(ort_cuda, art):
    with _runner(art, "fp32") as r:
        assert r.session.get_session_options().enable_profiling is False


@pytest.mark.parametrize(
    "options, key, value",
    [
        ({"cudnn_conv_algo_search": "EXHAUSTIVE"}, "cudnn_conv_algo_search", "EXHAUSTIVE"),
        ({"cudnn_conv_algo_search": "HEURISTIC"}, "cudnn_conv_algo_search", "HEURISTIC"),
        ({"cudnn_conv_algo_search": "DEFAULT"}, "cudnn_conv_algo_search", "DEFAULT"),
        ({"prefer_nhwc": True}, "prefer_nhwc", "1"),
        ({"cuda_graph": True}, "enable_cuda_graph", "1"),
        ({"strict_fp32": True}, "use_tf32", "0"),
    ],
)
def test_each_option_reaches_the_provider(ort_cuda, art, options, key, value):
    with _runner(art, "fp16" if "prefer_nhwc" in options else "fp32", **options) as r:
        assert _cuda_options(r)[key] == value


def test_io_binding_keeps_inputs_and_outputs_on_the_gpu(ort_cuda, art):
    with _runner(art, "fp32") as r:
        x_dev = r.to_device(art.sample_input(4))
        y1 = r.run(x_dev)
        y2 = r.run(x_dev)
        assert x_dev.is_cuda and y1.is_cuda
        assert y1.data_ptr() == y2.data_ptr()  # bound once, written in place


def test_fp16_input_is_cast_on_the_gpu(ort_cuda, cuda, art):
    with _runner(art, "fp16") as r:
        x_dev = r.to_device(art.sample_input(4))
        assert x_dev.is_cuda and x_dev.dtype == cuda.float16
        assert r.input_dtype == np.float16


def test_cuda_graph_is_replayed_with_new_data(ort_cuda, art):
    with _runner(art, "fp16", batches=(4,), cuda_graph=True) as r:
        a, b = art.sample_input(4, seed=1), art.sample_input(4, seed=2)
        out_a = r.infer(a).copy()
        out_b = r.infer(b)
        assert not np.allclose(out_a, out_b)
    with _runner(art, "fp16") as plain:
        np.testing.assert_allclose(out_b, plain.infer(b), rtol=0.05, atol=0.05)


@pytest.mark.parametrize(
    "precision, options",
    [
        ("fp32", {}),
        ("fp32", {"strict_fp32": True}),
        ("fp16", {}),
        ("fp16", {"cudnn_conv_algo_search": "EXHAUSTIVE", "prefer_nhwc": True}),
        ("fp16", {"prefer_nhwc": True, "cuda_graph": True}),
    ],
)
def test_cuda_rows_agree_with_the_reference(ort_cuda, art, precision, options):
    x = art.sample_input(8, seed=99)
    reference = reference_outputs(art, x)
    with _runner(art, precision, batches=(8,), **options) as r:
        judged_at = get_backend("ort").parity_precision(r.spec)
        parity = compare(reference, r.infer(x), judged_at)
    assert parity.ok, (precision, options, parity)


def _qlinear_model(path):
    """A graph whose compute node (QLinearConv) the CUDA EP does not implement."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.int8), "w")
    inits = [
        w,
        numpy_helper.from_array(np.array(0.02, np.float32), "xs"),
        numpy_helper.from_array(np.array(0, np.uint8), "xz"),
        numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
        numpy_helper.from_array(np.array(0, np.int8), "wz"),
        numpy_helper.from_array(np.array(0.05, np.float32), "ys"),
        numpy_helper.from_array(np.array(0, np.uint8), "yz"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node(
            "QLinearConv", ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["yq"], pads=[1] * 4
        ),
        helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["yf"]),
        helper.make_node("GlobalAveragePool", ["yf"], ["p"]),
        helper.make_node("Flatten", ["p"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qconv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_compute_nodes_on_the_cpu_are_reported_not_measured(ort_cuda, tmp_path):
    from engine.artifacts.models import load_artifacts
    from engine.core.config import ModelSpec

    path = _qlinear_model(str(tmp_path / "qconv.onnx"))
    art = load_artifacts(ModelSpec(onnx_path=path))
    spec = RunnerSpec("ort", "cuda", "fp32")
    with pytest.raises(ProviderFallback, match="QLinearConv"):
        get_backend("ort").prepare(spec, art, PrepareContext(batches=(2,)))


def test_sessions_and_exports_are_reused_from_the_cache(ort_cuda, art):
    path = art.onnx_path("fp16")
    mtime = path.stat().st_mtime_ns
    with _runner(art, "fp16") as r:
        assert r.info["model_path"] == str(path)
    assert art.onnx_path("fp16").stat().st_mtime_ns == mtime


def test_convnext_captures_a_cuda_graph_on_its_static_shape_model(ort_cuda):
    """ConvNeXt's dynamic-batch export computes shapes on the CPU; the static copy does not."""
    from engine.artifacts.models import load_artifacts
    from engine.core.config import ModelSpec

    art = load_artifacts(ModelSpec(name="convnext_tiny", image_size=64))
    with _runner(art, "fp16", batches=(4,), cuda_graph=True) as r:
        assert r.info["static_shape_batch"] == 4
        assert "CPUExecutionProvider" not in r.placement
        a, b = art.sample_input(4, seed=1), art.sample_input(4, seed=2)
        assert not np.allclose(r.infer(a), r.infer(b))


def test_a_graph_with_cpu_nodes_is_not_applicable_not_failed(ort_cuda, tmp_path):
    from engine.core.config import BenchSettings, ModelSpec, SweepConfig
    from engine.running.sweep import run_sweep

    path = _qlinear_model(str(tmp_path / "qconv.onnx"))
    spec = RunnerSpec("ort", "cuda", "fp32").with_options(cuda_graph=True)
    quick = BenchSettings(warmup=1, iters=2, max_time_s=2.0, min_iters=1)
    out = run_sweep(SweepConfig(ModelSpec(onnx_path=path), [spec], [2], quick, parity=False))
    row = out.rows[0]
    assert row.status == "skipped", row.reason
    assert "cannot capture a CUDA graph" in row.reason and "QLinearConv" in row.reason
