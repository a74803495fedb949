"""On a GPU: clocks, power and throttle reasons sampled over the timed loop, FLOP/s against
the product's dense peak, and the busy check leaving our own CUDA context out."""

from __future__ import annotations

import pytest

from engine.core.config import BenchSettings, ModelSpec, RunnerSpec, SweepConfig
from engine.hardware import peaks
from engine.hardware.gpu import ClockSampler, _nvml, gpu_facts
from engine.hardware.machine import gpu_others
from engine.running.sweep import run_sweep

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def nvml(cuda):
    if _nvml() is None:
        pytest.skip("NVML (nvidia-ml-py) is not usable here")
    return _nvml()


def test_sampler_reads_clocks_power_and_reasons(nvml, cuda):
    x = cuda.randn(4096, 4096, device="cuda")
    with ClockSampler(0, interval_s=0.02) as s:
        for _ in range(50):
            x = x @ x
            x = x / x.norm()
        cuda.cuda.synchronize()
    out = s.summary()
    assert out["nvml_samples"] >= 2
    assert 0 < out["sm_clock_mhz_min"] <= out["sm_clock_mhz_max"]
    assert out["power_limit_w"] and out["power_w_max"] > 0
    assert isinstance(out["throttled"], bool) and isinstance(out["power_capped"], bool)


def test_a_cuda_sweep_row_has_clocks_and_percent_of_peak(nvml, tmp_path):
    bench = BenchSettings(warmup=3, iters=30, max_time_s=5.0)
    config = SweepConfig(
        ModelSpec("resnet18", image_size=64), [RunnerSpec("torch", "cuda", "fp16")], [32], bench,
        parity=False,
    )  # fmt: skip
    row = run_sweep(config).rows[0]
    assert row.status == "ok", row.reason
    assert row.machine_state["sm_clock_mhz_max"] > 0 and row.throttled in (True, False)
    assert row.gflop and row.tflops and len(row.samples_ms) == row.iters
    name = gpu_facts(0).get("gpu_name")
    if peaks.product(name) is None:
        assert row.peak_pct is None  # unknown product: no guess
    else:
        assert 0 < row.peak_pct < 100 and row.peak_source.startswith("https://")


def test_our_own_cuda_context_is_not_another_process(nvml, cuda):
    cuda.zeros(1, device="cuda")  # make sure this process holds a context
    assert all(p["pid"] != __import__("os").getpid() for p in gpu_others(0))
