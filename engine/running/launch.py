"""Where a sweep runs: in this process, or in a worker process that a native crash cannot take down.

Both front ends hand a :class:`Job` (a :class:`~engine.running.plan.Plan`, plain or auto mode) and one
:class:`~engine.running.plan.Callbacks` object to a launcher. :class:`InlineLauncher` calls
:func:`engine.running.sweep.run_sweep` here; :class:`WorkerLauncher` runs it in a
``python -m engine.running.worker`` child (:mod:`engine.running.worker`), which commits each row to the
store itself, so a segfault in a backend library becomes a failed row and every row
measured before it is kept. Auto mode goes through the same launcher: the candidates
are in the plan, measured as one sweep by the launcher, and the ladder is computed
from the rows.

The CLI uses the worker by default (``--inline`` runs in-process); the dashboard uses
the worker for every sweep. What the worker costs: starting the child (a new Python
that imports torch, onnxruntime and the engine, fingerprints the machine and loads the
model again) added a median of 9.5 s (8.2–15.8 s over 5 rounds) to a one-point sweep of
resnet18 at 32 px on the CPU, on a shared 2-core machine under a load average of about 9
(2026-11-30; ``benchmarks/worker_start_cost.py``, results in
``benchmarks/results/cpu/worker_start_cost.json``); it was not measured on an idle
machine. It is paid once per sweep, and buys a failed row instead of a lost process
when a backend library crashes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from engine.core.config import SweepConfig
from engine.running.plan import Callbacks, Plan, plan_of_config
from engine.running.sweep import SweepOutcome

__all__ = ["Callbacks", "InlineLauncher", "Job", "Launcher", "WorkerLauncher", "launcher_for"]


@dataclass
class Job:
    """What to run: a :class:`Plan` (the front ends make one), or a config made by hand
    with auto mode, the compile candidates and the command to store said here."""

    config: SweepConfig | Plan
    auto: bool = False
    include_compile: bool = False  # auto mode: also try torch.compile
    command: str | None = None  # the command line to store; None: the reproduce command

    def plan(self) -> Plan:
        if isinstance(self.config, Plan):
            return self.config
        return plan_of_config(self.config, self.auto, self.include_compile, self.command)


class Launcher(ABC):
    """Runs a plan's sweep somewhere, as it is; rows go to ``store`` as they land."""

    @abstractmethod
    def sweep(self, plan: Plan, store: Any, callbacks: Callbacks) -> SweepOutcome:
        """Measure ``plan`` as one sweep."""

    def launch(self, job: Job, store: Any, callbacks: Callbacks | None = None) -> SweepOutcome:
        plan = job.plan()
        outcome = self.sweep(plan, store, callbacks or Callbacks())
        if plan.auto:  # the ladder is computed from the rows, here
            from engine.running.auto import auto_outcome

            return auto_outcome(outcome)
        return outcome


class InlineLauncher(Launcher):
    """In this process: fastest to start, but a native crash ends the caller too."""

    def sweep(self, plan, store, callbacks) -> SweepOutcome:
        from engine.running.sweep import run_sweep

        return run_sweep(plan, store=store, callbacks=callbacks)


class WorkerLauncher(Launcher):
    """In a child process; ``timeout_s`` (None: no limit) kills a sweep that hangs."""

    def __init__(self, timeout_s: float | None = None) -> None:
        self.timeout_s = timeout_s

    def sweep(self, plan, store, callbacks) -> SweepOutcome:
        from engine.running.worker import run_sweep_in_worker

        if store is None:
            from engine.core.errors import BadInput

            raise BadInput("a worker sweep needs a results database", fix="pass a Store")
        return run_sweep_in_worker(
            plan, str(store.path), callbacks=callbacks, timeout_s=self.timeout_s
        )


def launcher_for(inline: bool = False, timeout_s: float | None = None) -> Launcher:
    return InlineLauncher() if inline else WorkerLauncher(timeout_s)
