"""A worked example of a backend: ONNX Runtime on the CPU at a chosen graph optimisation level.

Everything a backend needs is in this one module: its options as a dataclass, a runner,
and the backend class with ``availability`` and ``_build``. Registered with one line
(``engine.backends.register("ort_level", "tests.examples.ort_graph_level:OrtLevelBackend")``,
or one entry in ``_REGISTRY``), its ``graph_level`` option appears as ``--graph-level``
in the CLI, as a select box in the dashboard's sidebar and in reproduce commands, with
nothing else touched. ``docs/extending.md`` walks through it; ``tests/engine/test_extending.py``
runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.backends.base import Availability, Backend, PrepareContext, Runner
from engine.core.config import RunnerSpec
from engine.core.options import option

LEVELS = ("disabled", "basic", "extended", "all")


@dataclass(frozen=True)
class OrtLevelOptions:
    graph_level: str = option(
        "all", "ONNX Runtime graph optimisation level", "graph level", choices=LEVELS
    )


class OrtLevelRunner(Runner):
    def __init__(self, spec: RunnerSpec, model_path: str, level: str) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = {
            "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[level]
        self.spec = spec
        self.session = ort.InferenceSession(
            model_path, sess_options=so, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.provider = self.session.get_providers()[0]
        self.info = {"graph_level": level}

    def to_device(self, x: np.ndarray) -> Any:
        return np.ascontiguousarray(x, dtype=np.float32)

    def run(self, x_dev: Any) -> Any:
        return self.session.run(None, {self.input_name: x_dev})[0]

    def to_host(self, y_dev: Any) -> np.ndarray:
        return np.asarray(y_dev, dtype=np.float32)

    def close(self) -> None:
        self.session = None


class OrtLevelBackend(Backend):
    NAME = "ort_level"
    TITLE = "ONNX Runtime (chosen graph level)"
    PRECISIONS = ("fp32",)
    DEVICES = ("cpu",)
    Options = OrtLevelOptions

    @classmethod
    def availability(cls, device: str = "cpu") -> Availability:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            return Availability(
                False, f"onnxruntime does not import: {exc}", "pip install onnxruntime"
            )
        if device != "cpu":
            return Availability(False, "this example runs on the CPU only", "use --device cpu")
        return Availability(True)

    @classmethod
    def _build(cls, spec: RunnerSpec, artifacts: Any, ctx: PrepareContext) -> Runner:
        path = str(artifacts.onnx_path("fp32", progress=ctx.say))
        return OrtLevelRunner(spec, path, cls.options(spec).graph_level)
