"""What caching the settled random weights saves: a torchvision model with random weights,
settled afresh (an empty cache) against loaded from the cache (engine/artifacts/settled.py).

Each load runs in a fresh Python (imports done before the clock starts), timed around
``build_torch_model``; per model and size: ``--rounds`` cold loads (each with an empty cache)
and as many warm ones (the cache the first cold load filled). The weights' digest must be
the same both ways. Medians go to JSON and a table.

    python benchmarks/settled_weights.py --out benchmarks/results/settled_weights --note "..."
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from sweep import machine_facts  # noqa: E402

MODELS = "resnet50@224,resnet18@512,convnext_tiny@224,vit_b_16@224,efficientnet_b0@224"
ONE = """
import json, sys, time
import torch, torchvision  # imported before the clock: every run pays for them anyway
from engine.artifacts.models import build_torch_model
from engine.artifacts.weights import weights_digest
from engine.core.config import ModelSpec
spec = ModelSpec(sys.argv[1], "random", int(sys.argv[2]))
t0 = time.perf_counter()
model = build_torch_model(spec)
seconds = time.perf_counter() - t0
print(json.dumps({"s": seconds, "digest": weights_digest(model, 0)}))
"""


def _load(name: str, size: int, cache: Path) -> dict:
    env = {"VISIONBENCH_CACHE": str(cache), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", ONE, name, str(size)], cwd=ROOT, env=env,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/settled_weights")
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--note", default="", help="what else ran on the machine, said in the table")
    args = ap.parse_args()
    rows = []
    for item in args.models.split(","):
        name, size = item.split("@")
        cold, warm, digests = [], [], set()
        with tempfile.TemporaryDirectory() as keep:
            for i in range(args.rounds):
                with tempfile.TemporaryDirectory() as empty:
                    got = _load(name, int(size), Path(empty))
                cold.append(got["s"])
                digests.add(got["digest"])
                if i == 0:
                    _load(name, int(size), Path(keep))  # fills the kept cache
            for _ in range(args.rounds):
                got = _load(name, int(size), Path(keep))
                warm.append(got["s"])
                digests.add(got["digest"])
            size_bytes = sum(f.stat().st_size for f in Path(keep).rglob("settled.pt"))
        assert len(digests) == 1, (item, digests)
        rows.append({
            "model": name, "image_size": int(size), "cold_s": cold, "warm_s": warm,
            "cold_median_s": round(statistics.median(cold), 3),
            "warm_median_s": round(statistics.median(warm), 3),
            "cached_bytes": size_bytes, "same_digest": True,
        })  # fmt: skip
        print(rows[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"what": __doc__.split("\n\n")[0], "machine": machine_facts(), "note": args.note}
    doc["rows"] = rows
    (out / "settled_weights.json").write_text(json.dumps(doc, indent=1))
    lines = ["| model | size | settled afresh (median s) | from the cache (median s) | cached |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['image_size']} | {r['cold_median_s']:.2f} |"
            f" {r['warm_median_s']:.2f} | {r['cached_bytes'] / 2**20:.1f} MiB |"
        )
    m = doc["machine"]
    head = (
        f"Machine: {m.get('cpu', '?')} ({m.get('cpu_count', '?')} cores), {m.get('date_utc', '?')}"
    )
    head += f"; rounds: {args.rounds}. {args.note}\n\n"
    (out / "settled_weights.md").write_text(head + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
