"""An FP32 copy of a user's FP16 ONNX file: the same weights, widened, and FP32 math.

A file exported in FP16 has no FP32 form to compare with. Run as it is and called "fp32",
its rows would say one precision and run another, and parity would compare the file with
itself. Widening every FP16 tensor to FP32 (initializers, constants, casts to FP16, the
declared inputs, outputs and intermediate types, sparse values, function bodies) gives the
FP32 reference and the fp32 rows a model that really computes in FP32 on exactly the file's weights (every FP16 value is
exact in FP32); the file itself is then what the fp16 rows run.
"""

from __future__ import annotations

import math
from typing import Any

from engine.artifacts.external_data import all_nodes, all_tensors, graph_tensors, subgraphs

# Part of the copy's cache key (engine/artifacts/export.py): a change to what is widened
# gives new copies, not the cached ones of an earlier widening.
WIDEN_RECIPE = "widen-2"

# Attributes that name an element type: Cast's target, the dtype of EyeLike and the random
# generators. A FLOAT16 there becomes FLOAT.
_TYPE_ATTRS = ("to", "dtype")


def fp16_note(file_name: str, by: str = "weights") -> str:
    """What runs for a file that computes in FP16 (``by``: its FP16 weights, or its casts of
    FP32 weights to FP16), said wherever the file is used."""
    what = "holds FP16 weights" if by == "weights" else "computes in FP16 (Cast nodes to FP16)"
    return (
        f"{file_name} {what}: its fp32 rows and the FP32 reference run an FP32 copy of it (the"
        " same weights, widened; FP32 math), its fp16 rows the file as it is"
    )


def file_precision(model: Any) -> tuple[str, str]:
    """``("fp16", by)`` for a file that computes in FP16, else ``("fp32", "")``: ``by`` is
    "weights" when most float weights are FP16, "casts" when FP32 weights are cast to FP16
    in the graph (an export under ``torch.autocast`` without constant folding), whose rows
    labelled fp32 ran FP16 math and whose parity compared the file with itself. Both are
    read wherever they sit: subgraphs and function bodies too."""
    if weights_precision(model) == "fp16":
        return "fp16", "weights"
    if casts_to_fp16(model):
        return "fp16", "casts"
    return "fp32", ""


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
    element count), else ``fp32``. Read from the declared dims: no external data is loaded.
    Every tensor counts wherever it sits (initializers, Constant nodes, as some converters
    write every weight, subgraphs, function bodies)."""
    import onnx

    counts = {onnx.TensorProto.FLOAT: 0, onnx.TensorProto.FLOAT16: 0}
    tensors = all_tensors(model) if hasattr(model, "graph") else graph_tensors(model)
    for t in tensors:
        if t.data_type in counts:
            counts[t.data_type] += math.prod(t.dims)
    fp16, fp32 = counts[onnx.TensorProto.FLOAT16], counts[onnx.TensorProto.FLOAT]
    return "fp16" if fp16 > fp32 else "fp32"


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
