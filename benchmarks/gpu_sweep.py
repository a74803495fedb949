"""Issue 7's benchmark: ResNet50 on one GPU, from the naive baseline to the tuned end.

Stages (each writes ``<out>/gpu_<stage>.json``; ``report`` turns them into
``<out>/gpu_sweep.md``), so that one long run can be cut into pieces that fit a lease:

- ``device``  auto mode's candidates (engine.running.auto.candidates: PyTorch FP32 → TF32 → FP16
  → channels-last → cuDNN autotune + BN folded → CUDA graph, BF16, ONNX Runtime FP32 /
  FP16 / exhaustive + NHWC / CUDA graph), device-resident. Repeat 1 *is* auto mode
  (run_auto, parity on); repeats 2.. measure the same list again through run_sweep. Each
  figure is the median over repeats with its spread; auto's pick is compared with the
  fastest figure of the same run.
- ``e2e``      the baseline and the tuned configurations end to end (host in, host out).
- ``compile``  torch.compile max-autotune FP16 at the batch sizes given (32 by default:
  each is minutes of compiling), timed as often as the others, parity checked on the
  compiled runner itself.
- ``profile``  torch.profiler kernel times of the fastest configurations at batch 32:
  GPU busy time per batch, the top kernels, achieved TFLOP/s against the floor.
- ``concurrency`` images/s with 1, 2, 4 requests in flight (engine.running.concurrency).

GPU clocks (NVML) are sampled after every measurement. Random weights throughout.

    python benchmarks/gpu_sweep.py --out benchmarks/results/h100 --stage device
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from gpu_sweep_report import STAGE_NAMES, report  # noqa: E402
from sweep import gpu_clock_sample, machine_facts, spread  # noqa: E402

from engine.backends import describe  # noqa: E402
from engine.core.config import BenchSettings, ModelSpec, ResultRow, RunnerSpec, SweepConfig  # noqa: E402
from engine.running.auto import candidates, run_auto  # noqa: E402
from engine.running.plan import Callbacks  # noqa: E402

# ResNet50 at 224×224: 4.1 GMAC per image (torchvision's figure), 2 FLOP per MAC.
GFLOP_PER_IMAGE = {"resnet50": 8.18}
TUNED_TORCH = {"channels_last": True, "cudnn_benchmark": True, "fuse_bn": True}
FUSED_TORCH = {**TUNED_TORCH, "fuse_relu": True, "cuda_graph": True}
TUNED_ORT = {"prefer_nhwc": True}  # exhaustive cuDNN search is ONNX Runtime's default


def _spec(backend: str, device: str, precision: str, **options: Any) -> RunnerSpec:
    return RunnerSpec(backend, device, precision, tuple(sorted(options.items())))


def _config(args: argparse.Namespace, runners: list[RunnerSpec], mode: str, parity: bool):
    return SweepConfig(
        model=ModelSpec(args.model, image_size=args.image_size),
        runners=runners,
        batches=[int(b) for b in args.batches.split(",")],
        bench=BenchSettings(
            warmup=args.warmup, iters=args.iters, max_time_s=args.max_time, mode=mode
        ),
        parity=parity,
    )


def _progress(done: int, total: int, msg: str) -> None:
    print(f"  [{done}/{total}] {msg}", file=sys.stderr, flush=True)


def _clocked(device: str, rep: int, store: list[dict[str, Any]]):
    def on_row(row: ResultRow) -> None:
        d = row.to_dict()
        d["repeat"] = rep
        d["gpu_clocks"] = gpu_clock_sample(device)
        store.append(d)
        if row.status == "ok":
            print(
                f"  rep {rep} {describe(row, 'short')} b{row.batch}:"
                f" {row.p50_ms:.3f} ms {row.throughput_ips:.0f} img/s"
                f" parity {row.parity_ok} clocks {d['gpu_clocks'].get('sm_clock_mhz')} MHz",
                file=sys.stderr,
                flush=True,
            )
        else:
            print(f"  rep {rep} {row.backend} b{row.batch}: {row.status} {row.reason[:200]}")

    return on_row


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per configuration and batch: median p50 over repeats, spread, images/s, parity."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        key = (r["backend"], r["precision"], json.dumps(r["options"], sort_keys=True), r["batch"])
        groups.setdefault(key, []).append(r)
    out = []
    for (backend, precision, opts, batch), group in groups.items():
        ok = [g for g in group if g["status"] == "ok"]
        parity = [g["parity_ok"] for g in group if g.get("parity_ok") is not None]
        entry: dict[str, Any] = {
            "label": describe(
                {
                    "backend": backend,
                    "precision": precision,
                    "options": json.loads(opts),
                    "device": group[0].get("device", "cuda"),
                },
                "short",
            ),
            "backend": backend,
            "precision": precision,
            "options": json.loads(opts),
            "batch": batch,
            "mode": group[0]["mode"],
            "repeats_ok": len(ok),
            "status": "ok" if ok else group[0]["status"],
            "reason": "" if ok else group[0]["reason"],
            "parity_ok": all(parity) if parity else None,
            "max_rel_err": max(
                (g["max_rel_err"] for g in group if g.get("max_rel_err")), default=None
            ),
            "provider": ok[0]["provider"] if ok else "",
        }
        if ok:
            p50 = spread([g["p50_ms"] for g in ok])
            entry["p50_ms"] = p50
            entry["throughput_ips"] = batch * 1000.0 / p50["median"]
            clocks = [g["gpu_clocks"].get("sm_clock_mhz") for g in ok if g.get("gpu_clocks")]
            entry["sm_clock_mhz"] = sorted(c for c in clocks if c)
        out.append(entry)
    return out


def stage_device(args: argparse.Namespace) -> dict[str, Any]:
    runners = candidates(args.device)
    rows: list[dict[str, Any]] = []
    print("repeat 1: auto mode (run_auto, parity on)", file=sys.stderr)
    t0 = time.perf_counter()
    auto = run_auto(
        _config(args, runners, "device", True),
        callbacks=Callbacks(_progress, _clocked(args.device, 0, rows)),
    )
    auto_s = time.perf_counter() - t0
    for rep in range(1, args.repeats):
        print(f"repeat {rep + 1}: the same candidates through run_sweep", file=sys.stderr)
        from engine.running.sweep import run_sweep

        run_sweep(
            _config(args, runners, "device", False),
            callbacks=Callbacks(_progress, _clocked(args.device, rep, rows)),
        )
    summary = summarise(rows)
    picks = []
    for batch, step in sorted(auto.best.items()):
        same = [s for s in summary if s["batch"] == batch and s["status"] == "ok"]
        agreeing = [s for s in same if s["parity_ok"] is not False]
        fastest = min(agreeing, key=lambda s: s["p50_ms"]["median"]) if agreeing else None
        chosen = next(
            (
                s
                for s in same
                if s["backend"] == step.backend
                and s["precision"] == step.precision
                and s["options"] == step.options
            ),
            None,
        )
        picks.append(
            {
                "batch": batch,
                "auto_pick": step.label,
                "auto_pick_p50_ms_in_auto_run": step.p50_ms,
                "auto_pick_median_p50_ms": chosen["p50_ms"]["median"] if chosen else None,
                "fastest_label": fastest["label"] if fastest else None,
                "fastest_median_p50_ms": fastest["p50_ms"]["median"] if fastest else None,
                "auto_over_fastest": (chosen["p50_ms"]["median"] / fastest["p50_ms"]["median"])
                if chosen and fastest
                else None,
            }
        )
    return {
        "stage": "device",
        "rows": rows,
        "summary": summary,
        "auto": {
            "seconds": auto_s,
            "ladders": auto.ladder_records(),
            "picks": picks,
            "errors": [e.user_message() for e in auto.errors],
        },
    }


def stage_e2e(args: argparse.Namespace) -> dict[str, Any]:
    from engine.running.sweep import run_sweep

    d = args.device
    runners = [
        _spec("torch", d, "fp32"),
        _spec("torch", d, "fp16", **FUSED_TORCH),
        _spec("ort", d, "fp16", **TUNED_ORT, cuda_graph=True),
    ]
    rows: list[dict[str, Any]] = []
    for rep in range(args.repeats):
        print(f"e2e repeat {rep + 1}", file=sys.stderr)
        run_sweep(
            _config(args, runners, "e2e", rep == 0),
            callbacks=Callbacks(_progress, _clocked(d, rep, rows)),
        )
    return {"stage": "e2e", "rows": rows, "summary": summarise(rows)}


def stage_compile(args: argparse.Namespace) -> dict[str, Any]:
    """torch.compile at the given batches: compiled once per batch, timed ``repeats`` times."""
    from engine.artifacts.models import load_artifacts
    from engine.core.parity import compare
    from engine.running.reference import reference_outputs
    from engine.running.sweep import run_sweep
    from engine.running.timing import time_runner

    spec = _spec("torch_compile", args.device, "fp16", channels_last=True)
    built: dict[tuple, Any] = {}

    def factory(s, art, ctx):
        key = (s, ctx.batches)
        if key not in built:
            from engine.backends import get_backend

            built[key] = get_backend(s.backend).prepare(s, art, ctx)
        return built[key]

    cargs = argparse.Namespace(**{**vars(args), "batches": args.compile_batches})
    art = load_artifacts(ModelSpec(args.model, image_size=args.image_size))
    rows: list[dict[str, Any]] = []
    parity: dict[int, Any] = {}
    compile_s: dict[str, Any] = {}
    try:
        for rep in range(args.repeats):
            run_sweep(
                _config(cargs, [spec], "device", False),
                callbacks=Callbacks(_progress, _clocked(args.device, rep, rows)),
                runner_factory=factory,
                artifacts=art,
            )
        for (_s, batches), runner in built.items():
            b = batches[0]
            x = art.sample_input(b, seed=99)
            if b >= 2:
                p = compare(reference_outputs(art, x), runner.infer(x), spec.precision)
                parity[b] = vars(p)
            compile_s.update(runner.info.get("compile_s", {}))
        # A second start in a fresh runner must load from the on-disk cache, not search again.
        b = int(args.compile_batches.split(",")[0])
        from engine.backends import PrepareContext, get_backend

        t0 = time.perf_counter()
        with get_backend("torch_compile").prepare(
            spec, art, PrepareContext(batches=(b,), progress=print)
        ) as again:
            timing = time_runner(again, art.sample_input(b), BenchSettings(warmup=3, iters=20))
        second_start = {"batch": b, "seconds": time.perf_counter() - t0, "p50_ms": timing.p50_ms}
    finally:
        for runner in built.values():
            runner.close()
    for r in rows:
        if r["batch"] in parity:
            r["parity_ok"] = parity[r["batch"]]["ok"]
            r["max_rel_err"] = parity[r["batch"]]["max_rel_err"]
    return {
        "stage": "compile",
        "rows": rows,
        "summary": summarise(rows),
        "parity": parity,
        "compile_s": compile_s,
        "second_start": second_start,
    }


def stage_profile(args: argparse.Namespace) -> dict[str, Any]:
    """Where the time goes at batch 32: kernel time per batch and the top kernels."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from engine.artifacts.models import load_artifacts
    from engine.backends import PrepareContext, get_backend
    from engine.running.timing import time_runner

    art = load_artifacts(ModelSpec(args.model, image_size=args.image_size))
    batch = args.profile_batch
    d = args.device
    specs = [
        _spec("torch", d, "fp16", **FUSED_TORCH),
        _spec("torch", d, "fp16", **TUNED_TORCH, cuda_graph=True),
        _spec("ort", d, "fp16", **TUNED_ORT, cuda_graph=True),
        _spec("ort", d, "fp16", cuda_graph=True),
    ]
    gflop = GFLOP_PER_IMAGE.get(args.model)
    out = []
    for spec in specs:
        ctx = PrepareContext(batches=(batch,), progress=print)
        with get_backend(spec.backend).prepare(spec, art, ctx) as runner:
            x = art.sample_input(batch)
            timing = time_runner(runner, x, BenchSettings(warmup=10, iters=200, max_time_s=3))
            x_dev = runner.to_device(x)
            for _ in range(5):
                runner.run(x_dev)
            runner.synchronize()
            n = 20
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                t0 = time.perf_counter()
                for _ in range(n):
                    runner.run(x_dev)
                    runner.synchronize()
                wall_ms = (time.perf_counter() - t0) * 1000 / n
            kernels = []
            for ev in prof.events():
                # Device-side events (kernels, copies) carry their own GPU time range.
                if getattr(ev, "device_type", None) == torch.autograd.DeviceType.CUDA:
                    kernels.append((ev.name, ev.time_range.elapsed_us()))
            by_name: dict[str, list[float]] = {}
            for name, us in kernels:
                by_name.setdefault(name, []).append(us)
            total_us = sum(us for _, us in kernels)
            top = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[: args.top]
            kernel_ms = total_us / 1000 / n
            entry = {
                "label": describe(spec, "short"),
                "batch": batch,
                "p50_ms": timing.p50_ms,
                "wall_ms_under_profiler": wall_ms,
                "gpu_kernel_ms_per_batch": kernel_ms,
                "kernels_per_batch": len(kernels) / n,
                "gpu_busy_fraction": kernel_ms / timing.p50_ms if timing.p50_ms else None,
                "achieved_tflops": (gflop * batch / (timing.p50_ms / 1000) / 1000)
                if gflop
                else None,
                "top_kernels": [
                    {
                        "name": name[:160],
                        "ms_per_batch": sum(v) / 1000 / n,
                        "calls_per_batch": len(v) / n,
                        "share": sum(v) / total_us if total_us else 0.0,
                    }
                    for name, v in top
                ],
            }
            out.append(entry)
            print(
                f"{entry['label']} b{batch}: p50 {timing.p50_ms:.3f} ms, kernels"
                f" {kernel_ms:.3f} ms/batch ({entry['kernels_per_batch']:.0f} launches)",
                flush=True,
            )
            for k in entry["top_kernels"][:8]:
                print(f"    {k['ms_per_batch']:.4f} ms  {k['share']:.1%}  {k['name'][:100]}")
    return {"stage": "profile", "profiles": out, "gflop_per_image": gflop}


