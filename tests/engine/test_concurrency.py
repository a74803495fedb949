"""Requests in flight: real ONNX Runtime sessions and PyTorch runners on the CPU.

The GPU case (two or more CUDA streams) is measured by benchmarks/gpu_sweep.py on a GPU
machine; here the test checks the bookkeeping and that workers really run side by side.
"""

from __future__ import annotations

import pytest

from engine.core.config import RunnerSpec
from engine.core.errors import BadInput
from engine.running.concurrency import measure_concurrency


@pytest.fixture(scope="module")
def mobilenet():
    from engine.artifacts.models import load_artifacts
    from engine.core.config import ModelSpec

    return load_artifacts(ModelSpec("mobilenet_v3_small", image_size=64))


def test_points_for_each_stream_count_and_batch(mobilenet):
    spec = RunnerSpec("ort", "cpu", "fp32", (("intra_threads", 1),))
    points = measure_concurrency(spec, mobilenet, [1, 2], streams=(1, 2), window_s=0.3)
    assert [(p.batch, p.streams) for p in points] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for p in points:
        assert p.batches_done > 0
        assert p.window_s >= 0.3
        assert p.throughput_ips == pytest.approx(p.batches_done * p.batch / p.window_s)
        assert p.provider == "CPUExecutionProvider"
    one = [p for p in points if p.streams == 1]
    assert all(p.gain == pytest.approx(1.0) for p in one)
    two = [p for p in points if p.streams == 2]
    assert all(p.single_stream_ips == o.throughput_ips for p, o in zip(two, one, strict=True))


def test_torch_workers_on_cpu(mobilenet):
    spec = RunnerSpec("torch", "cpu", "fp32")
    points = measure_concurrency(spec, mobilenet, [2], streams=(2,), window_s=0.3)
    assert len(points) == 1 and points[0].streams == 2 and points[0].batches_done >= 2


@pytest.mark.parametrize(
    "spec, kw",
    [
        (RunnerSpec("ort", "cpu", "fp32"), {"streams": (0, 1)}),
        (RunnerSpec("ort", "cpu", "fp32"), {"window_s": 0}),
        (RunnerSpec("torch_compile", "cpu", "fp32"), {}),
        (RunnerSpec("torch", "cpu", "int8"), {}),
    ],
)
def test_bad_requests(mobilenet, spec, kw):
    with pytest.raises(BadInput):
        measure_concurrency(spec, mobilenet, [1], **kw)


@pytest.mark.gpu
def test_two_cuda_streams_do_not_lose_throughput(mobilenet):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU; measured on the H100 by benchmarks/gpu_sweep.py")
    spec = RunnerSpec("torch", "cuda", "fp16", (("channels_last", True), ("cuda_graph", True)))
    points = measure_concurrency(spec, mobilenet, [8], streams=(1, 2), window_s=0.5)
    assert points[1].gain > 0.8
