"""Sweeps on the GPU: the worker process (crash, hang, timeout, stop), out-of-memory rows,
the device lock between two processes, auto mode on a small model."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from engine.core.config import BenchSettings, ModelSpec, RunnerSpec, SweepConfig
from engine.running.plan import Callbacks
from engine.running.sweep import run_sweep
from engine.running.worker import CRASH_HOOK_ENV, run_sweep_in_worker, signal_name

pytestmark = pytest.mark.gpu

QUICK = BenchSettings(warmup=1, iters=3, max_time_s=5.0, min_iters=1)
SMALL = ModelSpec(name="resnet18", image_size=64)


def _config(batches=(1, 2, 3), precision="fp16", backend="torch", parity=False, bench=QUICK):
    spec = RunnerSpec(backend, "cuda", precision)
    return SweepConfig(SMALL, [spec], list(batches), bench, parity=parity)


def test_worker_measures_on_cuda(cuda, tmp_path):
    out = run_sweep_in_worker(_config((1, 2), parity=True), str(tmp_path / "r.sqlite"))
    assert out.exit_code == 0 and out.failure == ""
    assert [(r.batch, r.status, r.provider) for r in out.rows] == [
        (1, "ok", "torch-cuda"),
        (2, "ok", "torch-cuda"),
    ]
    assert all(r.parity_ok for r in out.rows)
    assert all(r.peak_mem_mb and r.peak_mem_mb > 0 for r in out.rows)


def test_worker_crash_on_cuda_keeps_earlier_rows(cuda, tmp_path, monkeypatch):
    monkeypatch.setenv(CRASH_HOOK_ENV, "segv@1")
    out = run_sweep_in_worker(_config(), str(tmp_path / "r.sqlite"), timeout_s=300)
    assert out.crashed and signal_name(out.exit_code) == "SIGSEGV"
    assert [r.status for r in out.rows] == ["ok", "failed"]
    assert out.rows[0].p50_ms > 0


def test_worker_hang_on_cuda_is_killed_at_the_timeout(cuda, tmp_path, monkeypatch):
    monkeypatch.setenv(CRASH_HOOK_ENV, "hang@0")
    t0 = time.monotonic()
    out = run_sweep_in_worker(_config((1, 2)), str(tmp_path / "r.sqlite"), timeout_s=40)
    assert out.timed_out and time.monotonic() - t0 < 90
    assert "timed out" in out.rows[0].reason


def test_worker_stop_on_cuda_between_points(cuda, tmp_path):
    seen = []
    bench = BenchSettings(warmup=1, iters=200, max_time_s=2.0)
    out = run_sweep_in_worker(
        _config(range(1, 17), bench=bench),
        str(tmp_path / "r.sqlite"),
        callbacks=Callbacks(on_row=seen.append, should_stop=lambda: bool(seen)),
    )
    assert out.interrupted and out.exit_code == 0
    assert 1 <= len([r for r in out.rows if r.status == "ok"]) < 16


def test_out_of_memory_is_a_row_and_the_sweep_goes_on(cuda, tmp_path):
    """A real torch OOM: this process may use 3 GiB of the GPU, batch 1024 at 224 px needs more.

    Batches run in ascending order, so the second configuration shows the sweep going on.
    """
    total = cuda.cuda.get_device_properties(0).total_memory
    cuda.cuda.set_per_process_memory_fraction(3 * 2**30 / total, 0)
    try:
        fp32 = RunnerSpec("torch", "cuda", "fp32")
        config = SweepConfig(
            ModelSpec(name="resnet18", image_size=224),
            [fp32, fp32.with_options(channels_last=True)],
            [2, 1024],
            QUICK,
            parity=False,
        )
        out = run_sweep(config)
    finally:
        cuda.cuda.set_per_process_memory_fraction(1.0, 0)
    statuses = [(r.batch, r.status) for r in out.rows]
    assert statuses == [(2, "ok"), (1024, "oom"), (2, "ok"), (1024, "oom")], [
        r.reason for r in out.rows
    ]
    assert "out of memory at batch 1024" in out.rows[1].reason
    assert cuda.cuda.memory_allocated(0) < 2**30  # released after the oom rows


def test_device_lock_serialises_two_processes(cuda, tmp_path):
    """Another process holding cuda:0's lock makes this sweep wait, and say so.

    The holder keeps the lock until the sweep reports that it waits (then 2 s more), so
    the outcome does not depend on how long this machine takes to prepare the sweep (a
    fixed 4 s hold was over before a busy H200 host had built the runner)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import select, sys, time
                from engine.running.locks import device_lock
                with device_lock("cuda"):
                    print("held", flush=True)
                    select.select([sys.stdin], [], [], 120)  # until told (at most 2 min)
                    time.sleep(2)
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    messages: list[str] = []

    def progress(_done, _total, message: str) -> None:
        messages.append(message)
        if "waiting for another run on cuda" in message:
            holder.stdin.write("go\n")
            holder.stdin.flush()

    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        out = run_sweep(_config((1,)), callbacks=Callbacks(progress))
        waited = time.monotonic() - t0
    finally:
        holder.stdin.close()
        holder.wait(timeout=150)
    assert any("waiting for another run on cuda" in m for m in messages), messages
    assert waited > 2 and out.rows[0].status == "ok"


def test_auto_mode_on_a_small_model_picks_a_judged_winner(cuda, tmp_path):
    from engine.running.auto import run_auto

    config = SweepConfig(
        SMALL,
        [RunnerSpec("torch", "cuda", "fp32"), RunnerSpec("ort", "cuda", "fp32")],
        [1, 8],
        BenchSettings(warmup=2, iters=10, max_time_s=2.0),
    )
    out = run_auto(config)
    best = out.best
    assert set(best) == {1, 8}
    for step in best.values():
        assert step.status == "ok" and step.parity_ok is True
        assert step.speedup and step.speedup >= 1.0
    baseline = [r for r in out.rows if r.backend == "torch" and r.precision == "fp32"]
    assert baseline and all(r.parity_ok for r in baseline if r.status == "ok")
