"""Is a figure noise? Spread of one point's samples, a verdict, and "within noise" comparisons.

Every timed point keeps its per-iteration samples (up to :data:`SAMPLE_CAP`, in order), so
a confidence interval of its median can be computed later from the stored row. A point is
*unstable* when its coefficient of variation exceeds :data:`CV_LIMIT`, its p90 exceeds
:data:`TAIL_LIMIT` × its p50, or the medians of its first and second halves differ by more
than :data:`DRIFT_LIMIT`; with fewer than :data:`MIN_JUDGED` samples it is not judged.
Two medians are *within noise* when their 95 % confidence intervals overlap; the intervals
are distribution-free (order statistics of the samples), so no normality is assumed. The
numbers and why they were chosen are in docs/stability.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SAMPLE_CAP = 2000  # samples stored per point: ~16 kB of JSON, enough for a tight median CI
CV_LIMIT = 0.10  # pyperf warns above 10 % std/mean; the same bar here
TAIL_LIMIT = 1.25  # p90 more than 25 % above p50: one in ten iterations is much slower
DRIFT_LIMIT = 0.10  # second half's median 10 % away from the first half's: warming or throttling
MIN_JUDGED = 10  # below this the order-statistic CI of the median is wider than the data
Z95 = 1.959964


@dataclass
class Spread:
    """How much one point's samples vary, and whether that makes it unstable."""

    cv: float | None
    tail_ratio: float | None  # p90 / p50
    drift: float | None  # |median(2nd half) / median(1st half) - 1|
    stable: bool | None  # None: too few samples to judge
    reason: str


def keep_samples(samples_ms: Sequence[float], cap: int = SAMPLE_CAP) -> list[float]:
    """The samples to store: all up to ``cap``, else every k-th (order kept for the drift test).

    Rounded to 0.1 µs, far below any timer's resolution here, so the JSON stays compact.
    """
    xs = list(samples_ms)
    if len(xs) > cap:
        idx = np.linspace(0, len(xs) - 1, cap).round().astype(int)
        xs = [xs[i] for i in idx]
    return [round(float(x), 4) for x in xs]


def spread(samples_ms: Sequence[float]) -> Spread:
    """Coefficient of variation, p90/p50 and drift of ``samples_ms``, with the verdict."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        return Spread(None, None, None, None, "no samples")
    mean, p50, p90 = float(a.mean()), *map(float, np.percentile(a, [50, 90]))
    cv = float(a.std() / mean) if mean > 0 else None
    tail = p90 / p50 if p50 > 0 else None
    drift = None
    if a.size >= 2 * MIN_JUDGED:
        half = a.size // 2
        m1, m2 = float(np.median(a[:half])), float(np.median(a[half:]))
        drift = abs(m2 / m1 - 1.0) if m1 > 0 else None
    if a.size < MIN_JUDGED:
        return Spread(cv, tail, drift, None, f"not judged: {a.size} samples (< {MIN_JUDGED})")
    reasons = []
    if cv is not None and cv > CV_LIMIT:
        reasons.append(f"CV {cv:.1%} > {CV_LIMIT:.0%}")
    if tail is not None and tail > TAIL_LIMIT:
        reasons.append(f"p90/p50 {tail:.2f} > {TAIL_LIMIT}")
    if drift is not None and drift > DRIFT_LIMIT:
        reasons.append(f"halves' medians differ {drift:.1%} > {DRIFT_LIMIT:.0%}")
    return Spread(cv, tail, drift, not reasons, "; ".join(reasons))


def median_ci(samples_ms: Sequence[float], z: float = Z95) -> tuple[float, float] | None:
    """Distribution-free ~95 % CI of the median: the order statistics n/2 ± z·√n/2."""
    a = np.sort(np.asarray(samples_ms, dtype=np.float64))
    n = a.size
    if n < MIN_JUDGED:
        return None
    lo = max(int(math.floor(n / 2 - z * math.sqrt(n) / 2)), 0)
    hi = min(int(math.ceil(n / 2 + z * math.sqrt(n) / 2)), n - 1)
    return float(a[lo]), float(a[hi])


def row_ci(row: Any) -> tuple[float, float] | None:
    """A row's median CI: from its samples, else estimated from p10/p90 and the count.

    Rows stored before samples were kept have p10, p50, p90 and ``iters``: under a normal
    model σ ≈ (p90 − p10) / 2.563 and the median's standard error is 1.2533·σ/√n.
    """
    samples = getattr(row, "samples_ms", None)
    if samples:
        return median_ci(samples)
    p10, p50, p90, n = (getattr(row, k, None) for k in ("p10_ms", "p50_ms", "p90_ms", "iters"))
    if None in (p10, p50, p90, n) or n < MIN_JUDGED:
        return None
    se = 1.2533 * (p90 - p10) / 2.563 / math.sqrt(n)
    return p50 - Z95 * se, p50 + Z95 * se


def overlap(ca: tuple[float, float] | None, cb: tuple[float, float] | None) -> bool | None:
    """Do two intervals overlap? None when either is unknown."""
    if ca is None or cb is None:
        return None
    return ca[0] <= cb[1] and cb[0] <= ca[1]


def within_noise(a: Any, b: Any) -> bool | None:
    """True when the two rows' median CIs overlap; None when either CI is unknown."""
    return overlap(row_ci(a), row_ci(b))


