"""What a sweep will run and the rows it makes: one planner, one row builder, one callbacks object.

The sweep, the worker (for the point a crashed child was on) and the quoted reference
study all build their :class:`~engine.core.config.ResultRow` through :func:`new_row`; the
sweep and the worker agree on the order of points through :func:`plan_points`. The
front ends hand one :class:`Callbacks` object to a launcher instead of three loose
callables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.core.config import ResultRow, RunnerSpec, SweepConfig

ProgressFn = Callable[[int, int, str], None]


@dataclass
class Callbacks:
    """How a running sweep talks to its caller; every part is optional."""

    progress: ProgressFn | None = None  # (points done, points in all, message)
    on_row: Callable[[ResultRow], None] | None = None
    should_stop: Callable[[], bool] | None = None

    def say(self, done: int, total: int, message: str) -> None:
        if self.progress:
            self.progress(done, total, message)

    def row(self, row: ResultRow) -> None:
        if self.on_row:
            self.on_row(row)

    def stop_requested(self) -> bool:
        return bool(self.should_stop and self.should_stop())


def plan_points(
    config: SweepConfig, batches: list[int] | None = None
) -> list[tuple[RunnerSpec, int]]:
    """The (runner, batch) points in the order a sweep measures and stores them."""
    bs = list(batches) if batches is not None else sorted({int(b) for b in config.batches})
    return [(spec, b) for spec in config.runners for b in bs]


def runner_grid(
    backends: list[str],
    devices: list[str],
    precisions: list[str],
    options: dict[str, Any] | None = None,
    model: Any = None,
    only_runnable: bool = False,
) -> tuple[list[RunnerSpec], list[str]]:
    """Device × backend × precision specs (in that order), each with ``options``.

    With ``only_runnable`` a combination its backend refuses (``check``, ``check_model``)
    is left out with a reason, as the dashboard does; otherwise the sweep stores it as
    a skipped row with the reason, as the CLI does.
    """
    from engine.backends import get_backend
    from engine.core.errors import EngineError

    pairs = tuple(sorted((options or {}).items()))
    specs, left_out = [], []
    for device in devices:
        for name in backends:
            backend = get_backend(name)
            for precision in precisions:
                spec = RunnerSpec(name, device, precision, pairs)
                if only_runnable:
                    own, _ = backend.own_spec(spec)
                    try:
                        backend.check(own)
                        if model is not None:
                            backend.check_model(model)
                    except EngineError as exc:
                        left_out.append(f"{name} {precision}: {exc.why or exc.what}")
                        continue
                specs.append(spec)
    return specs, left_out


def normalise(config: SweepConfig) -> tuple[SweepConfig, list[str]]:
    """Each runner once, with only its backend's own non-default options; a note per drop
    and per repeated runner (``--backend ort,ort`` or ``--precision fp32,fp32``).

    Unknown backend names are a usage error (BadInput), not a skipped row.
    """
    from dataclasses import replace

    from engine.backends import describe, get_backend
    from engine.core.errors import BadInput

    if not config.runners:
        raise BadInput("no backend configuration to run", fix="pick at least one backend")
    notes: list[str] = []
    asked: dict[RunnerSpec, int] = {}  # in order; a repeat is measured once (30,000 × ort was)
    for spec in config.runners:
        own, dropped = get_backend(spec.backend).own_spec(spec)
        asked[own] = asked.get(own, 0) + 1
        notes += [n for n in dropped if n not in notes]
    notes += [
        f"{describe(s)} was asked for {n} times: measured once" for s, n in asked.items() if n > 1
    ]
    return replace(config, runners=list(asked)), notes
