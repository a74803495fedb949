"""What float types a user's ONNX file holds and computes in, counted, and what that makes
its rows run.

A file is not only FP32 or FP16: an export under ``torch.autocast`` keeps FP32 weights and
casts some layers' inputs to FP16 (mixed FP32/FP16), a converter may leave ops in FP32
among FP16 ones, and a file may take FP16 images in front of FP32 weights. Each is read
from the graph alone (no external data loaded), wherever a tensor or a Cast sits: the
graph, its subgraphs (``If``, ``Loop``, ``Scan``) and its functions' bodies, with the
walkers the external-data check uses. A file with FP16 math runs as it is in its fp16 rows
and as an FP32 copy (engine/artifacts/widen.py) in its fp32 rows and the FP32 reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.artifacts.external_data import all_nodes, all_tensors, graph_tensors, subgraphs


@dataclass(frozen=True)
class FloatMix:
    """The float types a user's ONNX file holds and computes in, counted wherever they sit
    (graph, subgraphs, function bodies), never guessed from one place: an FP32 file with a
    few Casts to FP16 (an export under ``torch.autocast``) is neither an FP32 file nor an
    FP16 one."""

    fp16_weights: int = 0  # elements of FP16 tensors (initializers, constants, sparse values)
    fp32_weights: int = 0
    casts_to_fp16: int = 0
    fp16_input: bool = False  # the image input is declared FP16: that is what it is fed
    input_read_in_fp16: bool = False  # a node other than a Cast to FP32 reads that input

    @property
    def kind(self) -> str:
        """``fp16`` when most weights are FP16; ``mixed`` when FP32 weights meet FP16 math
        (Casts to FP16, or an FP16 input read by more than a Cast to FP32); else ``fp32``.
        A few FP16 weights alone do not make FP16 math: with no FP16 activation to meet,
        they are read through a Cast to FP32."""
        if self.fp16_weights > self.fp32_weights:
            return "fp16"
        return "mixed" if self.casts_to_fp16 or self.input_read_in_fp16 else "fp32"

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
        if self.fp16_input:
            parts.append("FP16 input" if self.kind != "fp32" else "FP16 input cast to FP32")
        return ", ".join(parts)

    def _weights(self) -> str:
        if not self.fp16_weights:
            return "FP32 weights"
        return f"FP32 weights ({_count(self.fp16_weights, 'value')} stored in FP16)"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def float_mix(model: Any) -> FloatMix:
    """The :class:`FloatMix` of ``model`` (loaded without its external data: dims only)."""
    fp16_input, read_in_fp16 = _fp16_input(model.graph)
    return FloatMix(
        *_weight_counts(model),
        casts_to_fp16=casts_to_fp16(model),
        fp16_input=fp16_input,
        input_read_in_fp16=read_in_fp16,
    )


def precision_note(file_name: str, mix: FloatMix) -> str:
    """What runs for a file with FP16 math or input (its rows of each precision, and the
    reference), said wherever the file is used; "" for an FP32 file with FP32 input."""
    if mix.kind == "fp32":
        return _fp16_input_note(file_name) if mix.fp16_input else ""
    if mix.kind == "fp16":
        what, how = "holds FP16 weights", "the same weights, widened; FP32 math"
    else:
        what = "is mixed FP32/FP16"
        made = [f"its {_count(mix.casts_to_fp16, 'Cast')} to FP16"] if mix.casts_to_fp16 else []
        made += ["its FP16 input"] if mix.fp16_input else []
        how = f"the same weights, {' and '.join(made)} made FP32; FP32 math"
    return (
        f"{file_name} {what}: its fp32 rows and the FP32 reference run an FP32 copy of it"
        f" ({how}), its fp16 rows the file as it is: {mix.text()}, judged at FP16's tolerance"
    )


def casts_to_fp16(model: Any) -> int:
    """The casts to FP16 of ``model``, in its subgraphs and function bodies too (a module
    exported as an ONNX function keeps its casts there): each ``Cast(to=FLOAT16)``, and each
    ``CastLike`` whose target is an FP16 tensor the file holds or takes."""
    import onnx

    f16 = onnx.TensorProto.FLOAT16
    nodes = list(all_nodes(model))
    fp16_names = {t.name for t in all_tensors(model) if t.data_type == f16}
    fp16_names |= {i.name for i in model.graph.input if i.type.tensor_type.elem_type == f16}
    fp16_names |= {
        n.output[0]
        for n in nodes
        if n.op_type == "Constant"
        and any(a.HasField("t") and a.t.data_type == f16 for a in n.attribute)
    }

    def to_fp16(node: Any) -> bool:
        if node.op_type == "CastLike":
            return len(node.input) > 1 and node.input[1] in fp16_names
        return node.op_type == "Cast" and any(a.name == "to" and a.i == f16 for a in node.attribute)

    return sum(1 for node in nodes if to_fp16(node))


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


def _fp16_input_note(file_name: str) -> str:
    # FP32 math on FP16 images: the rows are FP32 rows, and their input is what the file
    # declares (every runner feeds the declared type), said so since "fp32" alone does not.
    return (
        f"{file_name} takes FP16 input and computes in FP32 (FP32 weights, the input cast to"
        " FP32 first): every row is fed the images rounded to FP16, as the file declares; its"
        " fp32 rows and the FP32 reference run the file as it is, its fp16 rows an FP16 copy"
    )


def _fp16_input(graph: Any) -> tuple[bool, bool]:
    """Whether the image input is declared FP16, and whether anything but a Cast to FP32
    reads it there (then FP16 math runs before the file's FP32 part; a subgraph reading
    it counts as such a reader)."""
    import onnx

    inits = {t.name for t in graph.initializer}
    image = next((i for i in graph.input if i.name not in inits), None)
    if image is None or image.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16:
        return False, False
    to_fp32 = [("to", onnx.TensorProto.FLOAT)]
    for node in graph.node:
        cast = node.op_type == "Cast" and [(a.name, a.i) for a in node.attribute] == to_fp32
        if (image.name in node.input and not cast) or _reads_in(node, image.name):
            return True, True
    return True, False


def _reads_in(node: Any, name: str) -> bool:
    """Whether a subgraph of ``node`` (at any depth) reads ``name``."""
    return any(
        name in inner.input or _reads_in(inner, name) for g in subgraphs(node) for inner in g.node
    )
