"""The study's quoted T4 figures as result rows, for a labelled reference overlay.

These numbers were measured elsewhere (Google Colab, NVIDIA T4) and are only quoted:
every row says so in its provider and status, so a chart or table can never pass them
off as a measurement of this machine. The product reads its own copy in ``data/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from engine.core.config import Point, ResultRow, RunnerSpec
from engine.core.errors import EngineError
from engine.core.rows import ModelFacts, new_row

STUDY_FILE = Path(__file__).resolve().parents[2] / "data" / "t4_study.json"
QUOTED = "quoted, not measured here"


@dataclass
class ReferenceStudy:
    label: str
    machine: str
    source: str
    rows: list[ResultRow] = field(default_factory=list)


def load_reference(path: str | Path | None = None) -> ReferenceStudy:
    """The quoted study as rows with ``status="quoted"`` and throughput derived from p50."""
    p = Path(path) if path else STUDY_FILE
    try:
        data = json.loads(p.read_text())
        raw_rows = data["rows"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EngineError(
            f"the reference study file {p.name} cannot be read",
            f"{type(exc).__name__}: {exc}",
            "restore data/t4_study.json from the repository",
        ) from exc
    rows = []
    # The study states neither image size nor weights: the row defaults stand for them.
    facts = ModelFacts(data.get("model", ""), Point.image_size, Point.weights)
    for r in raw_rows:
        batch, p50 = int(r["batch"]), float(r["p50_ms"])
        spec = RunnerSpec(r["backend"], r.get("device", "cuda"), r["precision"])
        rows.append(
            new_row(
                facts,
                spec,
                batch,
                provider=r.get("provider", "quoted"),
                status="quoted",
                reason=QUOTED,
                p50_ms=p50,
                throughput_ips=batch * 1000.0 / p50,
            )
        )
    return ReferenceStudy(
        label=data.get("label", "Quoted study"),
        machine=data.get("machine", ""),
        source=data.get("source", ""),
        rows=rows,
    )
