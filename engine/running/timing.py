"""Timing: warm-up, then iterations bounded by a count and a time budget.

Each iteration is timed on the host around a run plus a device synchronisation, so a
GPU figure is the real latency of a batch, not the launch time. ``device`` mode keeps
inputs and outputs on the device; ``e2e`` mode includes host→device→host copies.
"""

from __future__ import annotations

import time

import numpy as np

from engine.backends.base import Runner
from engine.core.config import BenchSettings, MachineState, Timing
from engine.core.devices import is_cuda, parse_device
from engine.core.errors import BadInput
from engine.core.stability import keep_samples, spread
from engine.hardware.gpu import ClockSampler


def stats(samples_ms: list[float], batch: int, peak_mem_mb: float | None = None) -> Timing:
    a = np.asarray(samples_ms, dtype=np.float64)
    p10, p50, p90, p99 = np.percentile(a, [10, 50, 90, 99])
    sp = spread(a)
    return Timing(
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        p10_ms=float(p10),
        mean_ms=float(a.mean()),
        std_ms=float(a.std()),
        min_ms=float(a.min()),
        iters=len(a),
        throughput_ips=float(batch * 1000.0 / p50) if p50 > 0 else 0.0,
        peak_mem_mb=peak_mem_mb,
        samples_ms=keep_samples(samples_ms),
        cv=sp.cv,
        tail_ratio=sp.tail_ratio,
        stable=sp.stable,
        stability_note=sp.reason,
    )


def time_runner(runner: Runner, x: np.ndarray, settings: BenchSettings) -> Timing:
    """Time ``runner`` on the host batch ``x`` according to ``settings``."""
    return measure_runner(runner, x, settings)[0]


def measure_runner(
    runner: Runner, x: np.ndarray, settings: BenchSettings
) -> tuple[Timing, MachineState]:
    """:func:`time_runner`, and what the machine did over the timed loop (NVML's readings
    on a GPU; nothing on the CPU)."""
    if settings.mode not in ("device", "e2e"):
        raise BadInput(f"unknown timing mode '{settings.mode}'", fix="use device or e2e")
    if settings.iters < 1 or settings.warmup < 0:
        raise BadInput("iterations must be at least 1 and warm-up at least 0")
    runner.reset_peak_memory()
    if settings.mode == "device":
        x_dev = runner.to_device(x)

        def step() -> None:
            runner.run(x_dev)
            runner.synchronize()
    else:

        def step() -> None:
            runner.infer(x)

    # Warm-up shares the point's time budget: --warmup 100000 --max-time 1 stops at 1 s.
    warm_deadline = time.perf_counter() + settings.max_time_s
    for _ in range(settings.warmup):
        step()
        if time.perf_counter() > warm_deadline:
            break
    runner.synchronize()
    samples: list[float] = []
    deadline = time.perf_counter() + settings.max_time_s
    clock = time.perf_counter
    with _sampler(runner) as sampler:  # clocks/power/throttling over the loop, not after it
        while len(samples) < settings.iters:
            t0 = clock()
            step()
            samples.append((clock() - t0) * 1000.0)
            if len(samples) >= settings.min_iters and clock() > deadline:
                break
    readings = sampler.summary()
    machine = MachineState(readings, readings.get("throttled"), readings.get("power_capped"))
    return stats(samples, x.shape[0], runner.peak_memory_mb()), machine


def _sampler(runner: Runner) -> ClockSampler:
    device = str(getattr(getattr(runner, "spec", None), "device", "cpu"))
    index = parse_device(device)[1] if is_cuda(device) else None
    return ClockSampler(index)  # None (a CPU runner): no thread, empty summary
