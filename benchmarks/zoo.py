"""The zoo: auto mode over torchvision classifiers of many families, with the peers beside it.

For each model (random weights) on one device: auto mode (parity on), one sweep per batch
size; its ladder holds the peers PyTorch FP32 eager, ONNX Runtime as shipped (FP32, no
options) and the best tuned ONNX Runtime row (the fastest agreeing other ONNX Runtime step).
``--compile-models``: torch.compile max-autotune (auto mode's compile candidate) timed on its
own at ``--compile-batch``, parity on. ``--with-compile``: auto mode at ``--compile-batch``
also tries its compiled engines (as ``bench --auto --with-compile``: an engine not cached is
built, minutes per model on a GPU), so the torch.compile peer meets the ladder that has them;
a model measured before without them is measured anew, all its batch sizes.
A batch whose baseline runs out of memory is halved.

One JSON per model (``<out>/<model>.json``: machine fingerprint, dates, commit, and the busy
check of every sweep) is rewritten after each batch size, with ``"complete": false`` until
the last: a run cut short by ``--budget-s`` or by the end of a lease resumes at the first
batch size not measured, and models whose JSON is complete are skipped. ``--merge`` writes
``<out>/zoo.md`` from every JSON there (any number of sessions), with, per model and batch,
whether auto mode's winner is within noise of (or faster than) the fastest agreeing peer.

    python benchmarks/zoo.py --out benchmarks/results/zoo --models resnet50,vit_b_16 \\
        --compile-models "" --budget-s 540
    python benchmarks/zoo.py --out benchmarks/results/zoo --compile-only \\
        --compile-models resnet50,vit_b_16          # compile rows added to measured models
    python benchmarks/zoo.py --out benchmarks/results/zoo --merge
    python benchmarks/zoo.py --out artifacts/zoo --device cpu --models resnet18 --batch 1 \\
        --image-size 64                                             # dry run on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Sixteen families: ResNet, ResNeXt, RegNet, DenseNet, EfficientNet, EfficientNetV2,
# MobileNetV2, MobileNetV3, ShuffleNet, SqueezeNet, MNASNet, GoogLeNet, ConvNeXt, ViT, Swin,
# MaxViT.
DEFAULT_MODELS = (
    "resnet50,resnext50_32x4d,regnet_y_1_6gf,densenet121,efficientnet_b0,efficientnet_v2_s,"
    "mobilenet_v2,mobilenet_v3_large,shufflenet_v2_x1_0,squeezenet1_1,convnext_tiny,"
    "vit_b_16,swin_t,mnasnet1_0,googlenet,maxvit_t,efficientnet_b1,regnet_x_400mf"
)
DEFAULT_COMPILE = "resnet50,efficientnet_b0,convnext_tiny,vit_b_16"
from zoo_table import _machine, merge  # noqa: E402  (the table; after ROOT is on sys.path)


def _settings(args: argparse.Namespace):
    from engine.core.config import BenchSettings

    return BenchSettings(warmup=args.warmup, iters=args.iters, max_time_s=args.max_time_s)


def _auto(
    name: str, batch: int, args: argparse.Namespace, stop, engines: bool
) -> tuple[Any, int, list]:
    """Auto mode at one batch size, halved while its baseline runs out of memory; with
    ``engines``, its compiled engines too."""
    from engine.core.config import ModelSpec, RunnerSpec, SweepConfig
    from engine.running.auto import run_auto
    from engine.running.plan import Callbacks

    model = ModelSpec(name=name, image_size=args.image_size)
    runners = [RunnerSpec("torch", args.device, "fp32"), RunnerSpec("ort", args.device, "fp32")]
    notes: list[str] = []
    while True:
        config = SweepConfig(model=model, runners=runners, batches=[batch], bench=_settings(args))
        outcome = run_auto(config, callbacks=Callbacks(should_stop=stop), include_compile=engines)
        base = next((r for r in outcome.rows if r.batch == batch), None)
        if base is None or base.status != "oom" or batch == 1 or stop():
            return outcome, batch, notes
        notes.append(f"batch {batch} ran out of memory: tried {batch // 2}")
        batch //= 2


def _with_compile(args: argparse.Namespace, requested: int) -> bool:
    """Whether auto mode at this requested batch size also tries compiled engines."""
    return bool(args.with_compile) and requested == args.compile_batch


def _before_engines(rec: dict, args: argparse.Namespace) -> bool:
    """A record whose compile batch was measured without the compiled engines that
    ``--with-compile`` asks for (or written whole, before either existed): it is measured
    anew, every batch size in one run, not patched with a batch of another day."""
    if not args.with_compile or args.compile_batch not in rec.get("batches", []):
        return False
    if "sweeps" not in rec:  # written whole, before per-batch sweeps and compiled engines
        return True
    at = [s for s in rec["sweeps"] if s["requested"] == args.compile_batch]
    return any(not s.get("with_compile") for s in at)


def _compile(name: str, args: argparse.Namespace, stop) -> list[dict]:
    """torch.compile max-autotune: auto mode's candidate (FP16, channels-last) on a GPU,
    FP32 on a CPU dry run."""
    from dataclasses import replace

    from engine.core.config import ModelSpec, SweepConfig
    from engine.running.auto import candidates
    from engine.running.plan import Callbacks
    from engine.running.sweep import run_sweep

    cpu = not args.device.startswith("cuda")
    specs = [  # the peer a reader picks: torch.compile just in time, not auto mode's package
        replace(s.with_options(packaged=False), device=args.device, precision="fp32" if cpu else s.precision)
        for s in candidates("cuda", ["torch_compile"], include_compile=True)
    ]  # fmt: skip
    model, bench = ModelSpec(name=name, image_size=args.image_size), _settings(args)
    config = SweepConfig(model=model, runners=specs, batches=[args.compile_batch], bench=bench)
    return [r.to_dict() for r in run_sweep(config, callbacks=Callbacks(should_stop=stop)).rows]


def _commit() -> tuple[str, str]:
    """The commit measured and whether the tree differed from it: ``$VISIONBENCH_COMMIT``
    and ``$VISIONBENCH_TREE`` where set (a device machine has no git history), else git."""
    if os.environ.get("VISIONBENCH_COMMIT"):
        return os.environ["VISIONBENCH_COMMIT"], os.environ.get("VISIONBENCH_TREE", "not recorded")

    def git(*cmd: str) -> str | None:
        try:
            p = subprocess.run(["git", "-C", str(ROOT), *cmd], capture_output=True, text=True)
        except OSError:
            return None
        return p.stdout.strip() if p.returncode == 0 else None

    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return "unknown", "unknown"
    return head, "modified" if git("status", "--porcelain", "--untracked-files=no") else "clean"


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime())


def _stamp(device: str, **extra: Any) -> dict:
    """When, at which commit and on which machine a sweep ran, and its busy check."""
    from engine.hardware.env import fingerprint

    env = fingerprint(device)  # the cached dict: run_sweep stored its busy check there
    stamp = {"date": _now(), "commit": _commit()[0], "machine": _machine(env)}
    return {**stamp, "busy_check": env.get("busy_check"), **extra}


def _new_record(name: str, args: argparse.Namespace) -> dict:
    from engine.backends import backend_versions
    from engine.hardware.env import fingerprint

    commit, tree = _commit()
    env = fingerprint(args.device)  # copied below without the last sweep's busy check
    env = {**env, **backend_versions()}
    return {
        "model": name,
        "image_size": args.image_size,
        "device": args.device,
        "weights": "random weights",
        "date": _now(),
        "commit": commit,
        "tree": tree,
        "environment": {k: v for k, v in env.items() if k != "busy_check"},
        "batches": sorted({int(b) for b in args.batch.split(",")}),
        "complete": False,
        "wall_s": 0.0,
        # sweeps: one per batch size measured, with its date, machine, busy check, wall time
        **{k: [] for k in ("sweeps", "notes", "ladder", "rows", "compile_rows")},
    }


def run_model(name: str, args: argparse.Namespace, deadline: float, rec: dict, path: Path) -> bool:
    """Measure the batch sizes ``rec`` lacks, writing it after each; True once complete."""
    from engine.core.errors import EngineError

    def stop() -> bool:
        return time.monotonic() > deadline

    done = {s["requested"] for s in rec["sweeps"]}
    for batch in [b for b in rec["batches"] if b not in done]:
        if stop():
            return False
        t0 = time.monotonic()
        engines = _with_compile(args, batch)
        outcome, used, notes = _auto(name, batch, args, stop, engines)
        if outcome.interrupted:  # this batch's rows are dropped; a later run redoes it
            return False
        rec["ladder"] += outcome.ladder_records()
        rec["rows"] += [r.to_dict() for r in outcome.rows]
        rec["notes"] += notes + [str(e) for e in outcome.errors][:20]
        wall = round(time.monotonic() - t0, 1)
        rec["sweeps"].append(
            _stamp(args.device, requested=batch, batch=used, wall_s=wall, with_compile=engines)
        )
        rec["wall_s"] = round(rec["wall_s"] + wall, 1)
        _write(path, rec)
    if name in args.compile_models.split(",") and not rec.get("compile_rows"):
        try:
            rec["compile_rows"] = _compile(name, args, stop)
            rec["compile_run"] = _stamp(args.device)
        except EngineError as exc:  # the auto-mode figures stand without it
            rec["compile_error"] = exc.user_message()
    rec["complete"] = True
    _write(path, rec)
    return True


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
        rec = json.loads(path.read_text()) if path.is_file() else None
        if rec is not None and _before_engines(rec, args):
            said = f"{rec.get('date', '?')} without compiled engines at batch {args.compile_batch}"
            print(f"{name}: measured {said}: measured anew with them", flush=True)
            rec = None
        if rec is not None and rec.get("complete", True):  # older JSONs were written whole
            print(f"{name}: already measured ({path.name})", flush=True)
            continue
        if time.monotonic() > deadline:
            print(f"{name}: not started, the budget of {args.budget_s:.0f} s is spent", flush=True)
            continue
        left = [s["requested"] for s in rec["sweeps"]] if rec else []
        print(f"{name}: {f'resuming (done: batch {left})' if rec else 'measuring'}", flush=True)
        rec = rec or _new_record(name, args)
        try:
            complete = run_model(name, args, deadline, rec, path)
        except EngineError as exc:  # e.g. a model that cannot take this image size
            print(f"{name}: not measured: {exc.user_message()}", flush=True)
            continue
        if not complete:
            print(f"{name}: cut short by the budget; a later run resumes it", flush=True)
            continue
        print(f"{name}: done in {rec['wall_s']} s", flush=True)


def add_compile_rows(args: argparse.Namespace) -> None:
    """``--compile-only``: torch.compile rows for models already measured without them,
    written into their JSON (so the long autotuning never overlaps auto mode's timing), on
    the machine that measured them only (a row from another is no peer)."""
    from engine.core.errors import EngineError
    from engine.hardware.env import fingerprint

    out = Path(args.out)
    deadline = time.monotonic() + args.budget_s
    for name in filter(None, args.compile_models.split(",")):
        path = out / f"{name}.json"
        rec = json.loads(path.read_text()) if path.is_file() else None
        if rec is None or rec.get("compile_rows"):
            print(f"{name}: {'no JSON yet' if rec is None else 'compiled already'}", flush=True)
            continue
        if (here := _machine(fingerprint(args.device))) != _machine(rec["environment"]):
            print(f"{name}: measured on another machine, not on this {here}: no peer", flush=True)
            continue
        if time.monotonic() > deadline:
            print(f"{name}: not compiled, the budget of {args.budget_s:.0f} s is spent", flush=True)
            continue
        t0 = time.monotonic()
        # Once started, autotuning runs to its end (a stop at the deadline left no row).
        try:
            rows = _compile(name, args, lambda: False)
        except EngineError as exc:
            rec["compile_error"] = exc.user_message()
            rows = []
        if rows:
            rec["compile_rows"], rec["compile_run"] = rows, _stamp(args.device)
            rec.pop("compile_error", None)
        rec["compile_wall_s"] = round(time.monotonic() - t0, 1)
        _write(path, rec)
        bad = [f"{r['status']}: {r.get('reason', '')[:200]}" for r in rows if r["status"] != "ok"]
        print(f"{name}: torch.compile in {rec['compile_wall_s']} s {bad or ''}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for one JSON per model and zoo.md")
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", default="1,32,256")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--compile-models", default=DEFAULT_COMPILE, help="'' for none")
    ap.add_argument("--compile-batch", type=int, default=32)
    ap.add_argument(
        "--with-compile", action="store_true",
        help="auto mode at --compile-batch also tries compiled engines (builds them: minutes)",
    )  # fmt: skip
    ap.add_argument("--budget-s", type=float, default=540.0, help="stop starting work after")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--max-time-s", type=float, default=2.0, help="per point")
    ap.add_argument("--merge", action="store_true", help="only write zoo.md")
    ap.add_argument("--compile-only", action="store_true", help="add torch.compile rows")
    args = ap.parse_args()
    if args.compile_only:
        add_compile_rows(args)
    elif not args.merge:
        run_all(args)
    print(merge(Path(args.out)))


if __name__ == "__main__":
    main()
