"""ONNX's own reference evaluator (onnx.reference.ReferenceEvaluator): slow, plain numpy.

Every operator as the ONNX specification defines it, so its outputs say what the model
means rather than what an optimised runtime makes of it. Runs the exported FP32 model
(or the user's ONNX file) on the CPU.

The "done when" check of issue 28: written by following docs/extending.md alone, as one
module plus one registration line (``"onnx_reference":
"tests.examples.onnx_reference:OnnxReferenceBackend"`` in ``_REGISTRY``, or the same as an
entry point), it appeared with its own label in the CLI, the sidebar, auto mode's ladder,
the worker, the reproduce command, the stored run, the charts and the reports with no
other file touched. ``tests/engine/test_onnx_reference.py`` keeps that true.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.backends.base import Availability, Backend, PrepareContext, Runner
from engine.core.config import RunnerSpec


class OnnxReferenceRunner(Runner):
    def __init__(self, spec: RunnerSpec, model_path: str) -> None:
        from onnx.reference import ReferenceEvaluator

        self.spec = spec
        self.session = ReferenceEvaluator(model_path)
        self.input_name = self.session.input_names[0]
        self.provider = "onnx.reference"
        self.info = {"evaluator": "onnx.reference.ReferenceEvaluator"}

    def to_device(self, x: np.ndarray) -> Any:
        return np.ascontiguousarray(x, dtype=np.float32)

    def run(self, x_dev: Any) -> Any:
        return self.session.run(None, {self.input_name: x_dev})[0]

    def to_host(self, y_dev: Any) -> np.ndarray:
        return np.asarray(y_dev, dtype=np.float32)


class OnnxReferenceBackend(Backend):
    NAME = "onnx_reference"
    TITLE = "ONNX reference evaluator"
    PRECISIONS = ("fp32",)
    DEVICES = ("cpu",)
    LIBRARIES = {"onnx": ("onnx",)}

    @classmethod
    def availability(cls, device: str = "cpu") -> Availability:
        try:
            import onnx.reference  # noqa: F401
        except ImportError as exc:
            return Availability(False, f"onnx.reference does not import: {exc}", "pip install onnx")
        if device != "cpu":
            return Availability(
                False, "the reference evaluator runs on the CPU", "use --device cpu"
            )
        return Availability(True)

    @classmethod
    def _build(cls, spec: RunnerSpec, artifacts: Any, ctx: PrepareContext) -> Runner:
        return OnnxReferenceRunner(spec, str(artifacts.onnx_path("fp32", progress=ctx.say)))
