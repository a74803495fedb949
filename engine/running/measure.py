"""One point's measurement, optionally repeated until its samples are stable.

``until_stable`` re-times a point while its verdict (engine.core.stability) is "unstable",
within ``stable_budget_s`` seconds per point: a new round starts only while one as long
as the last still fits, so every round is timed with the same settings. The last round is kept whatever its verdict,
so a point that never settled says so instead of showing its luckiest round; ``rounds``
records how many were taken.
"""

from __future__ import annotations

import time

import numpy as np

from engine.backends.base import Runner
from engine.core.config import BenchSettings, MachineState, Timing
from engine.running.timing import measure_runner


def time_point(runner: Runner, x: np.ndarray, settings: BenchSettings) -> Timing:
    """Time ``runner`` once, or until stable when ``settings.until_stable`` (time-bounded)."""
    return measure_point(runner, x, settings)[0]


def measure_point(
    runner: Runner, x: np.ndarray, settings: BenchSettings
) -> tuple[Timing, MachineState]:
    """:func:`time_point`, and what the machine did during the round that was kept."""
    start = time.monotonic()
    timing, machine = measure_runner(runner, x, settings)
    rounds, last_s = 1, time.monotonic() - start
    while settings.until_stable and timing.stable is False:
        left = settings.stable_budget_s - (time.monotonic() - start)
        if left < last_s:  # another round like the last would overrun the budget
            break
        t0 = time.monotonic()
        timing, machine = measure_runner(runner, x, settings)
        rounds, last_s = rounds + 1, time.monotonic() - t0
    timing.rounds = rounds
    if rounds > 1:
        verdict = {True: "stable", False: "still unstable", None: "not judged"}[timing.stable]
        lead = f"{verdict} after {rounds} rounds"
        timing.stability_note = (
            f"{lead}; {timing.stability_note}" if timing.stability_note else lead
        )
    return timing, machine
