"""ONNX Runtime as shipped: the provider options we pass, its labels, its parity tolerance.

CUDA cannot run here, so the CUDA EP's options are tested as the dictionary the runner
hands to ONNX Runtime; the placement probe and the unprofiled timed session run for
real on the CPU provider.
"""

from __future__ import annotations

import pytest

pytest.importorskip(
    "plotly", reason="engine.reporting.charts draws with Plotly, which is not installed here"
)


from engine.backends import describe, get_backend  # noqa: E402
from engine.backends.ort import (
    OrtOptions,
    cuda_provider_options,
    probe_placement,
    session_options,
)  # noqa: E402
from engine.core.config import RunnerSpec  # noqa: E402
from engine.core.errors import BadInput  # noqa: E402
from engine.running.auto import candidates  # noqa: E402


def _spec(device="cuda:1", precision="fp32", **opts):
    return RunnerSpec("ort", device, precision, tuple(sorted(opts.items())))


def test_plain_row_sets_only_the_device():
    assert cuda_provider_options(_spec()) == {"device_id": 1}
    assert cuda_provider_options(_spec(precision="fp16")) == {"device_id": 1}


def test_each_departure_is_named_and_passed_on():
    spec = _spec(
        strict_fp32=True, cudnn_conv_algo_search="HEURISTIC", prefer_nhwc=True, cuda_graph=True
    )
    assert cuda_provider_options(spec) == {
        "device_id": 1,
        "use_tf32": 0,
        "cudnn_conv_algo_search": "HEURISTIC",
        "prefer_nhwc": 1,
        "enable_cuda_graph": 1,
    }
    label = describe(spec)
    for word in (
        "strict FP32 (use_tf32=0)",
        "cuDNN search=HEURISTIC",
        "NHWC kernels",
        "CUDA graph",
    ):
        assert word in label


def test_fp32_on_cuda_says_tf32_and_is_judged_at_the_tf32_tolerance():
    ort = get_backend("ort")
    plain = _spec()
    assert ort.parity_precision(plain) == "tf32"
    assert "FP32, TF32 allowed (ORT default)" in describe(plain)
    assert "FP32, TF32 allowed (ORT default) (cuda:1)" in describe(plain, "series")
    assert "TF32 allowed" in describe(plain, "short")
    strict = _spec(strict_fp32=True)
    assert ort.parity_precision(strict) == "fp32" and "TF32 allowed" not in describe(strict)
    cpu = _spec(device="cpu")
    assert ort.parity_precision(cpu) == "fp32" and "TF32" not in describe(cpu)
    assert describe(RunnerSpec("ort", "cpu", "int8"), "series") == "ONNX Runtime INT8 (cpu)"


def test_tf32_and_strict_fp32_contradict():
    with pytest.raises(BadInput, match="contradict"):
        get_backend("ort").check(_spec(device="cuda", precision="tf32", strict_fp32=True))


def test_the_ladder_starts_from_ort_as_shipped():
    ort_steps = [s for s in candidates("cuda:0") if s.backend == "ort"]
    assert ort_steps[0] == RunnerSpec("ort", "cuda:0", "fp32")
    for s in ort_steps:
        assert "cudnn_conv_algo_search" not in s.opts  # ORT's own exhaustive search


def test_old_cudnn_exhaustive_option_loads_as_what_ran():
    old = RunnerSpec.from_dict(
        {"backend": "ort", "device": "cuda", "options": [["cudnn_exhaustive", False]]}
    )
    assert old.opts == {"cudnn_conv_algo_search": "DEFAULT"}
    old = RunnerSpec.from_dict({"backend": "ort", "options": {"cudnn_exhaustive": True}})
    assert old.opts == {"cudnn_conv_algo_search": "EXHAUSTIVE"}


def test_timed_session_is_not_profiled_and_the_probe_finds_placement(small_artifacts):
    import onnxruntime as ort

    from engine.backends import PrepareContext

    spec = RunnerSpec("ort", "cpu", "fp32")
    with get_backend("ort").prepare(spec, small_artifacts, PrepareContext(batches=(2,))) as r:
        # A profiled session would hand back a profile file here; ORT as shipped has none.
        assert r.session.end_profiling() == ""
        assert r.info["node_placement"]["CPUExecutionProvider"]["Conv"] > 0
    path = str(small_artifacts.onnx_path("fp32"))
    placement = probe_placement(
        ort, path, session_options(ort, OrtOptions()), ["CPUExecutionProvider"], 1
    )
    assert sum(placement["CPUExecutionProvider"].values()) > 0
