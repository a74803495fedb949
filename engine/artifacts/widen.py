"""An FP32 copy of a user's FP16 or mixed FP32/FP16 ONNX file: the same weights, widened,
and FP32 math; and what float types a file holds and computes in (:class:`FloatMix`).

A file exported in FP16 has no FP32 form to compare with. Run as it is and called "fp32",
its rows would say one precision and run another, and parity would compare the file with
itself. Widening every FP16 tensor to FP32 (initializers, constants, casts to FP16, the
declared inputs, outputs and intermediate types, sparse values, function bodies) gives the
FP32 reference and the fp32 rows a model that really computes in FP32 on exactly the file's weights (every FP16 value is
exact in FP32); the file itself is then what the fp16 rows run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.artifacts.external_data import all_nodes, all_tensors, graph_tensors, subgraphs

# Part of the copy's cache key (engine/artifacts/export.py): a change to what is widened
# gives new copies, not the cached ones of an earlier widening.
WIDEN_RECIPE = "widen-2"

# Attributes that name an element type: Cast's target, the dtype of EyeLike and the random
# generators. A FLOAT16 there becomes FLOAT.
_TYPE_ATTRS = ("to", "dtype")


@dataclass(frozen=True)
class FloatMix:
    """The float types a user's ONNX file holds and computes in, counted wherever they sit
    (graph, subgraphs, function bodies), never guessed from one place: an FP32 file with a
    few Casts to FP16 (an export under ``torch.autocast``) is neither an FP32 file nor an
    FP16 one."""

    fp16_weights: int = 0  # elements of FP16 tensors (initializers, constants, sparse values)
    fp32_weights: int = 0
    casts_to_fp16: int = 0

    @property
    def kind(self) -> str:
        """``fp16`` when most weights are FP16; ``mixed`` when FP32 weights are cast to FP16
        in the graph; else ``fp32``. A few FP16 weights alone do not make FP16 math: with
        no FP16 activation to meet, they are read through a Cast to FP32."""
        if self.fp16_weights > self.fp32_weights:
            return "fp16"
        return "mixed" if self.casts_to_fp16 else "fp32"

    @property
    def precision(self) -> str:
        """The precision whose rows run the file as it is (the other runs a converted copy)."""
        return "fp32" if self.kind == "fp32" else "fp16"

    def text(self) -> str:
        """What the file as it is computes in: "mixed FP32/FP16: FP32 weights, 3 Casts to FP16"."""
        if self.kind == "fp16":
            parts = ["FP16 weights"]
        elif self.kind == "mixed":
            parts = [f"mixed FP32/FP16: {self._weights()}"]
        else:
            parts = [f"FP32: {self._weights()}"]
        if self.casts_to_fp16:
            parts.append(f"{_count(self.casts_to_fp16, 'Cast')} to FP16")
        return ", ".join(parts)

    def _weights(self) -> str:
        if not self.fp16_weights:
            return "FP32 weights"
        return f"FP32 weights ({_count(self.fp16_weights, 'value')} stored in FP16)"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def float_mix(model: Any) -> FloatMix:
    """The :class:`FloatMix` of ``model`` (loaded without its external data: dims only)."""
    return FloatMix(*_weight_counts(model), casts_to_fp16=casts_to_fp16(model))


def precision_note(file_name: str, mix: FloatMix) -> str:
    """What runs for a file with FP16 math (its rows of each precision, and the reference),
    said wherever the file is used; "" for an FP32 file."""
    if mix.kind == "fp32":
        return ""
    if mix.kind == "fp16":
        what, how = "holds FP16 weights", "the same weights, widened; FP32 math"
    else:
        what = "is mixed FP32/FP16"
        casts = _count(mix.casts_to_fp16, "Cast")
        how = f"the same weights, its {casts} to FP16 made FP32; FP32 math"
    return (
        f"{file_name} {what}: its fp32 rows and the FP32 reference run an FP32 copy of it"
        f" ({how}), its fp16 rows the file as it is: {mix.text()}, judged at FP16's tolerance"
    )


def casts_to_fp16(model: Any) -> int:
    """The Cast nodes to FP16 of ``model``, in its subgraphs and function bodies too (a
    module exported as an ONNX function keeps its casts there)."""
    import onnx

    def to_fp16(node: Any) -> bool:
        return node.op_type == "Cast" and any(
            a.name == "to" and a.i == onnx.TensorProto.FLOAT16 for a in node.attribute
        )

    return sum(1 for node in all_nodes(model) if to_fp16(node))


def weights_precision(model: Any) -> str:
    """``fp16`` when the float weights of ``model`` (or of one graph) are mostly FP16 (by
    element count), else ``fp32``."""
    fp16, fp32 = _weight_counts(model)
    return "fp16" if fp16 > fp32 else "fp32"


def _weight_counts(model: Any) -> tuple[int, int]:
    """The elements of FP16 and of FP32 tensors of ``model`` (or of one graph), read from
    the declared dims: no external data is loaded. Every tensor counts wherever it sits
    (initializers, Constant nodes, as some converters write every weight, sparse values,
    subgraphs, function bodies)."""
    import onnx

    counts = {onnx.TensorProto.FLOAT: 0, onnx.TensorProto.FLOAT16: 0}
    tensors = all_tensors(model) if hasattr(model, "graph") else graph_tensors(model)
    for t in tensors:
        if t.data_type in counts:
            counts[t.data_type] += math.prod(t.dims)
    return counts[onnx.TensorProto.FLOAT16], counts[onnx.TensorProto.FLOAT]


def widen_to_fp32(model: Any) -> Any:
    """``model`` (loaded with its data) with every FP16 tensor and type made FP32, in place:
    every tensor the external-data check walks (initializers, sparse values, constants,
    subgraphs, function bodies), the declared types, and casts to FP16.

    Function bodies too: a module exported as an ONNX function
    (``torch.onnx.export(export_modules_as_functions=...)``) keeps its constants and casts
    there, outside the graph; left FP16 there, the copy did not load.
    """
    for t in all_tensors(model):
        _widen_tensor(t)
    g = model.graph
    _widen_types(g.node, (*g.input, *g.output, *g.value_info))
    for fn in model.functions:
        _widen_types(fn.node, fn.value_info)
    return model


def _widen_tensor(t: Any) -> None:
    import onnx
    from onnx import numpy_helper

    if t.data_type != onnx.TensorProto.FLOAT16:
        return
    wide = numpy_helper.from_array(numpy_helper.to_array(t).astype("float32"), t.name)
    t.CopyFrom(wide)


def _widen_types(nodes: Any, value_infos: Any) -> None:
    """FP16 made FP32 in declared types and in attributes naming an element type, here and
    in every subgraph."""
    import onnx

    for vi in value_infos:
        tt = vi.type.tensor_type
        if tt.elem_type == onnx.TensorProto.FLOAT16:
            tt.elem_type = onnx.TensorProto.FLOAT
    for node in nodes:
        for attr in node.attribute:
            if attr.name in _TYPE_ATTRS and attr.type == onnx.AttributeProto.INT:
                if attr.i == onnx.TensorProto.FLOAT16:
                    attr.i = onnx.TensorProto.FLOAT
        for sub in subgraphs(node):
            _widen_types(sub.node, (*sub.input, *sub.output, *sub.value_info))
