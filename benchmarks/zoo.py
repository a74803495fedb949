"""The zoo: auto mode over torchvision classifiers of many families, with the peers beside it.

For each model (random weights, engine/artifacts/weights.py) on one device: auto mode
(engine.running.auto.run_auto, parity on) at the given batch sizes; its ladder already holds the
PyTorch FP32 eager baseline and the plain ONNX Runtime FP32 row, which are reported as
peers. With ``--compile-models``, torch.compile max-autotune (auto mode's compile
candidate) runs at ``--compile-batch`` for those models, parity checked on the compiled
runner. When the largest batch runs out of memory, it is halved until it fits.

One JSON per model (``<out>/<model>.json``, with the machine fingerprint, date and
versions) is written when the model is complete, so a run cut short by ``--budget-s``
or by the end of a lease resumes where it stopped: models with a JSON are skipped.
``--merge`` writes ``<out>/zoo.md`` from every JSON there (any number of sessions).

    python benchmarks/zoo.py --out benchmarks/results/zoo --models resnet50,vit_b_16 \\
        --compile-models resnet50 --budget-s 540
    python benchmarks/zoo.py --out benchmarks/results/zoo --compile-only \\
        --compile-models resnet50,vit_b_16          # compile rows added to measured models
    python benchmarks/zoo.py --out benchmarks/results/zoo --merge
    python benchmarks/zoo.py --out /tmp/zoo --device cpu --models resnet18 --batch 1 \\
        --image-size 64                                             # dry run on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Twelve families: ResNet, ResNeXt, RegNet, DenseNet, EfficientNet, EfficientNetV2,
# MobileNetV2, MobileNetV3, ShuffleNet, SqueezeNet, ConvNeXt, ViT, Swin.
DEFAULT_MODELS = (
    "resnet50,resnext50_32x4d,regnet_y_1_6gf,densenet121,efficientnet_b0,efficientnet_v2_s,"
    "mobilenet_v2,mobilenet_v3_large,shufflenet_v2_x1_0,squeezenet1_1,convnext_tiny,"
    "vit_b_16,swin_t"
)
DEFAULT_COMPILE = "resnet50,efficientnet_b0,convnext_tiny,vit_b_16"


def _settings(args: argparse.Namespace):
    from engine.core.config import BenchSettings

    return BenchSettings(warmup=args.warmup, iters=args.iters, max_time_s=args.max_time_s)


def _auto(name: str, batches: list[int], args: argparse.Namespace, stop) -> tuple[Any, list]:
    """Auto mode at ``batches``; the largest batch is halved while its baseline is OOM."""
    from engine.core.config import ModelSpec, RunnerSpec, SweepConfig
    from engine.running.auto import run_auto
    from engine.running.plan import Callbacks

    model = ModelSpec(name=name, image_size=args.image_size)
    runners = [RunnerSpec("torch", args.device, "fp32"), RunnerSpec("ort", args.device, "fp32")]
    notes: list[str] = []
    while True:
        config = SweepConfig(model=model, runners=runners, batches=batches, bench=_settings(args))
        outcome = run_auto(config, callbacks=Callbacks(should_stop=stop))
        top = max(batches)
        base = next((r for r in outcome.rows if r.batch == top), None)
        if base is None or base.status != "oom" or top == 1 or stop():
            return outcome, notes
        notes.append(f"batch {top} ran out of memory: tried {top // 2}")
        batches = sorted({*(b for b in batches if b != top), top // 2})


def _compile(name: str, args: argparse.Namespace, stop) -> list[dict]:
    """torch.compile max-autotune: auto mode's candidate (FP16, channels-last) on a GPU,
    FP32 on a CPU dry run."""
    from dataclasses import replace

    from engine.core.config import ModelSpec, SweepConfig
    from engine.running.auto import candidates
    from engine.running.plan import Callbacks
    from engine.running.sweep import run_sweep

    specs = candidates("cuda", ["torch_compile"], include_compile=True)
    cpu = not args.device.startswith("cuda")
    specs = [
        replace(s, device=args.device, precision="fp32" if cpu else s.precision) for s in specs
    ]
    config = SweepConfig(
        model=ModelSpec(name=name, image_size=args.image_size),
        runners=specs,
        batches=[args.compile_batch],
        bench=_settings(args),
    )
    return [r.to_dict() for r in run_sweep(config, callbacks=Callbacks(should_stop=stop)).rows]


def run_model(name: str, args: argparse.Namespace, deadline: float) -> dict | None:
    """One model's record, or None when the budget ran out before it was complete."""
    from engine.core.errors import EngineError
    from engine.hardware.env import fingerprint

    def stop() -> bool:
        return time.monotonic() > deadline

    t0 = time.monotonic()
    batches = sorted({int(b) for b in args.batch.split(",")})
    outcome, notes = _auto(name, batches, args, stop)
    compiled: list[dict] = []
    if name in args.compile_models.split(","):
        try:
            compiled = _compile(name, args, stop)
        except EngineError as exc:  # the auto-mode figures stand without it
            notes.append(f"torch.compile: {exc}")
    if outcome.interrupted or stop():
        return None
    return {
        "model": name,
        "image_size": args.image_size,
        "device": args.device,
        "weights": "random weights",
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "environment": fingerprint(args.device),
        "batches": batches,
        "notes": notes + [str(e) for e in outcome.errors][:20],
        "ladder": outcome.ladder_records(),
        "rows": [r.to_dict() for r in outcome.rows],
        "compile_rows": compiled,
        "wall_s": round(time.monotonic() - t0, 1),
    }


