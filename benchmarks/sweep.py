"""Issue 3's benchmark: backends × precisions × batch sizes → JSON and a markdown table.

Runs through :func:`engine.running.sweep.run_sweep` (the one code path of the CLI and the
dashboard) into a throw-away SQLite store, then writes ``<out>/<name>.json`` (the
store's JSON document plus the machine, the date and the library versions) and
``<out>/<name>.md``. Combinations a backend can never run (int8 in eager PyTorch, fp16
on ONNX Runtime's CPU provider) are left out rather than stored as skipped rows.

    python benchmarks/sweep.py --out benchmarks/results/cpu --device cpu \\
        --backend torch,ort --precision fp32,int8 --batch 1,8,32

The other scripts of this folder import the helpers below (machine facts, tables).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from engine.backends import get_backend  # noqa: E402
from engine.core.config import BenchSettings, ModelSpec, ResultRow, RunnerSpec, SweepConfig  # noqa: E402
from engine.core.errors import EngineError  # noqa: E402


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def machine_facts(device: str = "cpu") -> dict[str, Any]:
    """Date, hardware and versions, for every result file (GPU clocks through NVML)."""
    from engine.backends import backend_versions
    from engine.hardware.env import fingerprint

    facts: dict[str, Any] = {"date_utc": utc_now(), "hostname_kind": platform.machine()}
    facts.update(fingerprint.__wrapped__(device))  # fresh: clocks change between calls
    facts.update(backend_versions())
    if device.startswith("cuda"):
        from engine.hardware.gpu import gpu_facts

        index = int(device.partition(":")[2] or 0)
        facts["gpu_clocks_at_write"] = {
            k: v for k, v in gpu_facts(index).items() if k.endswith("_mhz") or k.endswith("_w")
        }
    return facts


def gpu_clock_sample(device: str) -> dict[str, Any]:
    """SM / memory clock, power and temperature now (NVML), or an empty dict off the GPU."""
    if not device.startswith("cuda"):
        return {}
    from engine.hardware.gpu import gpu_clocks

    return gpu_clocks(int(device.partition(":")[2] or 0))


def spread(values: list[float]) -> dict[str, float]:
    """Median, min, max and (max − min) / median of repeated figures."""
    med = statistics.median(values)
    return {
        "median": med,
        "min": min(values),
        "max": max(values),
        "spread_pct": 100.0 * (max(values) - min(values)) / med if med else 0.0,
        "n": len(values),
    }


def markdown_table(head: list[str], lines: list[list[Any]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in line) + " |" for line in lines]
    return "\n".join(out)


def rows_table(rows: list[ResultRow]) -> str:
    lines = []
    for r in rows:
        opts = ",".join(k for k, v in sorted(r.options.items()) if v is True) or "-"
        if r.status != "ok":
            lines.append([r.backend, r.precision, opts, r.batch, r.status, "-", "-", "-", "-"])
            continue
        parity = "-" if r.parity_ok is None else ("ok" if r.parity_ok else "FAIL")
        lines.append(
            [
                r.backend,
                r.precision,
                opts,
                r.batch,
                r.provider,
                f"{r.p50_ms:.3f}",
                f"{r.p90_ms:.3f}",
                f"{r.throughput_ips:.1f}",
                parity,
            ]
        )
    head = ["backend", "precision", "options", "batch", "provider", "p50 ms", "p90 ms", "img/s"]
    return markdown_table([*head, "parity"], lines)


def runnable(specs: list[RunnerSpec]) -> list[RunnerSpec]:
    """Drop combinations that can never work (BadInput), keep ones merely unavailable here."""
    out = []
    for s in specs:
        try:
            get_backend(s.backend).check(s)
        except EngineError as exc:
            if exc.exit_code == 2:
                continue
        out.append(s)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from engine.running.plan import Callbacks
    from engine.running.sweep import run_sweep
    from engine.storage.store import Store

    opts: dict[str, Any] = {}
    for flag in ("channels_last", "cuda_graph", "prefer_nhwc"):
        if getattr(args, flag):
            opts[flag] = True
    specs = runnable(
        [
            RunnerSpec(b, args.device, p, tuple(sorted(opts.items())))
            for b in args.backend.split(",")
            for p in args.precision.split(",")
        ]
    )
    config = SweepConfig(
        model=ModelSpec(args.model, image_size=args.image_size),
        runners=specs,
        batches=[int(b) for b in args.batch.split(",")],
        bench=BenchSettings(
            warmup=args.warmup, iters=args.iters, max_time_s=args.max_time, threads=args.threads
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "sweep.sqlite")

        def progress(done: int, total: int, msg: str) -> None:
            print(f"[{done}/{total}] {msg}", file=sys.stderr, flush=True)

        outcome = run_sweep(config, store=store, callbacks=Callbacks(progress=progress))
        doc = store.document(outcome.run_id)
        store.close()
    doc["machine"] = machine_facts(args.device)
    doc["benchmark"] = {"script": "benchmarks/sweep.py", "argv": sys.argv[1:]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(doc, indent=1, default=str))
    m = doc["machine"]
    where = m.get("gpu") or m.get("cpu")
    md = [
        f"# {args.model} sweep on {where}",
        "",
        f"Date {m['date_utc']}; torch {m.get('torch')}, onnxruntime {m.get('onnxruntime')}"
        f" ({m.get('onnxruntime_package')}), CUDA {m.get('cuda')}, driver {m.get('driver', '-')};"
        f" {args.model} with random weights, image size {args.image_size}, device-resident"
        f" timing, median of up to {args.iters} iterations.",
        "",
        rows_table(outcome.rows),
        "",
    ]
    skipped = {(r.backend, r.precision, r.status, r.reason) for r in outcome.rows if r.reason}
    md += [f"- {b} {p}: {s}: {why}" for b, p, s, why in sorted(skipped)]
    (out / f"{args.name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for <name>.json and <name>.md")
    p.add_argument("--name", default="sweep")
    p.add_argument("--model", default="resnet50")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", default="torch,ort")
    p.add_argument("--precision", default="fp32,int8")
    p.add_argument("--batch", default="1,8,32")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--max-time", type=float, default=10.0)
    p.add_argument("--threads", type=int)
    for flag in ("channels-last", "cuda-graph", "prefer-nhwc"):
        p.add_argument(f"--{flag}", action="store_true")
    args = p.parse_args(argv)
    doc = run(args)
    return 0 if any(r["status"] == "ok" for r in doc["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
