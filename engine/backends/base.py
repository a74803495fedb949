"""The one small interface every backend implements, with its lifecycle in one place.

A backend answers "can I run here, and if not why and how to fix it", checks a
configuration, and builds a :class:`Runner`. Like Polygraphy's ``activate()`` /
``activate_impl()``, :meth:`Backend.prepare` is a template the base owns (check, then
availability, then the backend's :meth:`Backend._build`), so no backend and no caller
repeats those steps. Every hook a caller may use is declared here with its default
(per-batch runners, the batches a cached runner is built for, the precision parity is
judged at, label words, inspection, concurrency), so nothing reads a backend with
``getattr`` and nothing outside ``engine/backends/`` compares backend names. Options are
a dataclass per backend (:mod:`engine.core.options`). A runner is a context manager that owns
its device memory, turns host inputs into device-resident ones once, runs a batch, and
says which provider really ran. Heavy libraries are imported lazily so that a missing
backend never breaks ``import engine``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, final

import numpy as np

from engine.core import options as opt
from engine.core.commands import engine_command
from engine.core.config import RunnerSpec
from engine.core.devices import Availability, parse_device
from engine.core.errors import BadInput
from engine.hardware.env import loaded_torch

if TYPE_CHECKING:
    from engine.artifacts.models import ModelArtifacts
    from engine.core.config import ModelSpec


@dataclass(frozen=True)
class Candidate:
    """One configuration a backend offers auto mode: a precision and option values.

    ``slow`` marks a candidate whose build takes minutes (a compile): auto mode tries it
    only when asked. ``note`` says why it is in the ladder, where the label does not.
    """

    precision: str
    options: tuple[tuple[str, Any], ...] = ()
    slow: bool = False

    @classmethod
    def of(cls, precision: str, slow: bool = False, **options: Any) -> Candidate:
        return cls(precision, tuple(sorted(options.items())), slow)


@dataclass
class PrepareContext:
    """What a backend may need beyond its spec: batches to plan for, where to calibrate."""

    batches: tuple[int, ...] = (1,)
    calibration_dir: str | None = None
    progress: Any = None  # callable(str) for long steps (export, quantise, build)
    notes: list[str] = field(default_factory=list)
    # The sweep's settings by name ({"threads": 2}): an option declared with
    # setting="threads" is filled from them when the runner is built, so a thread count
    # is one value (the settings') and never part of a configuration's spec or label.
    settings: dict[str, Any] = field(default_factory=dict)
    # What every row of this configuration ran beyond its model (an old ONNX file's
    # converted copy, quantised): a note, and the sweep puts it on each row's reason.
    row_notes: list[str] = field(default_factory=list)

    def say(self, message: str) -> None:
        self.notes.append(message)
        if self.progress:
            self.progress(message)

    def row_note(self, message: str) -> None:
        if message not in self.row_notes:
            self.row_notes.append(message)
        self.say(message)

    def step(self, message: str) -> None:
        """A progress line only ("creating a session…"): not worth keeping as a note."""
        if self.progress:
            self.progress(message)


class Runner(ABC):
    """A prepared model on one backend. Use as ``with backend.prepare(...) as runner:``."""

    spec: RunnerSpec
    provider: str = ""
    info: dict[str, Any]  # facts about what was built (set by each runner's __init__)

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def to_device(self, x: np.ndarray) -> Any:
        """Host float32 NCHW batch → the backend's device-resident input."""

    @abstractmethod
    def run(self, x_dev: Any) -> Any:
        """One forward pass on a device-resident input; output stays on the device."""

    @abstractmethod
    def to_host(self, y_dev: Any) -> np.ndarray:
        """Device output → host float32 logits of shape (batch, classes)."""

    def synchronize(self) -> None:
        """Wait for queued device work (no-op on the CPU)."""

    def infer(self, x: np.ndarray) -> np.ndarray:
        """End to end: host in, host out."""
        return self.to_host(self.run(self.to_device(x)))

    def peak_memory_mb(self) -> float | None:
        return None

    def reset_peak_memory(self) -> None:
        """Start a new peak-memory window."""

    def close(self) -> None:
        """Free what the runner holds."""

    def stream(self) -> tuple[Any, Any]:
        """A context that puts this runner's work on a stream of its own, and a wait for it.

        Used to drive several runners at once; the default (no stream of its own) waits
        for nothing.
        """
        import contextlib

        return contextlib.nullcontext(), lambda: None

    def facts(self) -> dict[str, Any]:
        """What was built and how (plan size, build time, node placement...), for pages."""
        return dict(self.__dict__.get("info") or {})

    def inspect(self) -> list[Any]:
        """The built engine's layers (objects with ``to_dict()``), where the backend can say."""
        return []

    def thread_counts(self) -> dict[str, int]:
        """CPU threads by pool name, stored with each CPU point (the row's
        ``machine.threads``): PyTorch's pool, which every runner shares with the process
        where PyTorch is loaded (an ONNX file on ONNX Runtime alone never loads it); a
        library with a pool of its own adds it (``{**super().thread_counts(), "ort": 2}``)."""
        torch = loaded_torch()
        return {"torch": torch.get_num_threads()} if torch is not None else {}

    def inert_options(self) -> dict[str, str]:
        """Options that changed nothing on this model, each with why (BN folding on a
        model without batch norm). A row's options and label leave them out, so a label
        names only what ran; the reason goes on the row."""
        return {}


