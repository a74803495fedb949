"""Results history: list, filter and compare stored runs; import runs from other machines.

Every run in the results store is listed with its environment fingerprint; two runs are
compared point by point (backend, precision, device, batch) as a speed-up, next to the
differences in environment and configuration that explain it. ``bench --json`` documents
from any machine import with their fingerprint kept, keyed on a hash of the canonical
document so the same file never lands twice. The study's quoted T4 figures are a built-in
reference run with the id ``t4``: shown and comparable, never stored, never measured here.
``python -m engine history`` and ``python -m engine import`` are thin CLIs over the same
functions the dashboard's history page calls.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import sqlite3
import sys
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from engine.config import ResultRow, weights_label
from engine.env import machine_label
from engine.errors import BadInput, EngineError
from engine.store import JSON_SCHEMA, Store

if TYPE_CHECKING:  # plotly loads only for charts: the CLI also runs where it is not installed
    import plotly.graph_objects as go

REFERENCE_ID = "t4"
QUOTED_SOURCE = "quoted"
MAX_IMPORT_BYTES = 50 * 1024 * 1024
# Facts the study itself states about its machine; the figures come from data/t4_study.json.
_STUDY_ENVIRONMENT = {
    "gpu": "NVIDIA T4",
    "onnxruntime": "1.18 (onnxruntime-gpu, quoted)",
    "cuda": "12.2 (quoted)",
    "cudnn": "8.9.6 (quoted)",
}
# Fingerprint keys that most often explain a difference in speed, shown first in a diff.
_ENV_ORDER = (
    "host",
    "gpu",
    "compute_capability",
    "cpu",
    "cpu_count",
    "torch_threads",
    "machine",
    "os",
    "python",
    "torch",
    "torchvision",
    "onnx",
    "onnxruntime",
    "onnxruntime_package",
    "tensorrt",
    "cuda",
    "cudnn",
)
_MISSING = "—"


@dataclass
class RunInfo:
    """One run as the history lists it: what, when, where, and what its rows cover."""

    id: int | str
    created_at: str
    label: str
    model: str
    image_size: int | None
    status: str
    source: str  # local | import | quoted
    machine: str
    n_rows: int
    backends: list[str] = field(default_factory=list)
    precisions: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    command: str = ""

    @property
    def quoted(self) -> bool:
        return self.source == QUOTED_SOURCE

    @property
    def title(self) -> str:
        when = self.created_at[:16].replace("T", " ") if self.created_at else "date unknown"
        size = f" {self.image_size}px" if self.image_size else ""
        tail = " · QUOTED, not measured here" if self.quoted else ""
        src = " · imported" if self.source == "import" else ""
        return f"run {self.id} · {self.model}{size} · {self.machine} · {when}{src}{tail}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunRecord:
    """A run with everything needed to compare or report it."""

    info: RunInfo
    configuration: dict[str, Any]
    rows: list[ResultRow]


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


@dataclass
class EnvDiff:
    """One setting that differs between two runs (``kind`` environment or configuration)."""

    key: str
    a: str
    b: str
    kind: str = "environment"


# -- listing -------------------------------------------------------------------------------


def _image_size(config: dict[str, Any]) -> int | None:
    model = config.get("model")
    if isinstance(model, dict) and isinstance(model.get("image_size"), int):
        return model["image_size"]
    return None


def _run_info(
    r: dict[str, Any],
    n_rows: int,
    backends: list[str],
    precisions: list[str],
    devices: list[str],
) -> RunInfo:
    """A RunInfo from one of Store.runs()/Store.run()'s dicts and the facets of its rows."""
    return RunInfo(
        id=r["id"],
        created_at=r["created_at"],
        label=r["label"],
        model=r["model"],
        image_size=_image_size(r["configuration"]),
        status=r["status"],
        source=r["source"],
        machine=r.get("machine") or machine_label(r["environment"]),
        n_rows=n_rows,
        backends=backends,
        precisions=precisions,
        devices=devices,
        environment=r["environment"],
        command=r["command"],
    )


