"""TensorRT's build progress and log, turned into what a user can read.

The builder reports nested phases from its own threads; :class:`BuildProgress` folds them
into one fraction and throttled "TensorRT build NN% · phase" messages. The process-wide
logger keeps warnings and errors so a failed parse, build or load can say why.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

_PROGRESS_RE = re.compile(r"^TensorRT build\s+(\d{1,3})%")


def parse_build_progress(message: str) -> float | None:
    """The build fraction (0..1) in a progress message, or None if it is not one.

    The dashboard uses this to draw a progress bar from the plain progress messages.
    """
    m = _PROGRESS_RE.match(message)
    return int(m.group(1)) / 100 if m else None


class BuildProgress:
    """Turns TensorRT's nested phases and steps into one fraction and throttled messages.

    TensorRT calls these from its own threads, hence the lock; ``say`` is called at most
    every ``min_interval_s`` (and on every new top-level phase) so a UI is not flooded.
    """

    def __init__(self, say: Any, min_interval_s: float = 0.5, clock: Any = time.monotonic):
        self.say = say
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.lock = threading.Lock()
        self.phases: dict[str, dict[str, Any]] = {}
        self.root: str | None = None
        self.last_emit = float("-inf")
        self.last_fraction = 0.0

    def _fraction(self, name: str, depth: int = 0) -> float:
        ph = self.phases.get(name)
        if not ph or depth > 16:
            return 0.0
        steps = max(int(ph["steps"]), 1)
        child = next(
            (n for n, p in self.phases.items() if p["parent"] == name and not p["finished"]),
            None,
        )
        inner = self._fraction(child, depth + 1) if child else 0.0
        return min(1.0, (ph["done"] + inner) / steps)

    def fraction(self) -> float:
        with self.lock:
            return self._fraction(self.root) if self.root else 0.0

    def _emit(self, phase: str, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self.last_emit < self.min_interval_s:
            return
        self.last_emit = now
        frac = self._fraction(self.root) if self.root else 0.0
        self.last_fraction = max(self.last_fraction, frac)  # never run backwards on screen
        if self.say:
            try:
                self.say(f"TensorRT build {int(self.last_fraction * 100):3d}% · {phase}")
            except Exception:  # noqa: BLE001 - a UI callback must never break a build
                pass

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        with self.lock:
            parent = parent_phase or None
            self.phases[phase_name] = {
                "parent": parent,
                "steps": num_steps,
                "done": 0,
                "finished": False,
            }
            if parent is None:
                self.root = phase_name
            self._emit(phase_name, force=parent is None)

    def step_complete(self, phase_name: str, step: int) -> bool:
        with self.lock:
            ph = self.phases.get(phase_name)
            if ph:
                ph["done"] = max(ph["done"], step + 1)
            self._emit(phase_name)
        return True  # False would cancel the build

    def phase_finish(self, phase_name: str) -> None:
        with self.lock:
            ph = self.phases.get(phase_name)
            if ph:
                ph["done"], ph["finished"] = ph["steps"], True
            self._emit(phase_name, force=ph is not None and ph["parent"] is None)


def _make_monitor(trt: Any, progress: BuildProgress) -> Any:
    """A trt.IProgressMonitor forwarding to ``progress`` (None where the version has none)."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class Monitor(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            progress.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            return progress.step_complete(phase_name, step)

        def phase_finish(self, phase_name):
            progress.phase_finish(phase_name)

    return Monitor()


_LOGGERS: dict[int, Any] = {}


def _make_logger(trt: Any) -> Any:
    """The process's trt.ILogger, which keeps warnings and errors so a failure can say why.

    One per module: TensorRT routes its global messages to the first logger it was given,
    so a fresh logger per builder would miss them.
    """
    logger = _LOGGERS.get(id(trt))
    if logger is None or not isinstance(logger, trt.ILogger):

        class Logger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.messages: list[str] = []
                self.verbose: list[str] = []

            def log(self, severity, msg):
                if int(severity) <= int(trt.ILogger.Severity.WARNING):
                    self.messages.append(str(msg))
                    del self.messages[:-50]
                elif str(msg).startswith("Layers:"):
                    # The builder's layer listing: all there is of the engine without a GPU.
                    self.verbose[:] = [str(msg)]

        logger = _LOGGERS[id(trt)] = Logger()
    logger.messages.clear()
    if hasattr(logger, "verbose"):
        logger.verbose.clear()
    return logger


def _logged(logger: Any, n: int = 3) -> str:
    lines = [m.strip().splitlines()[0][:300] for m in getattr(logger, "messages", []) if m.strip()]
    return "; ".join(lines[-n:])
