"""Issue 16: build TensorRT-RTX plans from the project's exports and record what it cost.

Runs ``engine.backends.tensorrt.standalone.build_standalone`` (what ``python -m engine
trt-build`` and the Engines page call) for each model, twice: the second build is the
plan-cache hit. Writes ``<out>/<name>.json`` with the machine, date and versions, and
``<name>.md``. Works without a GPU: TensorRT-RTX builds for every compute capability it
targets; nothing is executed.

    python benchmarks/trt_rtx_build.py --out benchmarks/results/trt-rtx --name cpu
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = (("resnet18", 64), ("resnet18", 224), ("resnet50", 224))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="cpu")
    p.add_argument("--batch", default="1,8,32")
    args = p.parse_args()
    # A private cache: the first build of each model is a real build, not an earlier run's plan.
    os.environ["VISIONBENCH_CACHE"] = tempfile.mkdtemp(prefix="trt-rtx-bench-")
    from engine.artifacts.models import load_artifacts
    from engine.backends import environment
    from engine.backends.tensorrt.standalone import build_standalone
    from engine.core.config import ModelSpec

    batches = [int(b) for b in args.batch.split(",")]
    rows = []
    for name, size in MODELS:
        art = load_artifacts(ModelSpec(name, "random", size))
        t0 = time.perf_counter()
        onnx = art.onnx_path("fp16")
        export_s = time.perf_counter() - t0
        first = build_standalone(onnx, "fp16", batches, art.image_hw, "rtx")
        again = build_standalone(onnx, "fp16", batches, art.image_hw, "rtx")
        rows.append(
            {
                "model": name,
                "image_size": size,
                "weights": art.weights_label,
                "export_s": round(export_s, 2),
                "build": {**first.to_dict(), "layers": len(first.layers)},
                "second_build_source": again.source,
            }
        )
    doc = {
        "what": "TensorRT-RTX fp16 plan builds without running them (issue 16)",
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": environment("cpu"),
        "batches": batches,
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(doc, indent=1, default=str))
    lines = [
        f"TensorRT-RTX plan builds, {doc['date_utc']}, {doc['machine'].get('cpu')}"
        f" ({doc['machine'].get('cpu_count')} cores), no GPU; tensorrt-rtx"
        f" {doc['machine'].get('tensorrt_rtx')}, torch {doc['machine'].get('torch')}",
        "",
        "| model | px | targets | build s | plan MiB | layers | second build |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = r["build"]
        lines.append(
            f"| {r['model']} | {r['image_size']} | {', '.join(b['targets'])} | {b['build_s']:.2f}"
            f" | {b['plan_bytes'] / 2**20:.1f} | {b['layers']} | {r['second_build_source']} |"
        )
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
