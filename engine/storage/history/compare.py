"""Two runs side by side: the speed-up per shared point and the settings that differ.

Points are matched on (backend, precision, device kind, batch); each run contributes its
fastest row per point and names that row's options, so a difference in configuration is
visible next to the speed-up it explains.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from engine.backends import library_keys
from engine.core.config import ResultRow, weights_label
from engine.core.devices import device_kind
from engine.core.stability import compare_words
from engine.hardware.machine import busy_summary, without_busy
from engine.storage.history.queries import QUOTED_SOURCE, RunRecord, load_run
from engine.storage.store import Store

_ENV_ORDER = (
    "host",
    "gpu",
    "compute_capability",
    "cpu",
    "cpu_count",
    "machine",
    "os",
    "python",
    "torchvision",
    "onnx",
    "cuda",
    "cudnn",
)  # then every backend's libraries (engine.backends.library_keys)
_MISSING = "—"


@dataclass
class SpeedupRow:
    """One point both runs measured. ``speedup`` = A's p50 / B's p50: above 1, B is faster."""

    backend: str
    precision: str
    device: str
    batch: int
    a_p50_ms: float
    b_p50_ms: float
    speedup: float
    a_provider: str = ""
    b_provider: str = ""
    a_options: str = ""
    b_options: str = ""
    noise: str = ""  # "within noise", "B faster", "B slower" or "noise unknown" (stability.py)


@dataclass
class EnvDiff:
    """One setting that differs between two runs (``kind`` environment or configuration)."""

    key: str
    a: str
    b: str
    kind: str = "environment"


def _point(row: ResultRow) -> tuple[str, str, str, int]:
    # cuda:0 on one machine is the same kind of point as cuda on another; a TensorRT-RTX
    # plan is not the same kind of point as a full TensorRT one.
    rtx = str(row.provider or "").startswith("tensorrt-rtx")
    backend = "tensorrt-rtx" if rtx else row.backend
    return (backend, row.precision, device_kind(row.device), int(row.batch))


def _options_label(opts: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(opts.items()))


def best_points(rows: Iterable[ResultRow]) -> dict[tuple[str, str, str, int], ResultRow]:
    """Per (backend, precision, device, batch): the fastest row with a p50.

    A run can hold several configurations of one point (e.g. with and without
    channels_last); the comparison takes each run's best and names its options.
    """
    best: dict[tuple[str, str, str, int], ResultRow] = {}
    for r in rows:
        if r.status not in ("ok", QUOTED_SOURCE) or r.p50_ms is None or r.p50_ms <= 0:
            continue
        key = _point(r)
        if key not in best or r.p50_ms < (best[key].p50_ms or float("inf")):
            best[key] = r
    return best


def speedups(a_rows: Iterable[ResultRow], b_rows: Iterable[ResultRow]) -> list[SpeedupRow]:
    """Points both sides measured, A's p50 over B's p50 (above 1: B is faster)."""
    a, b = best_points(a_rows), best_points(b_rows)
    out = []
    for key in sorted(a.keys() & b.keys()):
        ra, rb = a[key], b[key]
        assert ra.p50_ms is not None and rb.p50_ms is not None
        out.append(
            SpeedupRow(
                backend=key[0],
                precision=key[1],
                device=key[2],
                batch=key[3],
                a_p50_ms=ra.p50_ms,
                b_p50_ms=rb.p50_ms,
                speedup=ra.p50_ms / rb.p50_ms,
                a_provider=ra.provider,
                b_provider=rb.provider,
                a_options=_options_label(ra.options),
                b_options=_options_label(rb.options),
                noise=compare_words(ra, rb),
            )
        )
    return out


def unmatched_points(a: RunRecord, b: RunRecord) -> tuple[list[str], list[str]]:
    """Points only one side measured, as readable strings (A's, then B's)."""
    pa, pb = best_points(a.rows), best_points(b.rows)

    def fmt(keys: Iterable[tuple[str, str, str, int]]) -> list[str]:
        return [f"{k[0]} {k[1]} {k[2]} batch {k[3]}" for k in sorted(keys)]

    return fmt(pa.keys() - pb.keys()), fmt(pb.keys() - pa.keys())


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(_flatten(v, name))
        else:
            out[name] = v
    return out


def _show(v: Any) -> str:
    if v is None or v == "":
        return _MISSING
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def _config_facts(rec: RunRecord) -> dict[str, Any]:
    """The configuration that changes a timing, flattened; the rows fill what configs lack."""
    c = rec.configuration
    model = c.get("model") if isinstance(c.get("model"), dict) else {"name": c.get("model")}
    bench = c.get("bench") if isinstance(c.get("bench"), dict) else {}
    # Quoted rows carry ResultRow's defaults, not facts about the study: never fill from them.
    first = rec.rows[0] if rec.rows and not rec.info.quoted else None
    options = sorted({_options_label(r.options) for r in rec.rows if r.options})
    return {
        "model": model.get("name") or rec.info.model,
        "weights": weights_label(model["weights"])
        if model.get("weights")
        else (first.weights if first else None),
        "image_size": rec.info.size_label or (first.image_size if first else None),
        "onnx_file": (model.get("onnx_path") or "").rsplit("/", 1)[-1] or None,
        "timing mode": bench.get("mode"),
        "iterations": bench.get("iters"),
        "warm-up": bench.get("warmup"),
        "threads": bench.get("threads"),
        "runner options": "; ".join(options) or None,
    }


def _threads_text(rec: RunRecord) -> str | None:
    """Each CPU-thread pool the run's rows recorded (their machine part's ``threads``)."""
    pools: dict[str, set[int]] = {}
    for r in rec.rows:
        for pool, n in r.machine.threads.items():
            pools.setdefault(pool, set()).add(n)
    shown = [f"{p} {'/'.join(map(str, sorted(ns)))}" for p, ns in sorted(pools.items())]
    return ", ".join(shown) or None


def env_diff(a: RunRecord, b: RunRecord) -> list[EnvDiff]:
    """Settings that differ between two runs: fingerprint first, then configuration."""
    ea, eb = (_flatten(without_busy(r.info.environment)) for r in (a, b))
    rank = {k: i for i, k in enumerate((*_ENV_ORDER, *library_keys()))}
    keys = sorted(ea.keys() | eb.keys(), key=lambda k: (rank.get(k, len(rank)), k))
    out = [
        EnvDiff(k, _show(ea.get(k)), _show(eb.get(k)))
        for k in keys
        if _show(ea.get(k)) != _show(eb.get(k))
    ]
    ba, bb = busy_summary(a.info.environment), busy_summary(b.info.environment)
    if ba != bb:  # measured per sweep: a state of the machine, not of its setup
        out.append(EnvDiff("busy before the sweep", ba, bb, "machine state"))
    ta, tb = _threads_text(a), _threads_text(b)
    if ta != tb:  # what each library's pool ran with, as the points recorded it
        out.append(EnvDiff("CPU threads", _show(ta), _show(tb), "machine state"))
    ca, cb = _config_facts(a), _config_facts(b)
    for k in ca:
        if _show(ca[k]) != _show(cb[k]):
            out.append(EnvDiff(k, _show(ca[k]), _show(cb[k]), "configuration"))
    return out


def compare_runs(
    store: Store, a: int | str, b: int | str
) -> tuple[list[SpeedupRow], list[EnvDiff]]:
    """Speed-up of run B over run A per point, and the differences that explain it."""
    ra, rb = load_run(store, a), load_run(store, b)
    return speedups(ra.rows, rb.rows), env_diff(ra, rb)


def speedup_frame(rows: Iterable[SpeedupRow]) -> pd.DataFrame:
    """Speed-up rows as a DataFrame with a ``series`` column for charts and tables."""
    records = [asdict(r) for r in rows]
    cols = [f for f in SpeedupRow.__dataclass_fields__]
    df = pd.DataFrame.from_records(records, columns=cols)
    df["series"] = [
        f"{b} {p} ({d})"
        for b, p, d in zip(df["backend"], df["precision"], df["device"], strict=True)
    ]
    return df


def diff_frame(rows: Iterable[EnvDiff]) -> pd.DataFrame:
    return pd.DataFrame.from_records([asdict(r) for r in rows], columns=["key", "a", "b", "kind"])
