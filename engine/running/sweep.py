"""A sweep: runner configurations × batch sizes, timed, checked for parity, stored.

Every front end reaches :func:`run_sweep` through a launcher (:mod:`engine.running.launch`)
with a :class:`~engine.running.plan.Plan`, measured as it is: its runners were reduced to
their backends' own options when it was made (others ignored with a note, see
:mod:`engine.core.options`); combinations that cannot run are stored as skipped
rows with the reason; a backend that fails to build or run is a failed row and the
others go on; an out-of-memory batch is an ``oom`` row and the sweep goes on; each row
is committed as soon as it is measured.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from engine.artifacts.flops import gflop_per_image
from engine.artifacts.models import ModelArtifacts, check_batches, load_artifacts
from engine.backends import (
    Backend,
    PrepareContext,
    Runner,
    backend_versions,
    describe,
    get_backend,
)
from engine.core.config import Point, ResultRow, RunnerSpec, SweepConfig
from engine.core.devices import is_cuda, parse_device
from engine.core.errors import BadInput, EngineError
from engine.core.limits import check_input_fits, check_threads
from engine.core.parity import compare
from engine.core.rows import ModelFacts, new_row
from engine.hardware.env import fingerprint, loaded_torch
from engine.hardware.machine import annotate_point, busy_check
from engine.running.locks import device_lock
from engine.running.measure import measure_point
from engine.running.notetaker import NoteTaker
from engine.running.plan import Callbacks, Plan, ProgressFn, plan_of_config
from engine.running.reference import (
    infer_in_calls,
    parity_batch,
    parity_images,
    reference_outputs,
)
from engine.running.reproduce import reproduce_command
from engine.storage.runend import end_of
from engine.storage.sqlite_guard import StoreLocked, WalLost

RunnerFactory = Callable[[RunnerSpec, ModelArtifacts, PrepareContext], Runner]
__all__ = ["ProgressFn", "SweepOutcome", "reproduce_command", "run_sweep"]


@dataclass
class SweepOutcome:
    run_id: int | None
    rows: list[ResultRow] = field(default_factory=list)
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    errors: list[EngineError] = field(default_factory=list)
    end_reason: str = ""  # why the run stopped early (engine/storage/runend.py), "" when done

    @property
    def measured(self) -> list[ResultRow]:
        return [r for r in self.rows if r.status == "ok"]


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
    torch = loaded_torch()  # a process that never loaded PyTorch holds no cache
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _error_of(exc: Exception, spec: RunnerSpec) -> EngineError:
    if not isinstance(exc, EngineError):
        exc = get_backend(spec.backend).explain(exc)  # a model the library refuses: BadInput
    if isinstance(exc, EngineError):
        return exc
    why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
    return EngineError(f"{describe(spec)} failed to build", why)


def _fault_reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


LOCK_WAITS = 10  # a held store lock: waited for up to this many times SQLite's own wait


class _Sweep:
    """One sweep's state: where rows go, the reference outputs, how far it got."""

    def __init__(self, config, art, batches, store, open_run, cb, factory, outcome) -> None:
        self.config, self.art, self.batches = config, art, batches
        self.gflop = gflop_per_image(art)
        self.gpu_name: str | None = None
        self.store, self.open_run, self.cb = store, open_run, cb
        self.run_id: int | None = None
        # A run is stored once something is attempted: a sweep whose every configuration
        # was refused before running (TensorRT on a machine without it) is an error, not a run.
        self.pending: list[ResultRow] = []
        self.own_factory = factory is None
        self.factory = factory or (lambda s, a, c: get_backend(s.backend).prepare(s, a, c))
        self.outcome = outcome
        self.said = NoteTaker(outcome.notes, art.notes)  # engine/running/notetaker.py
        self.facts = ModelFacts.of_artifacts(art)
        self.total = len(config.runners) * len(batches)
        self.done = 0
        self.pbatch = parity_batch(art)
        # parity batch → (input, FP32 reference outputs once computed)
        self.judged: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

    def progress(self, msg: str) -> None:
        self.cb.say(self.done, self.total, msg)
        self.take_notes()  # a backend's ctx.say is a progress line too

    def take_notes(self) -> None:
        """The notes said since the last look into the outcome, and stored at once."""
        if self.said.take():
            _save_notes(self.store, self.run_id, self.outcome.notes)

    def emit(self, row: ResultRow) -> None:
        self.take_notes()  # what was said while this point was made lands before it
        self.done += 1
        if self.store is not None and self.run_id is not None:
            self.store_row(row)
        elif self.store is not None:
            self.pending.append(row)
        self.outcome.rows.append(row)
        self.cb.row(row)
        self.progress(f"{row.backend} {row.precision} batch {row.batch}: {row.status}")

    def store_row(self, row: ResultRow) -> None:
        """Commit ``row``; a store another program keeps locked is waited for, with a note,
        up to a bound (LOCK_WAITS times the store's own wait), then the sweep stops with
        every point committed before kept. Each point is checkpointed into the database
        file as it lands, so a WAL another program deletes loses at most the point in
        flight, and the sweep stops saying exactly which points are stored."""
        if _lost_wal(self.store):
            raise self.wal_lost(row)
        for attempt in range(LOCK_WAITS):
            try:
                self.store.add_row(self.run_id, row)
                break
            except StoreLocked as exc:
                waited = (attempt + 1) * float(getattr(self.store, "timeout_s", 30.0))
                if attempt + 1 == LOCK_WAITS:
                    kept = len(self.outcome.rows)
                    raise StoreLocked(
                        f"the results database stayed locked by another program for {waited:.0f} s",
                        f"the {kept} point(s) measured before are stored; the point in flight"
                        f" ({row.backend} {row.precision} batch {row.batch}) was not",
                        "let the other program finish (or close it), then run the rest again",
                    ) from exc
                self.progress(
                    f"note: the results database is locked by another program; waited"
                    f" {waited:.0f} s, waiting again (the measured points are safe)"
                )
        _checkpoint(self.store)

    def wal_lost(self, row: ResultRow) -> WalLost:
        name = self.store.path.name
        kept = len(self.store.rows(self.run_id))
        return WalLost(
            f"the results database {name} lost its write-ahead log during the sweep",
            f"{name}-wal was deleted or replaced by another program while the sweep wrote"
            f" to it; run {self.run_id} keeps the {kept} point(s) stored before (each one"
            f" was copied into {name} as it landed); the point in flight ({row.backend}"
            f" {row.precision} batch {row.batch}) was not stored",
            "keep other programs (cleaners, scripts) off the store's -wal and -shm files"
            " while it is in use, then run the rest again",
        )

    def row(self, spec: RunnerSpec, batch: int, **values: Any) -> ResultRow:
        return new_row(self.facts, spec, batch, self.config, **values)

    def close(self, runner: Runner | None) -> None:
        if runner is not None and self.own_factory:
            runner.close()

    def emit_all(self, spec: RunnerSpec, status: str, err: EngineError) -> None:
        self.outcome.errors.append(err)
        for b in self.batches:
            self.emit(self.row(spec, b, status=status, reason=err.user_message()))

    def refuse(self, spec: RunnerSpec, batch: int, err: EngineError) -> None:
        """A batch this model cannot run (fixed inside its graph): a row with the reason."""
        self.outcome.errors.append(err)
        self.emit(self.row(spec, batch, status=err.row_status, reason=err.user_message()))

    def run_spec(self, spec: RunnerSpec) -> None:
        backend = get_backend(spec.backend)
        try:
            backend.ready(spec, self.config.model)
        except EngineError as exc:
            self.emit_all(spec, "skipped", exc)
            return
        refused = {b: why for b in self.batches if (why := self.art.batch_refusal(b))}
        if len(refused) == len(self.batches):  # nothing to build: every batch is refused
            for b in self.batches:
                self.refuse(spec, b, refused[b])
            return
        self.start_run()
        ctx = PrepareContext(
            batches=tuple(b for b in self.batches if b not in refused),
            calibration_dir=self.config.calibration_dir,
            progress=self.progress,
            settings=self.config.bench.to_dict(),  # the thread count reaches the runner here
        )
        self.said.listen(ctx.notes)  # its copies per batch share this list
        per_batch = backend.per_batch(spec)
        runner: Runner | None = None
        kept: dict[int, Runner] = {}  # a per-batch runner parity built for a swept batch
        try:
            if not per_batch:
                self.progress(f"preparing {describe(spec)}")
                runner = self.factory(spec, self.art, ctx)
            parity = self.parity(backend, spec, runner, ctx, kept) if self.config.parity else None
        except Exception as exc:  # noqa: BLE001 - a backend that fails to build must not end the sweep
            self.close(runner)
            err = _error_of(exc, spec)  # a setting that cannot apply here is skipped, not failed
            self.emit_all(spec, err.row_status, err)
            return
        for b in self.batches:
            if self.cb.stop_requested():
                self.outcome.interrupted = True
                break
            if b in refused:
                self.refuse(spec, b, refused[b])
                continue
            if b in kept:  # timed as built for parity: no second compile of this shape
                self.close(runner)
                runner = self.time_point(spec, b, kept.pop(b), ctx, False, parity)
                continue
            runner = self.time_point(spec, b, runner, ctx, per_batch, parity)
        self.close(runner)
        for unused in kept.values():
            self.close(unused)
        release_memory()
        self.take_notes()

    def start_run(self) -> None:
        if self.store is None or self.run_id is not None:
            return
        self.run_id = self.outcome.run_id = self.open_run()
        self.said.take()
        _save_notes(self.store, self.run_id, self.outcome.notes)  # what was said before it
        for held in self.pending:
            self.store.add_row(self.run_id, held)
        _checkpoint(self.store)

    def parity(self, backend: type[Backend], spec, runner, ctx, kept: dict[int, Runner]):
        """``spec``'s parity against the FP32 reference. A per-batch runner built for parity
        at one of the sweep's batches, as ``spec`` itself, is put in ``kept`` for its point."""
        pbatch = (
            self.pbatch if self.art.graph_batch else backend.parity_batch(spec, tuple(self.batches))
        ) or self.pbatch
        x, reference = self.judged.get(pbatch) or (parity_images(self.art, pbatch), None)
        if reference is None:
            self.progress("computing the FP32 reference outputs")
            reference = reference_outputs(self.art, x)
            self.judged[pbatch] = (x, reference)
        judged_at = backend.parity_precision(spec)
        if runner is None:  # a graph is captured per shape: check the same graph uncaptured
            pspec = backend.parity_spec(spec)
            prunner = self.factory(pspec, self.art, replace(ctx, batches=(pbatch,)))
            try:
                result = compare(reference, infer_in_calls(self.art, prunner.infer, x), judged_at)
            except BaseException:
                prunner.close()
                raise
            if pspec == spec and pbatch in self.batches:
                kept[pbatch] = prunner  # then closed as the point's runner is
            else:
                prunner.close()
            return result
        return compare(reference, infer_in_calls(self.art, runner.infer, x), judged_at)

    def time_point(self, spec, b, runner, ctx, per_batch, parity) -> Runner | None:
        row = self.row(spec, b)
        try:
            if runner is None or per_batch:
                self.close(runner)
                self.progress(f"preparing {describe(spec)}")
                # a per-batch runner is built (captured, compiled) for its batch alone
                runner = self.factory(
                    spec, self.art, replace(ctx, batches=(b,)) if per_batch else ctx
                )
            self.progress(f"timing {describe(spec)} at batch {b}")
            with device_lock(spec.device, on_wait=self.progress):
                timing, machine = measure_point(runner, self.art.sample_input(b), self.config.bench)
            row.point.provider = runner.provider
            drop_inert_options(row.point, runner)
            if ctx.row_notes:  # what ran beyond the model: the row says it too
                row.point.reason = "; ".join(r for r in (row.point.reason, *ctx.row_notes) if r)
            # The row is its parts: this timing and machine state, this spec's parity (a
            # copy per row).
            row.timing, row.machine = timing, machine
            row.parity = replace(parity) if parity is not None else None
            math = get_backend(spec.backend).parity_precision(spec)
            annotate_point(row, runner, self.gflop, self.gpu_name, math)
        except EngineError as exc:
            self.outcome.errors.append(exc)
            row.status, row.reason = exc.row_status, exc.user_message()
        except Exception as exc:  # noqa: BLE001 - a backend fault must not end the sweep
            explained = get_backend(spec.backend).explain(exc)
            if isinstance(explained, EngineError):  # the model's fault, in one line
                self.outcome.errors.append(explained)
                row.status, row.reason = explained.row_status, explained.user_message()
            elif is_oom(exc):
                row.status, row.reason = "oom", f"out of memory at batch {b}"
                self.close(runner)
                runner = None
                release_memory()
            else:
                row.status, row.reason = "failed", _fault_reason(exc)
        if row.status == "oom":
            # Again, now: inside the except block the exception's frames still held
            # this batch's device tensors, so the first release could not free them.
            release_memory()
        self.emit(row)
        return runner


