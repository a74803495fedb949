"""The rows every result is made of: the facts of one model, and one row builder.

The sweep, the worker (for the point a crashed child was on) and the quoted reference
study all build their :class:`~engine.core.config.ResultRow` through :func:`new_row`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.config import Point, ResultRow, RunnerSpec, SweepConfig, weights_label


@dataclass(frozen=True)
class ModelFacts:
    """What every row of one model says about it."""

    model: str
    image_size: int
    weights: str
    image_width: int | None = None  # only when the width differs

    @classmethod
    def of_artifacts(cls, art: Any) -> ModelFacts:
        h, w = art.image_hw
        return cls(art.model_name, h, art.weights_label, w if w != h else None)

    @classmethod
    def of_config(cls, config: SweepConfig) -> ModelFacts:
        """From the config alone (when the artifacts were never loaded in this process)."""
        m = config.model
        if m.onnx_path:
            label = "weights inside the ONNX file"
            return cls(Path(m.onnx_path).stem, m.image_size, label, m.image_width)
        return cls(m.name, m.image_size, weights_label(m.weights), m.image_width)


def new_row(
    facts: ModelFacts,
    spec: RunnerSpec,
    batch: int,
    config: SweepConfig | None = None,
    **values: Any,
) -> ResultRow:
    """A result row for one point; ``values`` fill in what was measured (or why not), by
    the flat names a stored row has (``status``, ``reason``, ``p50_ms``, ...)."""
    point = Point(
        model=facts.model,
        backend=spec.backend,
        device=spec.device,
        precision=spec.precision,
        batch=batch,
        image_size=facts.image_size,
        image_width=facts.image_width,
        weights=facts.weights,
        mode=config.bench.mode if config else "device",
        options=dict(spec.options),
        threads=config.bench.threads if config else None,
    )
    if not values:
        return ResultRow(point)
    return ResultRow.from_dict({**ResultRow(point).to_dict(), **values})
