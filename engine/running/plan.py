"""What a sweep will run: one :class:`Plan`, made once, and one callbacks object.

A front end turns the user's :class:`~engine.core.config.Choice` into a :class:`Plan` with
:func:`make_plan`, once: the grid is planned (:func:`runner_grid`), each runner reduced to
its backend's own options (:func:`normalise`), auto mode's candidates laid out
(:func:`plan_auto`) and the reproducing command written. The plan is then carried as it
is: to the launcher, through the worker child's stdin, and into the store (the run's
configuration and command). Nothing downstream plans, normalises or rewrites it again.
The sweep and the worker agree on the order of points through :func:`plan_points`. The
front ends hand one :class:`Callbacks` object to a launcher instead of three loose
callables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from engine.core.config import Choice, ResultRow, RunnerSpec, SweepConfig

ProgressFn = Callable[[int, int, str], None]


@dataclass
class Callbacks:
    """How a running sweep talks to its caller; every part is optional."""

    progress: ProgressFn | None = None  # (points done, points in all, message)
    on_row: Callable[[ResultRow], None] | None = None
    should_stop: Callable[[], bool] | None = None
    # why the sweep was asked to stop, stored once with the run's end ("" : "stopped")
    stop_reason: Callable[[], str] | None = None

    def say(self, done: int, total: int, message: str) -> None:
        if self.progress:
            self.progress(done, total, message)

    def row(self, row: ResultRow) -> None:
        if self.on_row:
            self.on_row(row)

    def stop_requested(self) -> bool:
        return bool(self.should_stop and self.should_stop())

    def why_stopped(self) -> str:
        return self.stop_reason() if self.stop_reason else ""


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


def plan_auto(
    config: SweepConfig, include_compile: bool = False, said: list[str] | None = None
) -> SweepConfig:
    """The one sweep auto mode measures: the candidates for the config's devices and backends.

    The config's model, batches and timing settings are used as given; its runner list
    only says which devices and backends to consider. Parity is always on: a faster
    configuration that computes something else must never win. Candidates that compile
    for minutes (of any backend) are tried when their engines are cached for these
    batches, or when ``include_compile`` asks to build them; ``said`` receives a note on
    each: cached, to be built, or left out and why.
    """
    from engine.backends import (
        DEFAULT_BACKENDS,
        auto_candidates,
        backend_names,
        get_backend,
    )
    from engine.core.errors import BadInput

    devices = list(dict.fromkeys(r.device for r in config.runners)) or ["cpu"]
    backends = list(dict.fromkeys(r.backend for r in config.runners)) or None
    runs_here = [
        n for n in backend_names() if not config.model.onnx_path or get_backend(n).RUNS_ONNX_FILES
    ]
    if config.model.onnx_path:
        backends = [n for n in (backends or runs_here) if n in runs_here]
    runners: list[RunnerSpec] = []
    notes: list[str] = []
    model, batches = _LazyArtifacts(config), tuple(config.batches)
    for device in devices:
        specs, why = auto_candidates(
            device, backends, include_compile, model, batches, threads=config.bench.threads
        )
        notes += why
        if backends is not None:  # the others' slow candidates: tried when cached or asked
            others = [n for n in runs_here if n not in backends]
            slow, why = auto_candidates(
                device, others, include_compile, model, batches, True, config.bench.threads
            )
            specs, notes = specs + slow, notes + why
        runners += specs
    if not runners:
        raise BadInput(
            "auto mode has no candidate for these backends",
            "; ".join(notes) or f"asked for {', '.join(backends or [])}",
            f"use --backend {','.join(DEFAULT_BACKENDS)} with --auto",
        )
    if said is not None:
        said += [n for n in notes if n not in said]
    return replace(config, runners=runners, parity=True)


class _LazyArtifacts:
    """The config's model artifacts, loaded only if a backend asks about cached engines."""

    def __init__(self, config: SweepConfig) -> None:
        self.config, self.art = config, None

    def __getattr__(self, name: str) -> Any:
        if self.art is None:
            from engine.artifacts.models import load_artifacts

            self.art = load_artifacts(self.config.model)
        return getattr(self.art, name)


@dataclass
class Plan:
    """What a sweep measures, made once from the user's choice and carried as it is.

    ``config`` holds the runners measured (auto mode: its candidates), each with only its
    backend's own options; ``chosen`` the runnable grid the user picked (what a live
    measurement times; the same as ``config.runners`` outside auto mode); ``left_out``
    what the grid left out and why; ``notes`` options ignored and repeats measured once;
    ``command`` the CLI command that makes this plan again.
    """

    config: SweepConfig
    command: str
    left_out: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    auto: bool = False
    chosen: list[RunnerSpec] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "command": self.command,
            "left_out": list(self.left_out),
            "notes": list(self.notes),
            "auto": self.auto,
            "chosen": [r.to_dict() for r in self.chosen],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return cls(
            config=SweepConfig.from_dict(data["config"]),
            command=str(data.get("command") or ""),
            left_out=[str(x) for x in data.get("left_out", [])],
            notes=[str(x) for x in data.get("notes", [])],
            auto=bool(data.get("auto", False)),
            chosen=[RunnerSpec.from_dict(r) for r in data.get("chosen", [])],
        )

    def stored_configuration(self) -> dict[str, Any]:
        """The run's configuration in the store: the config measured, and the plan's own
        words (what was left out, the notes, auto mode) under ``plan``."""
        extra = {"left_out": list(self.left_out), "notes": list(self.notes), "auto": self.auto}
        return {**self.config.to_dict(), "plan": extra}


def make_plan(choice: Choice, command: str | None = None) -> Plan:
    """The plan of ``choice``: the grid planned once (the only call of :func:`runner_grid`
    a dashboard rerun or a CLI command makes), reduced, expanded for auto mode, and its
    command (``command`` when the caller has the very line it was started with)."""
    from engine.running.reproduce import command_of

    runners, left_out = runner_grid(
        list(choice.backends),
        list(choice.devices),
        list(choice.precisions),
        dict(choice.options),  # no thread count: that is the settings' one value
        choice.model,
        choice.only_runnable,
    )
    config = SweepConfig(
        choice.model,
        runners,
        sorted(set(choice.batches)),
        choice.bench,
        choice.parity,
        choice.calibration_dir,
    )
    if choice.only_runnable and not left_out:  # nothing to leave out: the flag says nothing
        choice = replace(choice, only_runnable=False)
    plan = _reduced(config, command or command_of(choice), choice.auto, choice.include_compile)
    plan.left_out = left_out
    return plan


def plan_of_config(
    config: SweepConfig,
    auto: bool = False,
    include_compile: bool = False,
    command: str | None = None,
) -> Plan:
    """The plan of a config made by hand (tests, benchmark scripts): reduced, expanded for
    auto mode, with the command of the choice it stands for."""
    from engine.running.reproduce import reproduce_command

    if not config.runners:
        normalise(config)  # the one message for "nothing to run"
    return _reduced(
        config,
        command or reproduce_command(config, auto, include_compile),
        auto,
        include_compile,
    )


def _reduced(config: SweepConfig, command: str, auto: bool, include_compile: bool) -> Plan:
    if not config.runners:  # the dashboard shows why; a launcher refuses to run it
        return Plan(config, command, auto=auto)
    config, notes = normalise(config)
    chosen = list(config.runners)
    if auto:
        said: list[str] = []
        config, notes = normalise(plan_auto(config, include_compile, said))
        notes = [*said, *(n for n in notes if n not in said)]
    return Plan(config, command, notes=notes, auto=auto, chosen=chosen)
