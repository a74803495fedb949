"""The rows every result is made of: the facts of one model, and one row builder.

The sweep, the worker (for the point a crashed child was on) and the quoted reference
study all build their :class:`~engine.core.config.ResultRow` through :func:`new_row`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.config import ResultRow, RunnerSpec, SweepConfig, weights_label


@dataclass(frozen=True)
class ModelFacts:
    """What every row of one model says about it."""

    model: str
    image_size: int
    weights: str

    @classmethod
    def of_artifacts(cls, art: Any) -> ModelFacts:
        return cls(art.model_name, art.image_hw[0], art.weights_label)

    @classmethod
    def of_config(cls, config: SweepConfig) -> ModelFacts:
        """From the config alone (when the artifacts were never loaded in this process)."""
        m = config.model
        if m.onnx_path:
            return cls(Path(m.onnx_path).stem, m.image_size, "weights inside the ONNX file")
        return cls(m.name, m.image_size, weights_label(m.weights))


def new_row(
    facts: ModelFacts,
    spec: RunnerSpec,
    batch: int,
    config: SweepConfig | None = None,
    **values: Any,
) -> ResultRow:
    """A result row for one point; ``values`` fill in what was measured (or why not)."""
    return ResultRow(
        model=facts.model,
        backend=spec.backend,
        device=spec.device,
        precision=spec.precision,
        batch=batch,
        image_size=facts.image_size,
        weights=facts.weights,
        mode=config.bench.mode if config else "device",
        options=dict(spec.options),
        threads=config.bench.threads if config else None,
        **values,
    )