def list_runs(store: Store, include_reference: bool = True, limit: int = 100000) -> list[RunInfo]:
    """Every stored run, newest first; the quoted T4 reference first when included."""
    facets = store.run_facets()
    out = [reference_record().info] if include_reference else []
    for r in store.runs(limit=limit):
        f = facets.get(r["id"], {})
        out.append(
            _run_info(
                r,
                r["n_rows"],
                f.get("backends", []),
                f.get("precisions", []),
                f.get("devices", []),
            )
        )
    return out


def reference_record() -> RunRecord:
    """The study's quoted T4 figures as a run that can be listed, compared and reported."""
    from engine.reference import QUOTED, load_reference

    study = load_reference()
    rows = study.rows
    info = RunInfo(
        id=REFERENCE_ID,
        created_at="",
        label=study.label if "not measured here" in study.label else f"{study.label} ({QUOTED})",
        model=rows[0].model if rows else "",
        image_size=None,
        status=QUOTED_SOURCE,
        source=QUOTED_SOURCE,
        machine=study.machine,
        n_rows=len(rows),
        backends=sorted({r.backend for r in rows}),
        precisions=sorted({r.precision for r in rows}),
        devices=sorted({r.device for r in rows}),
        environment={"host": study.machine, **_STUDY_ENVIRONMENT, "figures": QUOTED},
        command="",
    )
    return RunRecord(info, {"model": {"name": info.model}, "source": study.source}, rows)


def parse_since(text: str) -> dt.datetime:
    """An ISO date or date-time (UTC when no zone is given)."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise BadInput(
            f"--since '{text}' is not a date",
            fix="give an ISO date such as 2026-11-01 or 2026-11-01T12:00",
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _as_set(value: str | Collection[str] | None) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, str):
        return {v.strip().lower() for v in value.split(",") if v.strip()}
    return {str(v).strip().lower() for v in value if str(v).strip()}


def _device_matches(devices: Iterable[str], wanted: set[str]) -> bool:
    # "cuda" picks cuda:0 and cuda:1 as well.
    return any(d.lower() in wanted or d.lower().split(":")[0] in wanted for d in devices)


def filter_runs(
    runs: Iterable[RunInfo],
    model: str | Collection[str] | None = None,
    backend: str | Collection[str] | None = None,
    precision: str | Collection[str] | None = None,
    device: str | Collection[str] | None = None,
    machine: str | None = None,
    since: str | dt.date | dt.datetime | None = None,
    include_reference: bool = True,
) -> list[RunInfo]:
    """The runs that match every filter given. A string may be a comma list; empty = any.

    ``machine`` is a case-insensitive substring of the machine, GPU, CPU or host; a run
    without a date (the quoted reference) is left out once ``since`` is given.
    """
    models, backends, precisions = _as_set(model), _as_set(backend), _as_set(precision)
    devices = _as_set(device)
    needle = (machine or "").strip().lower()
    if isinstance(since, str):
        since = parse_since(since) if since.strip() else None
    elif isinstance(since, dt.date) and not isinstance(since, dt.datetime):
        since = dt.datetime(since.year, since.month, since.day, tzinfo=dt.UTC)
    elif isinstance(since, dt.datetime) and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    out = []
    for r in runs:
        if r.quoted and not include_reference:
            continue
        if models and r.model.lower() not in models:
            continue
        if backends and not backends & {b.lower() for b in r.backends}:
            continue
        if precisions and not precisions & {p.lower() for p in r.precisions}:
            continue
        if devices and not _device_matches(r.devices, devices):
            continue
        if needle:
            env = r.environment
            hay = " ".join(
                str(x) for x in (r.machine, env.get("gpu"), env.get("cpu"), env.get("host")) if x
            ).lower()
            if needle not in hay:
                continue
        if since is not None:
            if not r.created_at:
                continue
            when = dt.datetime.fromisoformat(r.created_at)
            if (when if when.tzinfo else when.replace(tzinfo=dt.UTC)) < since:
                continue
        out.append(r)
    return out


def runs_frame(runs: Iterable[RunInfo]) -> pd.DataFrame:
    """A table of runs for display: one line each, lists joined."""
    records = [
        {
            "id": str(r.id),
            "created_at": r.created_at or "(quoted)",
            "source": r.source,
            "model": r.model,
            "image_size": r.image_size,
            "machine": r.machine,
            "backends": ",".join(r.backends),
            "precisions": ",".join(r.precisions),
            "devices": ",".join(r.devices),
            "rows": r.n_rows,
            "status": r.status,
            "label": r.label,
            "torch": r.environment.get("torch") or "",
            "onnxruntime": r.environment.get("onnxruntime") or "",
        }
        for r in runs
    ]
    cols = ["id", "created_at", "source", "model", "image_size", "machine", "backends"]
    cols += ["precisions", "devices", "rows", "status", "label", "torch", "onnxruntime"]
    return pd.DataFrame.from_records(records, columns=cols)


# -- comparing -----------------------------------------------------------------------------


def parse_run_id(text: str | int) -> int | str:
    """A stored run's number, or ``t4`` for the quoted reference."""
    if isinstance(text, int):
        return text
    t = str(text).strip().lower()
    if t in (REFERENCE_ID, "reference", "ref"):
        return REFERENCE_ID
    try:
        return int(t)
    except ValueError as exc:
        raise BadInput(
            f"'{text}' is not a run id",
            fix=f"give a run number from `python -m engine history`, or {REFERENCE_ID}",
        ) from exc


