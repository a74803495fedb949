"""One point's measurement, optionally repeated until its samples are stable.

``until_stable`` re-times a point while its verdict (engine.stability) is "unstable",
within ``stable_budget_s`` seconds per point (a round's own time limit shrinks to what is
left of it; each round still runs ``min_iters``). The last round is kept whatever its verdict,
so a point that never settled says so instead of showing its luckiest round; ``rounds``
records how many were taken.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from engine.backends.base import Runner
from engine.bench import time_runner
from engine.config import BenchSettings, Timing


def time_point(runner: Runner, x: np.ndarray, settings: BenchSettings) -> Timing:
    """Time ``runner`` once, or until stable when ``settings.until_stable`` (time-bounded)."""
    start = time.monotonic()
    timing = time_runner(runner, x, settings)
    rounds = 1
    while settings.until_stable and timing.stable is False:
        left = settings.stable_budget_s - (time.monotonic() - start)
        if left <= 0:
            break
        # a round's own time budget shrinks to what is left (min_iters still run)
        timing = time_runner(
            runner, x, replace(settings, max_time_s=min(settings.max_time_s, left))
        )
        rounds += 1
    timing.rounds = rounds
    if settings.until_stable and timing.stable is False:
        timing.stability_note += f"; still unstable after {rounds} rounds"
    elif rounds > 1:
        timing.stability_note = f"stable after {rounds} rounds"
    return timing
