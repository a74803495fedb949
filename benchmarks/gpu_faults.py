"""Issue 9's device faults: running out of memory mid-sweep, and two sweeps on one device.

- ``oom``: one in-process sweep of ResNet50 (random weights) on a CUDA device, PyTorch
  FP32, PyTorch FP16 and ONNX Runtime FP32, over batch sizes whose largest cannot fit
  (4096 images of 384×384 need several times an 80 GB card's memory). Expected: that point is an ``oom``
  row, the sweep goes on to the next runner's first point, and the memory held at the
  moment the ``oom`` row is recorded is back near where it started. Each row is stamped
  with torch's and NVML's memory figures as it arrives.
- ``serialise``: two sweep processes started at the same moment on one device. Each wraps
  its real runners so the moment a timed section starts (inside the device lock) and
  ends is logged. Expected: no timed section of one process overlaps one of the other,
  and both sweeps complete. The lock is per device, so this runs on ``cpu`` as well;
  tests/reliability/test_reliability_concurrency.py runs it there.

Each writes one JSON file with the machine facts, the rows and a ``checks`` object.

    python benchmarks/gpu_faults.py oom --device cuda:0 --out benchmarks/results/h100/gpu_faults_oom.json
    python benchmarks/gpu_faults.py serialise --device cuda:0 --out benchmarks/results/h100/gpu_faults_serialise.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.artifacts.models import ModelArtifacts  # noqa: E402
from engine.backends import PrepareContext, Runner, get_backend  # noqa: E402
from engine.core.config import BenchSettings, ModelSpec, ResultRow, RunnerSpec, SweepConfig  # noqa: E402
from engine.running.plan import Callbacks  # noqa: E402


def machine(device: str) -> dict[str, Any]:
    from engine.backends import environment

    facts: dict[str, Any] = {"date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    facts.update(environment(device if device.startswith("cuda") else "cpu"))
    return facts


def memory_now(device: str) -> dict[str, float | None]:
    if not device.startswith("cuda"):
        return {}
    import torch

    from engine.hardware.gpu import nvml_used_mb

    index = int(device.partition(":")[2] or 0)
    return {
        "torch_allocated_mb": torch.cuda.memory_allocated(index) / 2**20,
        "torch_reserved_mb": torch.cuda.memory_reserved(index) / 2**20,
        "nvml_used_mb": nvml_used_mb(index),
    }


# -- oom ------------------------------------------------------------------------------


def run_oom(args: argparse.Namespace) -> dict[str, Any]:
    from engine.running.sweep import run_sweep
    from engine.storage.store import Store

    device = args.device
    runners = []
    for item in args.runners.split(","):  # backend:precision
        backend, _, precision = item.partition(":")
        runners.append(RunnerSpec(backend, device, precision or "fp32"))
    config = SweepConfig(
        model=ModelSpec(args.model, image_size=args.image_size),
        runners=runners,
        batches=[int(b) for b in args.batches.split(",")],
        bench=BenchSettings(warmup=3, iters=args.iters, max_time_s=20.0),
        parity=False,
    )
    before = memory_now(device)
    rows: list[dict[str, Any]] = []

    def on_row(row: ResultRow) -> None:
        rows.append(
            {
                "backend": row.backend,
                "batch": row.batch,
                "status": row.status,
                "reason": row.reason,
                "provider": row.provider,
                "p50_ms": row.p50_ms,
                "throughput_ips": row.throughput_ips,
                "memory_at_row": memory_now(device),
                "t_s": time.time(),
            }
        )
        print(f"{row.backend} batch {row.batch}: {row.status} {row.reason}", flush=True)

    db = Path(args.db or tempfile.mkdtemp(prefix="vb-oom-")) / "oom.sqlite"
    store = Store(db)
    outcome = run_sweep(config, store=store, callbacks=Callbacks(on_row=on_row))
    stored = [(r.backend, r.batch, r.status) for r in store.rows(outcome.run_id)]
    after = memory_now(device)
    oom_at = [i for i, r in enumerate(rows) if r["status"] == "oom"]
    first = oom_at[0] if oom_at else None
    ran_after = first is not None and any(r["status"] == "ok" for r in rows[first + 1 :])
    start_mb = (before.get("torch_allocated_mb") or 0.0) if before else 0.0
    at_oom = rows[first]["memory_at_row"] if first is not None else {}
    released = bool(at_oom) and (at_oom.get("torch_allocated_mb") or 0.0) - start_mb < 1024
    return {
        "what": "CUDA out of memory mid-sweep (issue 9)",
        "machine": machine(device),
        "config": config.to_dict(),
        "memory_before": before,
        "memory_after": after,
        "rows": rows,
        "stored_rows": stored,
        "errors": [e.user_message() for e in outcome.errors],
        "checks": {
            "oom_row_recorded": first is not None,
            "a_later_point_ran_after_oom": ran_after,
            "torch_memory_released_at_oom_row": released,
            "every_row_stored": len(stored) == len(rows),
        },
    }


# -- serialise ------------------------------------------------------------------------


class Stamped(Runner):
    """A real runner that logs when each timed section starts and ends.

    ``time_runner`` calls ``reset_peak_memory`` first and ``peak_memory_mb`` last, both
    inside the device lock, so those two moments bound the timed section.
    """

    def __init__(self, inner: Runner, log: list[dict[str, Any]]) -> None:
        self.inner, self.log = inner, log
        self.spec, self.info = inner.spec, inner.info
        self._start: float | None = None
        self._batch = 0

    @property
    def provider(self) -> str:  # type: ignore[override]
        return self.inner.provider

    def reset_peak_memory(self) -> None:
        self._start = time.time()
        self.inner.reset_peak_memory()

    def peak_memory_mb(self) -> float | None:
        if self._start is not None:
            self.log.append(
                {"pid": os.getpid(), "batch": self._batch, "start": self._start, "end": time.time()}
            )
            self._start = None
        return self.inner.peak_memory_mb()

    def to_device(self, x):
        self._batch = int(x.shape[0])
        return self.inner.to_device(x)

    def run(self, x_dev):
        return self.inner.run(x_dev)

    def to_host(self, y_dev):
        return self.inner.to_host(y_dev)

    def synchronize(self) -> None:
        self.inner.synchronize()

    def close(self) -> None:
        self.inner.close()


def timed_child(args: argparse.Namespace) -> int:
    """One of the two competing sweeps (started by ``run_serialise``)."""
    from engine.running.sweep import run_sweep
    from engine.storage.store import Store

    log: list[dict[str, Any]] = []
    waits: list[float] = []
    built: list[Runner] = []

    def factory(spec: RunnerSpec, art: ModelArtifacts, ctx: PrepareContext) -> Runner:
        runner = Stamped(get_backend(spec.backend).prepare(spec, art, ctx), log)
        built.append(runner)
        return runner

    def progress(done: int, total: int, msg: str) -> None:
        if msg.startswith("waiting for another run"):
            waits.append(time.time())

    config = SweepConfig(
        model=ModelSpec(args.model, image_size=args.image_size),
        runners=[RunnerSpec(b, args.device, "fp32") for b in args.backends.split(",")],
        batches=[int(b) for b in args.batches.split(",")],
        bench=BenchSettings(warmup=2, iters=args.iters, max_time_s=30.0),
        parity=False,
    )
    from engine.artifacts.models import load_artifacts

    art = load_artifacts(config.model)  # imports torch and builds the model before the race
    Path(args.log + ".ready").touch()
    go = Path(args.go)
    while not go.exists():  # both processes start their sweeps together
        time.sleep(0.01)
    outcome = run_sweep(
        config,
        store=Store(args.db),
        runner_factory=factory,
        callbacks=Callbacks(progress=progress),
        artifacts=art,
    )
    for r in built:
        r.close()
    Path(args.log).write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "intervals": log,
                "waits": waits,
                "run_id": outcome.run_id,
                "rows": [(r.backend, r.batch, r.status, r.p50_ms) for r in outcome.rows],
            }
        )
    )
    return 0


def overlaps(intervals: list[dict[str, Any]]) -> list[tuple[dict, dict]]:
    """Pairs of timed sections from different processes that overlap in time."""
    ordered = sorted(intervals, key=lambda i: i["start"])
    bad = []
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            if b["start"] >= a["end"]:
                break
            if b["pid"] != a["pid"]:
                bad.append((a, b))
    return bad


def run_serialise(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="vb-serialise-"))
    go = work / "go"
    db = work / "shared.sqlite"
    cmd = [sys.executable, str(Path(__file__).resolve()), "_timed", "--device", args.device]
    cmd += ["--model", args.model, "--image-size", str(args.image_size)]
    cmd += ["--batches", args.batches, "--iters", str(args.iters), "--backends", args.backends]
    cmd += ["--db", str(db), "--go", str(go)]
    procs = [subprocess.Popen([*cmd, "--log", str(work / f"log{i}.json")]) for i in range(2)]
    deadline = time.monotonic() + args.timeout_s
    while not all((work / f"log{i}.json.ready").exists() for i in range(2)):
        if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
            break
        time.sleep(0.05)
    go.touch()
    codes = [p.wait(timeout=args.timeout_s) for p in procs]
    logs = [json.loads((work / f"log{i}.json").read_text()) for i in range(2) if codes[i] == 0]
    intervals = [iv for log in logs for iv in log["intervals"]]
    t0 = min((iv["start"] for iv in intervals), default=0.0)
    for iv in intervals:
        iv["start_s"], iv["end_s"] = iv["start"] - t0, iv["end"] - t0
    bad = overlaps(intervals)
    n_points = len(args.batches.split(",")) * len(args.backends.split(","))
    return {
        "what": "two sweeps started at once on one device (issue 9)",
        "machine": machine(args.device),
        "device": args.device,
        "exit_codes": codes,
        "processes": [
            {"pid": log["pid"], "rows": log["rows"], "waited_for_lock": len(log["waits"])}
            for log in logs
        ],
        "timed_sections": sorted(
            (
                {
                    "pid": iv["pid"],
                    "batch": iv["batch"],
                    "start_s": round(iv["start_s"], 4),
                    "end_s": round(iv["end_s"], 4),
                }
                for iv in intervals
            ),
            key=lambda iv: iv["start_s"],
        ),
        "overlapping_pairs": [
            [{"pid": a["pid"], "batch": a["batch"]}, {"pid": b["pid"], "batch": b["batch"]}]
            for a, b in bad
        ],
        "checks": {
            "both_completed": codes == [0, 0]
            and all(
                len(log["rows"]) == n_points and all(r[2] == "ok" for r in log["rows"])
                for log in logs
            ),
            "no_timed_section_overlaps": not bad and len(intervals) == 2 * n_points,
            "one_waited_for_the_other": any(log["waits"] for log in logs),
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["oom", "serialise", "_timed"])
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--model", default="resnet50")
    p.add_argument("--image-size", type=int)
    p.add_argument("--batches")
    p.add_argument("--backends", help="serialise: comma list of backends (fp32)")
    p.add_argument("--runners", help="oom: comma list of backend:precision")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--out", help="write the JSON here (default: stdout)")
    p.add_argument("--db", help="oom: folder for the results store; _timed: the store")
    p.add_argument("--timeout-s", type=float, default=1800)
    p.add_argument("--go", help=argparse.SUPPRESS)
    p.add_argument("--log", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.what == "_timed":
        return timed_child(args)
    if args.what == "oom":
        args.image_size = args.image_size or 384
        args.batches = args.batches or "1,64,4096"
        args.runners = args.runners or "torch:fp32,torch:fp16,ort:fp32"
        result = run_oom(args)
    else:
        args.image_size = args.image_size or 224
        args.batches = args.batches or "1,8,32,64"
        args.backends = args.backends or "torch"
        result = run_serialise(args)
    text = json.dumps(result, indent=1, default=str)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote {args.out}: checks {result['checks']}", file=sys.stderr)
    else:
        print(text)
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
