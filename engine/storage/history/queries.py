"""Stored runs as the history shows them: list, filter and load, with the quoted reference.

Every run in the results store is listed with its environment fingerprint. The study's
quoted T4 figures are a built-in reference run with the id ``t4``: shown and comparable,
never stored, never measured here. Comparing two runs is :mod:`engine.storage.history.compare`;
reading documents from other machines is :mod:`engine.storage.documents`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from engine.backends import library_keys
from engine.core.config import ResultRow
from engine.core.devices import device_kind
from engine.core.errors import BadInput, EngineError
from engine.core.paths import python_command
from engine.core.text import csv_cell
from engine.hardware.env import machine_label
from engine.storage.notes import why_no_notes
from engine.storage.schema import readable_run
from engine.storage.store import Store

REFERENCE_ID = "t4"
QUOTED_SOURCE = "quoted"
# Facts the study itself states about its machine; the figures come from data/t4_study.json.
_STUDY_ENVIRONMENT = {
    "gpu": "NVIDIA T4",
    "onnxruntime": "1.18 (onnxruntime-gpu, quoted)",
    "cuda": "12.2 (quoted)",
    "cudnn": "8.9.6 (quoted)",
}
# Fingerprint keys that most often explain a difference in speed, shown first in a diff.


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
    damaged: str = ""  # what in the stored run could not be read; "" when nothing
    image_width: int | None = None  # only when the width differs from image_size

    @property
    def size_label(self) -> str:
        """``48×48`` or ``40×56``; empty when the size is unknown."""
        if not self.image_size:
            return ""
        return f"{self.image_size}×{self.image_width or self.image_size}"

    @property
    def quoted(self) -> bool:
        return self.source == QUOTED_SOURCE

    @property
    def title(self) -> str:
        when = self.created_at[:16].replace("T", " ") if self.created_at else "date unknown"
        size = f" {self.size_label}" if self.image_size else ""
        tail = " · QUOTED, not measured here" if self.quoted else ""
        src = " · imported" if self.source == "import" else ""
        bad = f" · DAMAGED: {self.damaged}" if self.damaged else ""
        return f"run {self.id} · {self.model}{size} · {self.machine} · {when}{src}{tail}{bad}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunRecord:
    """A run with everything needed to compare or report it; ``notes``: what really ran,
    as the run said it (stored runs since schema 5; the quoted study has none);
    ``notes_kept``: False for a run stored before runs kept notes (its "none" means unknown)."""

    info: RunInfo
    configuration: dict[str, Any]
    rows: list[ResultRow]
    notes: list[str] = field(default_factory=list)
    notes_kept: bool = True

    @property
    def why_no_notes(self) -> str:
        """Why it shows no notes, in the words every surface uses."""
        return why_no_notes(self.notes_kept, self.info.source)


# -- listing -------------------------------------------------------------------------------


def _image_size(config: dict[str, Any], key: str = "image_size") -> int | None:
    model = config.get("model")
    if isinstance(model, dict) and isinstance(model.get(key), int):
        return model[key]
    return None


def _run_info(
    r: dict[str, Any],
    n_rows: int,
    backends: list[str],
    precisions: list[str],
    devices: list[str],
) -> RunInfo:
    """A RunInfo from one of Store.runs()/Store.run()'s dicts and the facets of its rows."""
    r, damaged = readable_run(r)
    return RunInfo(
        id=r["id"],
        created_at=r["created_at"],
        label=r["label"],
        model=r["model"],
        image_size=_image_size(r["configuration"]),
        image_width=_image_size(r["configuration"], "image_width"),
        status=r["status"],
        source=r["source"],
        machine=r.get("machine") or machine_label(r["environment"]),
        n_rows=n_rows,
        backends=backends,
        precisions=precisions,
        devices=devices,
        environment=r["environment"],
        command=r["command"],
        damaged=damaged,
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
    from engine.storage.reference import QUOTED, load_reference

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
    return any(d.lower() in wanted or device_kind(d.lower()) in wanted for d in devices)


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
    """A table of runs for display: one line each, lists joined; a column per library a
    backend records (engine.backends.library_keys) that any of these runs has."""
    runs = list(runs)
    libs = [k for k in library_keys() if any(r.environment.get(k) for r in runs)]
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
            **{k: r.environment.get(k) or "" for k in libs},
        }
        for r in runs
    ]
    cols = ["id", "created_at", "source", "model", "image_size", "machine", "backends"]
    cols += ["precisions", "devices", "rows", "status", "label", *libs]
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
            fix=f"give a run number from `{python_command()} -m engine history`, or {REFERENCE_ID}",
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
            fix=f"see the run ids with `{python_command()} -m engine history`",
        ) from exc
    rows = store.rows(int(run_id))
    info = _run_info(
        r,
        len(rows),
        sorted({x.backend for x in rows}),
        sorted({x.precision for x in rows}),
        sorted({x.device for x in rows}),
    )
    return RunRecord(info, readable_run(r)[0]["configuration"], rows, r["notes"], r["notes_kept"])


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
    return pd.concat(frames, ignore_index=True).map(csv_cell).to_csv(index=False)
