"""Where a sweep runs: in this process, or in a worker process that a native crash cannot take down.

Both front ends hand a :class:`Job` (what to run, plain or auto mode) and one
:class:`~engine.plan.Callbacks` object to a launcher. :class:`InlineLauncher` calls
:func:`engine.sweep.run_sweep` here; :class:`WorkerLauncher` runs it in a
``python -m engine.worker`` child (:mod:`engine.worker`), which commits each row to the
store itself, so a segfault in a backend library becomes a failed row and every row
measured before it is kept. Auto mode goes through the same launcher: the candidates
are planned here, measured as one sweep by the launcher, and the ladder is computed
from the rows.

The CLI uses the worker by default (``--inline`` runs in-process); the dashboard uses
the worker for every sweep. What the worker costs: starting the child (a new Python
that imports torch, onnxruntime and the engine) adds about
:data:`WORKER_START_COST_S` seconds per sweep, measured on a 2-core CPU machine
(2026-11-30, resnet18 at 32 px, one point: ``--inline`` against the default, median
of 3; ``tests/test_launch.py`` has the measuring test).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from engine.config import SweepConfig
from engine.plan import Callbacks
from engine.sweep import SweepOutcome

WORKER_START_COST_S = 2.5
__all__ = ["Callbacks", "InlineLauncher", "Job", "Launcher", "WorkerLauncher", "launcher_for"]


@dataclass
class Job:
    """What to run: a sweep as configured, or auto mode over the config's devices and backends."""

    config: SweepConfig
    auto: bool = False
    include_compile: bool = False  # auto mode: also try torch.compile
    command: str | None = None  # the command line to store; None: the reproduce command


class Launcher(ABC):
    """Runs a job's sweep somewhere; rows go to ``store`` as they land."""

    @abstractmethod
    def sweep(
        self, config: SweepConfig, store: Any, command: str | None, callbacks: Callbacks
    ) -> SweepOutcome:
        """Measure ``config`` as one sweep."""

    def launch(self, job: Job, store: Any, callbacks: Callbacks | None = None) -> SweepOutcome:
        cb = callbacks or Callbacks()
        if job.auto:
            from engine.auto import run_auto

            return run_auto(
                job.config,
                store,
                job.command,
                cb,
                include_compile=job.include_compile,
                sweep=self.sweep,
            )
        return self.sweep(job.config, store, job.command, cb)


class InlineLauncher(Launcher):
    """In this process: fastest to start, but a native crash ends the caller too."""

    def sweep(self, config, store, command, callbacks) -> SweepOutcome:
        from engine.sweep import run_sweep

        return run_sweep(config, store=store, command=command, callbacks=callbacks)


class WorkerLauncher(Launcher):
    """In a child process; ``timeout_s`` (None: no limit) kills a sweep that hangs."""

    def __init__(self, timeout_s: float | None = None) -> None:
        self.timeout_s = timeout_s

    def sweep(self, config, store, command, callbacks) -> SweepOutcome:
        from engine.worker import run_sweep_in_worker

        if store is None:
            from engine.errors import BadInput

            raise BadInput("a worker sweep needs a results database", fix="pass a Store")
        return run_sweep_in_worker(
            config, str(store.path), command, callbacks, timeout_s=self.timeout_s
        )


def launcher_for(inline: bool = False, timeout_s: float | None = None) -> Launcher:
    return InlineLauncher() if inline else WorkerLauncher(timeout_s)