def load_run(store: Store, run_id: int | str) -> RunRecord:
    """A stored run (by number) or the quoted reference (``t4``) with all its rows."""
    run_id = parse_run_id(run_id)
    if run_id == REFERENCE_ID:
        return reference_record()
    try:
        r = store.run(int(run_id))
    except EngineError as exc:
        raise BadInput(
            f"run {run_id} is not in {store.path.name}",
            fix="see the run ids with `python -m engine history`",
        ) from exc
    rows = store.rows(int(run_id))
    info = _run_info(
        r,
        len(rows),
        sorted({x.backend for x in rows}),
        sorted({x.precision for x in rows}),
        sorted({x.device for x in rows}),
    )
    return RunRecord(info, r["configuration"], rows)


def _point(row: ResultRow) -> tuple[str, str, str, int]:
    # cuda:0 on one machine is the same kind of point as cuda on another.
    return (row.backend, row.precision, row.device.split(":")[0], int(row.batch))


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
        "image_size": model.get("image_size") or (first.image_size if first else None),
        "onnx_file": (model.get("onnx_path") or "").rsplit("/", 1)[-1] or None,
        "timing mode": bench.get("mode"),
        "iterations": bench.get("iters"),
        "warm-up": bench.get("warmup"),
        "threads": bench.get("threads"),
        "runner options": "; ".join(options) or None,
    }


def env_diff(a: RunRecord, b: RunRecord) -> list[EnvDiff]:
    """Settings that differ between two runs: fingerprint first, then configuration."""
    ea, eb = _flatten(a.info.environment), _flatten(b.info.environment)
    rank = {k: i for i, k in enumerate(_ENV_ORDER)}
    keys = sorted(ea.keys() | eb.keys(), key=lambda k: (rank.get(k, len(rank)), k))
    out = [
        EnvDiff(k, _show(ea.get(k)), _show(eb.get(k)))
        for k in keys
        if _show(ea.get(k)) != _show(eb.get(k))
    ]
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


def rows_csv(store: Store, run_ids: Iterable[int | str]) -> str:
    """The rows of the runs as CSV, each line naming its run and machine."""
    frames = []
    for rid in run_ids:
        rec = load_run(store, rid)
        df = pd.DataFrame([r.to_dict() for r in rec.rows])
        df.insert(0, "run_id", str(rec.info.id))
        df.insert(1, "machine", rec.info.machine)
        if "options" in df:
            df["options"] = [json.dumps(o, sort_keys=True) for o in df["options"]]
        frames.append(df)
    if not frames:
        return ""
    return pd.concat(frames, ignore_index=True).to_csv(index=False)


def diff_frame(rows: Iterable[EnvDiff]) -> pd.DataFrame:
    return pd.DataFrame.from_records([asdict(r) for r in rows], columns=["key", "a", "b", "kind"])