def compare_words(a: Any, b: Any) -> str:
    """'within noise', 'B faster', 'B slower' or 'noise unknown' for two rows of one point."""
    verdict = within_noise(a, b)
    if verdict is None:
        return "noise unknown"
    if verdict:
        return "within noise"
    return "B faster" if b.p50_ms < a.p50_ms else "B slower"


def speedup_text(speedup: float, verdict: str) -> str:
    """A speed-up figure that never presents noise as one."""
    return "within noise" if verdict == "within noise" else f"{speedup:.2f}x"


_PRECISION_RANK = {"fp32": 0, "tf32": 1, "bf16": 2, "fp16": 2, "int8": 3}

# Auto mode's tie rules, in order: among settings within noise of the fastest, prefer the
# one that changes the numbers least, then the one with fewer switches, then the earlier
# (simpler) ladder step. The lower p50 is only the last resort and is then called noise.
AUTO_TIE_RULES: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("the higher precision", lambda s: _PRECISION_RANK.get(s.precision, 9)),
    ("fewer switches", lambda s: sum(1 for v in s.options.values() if v is True)),
    ("the earlier ladder step", lambda s: getattr(s, "step", 0)),
)


def pick_with_ties(
    items: Sequence[Any],
    tie_rules: Sequence[tuple[str, Callable[[Any], Any]]] = AUTO_TIE_RULES,
    ci: Callable[[Any], tuple[float, float] | None] = row_ci,
) -> tuple[Any, str]:
    """The fastest item, treating items within noise of it as ties broken by ``tie_rules``.

    Returns the pick and a sentence naming the rule that decided (for auto mode's ladder).
    Each rule is (name, key): the lowest key wins. An item whose CI is unknown is not tied.
    """
    fastest = min(items, key=lambda r: r.p50_ms)
    tied = [r for r in items if r is fastest or overlap(ci(r), ci(fastest))]
    if len(tied) == 1:
        return fastest, "fastest, outside the others' noise"
    n = len(tied)
    for name, key in tie_rules:
        best = min(key(r) for r in tied)
        tied = [r for r in tied if key(r) == best]
        if len(tied) == 1:
            return tied[0], f"{n} settings within noise of each other; tie broken by {name}"
    pick = min(tied, key=lambda r: r.p50_ms)
    return pick, f"{n} settings within noise of each other; tie broken by the lower p50"


POINT_COLUMNS = ("TFLOP/s", "% peak", "stable", "machine")


def point_cells(row: Any) -> list[str]:
    """Text cells for the CLI table and reports: achieved TFLOP/s, % of peak, verdict, state."""
    tflops = f"{row.tflops:.3g}" if getattr(row, "tflops", None) else "-"
    pct = f"{row.peak_pct:.1f}%" if getattr(row, "peak_pct", None) else "-"
    verdict = {True: "yes", False: "NO", None: "-"}[getattr(row, "stable", None)]
    if row.stable is False and row.stability_note:
        verdict = f"NO: {row.stability_note.split(';')[0]}"
    return [tflops, pct, verdict, machine_flags(row)]


def _reading(m: dict[str, Any], key: str) -> float | None:
    """One machine-state figure, or None: a stored or imported state may lack it or be off."""
    v = m.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return v


def machine_flags(row: Any) -> str:
    """'throttled', 'power-capped', clock range, or thread counts: what the machine did
    (the row's machine part)."""
    machine = row.machine
    m = machine.readings if isinstance(machine.readings, dict) else {}
    flags = [
        w
        for w, on in (("throttled", machine.throttled), ("power-capped", machine.power_capped))
        if on
    ]
    lo, hi = _reading(m, "sm_clock_mhz_min"), _reading(m, "sm_clock_mhz_max")
    if lo is not None and hi is not None:
        flags.append(f"SM {lo:g}-{hi:g} MHz")
    power, limit = _reading(m, "power_w_max"), _reading(m, "power_limit_w")
    if power and limit:
        flags.append(f"{power:.0f}/{limit:.0f} W")
    # Each library's CPU-thread pool as its runner reported it (``Runner.thread_counts``).
    for pool, n in machine.threads.items():
        if _reading(machine.threads, pool) is not None:
            flags.append(f"{pool} {n:g} thr")
    return ", ".join(flags) or "-"
