"""What the export and int8 steps need of a loaded model, without importing its loader.

:class:`engine.artifacts.models.ModelArtifacts` satisfies this; ``export`` and ``quantize``
are typed against it so that ``models`` may call them and no import circle forms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from engine.core.config import ModelSpec


class ModelSource(Protocol):
    spec: ModelSpec
    weights_hash: str
    notes: list[str]

    @property
    def image_hw(self) -> tuple[int, int]: ...

    @property
    def code_version(self) -> str: ...

    @property
    def channels(self) -> int: ...

    @property
    def fixed_batch(self) -> int | None: ...

    @property
    def graph_batch(self) -> int | None: ...

    def torch_module(self) -> Any: ...

    def onnx_path(self, precision: str = "fp32", progress: Any = None) -> Path: ...

    def input_shape(self, batch: int) -> tuple[int, ...]: ...

    def fed(self, images: Any) -> Any: ...
