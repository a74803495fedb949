"""A sweep: runner configurations × batch sizes, timed, checked for parity, stored.

The CLI and the dashboard both call :func:`run_sweep`. Combinations that cannot run
are stored as skipped rows with the reason; a backend that fails to build or run is a
failed row and the others go on; an out-of-memory batch is an ``oom`` row and the sweep
goes on; each row is committed as soon as it is measured.
"""

from __future__ import annotations

import gc
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from engine.backends import PrepareContext, Runner, get_backend
from engine.config import ResultRow, RunnerSpec, SweepConfig
from engine.env import fingerprint
from engine.errors import BadInput, EngineError
from engine.flops import gflop_per_image
from engine.limits import check_input_fits, check_threads
from engine.locks import device_lock
from engine.machine import annotate_point, busy_check
from engine.measure import time_point
from engine.models import ModelArtifacts, check_batches, load_artifacts
from engine.parity import PARITY_BATCH, compare
from engine.paths import python_command
from engine.runend import end_of

ProgressFn = Callable[[int, int, str], None]
RunnerFactory = Callable[[RunnerSpec, ModelArtifacts, PrepareContext], Runner]


@dataclass
class SweepOutcome:
    run_id: int | None
    rows: list[ResultRow] = field(default_factory=list)
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    errors: list[EngineError] = field(default_factory=list)
    end_reason: str = ""  # why the run stopped early (engine/runend.py), "" when done

    @property
    def measured(self) -> list[ResultRow]:
        return [r for r in self.rows if r.status == "ok"]


def reproduce_command(config: SweepConfig) -> str:
    """The CLI command that runs the same sweep."""
    m = config.model
    backends = sorted({r.backend for r in config.runners})
    precisions = sorted({r.precision for r in config.runners})
    devices = sorted({r.device for r in config.runners})
    args = [python_command(), "-m", "engine", "bench"]
    args += ["--onnx", m.onnx_path] if m.onnx_path else ["--model", m.name]
    if m.weights != "random" and not m.onnx_path:
        args += ["--weights", m.weights]
    args += ["--image-size", str(m.image_size), "--backend", ",".join(backends)]
    args += ["--device", ",".join(devices), "--precision", ",".join(precisions)]
    args += ["--batch", ",".join(map(str, config.batches))]
    b = config.bench
    args += ["--warmup", str(b.warmup), "--iters", str(b.iters), "--mode", b.mode]
    if b.threads:
        args += ["--threads", str(b.threads)]
    if b.until_stable:
        args += ["--until-stable", "--stable-budget", f"{b.stable_budget_s:g}"]
    opts = sorted({k for r in config.runners for k, v in r.options if v is True})
    args += [f"--{k.replace('_', '-')}" for k in opts]
    if config.calibration_dir:
        args += ["--calibration-dir", config.calibration_dir]
    return shlex.join(args)


def is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    # ONNX Runtime's arena and TensorRT word it differently from torch's "out of memory".
    extra = ("failed to allocate memory", "could not be allocated")
    return (
        "out of memory" in text
        or "outofmemory" in text
        or "cudnn_status_alloc" in text
        or any(t in text for t in extra)
    )


def release_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def reference_outputs(art: ModelArtifacts, x: np.ndarray) -> np.ndarray:
    """FP32 on the CPU: PyTorch for torchvision models, ONNX Runtime for ONNX files."""
    spec = RunnerSpec("ort" if art.is_onnx_source else "torch", "cpu", "fp32")
    ctx = PrepareContext(batches=(x.shape[0],))
    with get_backend(spec.backend).prepare(spec, art, ctx) as runner:
        return runner.infer(x)


def _base_row(art: ModelArtifacts, spec: RunnerSpec, batch: int, config: SweepConfig) -> ResultRow:
    h, _ = art.image_hw
    return ResultRow(
        model=art.model_name,
        backend=spec.backend,
        device=spec.device,
        precision=spec.precision,
        batch=batch,
        image_size=h,
        weights=art.weights_label,
        mode=config.bench.mode,
        options={k: v for k, v in spec.options},
        threads=config.bench.threads,
    )