def _lost_wal(store: Any) -> bool:
    # Stores of our own; a caller's stand-in store (an object with add_row) has no WAL.
    return bool(getattr(store, "lost_wal", None) and store.lost_wal())


def _save_notes(store: Any, run_id: int | None, notes: list[str]) -> None:
    """The run's notes so far into the store (those it holds are not added again); best
    effort: a locked store gets them at the next save or when the run ends."""
    if store is None or run_id is None or not getattr(store, "add_notes", None):
        return  # a caller's stand-in store (an object with add_row) keeps no notes
    with contextlib.suppress(StoreLocked):
        store.add_notes(run_id, notes)


def _checkpoint(store: Any) -> None:
    if getattr(store, "checkpoint", None):
        with contextlib.suppress(StoreLocked):  # best effort: the next point copies the rest
            store.checkpoint()


def drop_inert_options(point: Point, runner: Runner) -> None:
    """A point names only the options that took effect; the others go into its reason."""
    inert = runner.inert_options()
    if not inert:
        return
    point.options = {k: v for k, v in point.options.items() if k not in inert}
    said = "; ".join(inert[k] for k in sorted(inert))
    point.reason = f"had no effect, left out of the label: {said}"


def check_fits_devices(hw: tuple[int, int], channels: int, batch: int, devices: list[str]) -> None:
    """Input plus activations of the largest batch against each target device's free
    memory, before a run exists or memory is taken (the host's for the CPU)."""
    for device in sorted(set(devices)):
        free, where = None, "this machine"
        if is_cuda(device) and _cuda_ok(device):
            import torch

            free = torch.cuda.mem_get_info(parse_device(device)[1])[0]
            where = device
        check_input_fits(batch, *hw, channels, free, where)


