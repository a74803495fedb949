"""An FP32 copy of a user's FP16 or mixed FP32/FP16 ONNX file: the same weights, widened,
and FP32 math (which files those are: engine/artifacts/float_mix.py).

A file exported in FP16 has no FP32 form to compare with. Run as it is and called "fp32",
its rows would say one precision and run another, and parity would compare the file with
itself. Widening every FP16 tensor to FP32 (initializers, constants, casts to FP16, the
declared inputs, outputs and intermediate types, sparse values, function bodies) gives the
FP32 reference and the fp32 rows a model that really computes in FP32 on exactly the file's weights (every FP16 value is
exact in FP32); the file itself is then what the fp16 rows run.
"""

from __future__ import annotations

from typing import Any

from engine.artifacts.external_data import all_tensors, subgraphs

# Part of the copy's cache key (engine/artifacts/export.py): a change to what is widened
# gives new copies, not the cached ones of an earlier widening.
WIDEN_RECIPE = "widen-2"

# Attributes that name an element type: Cast's target, the dtype of EyeLike and the random
# generators. A FLOAT16 there becomes FLOAT.
_TYPE_ATTRS = ("to", "dtype")


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
