"""What a built engine is made of: its layers, their precision and the ONNX nodes they replaced.

With a loaded engine, TensorRT's engine inspector gives JSON (:func:`layers_from_json`).
Without a GPU nothing can be loaded, but the builder logs the same listing as text at
verbose level after a DETAILED build (:func:`layers_from_build_log`): that is how a
TensorRT-RTX plan built on a machine without a GPU still shows its layers.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class EngineLayer:
    """One TensorRT layer and the ONNX nodes it replaced."""

    name: str
    layer_type: str
    onnx_nodes: list[str]
    precision: str
    tactic: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_ONNX_LAYER_RE = re.compile(r"\[ONNX Layer: ([^\]]+)\]")
_FORMAT_PRECISIONS = (
    ("int8", "int8"),
    ("fp8", "fp8"),
    ("bf16", "bf16"),
    ("half", "fp16"),
    ("fp16", "fp16"),
    ("float", "fp32"),
    ("fp32", "fp32"),
    ("int32", "int32"),
    ("int64", "int64"),
    ("bool", "bool"),
)


def format_precision(fmt: str) -> str:
    """'Row major linear FP16 format' / 'Half' → 'fp16'; '' when TensorRT did not say."""
    low = fmt.lower()
    for token, name in _FORMAT_PRECISIONS:
        if token in low:
            return name
    return ""


def layers_from_json(text: str) -> list[EngineLayer]:
    """Engine-inspector JSON (``LayerInformationFormat.JSON``) → one row per layer.

    Fused layers name their ONNX nodes in ``Metadata`` (``[ONNX Layer: …]`` entries) and in
    the layer name (node names joined by ``+``); the metadata wins where present. With
    less than DETAILED verbosity layers are plain strings and only names are known.
    """
    data = json.loads(text)
    layers = data.get("Layers", []) if isinstance(data, dict) else []
    rows = []
    for layer in layers:
        if isinstance(layer, str):
            rows.append(EngineLayer(layer, "", _nodes_from_name(layer), "", ""))
            continue
        name = str(layer.get("Name", ""))
        nodes = _ONNX_LAYER_RE.findall(str(layer.get("Metadata", ""))) or _nodes_from_name(name)
        tensors = list(layer.get("Outputs") or []) + list(layer.get("Inputs") or [])
        precisions = [
            format_precision(str(t.get("Format/Datatype", "")))
            for t in tensors
            if isinstance(t, dict)
        ]
        precision = next((p for p in precisions if p), "")
        tactic = str(layer.get("TacticName") or layer.get("TacticValue") or "")
        rows.append(EngineLayer(name, str(layer.get("LayerType", "")), nodes, precision, tactic))
    return rows


def _nodes_from_name(name: str) -> list[str]:
    # "Reformatting CopyNode for ..." and similar are TensorRT's own, not ONNX nodes.
    if name.startswith(("Reformatting CopyNode", "(Unnamed Layer")):
        return []
    return [part.strip() for part in name.split(" + ") if part.strip()]


def inspect_engine(engine: Any, context: Any = None, trt: Any = None) -> list[EngineLayer]:
    """Layer table of a built engine; pass the execution context to resolve dynamic formats."""
    if trt is None:
        from engine.backends.tensorrt.flavour import import_tensorrt

        trt = import_tensorrt()
    inspector = engine.create_engine_inspector()
    if context is not None:
        inspector.execution_context = context
    return layers_from_json(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


_LOG_LAYER_RE = re.compile(r"^Name: (?P<name>.*?), LayerType: (?P<type>[^,]*),")
_LOG_TACTIC_RE = re.compile(r"TacticName: ([^,]*), StreamId")
_LOG_DTYPE_RE = re.compile(r"Datatype: (\w+)")


def layers_from_build_log(text: str) -> list[EngineLayer]:
    """The builder's verbose "Layers:" listing → one row per engine layer (no GPU needed)."""
    body = text.split("\n\nI/O Tensors:", 1)[0]
    rows = []
    for line in body.splitlines():
        m = _LOG_LAYER_RE.match(line)
        if not m:
            continue
        outputs = line.split("Outputs: ", 1)[1] if "Outputs: " in line else ""
        dtype = _LOG_DTYPE_RE.search(outputs)
        tactic = _LOG_TACTIC_RE.search(line)
        meta = line.split("Metadata: ", 1)[1] if "Metadata: " in line else ""
        rows.append(
            EngineLayer(
                m.group("name"),
                m.group("type"),
                _ONNX_LAYER_RE.findall(meta),
                format_precision(dtype.group(1)) if dtype else "",
                tactic.group(1).strip() if tactic else "",
            )
        )
    return rows
