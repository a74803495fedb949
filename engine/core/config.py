"""What to run and what was measured, as dataclasses with JSON round-trips.

Everything downstream (store, charts, reports, the dashboard) reads these; nothing
re-measures. Names carry units: ``p50_ms``, ``throughput_ips``, ``image_size``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from engine.core.errors import BadInput
from engine.core.options import option
from engine.core.results import (  # noqa: F401 - what was measured, re-exported here
    PARITY_FROM_OK,
    PARITY_STATUSES,
    Compute,
    MachineState,
    Parity,
    Point,
    ResultRow,
    Timing,
    parity_label,
)

DEFAULT_MODEL = "resnet50"
MAX_BATCH = 4096
MAX_SEED = 2**32 - 1  # numpy's legacy seeding and every backend take 32-bit seeds
MAX_ITERS = 10_000_000
MAX_SECONDS = 86_400.0  # a day per point is already absurd; nan and inf are never a budget


def check_whole(flag: str, value: Any, low: int, high: int) -> int:
    """A whole number in [low, high], else one BadInput naming the flag."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInput(
            f"{flag} {value!r} is out of range",
            f"it must be a whole number from {low} to {high}",
            f"use e.g. {flag} {max(low, 1)}",
        )
    return value


def check_seconds(flag: str, value: Any, high: float = MAX_SECONDS) -> float:
    """A finite number of seconds above 0 (nan, inf and 0 are refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(f"{flag} {value!r} is not a number", fix=f"use e.g. {flag} 10")
    if not (math.isfinite(value) and 0 < value <= high):
        raise BadInput(
            f"{flag} {value!r} is out of range",
            f"it must be a finite number of seconds above 0 and at most {high:g}",
            f"use e.g. {flag} 10",
        )
    return float(value)


def _from_dict(cls, data: dict[str, Any]):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class ModelSpec:
    """Which model: a torchvision name or a user ONNX file, and where weights come from.

    ``weights`` is ``"random"`` (seeded), ``"pretrained"`` (only from the local torch
    cache) or a path to a local state_dict / checkpoint file.
    """

    name: str = DEFAULT_MODEL
    weights: str = "random"
    image_size: int = 224  # the height; the width too unless image_width is set
    onnx_path: str | None = None
    seed: int = 0
    image_width: int | None = None  # set only for a non-square size

    def __post_init__(self) -> None:
        check_whole("--seed", self.seed, 0, MAX_SEED)
        if self.image_width == self.image_size:
            object.__setattr__(self, "image_width", None)  # one spelling per size

    @property
    def hw(self) -> tuple[int, int]:
        return self.image_size, self.image_width or self.image_size

    @property
    def size_text(self) -> str:
        """How a size is shown and typed: ``224`` or ``40x56`` (height x width)."""
        return size_text(*self.hw)

    @property
    def label(self) -> str:
        if self.onnx_path:
            return f"ONNX file {self.onnx_path.rsplit('/', 1)[-1]}"
        return f"{self.name} ({weights_label(self.weights)})"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["image_width"] is None:  # square: configs stored before non-square sizes match
            del out["image_width"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        return _from_dict(cls, data)


def size_text(height: int, width: int | None = None) -> str:
    return str(height) if width in (None, height) else f"{height}x{width}"


def parse_size(text: Any) -> tuple[int, int]:
    """``"224"`` or ``"40x56"`` (height x width; ``×`` too) as (height, width)."""
    parts = str(text).strip().lower().replace("×", "x").split("x")
    try:
        sides = [int(p) for p in parts]
    except ValueError:
        sides = []
    if len(sides) not in (1, 2) or min(sides) < 1:
        raise BadInput(
            f"image size {text!r} is not a size",
            "it is one whole number of pixels (square) or HEIGHTxWIDTH",
            "use e.g. --image-size 224 or --image-size 40x56",
        )
    return sides[0], sides[-1]


def weights_label(weights: str) -> str:
    if weights == "random":
        return "random weights"
    if weights == "pretrained":
        return "pretrained weights (local cache)"
    return f"weights from {weights.rsplit('/', 1)[-1]}"


@dataclass(frozen=True)
class RunnerSpec:
    """One backend configuration. ``options`` holds backend-specific switches.

    Each backend declares its options as a dataclass (``Options`` on the backend class,
    see :mod:`engine.core.options`); here they are stored as sorted ``(name, value)`` pairs so
    the spec stays hashable. ``from_dict`` accepts the dict form of JSON documents and
    the pair lists of older databases.
    """

    backend: str
    device: str = "cpu"
    precision: str = "fp32"
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def opts(self) -> dict[str, Any]:
        return dict(self.options)

    def with_options(self, **kw: Any) -> RunnerSpec:
        merged = {**self.opts, **kw}
        return RunnerSpec(self.backend, self.device, self.precision, tuple(sorted(merged.items())))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "options": self.opts}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunnerSpec:
        opts = data.get("options") or {}
        items = dict(opts.items() if isinstance(opts, dict) else (tuple(p) for p in opts))
        if "cudnn_exhaustive" in items:
            # Before ONNX Runtime ran as shipped, its CUDA EP was forced to DEFAULT search
            # unless this switch asked for EXHAUSTIVE: keep what really ran.
            exhaustive = items.pop("cudnn_exhaustive")
            items["cudnn_conv_algo_search"] = "EXHAUSTIVE" if exhaustive else "DEFAULT"
        return cls(
            data["backend"],
            data.get("device", "cpu"),
            data.get("precision", "fp32"),
            tuple(sorted(items.items())),
        )


@dataclass(frozen=True)
class BenchSettings:
    """How to time: warm-up, iteration count and time budget, mode, CPU threads.

    The sweep settings, declared once like a backend's options (:func:`option`): the
    CLI's timing flags, the sidebar's controls (those with a ``dashboard`` value) and the
    reproduce command's flags are generated from these fields (:mod:`engine.core.options`).
    ``mode`` is ``"device"`` (inputs already on the device, outputs left there) or
    ``"e2e"`` (host tensors in, host outputs back). ``threads`` is the one CPU-thread
    count: each backend option declared with ``setting="threads"`` is filled from it
    when a runner is built.
    """

    warmup: int = option(
        5, "untimed runs before timing each point", "Warm-up iterations", dashboard=3,
        minimum=0, maximum=MAX_ITERS,
    )  # fmt: skip
    iters: int = option(
        50, "timed runs per point (up to --max-time)", "Timed iterations", dashboard=20,
        minimum=1, maximum=MAX_ITERS,
    )  # fmt: skip
    max_time_s: float = option(
        10.0, "seconds per point at most", "Time limit per point (s)", flag="--max-time",
        dashboard=30.0, minimum=1,
    )  # fmt: skip
    min_iters: int = option(3, "timed runs even past --max-time", "minimum iterations", minimum=1)
    mode: str = option(
        "device",
        "device: inputs already on the device; e2e: host in, host out, copies timed",
        "timing mode",
        choices=("device", "e2e"),
    )
    threads: int | None = option(
        None,
        "CPU threads (torch and ONNX Runtime)",
        "CPU threads (0: the libraries' default)",
        dashboard=None,
        minimum=1,
        maximum=65_536,
    )
    until_stable: bool = option(
        False,
        "repeat an unstable point (docs/stability.md)",
        "Repeat unstable points",
        dashboard=False,
    )
    stable_budget_s: float = option(
        60.0, "seconds per point at most while repeating", "stable budget", flag="--stable-budget"
    )

    def __post_init__(self) -> None:
        # Here, not in the CLI, so the dashboard and every caller get the same limits.
        check_whole("--warmup", self.warmup, 0, MAX_ITERS)
        check_whole("--iters", self.iters, 1, MAX_ITERS)
        check_whole("min_iters", self.min_iters, 1, MAX_ITERS)
        check_seconds("--max-time", self.max_time_s)
        check_seconds("--stable-budget", self.stable_budget_s)
        if self.threads is not None:
            check_whole("--threads", self.threads, 1, 65_536)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchSettings:
        return _from_dict(cls, data)


# The sweep settings' one declaration, read where flags, controls and commands are made
# (a test extends it with a subclass to see a new setting reach every one of them).
SWEEP_SETTINGS: type[BenchSettings] = BenchSettings


@dataclass
class SweepConfig:
    """A whole sweep: one model, runner configurations × batch sizes."""

    model: ModelSpec
    runners: list[RunnerSpec]
    batches: list[int]
    bench: BenchSettings = field(default_factory=BenchSettings)
    parity: bool = True
    calibration_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.to_dict(),
            "runners": [r.to_dict() for r in self.runners],
            "batches": list(self.batches),
            "bench": self.bench.to_dict(),
            "parity": self.parity,
            "calibration_dir": self.calibration_dir,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepConfig:
        return cls(
            model=ModelSpec.from_dict(data["model"]),
            runners=[RunnerSpec.from_dict(r) for r in data["runners"]],
            batches=[int(b) for b in data["batches"]],
            bench=SWEEP_SETTINGS.from_dict(data.get("bench", {})),
            parity=bool(data.get("parity", True)),
            calibration_dir=data.get("calibration_dir"),
        )


@dataclass(frozen=True)
class Choice:
    """What the user chose, as the CLI's flags or the sidebar say it: the grid (backends ×
    devices × precisions with one set of options), the batches, the timing, the mode.

    A :class:`~engine.running.plan.Plan` is made from it once (``make_plan``); the
    reproduce command is written from it, so nothing has to guess the grid back.
    """

    model: ModelSpec
    backends: tuple[str, ...]
    devices: tuple[str, ...] = ("cpu",)
    precisions: tuple[str, ...] = ("fp32",)
    batches: tuple[int, ...] = (1,)
    options: tuple[tuple[str, Any], ...] = ()  # backend options away from their defaults
    bench: BenchSettings = field(default_factory=BenchSettings)
    parity: bool = True
    calibration_dir: str | None = None
    only_runnable: bool = False  # leave out what can never run (the dashboard) instead of skipping
    auto: bool = False
    include_compile: bool = False  # auto mode: also the candidates that compile for minutes