@dataclass
class BuiltEngine:
    """An engine built without running it (a backend's ``BUILD_COMMAND``, the Engines
    page's button): its headline facts (label → value), one fact a line, its layers."""

    headline: dict[str, str]
    lines: list[str]
    layers: list[Any] = field(default_factory=list)  # objects with ``to_dict()``


class Backend(ABC):
    """A backend: class attributes and class methods only (it holds no state).

    Fill in :meth:`availability` and :meth:`_build`; extend :meth:`check` with
    ``super().check(spec)``; override the hooks below only where the default is wrong.
    """

    NAME: ClassVar[str]
    TITLE: ClassVar[str]  # the one human name, used by labels, charts and messages
    PRECISIONS: ClassVar[tuple[str, ...]]
    DEVICES: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    Options: ClassVar[type] = opt.NoOptions
    RUNS_ONNX_FILES: ClassVar[bool] = True  # False: it needs the torch module
    INSPECTS: ClassVar[bool] = False  # True: its runners' inspect() lists layers
    # Environment key → the distributions that provide it, first installed one wins
    # (``{"onnxruntime": ("onnxruntime-gpu", "onnxruntime")}``): stored with every run.
    LIBRARIES: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Offered as the FP32 reference parity compares with, on the CPU: lowest rank wins
    # among the backends that can run the model source; None: never the reference.
    REFERENCE_RANK: ClassVar[int | None] = None
    # True: it builds engines worth making ahead of time (``python -m engine build``), with
    # BUILD_OPTIONS set on what it builds (a compiled backend's "keep it as a package").
    BUILDS_ENGINES: ClassVar[bool] = False
    BUILD_OPTIONS: ClassVar[dict[str, Any]] = {}
    BUILD_COMMAND: ClassVar[str] = ""  # a ``python -m engine`` command of its own that builds
    CACHE_KIND: ClassVar[str] = ""  # the cache folder its built engines live in

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        for name in ("prepare", "ready"):
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__} overrides {name}(); fill in _build() instead")

    # -- the lifecycle ------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def availability(cls, device: str = "cpu") -> Availability:
        """Whether this backend can run on ``device`` here; if not, why and the fix."""

    @classmethod
    def check(cls, spec: RunnerSpec) -> None:
        """Raise BadInput for combinations that can never work."""
        kind, _ = parse_device(spec.device)
        if kind not in cls.DEVICES:
            raise BadInput(
                f"backend '{cls.NAME}' cannot run on device '{spec.device}'",
                f"it supports {', '.join(cls.DEVICES)}",
                "pick one of those devices",
            )
        if spec.precision not in cls.PRECISIONS:
            raise BadInput(
                f"backend '{cls.NAME}' cannot run precision '{spec.precision}'",
                f"it supports {', '.join(cls.PRECISIONS)}",
                "choose one of those precisions, or another backend",
            )
        cls.options(spec)

    @final
    @classmethod
    def prepare(cls, spec: RunnerSpec, artifacts: ModelArtifacts, ctx: PrepareContext) -> Runner:
        """Check, confirm availability, then build (or load from cache) and return a runner
        (with the options the sweep's settings fill, see :meth:`settled`)."""
        spec = cls.settled(spec, ctx.settings)
        cls.ready(spec)
        return cls._build(spec, artifacts, ctx)

    @classmethod
    def settled(cls, spec: RunnerSpec, settings: dict[str, Any]) -> RunnerSpec:
        """``spec`` with each option declared ``setting=NAME`` set from ``settings[NAME]``."""
        filled = {
            f.name: settings[f.setting]
            for f in opt.fields_of(cls.Options)
            if f.setting and settings.get(f.setting) is not None
        }
        return spec.with_options(**filled) if filled else spec

    @final
    @classmethod
    def ready(cls, spec: RunnerSpec, model: ModelSpec | None = None) -> None:
        """Raise BadInput or Unavailable unless ``spec`` (and ``model``) can be built here.

        The one place these checks run: :meth:`prepare` calls it, and a sweep calls it
        first so that a point that can never run is a skipped row, not a failed one.
        """
        opt.check_known(cls.Options, spec.opts, cls.TITLE)
        cls.check(spec)
        if model is not None:
            cls.check_model(model)
        cls.availability(spec.device).raise_if_missing(f"{cls.TITLE} on {spec.device}")

    @classmethod
    @abstractmethod
    def _build(cls, spec: RunnerSpec, artifacts: ModelArtifacts, ctx: PrepareContext) -> Runner:
        """The backend's own part of :meth:`prepare`: spec already checked and available."""

    @classmethod
    def explain(cls, exc: Exception) -> Exception:
        """The user's error for a fault of this backend's library that it recognises (a
        model the library refuses becomes one-line BadInput); anything else unchanged."""
        return exc

    # -- options ------------------------------------------------------------------------
    @classmethod
    def options(cls, spec: RunnerSpec) -> Any:
        """The spec's options as this backend's typed dataclass (unknown names ignored)."""
        return opt.validate(cls.Options, spec.opts, cls.TITLE)

    @classmethod
    def own_spec(cls, spec: RunnerSpec) -> tuple[RunnerSpec, list[str]]:
        """The spec with only this backend's non-default options, and a note per dropped one."""
        dropped = opt.unknown(cls.Options, spec.opts)
        kept = opt.non_default(cls.Options, spec.opts)
        notes = [f"{cls.NAME} ignores {name}: not one of its options" for name in dropped]
        return RunnerSpec(
            spec.backend, spec.device, spec.precision, tuple(sorted(kept.items()))
        ), notes

    # -- hooks with defaults --------------------------------------------------------------
    @classmethod
    def per_batch(cls, spec: RunnerSpec) -> bool:
        """True when a runner serves one batch size only (a captured graph, a compile)."""
        return False

    @classmethod
    def build_batches(
        cls, spec: RunnerSpec, batch: int, batches: tuple[int, ...]
    ) -> tuple[int, ...]:
        """The batches a runner that will run ``batch`` (of ``batches`` in play) is built for.

        A cache of built runners keys on this: equal answers share one runner.
        """
        return (batch,) if cls.per_batch(spec) else (1,)

    @classmethod
    def parity_precision(cls, spec: RunnerSpec) -> str:
        """The precision whose tolerance judges this spec's outputs (what the math really is)."""
        return spec.precision

    @classmethod
    def precision_note(cls, precision: str, device: str, options: dict[str, Any]) -> str:
        """Words after the precision that say what the math is, where the name alone does not."""
        return ""

    @classmethod
    def precision_route(cls, precision: str) -> str:
        """How this backend's ``precision`` is made ahead of time, as words that start with
        the command to paste; "" when it does not run that precision. A refusal that sends
        the user elsewhere (``build --precision int8``) asks every backend for this."""
        if precision not in cls.PRECISIONS:
            return ""
        if cls.BUILDS_ENGINES:
            return engine_command(f"build --backend {cls.NAME} --precision {precision}")
        sweep = engine_command(f"bench --backend {cls.NAME} --precision {precision}")
        return f"nothing to build, {sweep} prepares it when the sweep starts"

    @classmethod
    def option_words(cls, options: dict[str, Any]) -> list[str]:
        return opt.option_words(cls.Options, cls.switches(options))

    @classmethod
    def switches(cls, options: dict[str, Any]) -> dict[str, Any]:
        """The options that change what runs: not the thread counts (declared ``setting=``
        or ``threads=True``), which only change how many cores it gets. Rows stored
        before threads were one setting carry them in their options."""
        counts = {f.name for f in opt.fields_of(cls.Options) if f.setting or f.threads}
        return {k: v for k, v in options.items() if k not in counts}

    @classmethod
    def check_model(cls, model: ModelSpec) -> None:
        """Raise BadInput when this backend cannot run that model source."""
        if model.onnx_path and not cls.RUNS_ONNX_FILES:
            # No "why": the dashboard lists left-out pairs by their why, else their what.
            raise BadInput(
                f"{cls.TITLE} cannot run an ONNX file (it needs the torchvision model)",
                fix="use a backend that runs ONNX files, such as ort",
            )

    @classmethod
    def check_concurrency(cls, spec: RunnerSpec) -> None:
        """Raise BadInput when several runners of this spec must not run from threads at once."""

    # -- what generic code asks instead of naming a backend -------------------------------
    @classmethod
    def auto_ladder(cls, device: str) -> list[Candidate]:
        """The configurations auto mode tries on ``device``, in ladder order (each step one
        change from a step before). Default: the default options at every precision that
        passes :meth:`check` there."""
        out = []
        for precision in cls.PRECISIONS:
            try:
                cls.check(RunnerSpec(cls.NAME, device, precision))
            except BadInput:
                continue
            out.append(Candidate(precision))
        return out

    @classmethod
    def reference_rank(cls, onnx_source: bool) -> int | None:
        """This backend's rank as the FP32 parity reference for a model source (lower
        wins); None when it offers none or cannot run that source."""
        if onnx_source and not cls.RUNS_ONNX_FILES:
            return None
        return cls.REFERENCE_RANK

    @classmethod
    def parity_batch(cls, spec: RunnerSpec, batches: tuple[int, ...]) -> int | None:
        """The batch parity judges ``spec`` at, where the default one would cost a build of
        its own (a compiled engine per shape); None: the sweep's default."""
        return None

    @classmethod
    def engine_batches(cls, spec: RunnerSpec, batches: tuple[int, ...]) -> tuple[int, ...]:
        """The batches a sweep of ``batches`` needs an engine of ``spec`` for: those asked,
        and the one parity judges at where it needs an engine of its own."""
        return batches

    @classmethod
    def cached_engines(cls, spec: RunnerSpec, artifacts: Any, batches: tuple[int, ...]) -> bool:
        """True when a slow candidate's engines for ``batches`` are built and cached, so
        auto mode tries it without being asked (it costs seconds, not minutes)."""
        return False

    @classmethod
    def cache_state(cls, kind: str, meta: dict[str, Any]) -> str:
        """A word on one of its cache entries (``kind`` folder, ``meta`` record): "stale: …"
        when it can no longer be loaded here; "" when all is well or it is not its own."""
        return ""

    @classmethod
    def cache_detail(cls, kind: str, meta: dict[str, Any]) -> str:
        """What one of its cache entries' key means beyond model, precision and batch (the
        settings it serves); "" when nothing or it is not its own."""
        return ""

    @classmethod
    def build_hint(cls, spec: RunnerSpec, artifacts: Any, batches: tuple[int, ...]) -> str:
        """What building a slow candidate's engines is expected to cost ("" if unknown)."""
        return ""

    @classmethod
    def standalone_note(cls, precisions: tuple[str, ...], options: Any) -> str:
        """What :meth:`build_standalone` makes of a selection (``options``: the typed
        options), in one line, naming each engine one press builds; BadInput where it
        builds none of them. Only a backend with a ``BUILD_COMMAND`` is asked."""
        return ""

    @classmethod
    def build_standalone(
        cls,
        artifacts: Any,
        precisions: tuple[str, ...],
        batches: tuple[int, ...],
        options: Any,
        progress: Any = None,
    ) -> list[BuiltEngine]:
        """Build (or find cached) without running them, as ``BUILD_COMMAND`` does, the
        engines :meth:`standalone_note` names: one per precision of the selection it
        builds. A backend that sets ``BUILD_COMMAND`` fills this in."""
        raise NotImplementedError(f"{cls.TITLE} builds nothing without running it")

    @classmethod
    def parity_spec(cls, spec: RunnerSpec) -> RunnerSpec:
        """The spec whose outputs parity judges when ``spec``'s own runner serves one shape
        only (a captured graph is checked uncaptured). Default: the spec itself."""
        return spec

    @classmethod
    def library_versions(cls) -> dict[str, str | None]:
        """The versions of the libraries this backend runs on, by environment key."""
        from importlib import metadata

        out: dict[str, str | None] = {}
        for key, dists in cls.LIBRARIES.items():
            out[key] = None
            for dist in dists:
                try:
                    out[key] = metadata.version(dist)
                    break
                except metadata.PackageNotFoundError:
                    continue
        return out


__all__ = ["Availability", "Backend", "BuiltEngine", "Candidate", "PrepareContext", "Runner"]