def stage_concurrency(args: argparse.Namespace) -> dict[str, Any]:
    from engine.artifacts.models import load_artifacts
    from engine.running.concurrency import measure_concurrency

    art = load_artifacts(ModelSpec(args.model, image_size=args.image_size))
    d = args.device
    batches = [int(b) for b in args.batches.split(",")]
    points = []
    for spec in (
        _spec("torch", d, "fp16", **FUSED_TORCH),
        _spec("ort", d, "fp16", **TUNED_ORT),
    ):
        for p in measure_concurrency(spec, art, batches, streams=(1, 2, 4), window_s=1.5):
            d_ = p.to_dict()
            d_["label"] = describe(p, "short")
            points.append(d_)
            print(
                f"{d_['label']} b{p.batch} x{p.streams}: {p.throughput_ips:.0f} img/s"
                f" ({p.gain:.2f}x one stream)",
                flush=True,
            )
    return {"stage": "concurrency", "points": points}


STAGES = {
    "device": stage_device,
    "e2e": stage_e2e,
    "compile": stage_compile,
    "profile": stage_profile,
    "concurrency": stage_concurrency,
}
assert tuple(STAGES) == STAGE_NAMES


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--stage", required=True, choices=[*STAGES, "report"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--model", default="resnet50")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batches", default="1,8,32,128,256")
    p.add_argument("--compile-batches", default="32")
    p.add_argument("--profile-batch", type=int, default=32)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--max-time", type=float, default=1.5, help="seconds per point at most")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.stage == "report":
        print(report(out))
        return 0
    t0 = time.perf_counter()
    doc = STAGES[args.stage](args)
    doc["machine"] = machine_facts(args.device)
    doc["settings"] = {k: v for k, v in vars(args).items() if k != "out"}
    doc["seconds"] = time.perf_counter() - t0
    (out / f"gpu_{args.stage}.json").write_text(json.dumps(doc, indent=1, default=str))
    print(report(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