def run_sweep(
    config: SweepConfig | Plan,
    store: Any = None,
    command: str | None = None,
    callbacks: Callbacks | None = None,
    runner_factory: RunnerFactory | None = None,
    artifacts: ModelArtifacts | None = None,
) -> SweepOutcome:
    """Measure a plan in this process, as it is; each row goes to ``store`` as it lands.

    A config made by hand is planned first (:func:`plan_of_config`, with ``command`` as
    its stored command); a :class:`Plan` is never planned, reduced or rewritten again.
    """
    cb = callbacks or Callbacks()
    plan = config if isinstance(config, Plan) else plan_of_config(config, command=command)
    config = plan.config
    if not config.runners:
        raise BadInput("no backend configuration to run", fix="pick at least one backend")
    if cb.stop_requested():  # asked while starting (a Ctrl-C during the worker's imports)
        why = cb.why_stopped() or end_of(None, True)[1]
        return SweepOutcome(None, interrupted=True, end_reason=why)
    devices = [r.device for r in config.runners]
    if artifacts is None and not config.model.onnx_path:
        # a torchvision model's size is known before it is built and exported (30 s at
        # 1024 px on 2 cores), so a batch that cannot fit is refused at once
        check_fits_devices(config.model.hw, 3, max(check_batches(config.batches, None)), devices)
    art = artifacts or load_artifacts(config.model)
    if art.spec != config.model:  # an ONNX file's declared size, put right on loading
        config = dataclasses.replace(config, model=art.spec)
        plan = dataclasses.replace(plan, config=config)
    batches = check_batches(config.batches, art.fixed_batch)
    check_fits_devices(art.image_hw, art.channels, max(batches), devices)
    if config.bench.threads:
        import torch

        check_threads(config.bench.threads)
        torch.set_num_threads(config.bench.threads)
    gpu = next((r.device for r in config.runners if is_cuda(r.device)), "cpu")
    # The cached fingerprint itself carries the last sweep's busy check (benchmarks/zoo.py
    # reads it there); the stored environment adds every backend's library versions.
    # PyTorch's facts where it is loaded (a torchvision model, any CUDA run): an ONNX file
    # on ONNX Runtime alone never loads it, so its sweep does not import it for them (1.2 s)
    env = fingerprint(gpu if _cuda_ok(gpu) else "cpu", torch_facts=loaded_torch() is not None)
    busy = busy_check(gpu_index=parse_device(gpu)[1] if _cuda_ok(gpu) else None)
    env["busy_check"] = (
        busy.to_dict()
    )  # measured now, stored with the run (engine.hardware.machine)

    def open_run() -> int:
        stored_env = {**env, **backend_versions()}
        configuration = plan.stored_configuration()
        return store.create_run(configuration, stored_env, plan.command, label=art.spec.label)

    outcome = SweepOutcome(None, notes=[*busy.notes, *art.notes, *plan.notes])
    sweep = _Sweep(config, art, batches, store, open_run, cb, runner_factory, outcome)
    sweep.gpu_name = env.get("gpu_name") or env.get("gpu")
    ended: BaseException | None = None
    try:
        for spec in config.runners:
            if cb.stop_requested():
                outcome.interrupted = True
                break
            sweep.run_spec(spec)
            if outcome.interrupted:
                break
    except KeyboardInterrupt as exc:
        outcome.interrupted, ended = True, exc
    except BaseException as exc:
        ended = exc
        raise
    finally:
        sweep.said.take()  # said since the last look: stored with how the run ended
        _record_end(store, sweep.run_id, ended, outcome, cb)
    return outcome


def _record_end(
    store: Any, run_id: int | None, ended: BaseException | None, outcome, cb: Callbacks
) -> None:
    # Every way out of a sweep says how it ended; recording it must not hide the reason
    # (on a full disk the status update can fail too).
    status, reason = end_of(ended, outcome.interrupted)
    if ended is None and outcome.interrupted:  # asked to stop: by whom, said once
        reason = cb.why_stopped() or reason
    outcome.end_reason = reason
    if store is None or run_id is None:
        return
    with contextlib.suppress(EngineError):  # the end is recorded even when notes cannot be
        _save_notes(store, run_id, outcome.notes)
    try:
        store.finish_run(run_id, status, reason)
    except EngineError as exc:
        outcome.notes.append(f"run {run_id} could not be marked {status}: {exc.user_message()}")


def _cuda_ok(device: str) -> bool:
    if not is_cuda(device):
        return False
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False