def compare_chart(df: pd.DataFrame, a_name: str = "A", b_name: str = "B") -> go.Figure:
    """Speed-up of B over A against batch size, one line per backend/precision/device."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if df.empty:
        fig.update_layout(title="Speed-up of B over A", xaxis={"visible": False})
        fig.update_layout(yaxis={"visible": False})
        fig.add_annotation(
            text="the two runs share no measured point (backend, precision, device, batch)",
            showarrow=False,
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
        )
        return fig
    for name, g in df.sort_values("batch").groupby("series", sort=True):
        fig.add_trace(
            go.Scatter(
                x=g["batch"],
                y=g["speedup"],
                mode="lines+markers",
                name=name,
                customdata=g[["a_p50_ms", "b_p50_ms"]].values.tolist(),
                hovertemplate=(
                    "<b>%{fullData.name}</b><br>batch %{x}<br>%{y:.2f}×<br>"
                    f"{a_name} %{{customdata[0]:.3f}} ms → {b_name} %{{customdata[1]:.3f}} ms"
                    "<extra></extra>"
                ),
            )
        )
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey", annotation_text="same speed")
    spread = float(df["speedup"].max() / max(df["speedup"].min(), 1e-9))
    top = int(df["batch"].max())
    ticks = [2**i for i in range(top.bit_length() + 1) if 2**i <= top]
    fig.update_layout(
        title=f"Speed-up of {b_name} over {a_name} (p50 of {a_name} ÷ p50 of {b_name})",
        xaxis={"type": "log", "title": "batch size", "tickvals": ticks},
        # Log only when the ratios spread widely, so 0.5× and 2× sit as far from 1× as they should.
        yaxis={
            "title": "speed-up (×), above 1: B is faster",
            "type": "log" if spread > 4 else "linear",
        },
        margin={"t": 60},
    )
    return fig


# -- importing -----------------------------------------------------------------------------


def check_size(n_bytes: int, name: str) -> None:
    if n_bytes > MAX_IMPORT_BYTES:
        raise BadInput(
            f"{name} is {n_bytes / 2**20:.0f} MB",
            f"bench documents larger than {MAX_IMPORT_BYTES // 2**20} MB are not imported",
            "import the document of one run, written by python -m engine bench --json",
        )


def parse_document(data: bytes | str, name: str = "document") -> dict[str, Any]:
    """The JSON of a bench document; BadInput when it is not JSON."""
    check_size(len(data), name)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(
            f"{name} is not valid JSON",
            str(exc)[:200],
            "pass a file written by python -m engine bench --json",
        ) from exc
    return doc


def _bad(name: str, why: str) -> BadInput:
    return BadInput(
        f"{name} is not a bench JSON document",
        why,
        "pass a file written by python -m engine bench --json",
    )


def validate_document(doc: Any, name: str = "document") -> tuple[dict[str, Any], list[ResultRow]]:
    """The run and rows of a ``{schema, run, rows}`` document, or BadInput saying what is off."""
    if not isinstance(doc, dict):
        raise _bad(name, f"its top level is a JSON {type(doc).__name__}, not an object")
    missing = [k for k in ("schema", "run", "rows") if k not in doc]
    if missing:
        raise _bad(name, f"it has no {', '.join(missing)} key")
    schema = doc["schema"]
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise _bad(name, f"its schema is {schema!r}, not a positive whole number")
    if schema > JSON_SCHEMA:
        raise BadInput(
            f"{name} has document schema {schema}",
            f"this version of visionbench reads schema {JSON_SCHEMA} and older",
            "upgrade visionbench to import it",
        )
    run = doc["run"]
    if not isinstance(run, dict):
        raise _bad(name, "its run is not an object")
    missing = [k for k in ("created_at", "configuration", "environment") if k not in run]
    if missing:
        raise _bad(name, f"its run has no {', '.join(missing)}")
    if not isinstance(run["configuration"], dict) or not isinstance(run["environment"], dict):
        raise _bad(name, "its run's configuration or environment is not an object")
    if not isinstance(run["created_at"], str):
        raise _bad(name, "its run's created_at is not a date string")
    for k in ("label", "status", "reproduce"):
        if k in run and run[k] is not None and not isinstance(run[k], str):
            raise _bad(name, f"its run's {k} is not a string")
    if not isinstance(doc["rows"], list):
        raise _bad(name, "its rows are not a list")
    rows = []
    for i, raw in enumerate(doc["rows"]):
        if not isinstance(raw, dict):
            raise _bad(name, f"row {i} is not an object")
        missing = [k for k in ("model", "backend", "device", "precision", "batch") if k not in raw]
        if missing:
            raise _bad(name, f"row {i} has no {', '.join(missing)}")
        batch = raw["batch"]
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise _bad(name, f"row {i} has batch {batch!r}, not a positive whole number")
        for k in ("p50_ms", "p90_ms", "p99_ms", "throughput_ips"):
            v = raw.get(k)
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
            ):
                raise _bad(name, f"row {i} has {k} {v!r}, not a finite number")
        if not isinstance(raw.get("options", {}), dict):
            raise _bad(name, f"row {i} has options that are not an object")
        row = ResultRow.from_dict(raw)
        if not row.created_at:
            row.created_at = run["created_at"]
        rows.append(row)
    return run, rows


def document_key(run: dict[str, Any], rows: list[ResultRow]) -> str:
    """A hash of the canonical document: the same run gives the same key wherever it is.

    The store-local id and source are left out, so a document exported again from the
    store it was imported into is still recognised.
    """
    canon = {
        "run": {
            k: run.get(k)
            for k in ("created_at", "label", "status", "configuration", "environment", "reproduce")
        },
        "rows": [r.to_dict() for r in rows],
    }
    text = json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def import_document(store: Store, doc: Any, name: str = "document") -> tuple[int, bool]:
    """Store a bench document as a run with source ``import``: (run id, created).

    ``created`` is False when the same document (or the local run it was exported from)
    is already in the store; nothing is written then.
    """
    run, rows = validate_document(doc, name)
    key = document_key(run, rows)
    existing = store.run_id_by_source_key(key)
    if existing is None:
        existing = store.same_run_id(run["created_at"], run["configuration"], run["environment"])
    if existing is not None:
        return existing, False
    try:
        return store.import_run(run, rows, key), True
    except sqlite3.IntegrityError:
        # Another process imported the same document between the lookup and the insert.
        again = store.run_id_by_source_key(key)
        if again is None:
            raise
        return again, False


def read_document_file(path: str | Path) -> dict[str, Any]:
    """Read and parse one document file, checking its size before reading it."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise BadInput(f"{p.name} cannot be read", why, "check the path") from exc
    check_size(size, p.name)
    try:
        data = p.read_bytes()
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise BadInput(f"{p.name} cannot be read", why, "check the path") from exc
    return parse_document(data, p.name)


