"""Compiled engines on a GPU (issue 29): cold build, warm load, and auto mode's answer against
the torch.compile peer, per model, as a user runs them.

For each model, one after another on one GPU (nothing overlaps):

1. cold: ``bench --auto --with-compile`` at the batch: auto mode builds the compiled engine
   (an AOTInductor package, max-autotune, FP16 channels-last) and caches it;
2. warm: ``bench --auto`` again, in a fresh process: the engine is loaded from the cache
   (its notes say so) and is one of the ladder's candidates;
3. peer: ``bench --backend torch_compile`` as a user would run torch.compile max-autotune
   (FP16, channels-last, just in time; Inductor's own caches as they are after step 1);
4. head-to-head: the warm winner's configuration and the peer, prepared once in one
   process and timed alternately for ``--rounds`` rounds: the ratio per round and whether
   the winner is slower beyond the rounds' spread.

Wall times of each command, the notes and the rows go to ``<out>/<model>.json``; ``--merge``
writes ``<out>/compiled.md``. A model whose JSON is complete is skipped (resumable).

    python benchmarks/compiled_engines.py --out benchmarks/results/compiled \\
        --models regnet_x_400mf,convnext_tiny --budget-s 900
    python benchmarks/compiled_engines.py --out benchmarks/results/compiled --merge
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_MODELS = "regnet_x_400mf,convnext_tiny,efficientnet_b1,resnet50,efficientnet_b0"
PEER_FLAGS = ("--backend", "torch_compile", "--precision", "fp16", "--channels-last")


def _cli(args: argparse.Namespace, *extra: str, json_out: Path) -> dict[str, Any]:
    """One ``python -m engine bench`` as a user runs it: wall time, exit code, notes, rows."""
    cmd = [sys.executable, "-m", "engine", "bench", "--model", args.model_name]
    cmd += ["--image-size", str(args.image_size)]
    cmd += ["--device", args.device, "--batch", str(args.batch), "--json", str(json_out)]
    cmd += ["--iters", str(args.iters), "--warmup", str(args.warmup), "--quiet", *extra]
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    wall = round(time.monotonic() - t0, 1)
    doc = json.loads(json_out.read_text()) if json_out.is_file() else {}
    notes = [ln[6:] for ln in done.stderr.splitlines() if ln.startswith("note: ")]
    return {
        "command": " ".join(cmd[1:]).replace(str(json_out), json_out.name),
        "exit": done.returncode,
        "wall_s": wall,
        "notes": notes,
        "stderr_tail": done.stderr[-1500:] if done.returncode else "",
        "rows": doc.get("rows", []),
        "run": doc.get("run", {}),
    }


def _winner(rows: list[dict]) -> dict | None:
    from engine.core.config import ResultRow
    from engine.running.auto import ladders_from_rows

    ladders = ladders_from_rows([ResultRow.from_dict(r) for r in rows])
    best = [s for steps in ladders.values() for s in steps if s.best]
    return best[0].to_dict() if best else None


def _head_to_head(args: argparse.Namespace, winner: dict, peer: dict) -> dict[str, Any]:
    """Both configurations prepared once, then timed alternately; p50 per round."""
    from engine.artifacts.models import load_artifacts
    from engine.backends import get_backend
    from engine.backends.base import PrepareContext
    from engine.core.config import BenchSettings, ModelSpec, RunnerSpec
    from engine.running.measure import time_point

    art = load_artifacts(ModelSpec(args.model_name, "random", args.image_size))
    x = art.sample_input(args.batch)
    settings = BenchSettings(warmup=args.warmup, iters=args.iters, max_time_s=5.0)
    specs = {
        "winner": RunnerSpec(
            winner["backend"], args.device, winner["precision"], winner["options"]
        ),
        "peer": RunnerSpec(peer["backend"], args.device, peer["precision"], peer["options"]),
    }
    runners = {
        k: get_backend(s.backend).prepare(s, art, PrepareContext(batches=(args.batch,)))
        for k, s in specs.items()
    }
    p50: dict[str, list[float]] = {k: [] for k in specs}
    try:
        for _ in range(args.rounds):
            for k, runner in runners.items():
                p50[k].append(time_point(runner, x, settings).p50_ms)
    finally:
        for runner in runners.values():
            runner.close()
    ratios = [w / p for w, p in zip(p50["winner"], p50["peer"], strict=True)]
    spread = max(ratios) - min(ratios)
    ratio = statistics.median(ratios)
    slower = ratio > 1 and min(ratios) > 1 and ratio - 1 > spread / 2
    return {
        "rounds_p50_ms": p50,
        "ratio_winner_over_peer": [round(r, 4) for r in ratios],
        "median_ratio": round(ratio, 4),
        "verdict": "SLOWER than the peer beyond noise" if slower else "not slower beyond noise",
    }


def run_model(name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from zoo import _commit, _stamp

    args.model_name = name
    rec: dict[str, Any] = {"model": name, "batch": args.batch, **_stamp(args.device)}
    rec["tree"] = _commit()[1]
    scratch = out / "runs"
    scratch.mkdir(parents=True, exist_ok=True)
    rec["cold"] = _cli(args, "--auto", "--with-compile", json_out=scratch / f"{name}-cold.json")
    rec["warm"] = _cli(args, "--auto", json_out=scratch / f"{name}-warm.json")
    rec["peer"] = _cli(args, *PEER_FLAGS, json_out=scratch / f"{name}-peer.json")
    winner = _winner(rec["warm"]["rows"])
    peer = next((r for r in rec["peer"]["rows"] if r["status"] == "ok"), None)
    rec["winner"] = winner
    if winner and peer and args.rounds:
        rec["head_to_head"] = _head_to_head(args, winner, peer)
    rec["complete"] = True
    return rec


def _row_text(rec: dict) -> str:
    cold, warm, peer = rec["cold"], rec["warm"], rec["peer"]
    winner = rec.get("winner") or {}
    peer_row = next((r for r in peer["rows"] if r["status"] == "ok"), {})
    built = next((n for n in cold["notes"] if "built the compiled engine" in n), "")
    build_s = built.split(" in ")[1].split(" s")[0] if " in " in built else "?"
    loaded = any("loaded the cached compiled engine" in n for n in warm["notes"])
    compiled = next((r for r in warm["rows"] if r["provider"].startswith("torch-aoti")), {})
    h2h = rec.get("head_to_head") or {}
    return (
        f"| {rec['model']} | {cold['wall_s']:.0f} s (build {build_s} s) | {warm['wall_s']:.0f} s"
        f" ({'engine loaded' if loaded else 'NOT loaded'}) | {_ms(compiled)} |"
        f" {winner.get('label', '-')} {_ms(winner)} | {_ms(peer_row)} ({peer['wall_s']:.0f} s) |"
        f" {h2h.get('median_ratio', '-')} {h2h.get('verdict', 'not run')} |"
    )


def _ms(row: dict) -> str:
    return f"{row['p50_ms']:.3f} ms" if row.get("p50_ms") else "-"


def merge(out: Path) -> Path:
    docs = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    recs = [d for d in docs if "cold" in d]  # cpu-load.json, the CPU's load test, is not one
    lines = [
        "# Compiled engines on a GPU (issue 29)",
        "",
        "Written by `benchmarks/compiled_engines.py --merge` from the JSONs here. p50 in ms at"
        " the batch shown; wall times are whole commands in fresh processes.",
        "",
        "| model | cold `bench --auto --with-compile` | warm `bench --auto` |"
        " compiled engine p50 (warm) | auto's winner (warm) | torch.compile peer |"
        " head-to-head winner/peer |",
        "|---|---|---|---|---|---|---|",
        *[_row_text(r) for r in recs if r.get("complete")],
        "",
        *[f"- {r['model']}: {r.get('machine', '?')}, {r.get('date', '?')}, commit"
          f" {r.get('commit', '?')} ({r.get('tree', '?')})" for r in recs],
    ]  # fmt: skip
    path = out / "compiled.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5, help="head-to-head rounds (0: none)")
    ap.add_argument("--budget-s", type=float, default=900.0, help="start no model after")
    ap.add_argument("--merge", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget_s
    for name in filter(None, args.models.split(",") if not args.merge else []):
        path = out / f"{name}.json"
        if path.is_file() and json.loads(path.read_text()).get("complete"):
            print(f"{name}: complete already", flush=True)
            continue
        if time.monotonic() > deadline:
            print(f"{name}: not started, the budget is spent", flush=True)
            continue
        rec = run_model(name, args, out)
        path.write_text(json.dumps(rec, indent=1))
        print(f"{name}: {_row_text(rec)}", flush=True)
    print(merge(out))


if __name__ == "__main__":
    main()
