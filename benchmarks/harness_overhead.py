"""Issue 3 item 4: does the timing harness add more than 3% over a bare loop?

The same prepared runner is timed two ways, alternately, several times:

- ``harness``: :func:`engine.running.timing.time_runner` (device mode), its p50 and mean;
- ``bare``: a plain Python loop of ``runner.run(x); runner.synchronize()`` with one clock
  reading per iteration, the least a latency measurement can do.

Overhead = harness / bare − 1, per round; the median over rounds is the figure, the
spread across rounds says how much of it is noise. Results go to JSON.

    python benchmarks/harness_overhead.py --out benchmarks/results/h100 --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from sweep import machine_facts, markdown_table, spread  # noqa: E402

from engine.artifacts.models import load_artifacts  # noqa: E402
from engine.backends import PrepareContext, get_backend  # noqa: E402
from engine.core.config import BenchSettings, ModelSpec, RunnerSpec  # noqa: E402
from engine.running.timing import time_runner  # noqa: E402


def bare_loop(runner: Any, x_dev: Any, iters: int) -> list[float]:
    samples = []
    clock = time.perf_counter
    for _ in range(iters):
        t0 = clock()
        runner.run(x_dev)
        runner.synchronize()
        samples.append((clock() - t0) * 1000.0)
    return samples


def measure(spec: RunnerSpec, art: Any, batch: int, rounds: int, iters: int) -> dict[str, Any]:
    ctx = PrepareContext(batches=(batch,), progress=print)
    settings = BenchSettings(warmup=10, iters=iters, max_time_s=60.0, mode="device")
    x = art.sample_input(batch)
    per_round = []
    with get_backend(spec.backend).prepare(spec, art, ctx) as runner:
        x_dev = runner.to_device(x)
        bare_loop(runner, x_dev, 20)  # warm-up (graphs, cuDNN search) before either is timed
        for _ in range(rounds):
            h = time_runner(runner, x, settings)
            b = bare_loop(runner, x_dev, iters)
            b50, bmean = statistics.median(b), statistics.fmean(b)
            per_round.append(
                {
                    "harness_p50_ms": h.p50_ms,
                    "harness_mean_ms": h.mean_ms,
                    "bare_p50_ms": b50,
                    "bare_mean_ms": bmean,
                    "overhead_p50_pct": 100.0 * (h.p50_ms / b50 - 1.0),
                    "overhead_mean_pct": 100.0 * (h.mean_ms / bmean - 1.0),
                }
            )
    p50 = spread([r["overhead_p50_pct"] for r in per_round])
    return {
        "spec": spec.to_dict(),
        "batch": batch,
        "iters": iters,
        "rounds": per_round,
        "overhead_p50_pct": p50,
        "overhead_mean_pct": spread([r["overhead_mean_pct"] for r in per_round]),
        "within_3pct": p50["median"] <= 3.0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--model", default="resnet50")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=200)
    args = p.parse_args(argv)
    art = load_artifacts(ModelSpec(args.model, image_size=args.image_size))
    d = args.device
    if d.startswith("cuda"):
        tuned = (("channels_last", True), ("cuda_graph", True), ("cudnn_benchmark", True))
        specs = [
            RunnerSpec("torch", d, "fp32"),
            RunnerSpec("torch", d, "fp16", (*tuned, ("fuse_bn", True))),
            RunnerSpec("ort", d, "fp16", (("prefer_nhwc", True),)),
        ]
    else:
        specs = [RunnerSpec("torch", d, "fp32"), RunnerSpec("ort", d, "fp32")]
    results = [measure(s, art, args.batch, args.rounds, args.iters) for s in specs]
    doc = {"results": results, "machine": machine_facts(d), "settings": vars(args)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "harness_overhead.json").write_text(json.dumps(doc, indent=1, default=str))
    lines = [
        [
            RunnerSpec.from_dict(r["spec"]).label,
            r["batch"],
            f"{statistics.median(x['bare_p50_ms'] for x in r['rounds']):.3f}",
            f"{statistics.median(x['harness_p50_ms'] for x in r['rounds']):.3f}",
            f"{r['overhead_p50_pct']['median']:+.2f}% ({r['overhead_p50_pct']['min']:+.2f}"
            f" to {r['overhead_p50_pct']['max']:+.2f})",
            f"{r['overhead_mean_pct']['median']:+.2f}%",
            "yes" if r["within_3pct"] else "no",
        ]
        for r in results
    ]
    head = ["runner", "batch", "bare p50 ms", "harness p50 ms", "overhead p50 (range)"]
    table = markdown_table([*head, "overhead mean", "≤ 3%"], lines)
    m = doc["machine"]
    text = (
        f"# Harness overhead ({m.get('gpu') or m.get('cpu')}, {m['date_utc']})\n\n"
        f"{args.rounds} alternating rounds of {args.iters} iterations each.\n\n{table}\n"
    )
    (out / "harness_overhead.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