def import_file(store: Store, path: str | Path) -> tuple[int, bool]:
    return import_document(store, read_document_file(path), Path(path).name)


# -- CLI -----------------------------------------------------------------------------------


def _text_table(head: list[str], lines: list[list[str]]) -> str:
    widths = [max([len(h), *(len(line[i]) for line in lines)]) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    return "\n".join(out + [fmt.format(*line).rstrip() for line in lines])


def _parser(prog: str, description: str):
    from engine.cli import _Parser

    return _Parser(prog=prog, description=description)


def format_runs(runs: list[RunInfo]) -> str:
    head = ["id", "created (UTC)", "source", "model", "size", "machine", "backends"]
    head += ["precisions", "devices", "rows", "torch", "onnxruntime", "label"]
    lines = [
        [
            str(r.id),
            r.created_at[:19].replace("T", " ") if r.created_at else "(quoted)",
            r.source,
            r.model,
            str(r.image_size or "-"),
            r.machine[:40],
            ",".join(r.backends),
            ",".join(r.precisions),
            ",".join(r.devices),
            str(r.n_rows),
            str(r.environment.get("torch") or "-"),
            str(r.environment.get("onnxruntime") or "-")[:20],
            r.label[:60],
        ]
        for r in runs
    ]
    return _text_table(head, lines)


def format_comparison(a: RunRecord, b: RunRecord) -> str:
    sp, diff = speedups(a.rows, b.rows), env_diff(a, b)
    out = [f"A: {a.info.title}", f"B: {b.info.title}", ""]
    if sp:
        out.append("speed-up = p50 of A / p50 of B (above 1: B is faster)")
        lines = [
            [
                s.backend,
                s.precision,
                s.device,
                str(s.batch),
                f"{s.a_p50_ms:.3f}",
                f"{s.b_p50_ms:.3f}",
                f"{s.speedup:.2f}x",
                s.a_provider,
                s.b_provider,
            ]
            for s in sp
        ]
        head = ["backend", "precision", "device", "batch", "A p50 ms", "B p50 ms", "speed-up"]
        out.append(_text_table(head + ["A ran on", "B ran on"], lines))
    else:
        out.append("no point (backend, precision, device, batch) was measured by both runs")
    only_a, only_b = unmatched_points(a, b)
    if only_a:
        out.append(f"only in A: {'; '.join(only_a)}")
    if only_b:
        out.append(f"only in B: {'; '.join(only_b)}")
    out.append("")
    if diff:
        out.append("differences that may explain it:")
        lines = [[d.kind, d.key, d.a[:50], d.b[:50]] for d in diff]
        out.append(_text_table(["kind", "setting", "A", "B"], lines))
    else:
        out.append("same environment and configuration")
    if a.info.quoted or b.info.quoted:
        out.append("note: the quoted T4 study figures were not measured here")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    """``python -m engine history``: list, filter and compare stored runs."""
    p = _parser("python -m engine history", "list, filter and compare stored runs")
    p.add_argument("--db", help="results database (default: the user data folder)")
    p.add_argument("--model", help="comma list of model names")
    p.add_argument("--backend", help="comma list: torch, ort, tensorrt")
    p.add_argument("--precision", help="comma list: fp32, fp16, int8, ...")
    p.add_argument("--device", help="comma list: cpu, cuda, cuda:1")
    p.add_argument("--machine", help="text the machine, GPU or CPU name contains")
    p.add_argument("--since", help="only runs from this ISO date on, e.g. 2026-11-01")
    p.add_argument("--no-reference", action="store_true", help="hide the quoted T4 study")
    p.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), help=f"ids, or {REFERENCE_ID}")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    store = Store(args.db)
    if args.compare:
        a, b = (load_run(store, x) for x in args.compare)
        if args.json:
            doc = {
                "a": a.info.to_dict(),
                "b": b.info.to_dict(),
                "speedups": [asdict(s) for s in speedups(a.rows, b.rows)],
                "differences": [asdict(d) for d in env_diff(a, b)],
            }
            print(json.dumps(doc, indent=1))
        else:
            print(format_comparison(a, b))
        return 0
    runs = filter_runs(
        list_runs(store, include_reference=not args.no_reference),
        model=args.model,
        backend=args.backend,
        precision=args.precision,
        device=args.device,
        machine=args.machine,
        since=args.since,
    )
    if args.json:
        print(json.dumps([r.to_dict() for r in runs], indent=1))
    elif runs:
        print(format_runs(runs))
    else:
        print("no run matches", file=sys.stderr)
    return 0


def import_main(argv: list[str], out: Callable[[str], None] = print) -> int:
    """``python -m engine import FILE...``: every file is checked before any is stored."""
    p = _parser("python -m engine import", "import bench --json documents from any machine")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--db", help="results database (default: the user data folder)")
    args = p.parse_args(argv)
    docs = [(Path(f).name, read_document_file(f)) for f in args.files]
    for name, doc in docs:
        validate_document(doc, name)
    store = Store(args.db)
    for name, doc in docs:
        run_id, created = import_document(store, doc, name)
        if created:
            n = len(doc["rows"])
            out(
                f"imported {name} as run {run_id} ({n} rows, {machine_label(doc['run']['environment'])})"
            )
        else:
            out(f"{name} is already run {run_id}; not imported again")
    return 0
