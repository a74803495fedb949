"""Check that the engine's random weights give input-dependent logits for every classifier.

For every model in ``torchvision.models.list_models(module=torchvision.models)``, build it
as the engine does (seeded, dead parameters revived, batch-norm statistics settled, head
balanced: engine/artifacts/weights.py) at the smallest image size it accepts out of
``SIZES`` (ViT needs exactly 224), run 64 generated images (the benchmark's own input
generator, another seed than the settling's) in FP32 on the CPU, and record the
batch-centred standard deviation of the logits and the number of distinct top-1 classes.
Pass: centred std >= 0.1 and >= 8 distinct classes.

Each model runs in its own child process under a time cap; one JSON line per model is
appended as soon as it is known, so an interrupted run keeps what it measured and a
second run skips what is already there. ``--markdown`` writes the table from the lines.

    nice -n 19 python scripts/check_random_weights.py --out benchmarks/results/random_weights
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIZES = (32, 64, 96, 128, 160, 224, 299)
INPUTS = 64
MIN_STD = 0.1
MIN_DISTINCT = 8


def smallest_size(name: str) -> int:
    from engine.artifacts.models import check_model_takes_size
    from engine.core.errors import BadInput

    for size in SIZES:
        try:
            check_model_takes_size(name, size)
            return size
        except BadInput:
            continue
    raise BadInput(f"{name} takes none of the sizes {SIZES}")


def check_one(name: str) -> dict:
    """Build ``name`` as the engine does and measure its logits (runs in a child)."""
    import numpy as np
    import torch

    from engine.artifacts import weights
    from engine.artifacts.images import generated_images
    from engine.artifacts.models import build_torch_model
    from engine.core.config import ModelSpec

    size = smallest_size(name)
    t0 = time.perf_counter()
    model = build_torch_model(ModelSpec(name=name, image_size=size))
    build_s = time.perf_counter() - t0
    x = np.concatenate(list(generated_images(INPUTS, size, size, seed=2026)))
    with torch.no_grad():
        logits = torch.cat([model(torch.from_numpy(c)) for c in np.array_split(x, 4)])
    y = logits.double().numpy()
    centred = y - y.mean(axis=0, keepdims=True)
    std = float(centred.std())
    distinct = len(set(y.argmax(axis=1).tolist()))
    finite = bool(np.isfinite(y).all())
    ok = finite and std >= MIN_STD and distinct >= MIN_DISTINCT
    return {
        "model": name,
        "image_size": size,
        "centred_std": std,
        "distinct_top1": distinct,
        "finite": finite,
        "status": "pass" if ok else "fail",
        "build_and_settle_s": round(build_s, 2),
        "recipe": weights.RECIPE_VERSION,
    }


def _cpu_cap(cap_s: float):
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (int(cap_s), int(cap_s) + 5))

    return limit


def _child(name: str, cap_s: float) -> dict:
    """One model in a child process, capped in CPU seconds: on a shared machine a
    wall-clock cap would skip models for other people's load, not for their own cost."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", name]
    t0 = time.perf_counter()
    over = {"model": name, "status": "skipped", "reason": f"over the time cap ({cap_s:.0f} CPU s)"}
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=cap_s * 20,
            cwd=ROOT,
            preexec_fn=_cpu_cap(cap_s),
        )
    except subprocess.TimeoutExpired:
        return over
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode == 0 and lines:
        rec = json.loads(lines[-1])
    elif done.returncode in (-9, -24):  # SIGKILL / SIGXCPU from the CPU limit
        return over
    else:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        rec = {"model": name, "status": "cannot build here", "reason": tail}
    rec["wall_s"] = round(time.perf_counter() - t0, 1)
    return rec


def run_all(out: Path, cap_s: float, names: list[str]) -> None:
    from engine.hardware.env import fingerprint

    out.mkdir(parents=True, exist_ok=True)
    lines = out / "check.jsonl"
    done = {r["model"] for r in _records(out) if r["status"] != "skipped"}  # retry skipped
    (out / "machine.json").write_text(json.dumps(fingerprint("cpu"), indent=1))
    for name in names:
        if name in done:
            continue
        rec = _child(name, cap_s)
        rec["date"] = time.strftime("%Y-%m-%d", time.gmtime())
        with lines.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)


def _records(out: Path) -> list[dict]:
    """The last record of each model (a retried model appears more than once)."""
    path = out / "check.jsonl"
    if not path.is_file():
        return []
    last = {}
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            last[rec["model"]] = rec
    return list(last.values())


def _missing(recs: list[dict]) -> list[str]:
    import torchvision

    names = set(torchvision.models.list_models(module=torchvision.models))
    return sorted(names - {r["model"] for r in recs})


def write_markdown(out: Path) -> Path:
    recs = _records(out)
    env = json.loads((out / "machine.json").read_text()) if (out / "machine.json").is_file() else {}
    counts: dict[str, int] = {}
    for r in recs:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    head = [
        "# Random weights: are the logits input-dependent?",
        "",
        f"Machine: {env.get('cpu', '?')}; torch {env.get('torch', '?')},"
        f" torchvision {env.get('torchvision', '?')}; date {recs[0]['date'] if recs else '?'}.",
        f"Built by `scripts/check_random_weights.py`: FP32 on the CPU, {INPUTS} generated images"
        f" at the smallest size each model accepts out of {', '.join(map(str, SIZES))}."
        f" Pass: batch-centred logit std >= {MIN_STD} and >= {MIN_DISTINCT} distinct top-1"
        " classes.",
        "",
        "Totals: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        "",
        f"Not run yet: {', '.join(_missing(recs)) or 'none'}.",
        "",
        "Weights recipe (engine/artifacts/weights.py RECIPE_VERSION): "
        + ", ".join(sorted({str(r.get("recipe", "1 or 2")) for r in recs}) or ["?"])
        + ".",
        "",
        "| model | size | centred std | distinct top-1 | result | build + settle s |",
        "|---|---:|---:|---:|---|---:|",
    ]
    body = []
    for r in sorted(recs, key=lambda r: r["model"]):
        if "centred_std" in r:
            body.append(
                f"| {r['model']} | {r['image_size']} | {r['centred_std']:.3g} |"
                f" {r['distinct_top1']} | {r['status']} | {r['build_and_settle_s']} |"
            )
        else:
            body.append(f"| {r['model']} | | | | {r['status']}: {r.get('reason', '')} | |")
    path = out / "check.md"
    path.write_text("\n".join(head + body) + "\n")
    return path


def _cost(name: str) -> float:
    """torchvision's published GFLOPs at 224 px: cheap models first, so a capped run
    covers as many as it can."""
    import torchvision

    try:
        return float(torchvision.models.get_model_weights(name).DEFAULT.meta["_ops"])
    except Exception:  # noqa: BLE001 - a model without published figures goes last
        return float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/random_weights")
    ap.add_argument("--cap-s", type=float, default=300.0, help="CPU-seconds cap per model")
    ap.add_argument("--models", default="", help="comma-separated (default: all classifiers)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--markdown", action="store_true", help="only write check.md")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(check_one(args.one)), flush=True)
        return
    out = Path(args.out)
    if not args.markdown:
        import torchvision

        names = args.models.split(",") if args.models else None
        names = names or sorted(
            torchvision.models.list_models(module=torchvision.models), key=_cost
        )
        run_all(out, args.cap_s, names)
    print(write_markdown(out))


if __name__ == "__main__":
    main()