def _write(path: Path, rec: dict) -> None:
    """A model's JSON, replaced whole (a reader never sees half of it)."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(rec, indent=1))
    os.replace(tmp, path)


def run_all(args: argparse.Namespace) -> None:
    from engine.core.errors import EngineError

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget_s
    for name in filter(None, args.models.split(",")):
        path = out / f"{name}.json"
        if path.is_file():
            print(f"{name}: already measured ({path.name})", flush=True)
            continue
        if time.monotonic() > deadline:
            print(f"{name}: not started, the budget of {args.budget_s:.0f} s is spent", flush=True)
            continue
        print(f"{name}: measuring", flush=True)
        try:
            rec = run_model(name, args, deadline)
        except EngineError as exc:  # e.g. a model that cannot take this image size
            print(f"{name}: not measured: {exc.user_message()}", flush=True)
            continue
        if rec is None:
            print(f"{name}: cut short by the budget; not written, a later run redoes it")
            continue
        _write(path, rec)
        print(f"{name}: done in {rec['wall_s']} s", flush=True)


def add_compile_rows(args: argparse.Namespace) -> None:
    """``--compile-only``: torch.compile rows for models already measured without them,
    written into their JSON (so the long autotuning runs after every model's auto mode)."""
    out = Path(args.out)
    deadline = time.monotonic() + args.budget_s
    for name in filter(None, args.compile_models.split(",")):
        path = out / f"{name}.json"
        rec = json.loads(path.read_text()) if path.is_file() else None
        if rec is None or rec.get("compile_rows"):
            print(f"{name}: {'no JSON yet' if rec is None else 'compiled already'}", flush=True)
            continue
        if time.monotonic() > deadline:
            print(f"{name}: not compiled, the budget of {args.budget_s:.0f} s is spent", flush=True)
            continue
        t0 = time.monotonic()
        # Once started, autotuning runs to its end: stopping at the deadline would throw
        # away minutes of tuning and leave no row (as on the H200 on 2026-11-30).
        rows = _compile(name, args, lambda: False)
        if not rows or any(r["status"] != "ok" for r in rows):
            print(f"{name}: torch.compile gave no timed row: {rows}", flush=True)
            if not rows:
                continue
        rec["compile_rows"] = rows
        rec["compile_wall_s"] = round(time.monotonic() - t0, 1)
        _write(path, rec)
        print(f"{name}: compiled and timed in {rec['compile_wall_s']} s", flush=True)


def _peer(rows: list[dict], batch: int, backend: str, precision: str) -> dict | None:
    # The plain row of a backend: no options beyond thread counts.
    for r in rows:
        opts = {k: v for k, v in r.get("options", {}).items() if not k.endswith("_threads")}
        if (r["batch"], r["backend"], r["precision"]) == (batch, backend, precision) and not any(
            opts.values()
        ):
            return r
    return None


def _cell(row: dict | None) -> str:
    if row is None:
        return "-"
    if row.get("status") != "ok" or row.get("p50_ms") is None:
        return f"{row.get('status')}"
    from engine.core.config import ResultRow

    status = ResultRow.from_dict(row).parity_status
    return f"{row['p50_ms']:.3f} ms (parity {status})"


def _table_row(rec: dict, batch: int) -> list[str]:
    steps = [s for s in rec["ladder"] if s["batch"] == batch]
    rows = [r for r in rec["rows"] if r["batch"] == batch]
    best = next((s for s in steps if s["best"]), None)
    comp = next((r for r in rec.get("compile_rows") or [] if r["batch"] == batch), None)
    unsure = [s for s in steps if s.get("parity_status") in ("not judged", "failed")]
    return [
        rec["model"],
        str(batch),
        best["label"] if best else ("no winner" if steps else "auto mode not run at this batch"),
        f"{best['p50_ms']:.3f} ms" if best else "-",
        f"{best['speedup']:.2f}x" if best and best.get("speedup") else "-",
        best.get("parity_status", "-") if best else "-",
        _cell(_peer(rows, batch, "torch", "fp32")),
        _cell(_peer(rows, batch, "ort", "fp32")),
        _cell(comp),
        f"{len(unsure)} of {len(steps)}",
        _busy(rec),
    ]


def _busy(rec: dict) -> str:
    """Other processes' CPU use at the start of the model's sweeps (engine.hardware.machine)."""
    env = rec.get("environment") or {}
    check = env.get("busy_check") or {}
    cores = check.get("cpu_other_cores")
    if cores is None:
        return "-"
    return f"{cores:.1f} of {env.get('cpu_count', '?')}"


def merge(out: Path) -> Path:
    """``zoo.md``: per model and batch, auto mode's pick beside the peers."""
    recs = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    recs = [r for r in recs if isinstance(r, dict) and "ladder" in r]
    head = [
        "| model | batch | winner (auto mode) | winner p50 | speed-up over PyTorch FP32 |"
        " winner parity | PyTorch FP32 eager | ONNX Runtime FP32 (plain) |"
        " torch.compile max-autotune | rows not judged / failed | other processes' cores |",
        "|---|---:|---|---:|---:|---|---|---|---|---|---:|",
    ]
    lines = [
        "| " + " | ".join(_table_row(rec, batch)) + " |"
        for rec in recs
        for batch in sorted(
            {s["batch"] for s in rec["ladder"]} | {r["batch"] for r in rec.get("compile_rows", [])}
        )
    ]
    machines = sorted({r["environment"].get("gpu") or r["environment"].get("cpu") for r in recs})
    dates = sorted({r["date"] for r in recs})
    intro = [
        "# Zoo: auto mode on torchvision classifiers, with its peers",
        "",
        f"Machine: {', '.join(map(str, machines)) or '?'}; dates: {', '.join(dates) or '?'}."
        " Random weights (engine/artifacts/weights.py). Made by `benchmarks/zoo.py`; speed-up is the"
        " PyTorch FP32 eager baseline's p50 over the winner's, in the same run. The last"
        " column is the busy check at the start of the model's sweeps: CPU cores used by other"
        " processes. Batch-1 eager PyTorch is bound by the host's kernel launches, so other"
        " load on the host slows it (and inflates batch-1 speed-ups) far more than the"
        " GPU-bound batches.",
        "",
    ]
    lost = [
        f"{r['model']} ({r['compile_wall_s']:.0f} s)"
        for r in recs
        if r.get("compile_wall_s") and not r.get("compile_rows")
    ]
    tail = (
        [
            "",
            "torch.compile max-autotune was compiled but never timed for "
            + ", ".join(lost)
            + ": the session's deadline stopped the sweep after compiling (fixed since:"
            " a started compile now runs to its timed row).",
        ]
        if lost
        else []
    )
    path = out / "zoo.md"
    path.write_text("\n".join(intro + head + lines + tail) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for one JSON per model and zoo.md")
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", default="1,32,256")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--compile-models", default=DEFAULT_COMPILE, help="'' for none")
    ap.add_argument("--compile-batch", type=int, default=32)
    ap.add_argument("--budget-s", type=float, default=540.0, help="stop starting work after")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--max-time-s", type=float, default=2.0, help="per point")
    ap.add_argument("--merge", action="store_true", help="only write zoo.md")
    ap.add_argument(
        "--compile-only", action="store_true", help="add torch.compile rows to measured models"
    )
    args = ap.parse_args()
    if args.compile_only:
        add_compile_rows(args)
    elif not args.merge:
        run_all(args)
    print(merge(Path(args.out)))


if __name__ == "__main__":
    main()