def run_sweep(
    config: SweepConfig,
    store: Any = None,
    command: str | None = None,
    on_progress: ProgressFn | None = None,
    on_row: Callable[[ResultRow], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    runner_factory: RunnerFactory | None = None,
    artifacts: ModelArtifacts | None = None,
) -> SweepOutcome:
    art = artifacts or load_artifacts(config.model)
    batches = check_batches(config.batches, art.fixed_batch)
    check_input_fits(max(batches), *art.image_hw)  # before a run exists or memory is taken
    if not config.runners:
        raise BadInput("no backend configuration to run", fix="pick at least one backend")
    for spec in config.runners:
        get_backend(spec.backend)  # unknown names are a usage error, not a skipped row
    if config.bench.threads:
        import torch

        check_threads(config.bench.threads)
        torch.set_num_threads(config.bench.threads)
    gpu = next((r.device for r in config.runners if r.device.startswith("cuda")), "cpu")
    env = fingerprint(gpu if _cuda_ok(gpu) else "cpu")
    busy = busy_check(gpu_index=int(gpu.partition(":")[2] or 0) if _cuda_ok(gpu) else None)
    env["busy_check"] = busy.to_dict()  # measured now, stored with the run (engine.machine)
    run_id = None
    outcome = SweepOutcome(run_id, notes=[*busy.notes, *art.notes])
    gflop = gflop_per_image(art)
    # A run is stored once something is attempted: a sweep whose every configuration was
    # refused before running (TensorRT on a machine without it) is an error, not a run.
    pending: list[ResultRow] = []

    def open_run() -> None:
        nonlocal run_id
        if store is not None and run_id is None:
            run_id = outcome.run_id = store.create_run(
                config.to_dict(), env, command or reproduce_command(config), label=art.spec.label
            )
            for held in pending:
                store.add_row(run_id, held)

    total = len(config.runners) * len(batches)
    done = 0

    def progress(msg: str) -> None:
        if on_progress:
            on_progress(done, total, msg)

    def emit(row: ResultRow) -> None:
        nonlocal done
        done += 1
        if store is not None and run_id is not None:
            store.add_row(run_id, row)
        elif store is not None:
            pending.append(row)
        outcome.rows.append(row)
        if on_row:
            on_row(row)
        progress(f"{row.backend} {row.precision} batch {row.batch}: {row.status}")

    reference: np.ndarray | None = None
    factory = runner_factory or (lambda s, a, c: get_backend(s.backend).prepare(s, a, c))
    ended: BaseException | None = None
    try:
        pbatch = art.fixed_batch or PARITY_BATCH
        parity_x = art.sample_input(pbatch, seed=99)
        for spec in config.runners:
            if should_stop and should_stop():
                outcome.interrupted = True
                break
            backend = get_backend(spec.backend)
            try:
                backend.check(spec)
                backend.availability(spec.device).raise_if_missing(
                    f"{backend.TITLE or backend.NAME} on {spec.device}"
                )
            except EngineError as exc:
                outcome.errors.append(exc)
                for b in batches:
                    emit(_skip(_base_row(art, spec, b, config), exc))
                continue
            open_run()
            ctx = PrepareContext(
                batches=tuple(batches),
                calibration_dir=config.calibration_dir,
                progress=progress,
            )
            per_batch = bool(getattr(backend, "per_batch", lambda s: False)(spec))
            runner: Runner | None = None
            parity = None
            try:
                if not per_batch:
                    progress(f"preparing {spec.label}")
                    runner = factory(spec, art, ctx)
                if config.parity:
                    if reference is None:
                        progress("computing the FP32 reference outputs")
                        reference = reference_outputs(art, parity_x)
                    if per_batch:  # a graph is captured per shape: check the same graph uncaptured
                        pctx = replace(ctx, batches=(pbatch,))
                        with factory(spec.with_options(cuda_graph=False), art, pctx) as prunner:
                            parity = compare(reference, prunner.infer(parity_x), spec.precision)
                    else:
                        parity = compare(reference, runner.infer(parity_x), spec.precision)
            except Exception as exc:  # noqa: BLE001 - a backend that fails to build must not end the sweep
                if runner is not None and runner_factory is None:
                    runner.close()
                err = (
                    exc
                    if isinstance(exc, EngineError)
                    else EngineError(
                        f"{spec.label} failed to build", f"{type(exc).__name__}: {exc}"
                    )
                )
                outcome.errors.append(err)
                for b in batches:
                    emit(_fail(_base_row(art, spec, b, config), err))
                continue
            for b in batches:
                row = _base_row(art, spec, b, config)
                if should_stop and should_stop():
                    outcome.interrupted = True
                    break
                try:
                    if runner is None or per_batch:
                        if runner is not None and runner_factory is None:
                            runner.close()
                        progress(f"preparing {spec.label}")
                        # a per-batch runner is built (captured, compiled) for its batch alone
                        bctx = replace(ctx, batches=(b,)) if per_batch else ctx
                        runner = factory(spec, art, bctx)
                    progress(f"timing {spec.label} at batch {b}")
                    with device_lock(spec.device, on_wait=progress):
                        timing = time_point(runner, art.sample_input(b), config.bench)
                    row.provider = runner.provider
                    for k, v in vars(timing).items():
                        setattr(row, k, v)
                    annotate_point(row, runner, gflop, env.get("gpu_name") or env.get("gpu"))
                    if parity is not None:
                        row.parity_ok = parity.ok
                        row.max_rel_err = parity.max_rel_err
                        row.cosine = parity.cosine
                        row.top1_agree = parity.top1_agree
                except EngineError as exc:
                    outcome.errors.append(exc)
                    row = _fail(row, exc)
                except Exception as exc:  # noqa: BLE001 - a backend fault must not end the sweep
                    if is_oom(exc):
                        row.status, row.reason = "oom", f"out of memory at batch {b}"
                        if runner is not None and runner_factory is None:
                            runner.close()
                        runner = None
                        release_memory()
                    else:
                        row.status = "failed"
                        row.reason = (
                            f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                            if str(exc)
                            else type(exc).__name__
                        )
                if row.status == "oom":
                    # Again, now: inside the except block the exception's frames still held
                    # this batch's device tensors, so the first release could not free them.
                    release_memory()
                emit(row)
            if runner is not None and runner_factory is None:
                runner.close()
            release_memory()
            outcome.notes.extend(n for n in ctx.notes if n not in outcome.notes)
            if outcome.interrupted:
                break
    except KeyboardInterrupt as exc:
        outcome.interrupted, ended = True, exc
    except BaseException as exc:
        ended = exc
        raise
    finally:
        _record_end(store, run_id, ended, outcome)
    return outcome


def _record_end(store: Any, run_id: int | None, ended: BaseException | None, outcome) -> None:
    # Every way out of a sweep says how it ended; recording it must not hide the reason
    # (on a full disk the status update can fail too).
    status, reason = end_of(ended, outcome.interrupted)
    outcome.end_reason = reason
    if store is None or run_id is None:
        return
    try:
        store.finish_run(run_id, status, reason)
    except EngineError as exc:
        outcome.notes.append(f"run {run_id} could not be marked {status}: {exc.user_message()}")


def _cuda_ok(device: str) -> bool:
    if not device.startswith("cuda"):
        return False
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _skip(row: ResultRow, exc: EngineError) -> ResultRow:
    row.status, row.reason = "skipped", exc.user_message()
    return row


def _fail(row: ResultRow, exc: EngineError) -> ResultRow:
    row.status, row.reason = "failed", exc.user_message()
    return row
