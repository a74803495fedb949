"""The one small interface every backend implements.

A backend answers "can I run here, and if not why and how to fix it", checks a
configuration, and prepares a :class:`Runner`. A runner is a context manager that owns
its device memory, turns host inputs into device-resident ones once, runs a batch, and
says which provider really ran. Heavy libraries are imported lazily so that a missing
backend never breaks ``import engine``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from engine.config import RunnerSpec
from engine.errors import BadInput, Unavailable

if TYPE_CHECKING:
    from engine.models import ModelArtifacts


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""
    fix: str = ""

    def raise_if_missing(self, what: str) -> None:
        if not self.ok:
            raise Unavailable(f"{what} is not available on this machine", self.reason, self.fix)


@dataclass
class PrepareContext:
    """What a backend may need beyond its spec: batches to plan for, where to calibrate."""

    batches: tuple[int, ...] = (1,)
    calibration_dir: str | None = None
    progress: Any = None  # callable(str) for long steps (export, quantise, build)
    notes: list[str] = field(default_factory=list)

    def say(self, message: str) -> None:
        self.notes.append(message)
        if self.progress:
            self.progress(message)

    def step(self, message: str) -> None:
        """A progress line only ("creating a session…"): not worth keeping as a note."""
        if self.progress:
            self.progress(message)


class Runner(ABC):
    """A prepared model on one backend. Use as ``with backend.prepare(...) as runner:``."""

    spec: RunnerSpec
    provider: str = ""
    info: dict[str, Any]

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


class Backend(ABC):
    NAME: ClassVar[str]
    PRECISIONS: ClassVar[tuple[str, ...]]
    DEVICES: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    TITLE: ClassVar[str] = ""

    @classmethod
    @abstractmethod
    def availability(cls, device: str = "cpu") -> Availability:
        """Whether this backend can run on ``device`` here; if not, why and the fix."""

    @classmethod
    def check(cls, spec: RunnerSpec) -> None:
        """Raise BadInput for combinations that can never work."""
        kind = spec.device.split(":", 1)[0]
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

    @classmethod
    @abstractmethod
    def prepare(cls, spec: RunnerSpec, artifacts: ModelArtifacts, ctx: PrepareContext) -> Runner:
        """Build (or load from cache) whatever runs the model and return a runner."""
