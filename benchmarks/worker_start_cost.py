"""What crash isolation costs: one sweep through the worker launcher against the same sweep inline.

The same one-point sweep (resnet18 at 32 px, torch on the CPU, batch 1, parity off) is
run alternately through :class:`engine.running.launch.InlineLauncher` and
:class:`engine.running.launch.WorkerLauncher`, several rounds, wall time around ``launch``. The
model is loaded once first so the inline runs do not pay for it; the worker pays for a
new Python that imports torch and the engine and loads the model again: that is the
start-up cost. Median and spread over rounds go to JSON.

    python benchmarks/worker_start_cost.py --out benchmarks/results/cpu --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from sweep import machine_facts  # noqa: E402

from engine.artifacts.models import load_artifacts  # noqa: E402
from engine.core.config import BenchSettings, ModelSpec, RunnerSpec, SweepConfig  # noqa: E402
from engine.running.launch import InlineLauncher, Job, WorkerLauncher  # noqa: E402
from engine.storage.store import Store  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/cpu")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    config = SweepConfig(
        ModelSpec("resnet18", image_size=32),
        [RunnerSpec("torch", "cpu", "fp32")],
        [1],
        BenchSettings(warmup=1, iters=3),
        parity=False,
    )
    load_artifacts(config.model)  # export cached, torch imported: inline pays for neither
    store = Store(Path(tempfile.mkdtemp()) / "cost.sqlite")
    times: dict[str, list[float]] = {"inline": [], "worker": []}
    for _ in range(args.rounds):
        for name, launcher in (("inline", InlineLauncher()), ("worker", WorkerLauncher())):
            t0 = time.perf_counter()
            out = launcher.launch(Job(config), store)
            times[name].append(time.perf_counter() - t0)
            assert len(out.measured) == 1, out.rows
    extra = [w - i for w, i in zip(times["worker"], times["inline"], strict=True)]
    doc = {
        "what": "wall time of one one-point sweep, worker launcher minus inline launcher",
        "machine": machine_facts("cpu"),
        "rounds": args.rounds,
        # This machine is shared: its load during the run says how much the figures are inflated.
        "load_average_1_5_15_min": list(os.getloadavg()),
        "inline_s": times["inline"],
        "worker_s": times["worker"],
        "extra_s_median": statistics.median(extra),
        "extra_s_min": min(extra),
        "extra_s_max": max(extra),
    }
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "worker_start_cost.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({k: v for k, v in doc.items() if k != "machine"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
