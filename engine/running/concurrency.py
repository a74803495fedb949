"""Throughput with several requests in flight: does a second stream raise images/s?

A server rarely runs one batch at a time. Here N workers, each with its own runner (its
own CUDA stream for PyTorch, its own session for ONNX Runtime, which runs on a stream of
its own), each loop over the same batch size for a fixed wall-clock window; images
completed by all of them over the window's length give images/s. The one-worker figure
is measured the same way in the same call, so the gain is like for like.

Each worker waits only for its own stream, never the whole device, so the streams can
overlap. The device lock is held for the whole measurement.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from engine.artifacts.models import ModelArtifacts
from engine.backends import PrepareContext, Runner, describe, get_backend
from engine.core.config import RunnerSpec
from engine.core.errors import BadInput
from engine.running.locks import device_lock


@dataclass
class ConcurrencyPoint:
    """Images/s at one batch size with ``streams`` requests in flight."""

    backend: str
    device: str
    precision: str
    options: dict[str, Any]
    batch: int
    streams: int
    throughput_ips: float
    single_stream_ips: float
    gain: float  # throughput_ips / single_stream_ips
    batches_done: int
    window_s: float
    provider: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _drive(runners: list[Runner], x: Any, window_s: float, warmup: int) -> tuple[int, float]:
    """Run every runner in its own thread for ``window_s``; return batches done, seconds."""
    contexts = [r.stream() for r in runners]
    inputs = []
    for r, (ctx, wait) in zip(runners, contexts, strict=True):
        with ctx:
            x_dev = r.to_device(x)
            for _ in range(warmup):  # captures graphs / picks kernels outside the window
                r.run(x_dev)
            wait()
        r.synchronize()
        inputs.append(x_dev)
    counts = [0] * len(runners)
    errors: list[BaseException] = []
    start = threading.Barrier(len(runners) + 1)
    stop_at = [0.0]

    def work(i: int) -> None:
        r, (ctx, wait) = runners[i], contexts[i]
        try:
            with ctx:
                start.wait()
                while time.perf_counter() < stop_at[0]:
                    r.run(inputs[i])
                    wait()
                    counts[i] += 1
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(runners))]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    stop_at[0] = t0 + window_s
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return sum(counts), elapsed


def measure_concurrency(
    spec: RunnerSpec,
    artifacts: ModelArtifacts,
    batches: list[int],
    streams: tuple[int, ...] = (1, 2, 4),
    window_s: float = 2.0,
    warmup: int = 3,
    on_progress: Callable[[str], None] | None = None,
) -> list[ConcurrencyPoint]:
    """Images/s for each batch size and number of requests in flight.

    One runner per worker, built once and reused across batch sizes (per-batch backends
    such as CUDA-graph ONNX Runtime get fresh runners for each batch).
    """
    if not streams or min(streams) < 1:
        raise BadInput("the number of streams must be at least 1")
    if window_s <= 0:
        raise BadInput("the measuring window must be longer than 0 s")
    backend = get_backend(spec.backend)
    backend.check_concurrency(spec)
    backend.ready(spec, artifacts.spec)
    say = on_progress or (lambda _m: None)
    per_batch = backend.per_batch(spec)
    counts = sorted(set(streams) | {1})
    points: list[ConcurrencyPoint] = []
    pool: list[Runner] = []

    def runners_for(n: int, batch: int) -> list[Runner]:
        ctx = PrepareContext(batches=(batch,), progress=say)
        if per_batch:
            return [backend.prepare(spec, artifacts, ctx) for _ in range(n)]
        while len(pool) < n:
            pool.append(backend.prepare(spec, artifacts, ctx))
        return pool[:n]

    try:
        with device_lock(spec.device, on_wait=say):
            for batch in batches:
                x = artifacts.sample_input(batch)
                single = 0.0
                for n in counts:
                    say(f"{describe(spec)}: batch {batch}, {n} in flight")
                    runners = runners_for(n, batch)
                    try:
                        done, elapsed = _drive(runners, x, window_s, warmup)
                    finally:
                        if per_batch:
                            for r in runners:
                                r.close()
                    ips = done * batch / elapsed
                    if n == 1:
                        single = ips
                    if n in streams:
                        points.append(
                            ConcurrencyPoint(
                                backend=spec.backend,
                                device=spec.device,
                                precision=spec.precision,
                                options=spec.opts,
                                batch=batch,
                                streams=n,
                                throughput_ips=ips,
                                single_stream_ips=single,
                                gain=ips / single if single else 0.0,
                                batches_done=done,
                                window_s=elapsed,
                                provider=runners[0].provider,
                            )
                        )
    finally:
        for r in pool:
            r.close()
    return points
