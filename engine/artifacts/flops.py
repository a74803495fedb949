"""FLOPs of one forward pass of one image, counted once per model and input size.

PyTorch models: ``torch.utils.flop_counter.FlopCounterMode`` over one forward pass of a
copy of the model on the ``meta`` device (shapes only, no arithmetic, no memory). It
counts matrix multiplies and convolutions (mm, addmm, bmm, baddbmm, convolution and
its backward, scaled-dot-product attention); element-wise ops, batch norm, pooling and
activations are not counted, which for CNNs is under 1 % of the total. One multiply-add
is 2 FLOPs, so ResNet-50 at 224×224 is about 4.1 GMAC = 8.2 GFLOP.

ONNX files: after ``onnx.shape_inference``, Conv, ConvTranspose, Gemm and MatMul nodes
are counted with the same rule; a graph whose shapes cannot be inferred is not counted
(None), never guessed.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from engine.artifacts.onnx_source import declared_dim, image_axes

COUNTED_ONNX_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def torch_gflop(module: Any, image_size: int | tuple[int, int], channels: int = 3) -> float:
    """GFLOP of one forward pass of ``module`` on one image (2 FLOPs per multiply-add)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    meta = copy.deepcopy(module).to("meta").eval()
    x = torch.empty(1, channels, h, w, device="meta")
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        meta(x)
    return counter.get_total_flops() / 1e9


def _dims(value_info: Any) -> list[int] | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = [declared_dim(d) for d in t.shape.dim]
    return None if any(d is None for d in dims) else dims


def _node_flops(node: Any, shapes: dict[str, list[int]], weights: dict[str, list[int]]) -> float:
    def shape(name: str) -> list[int] | None:
        return shapes.get(name) or weights.get(name)

    out = shape(node.output[0])
    if out is None:
        raise ValueError(f"no static shape for {node.op_type} output")
    if node.op_type in ("Conv", "ConvTranspose"):
        w = shape(node.input[1])
        if w is None:
            raise ValueError("no static shape for a convolution's weight")
        if node.op_type == "Conv":  # weight (C_out, C_in/group, k…): per output element
            return 2.0 * math.prod(out) * math.prod(w[1:])
        inp = shape(node.input[0])  # weight (C_in, C_out/group, k…): per input element
        if inp is None:
            raise ValueError("no static shape for a transposed convolution's input")
        return 2.0 * math.prod(inp) * math.prod(w[1:])
    return 2.0 * math.prod(out) * _inner(node, shape(node.input[0]), weights.get(node.input[1]))


def _inner(node: Any, a: list[int] | None, b: list[int] | None) -> int:
    """The summed-over length K of a Gemm or MatMul: from its input, or where that shape
    is computed at run time (``x.view(x.size(0), -1)`` before the head) from its weight."""
    flag = {x.name: x.i for x in node.attribute}
    if a is not None:
        return a[0] if node.op_type == "Gemm" and flag.get("transA") else a[-1]
    if b is not None and node.op_type == "Gemm":
        return b[1] if flag.get("transB") else b[0]
    if b is not None and len(b) >= 2:
        return b[-2]
    raise ValueError(f"no static shape for {node.op_type} input")


def onnx_gflop(path: str, batch: int = 1, hw: tuple[int, int] | None = None) -> float | None:
    """GFLOP per image of the ONNX file's Conv/ConvTranspose/Gemm/MatMul nodes, or None.
    ``hw`` is the height and width it runs at, for a file whose sides are symbolic."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    # Pin the symbolic batch and sides so shapes become static; the outputs' batch too, for
    # a head whose input shape is computed at run time (inference cannot follow it there).
    for value_info in (*model.graph.input, *model.graph.output):
        dims = value_info.type.tensor_type.shape.dim
        four = hw and len(dims) == 4 and value_info in model.graph.input
        pins = {0: batch}
        if four:  # the sides where the input's layout has them (NCHW, or NHWC)
            _, h_axis, w_axis = image_axes([declared_dim(d) for d in dims])
            pins |= {h_axis: hw[0], w_axis: hw[1]}
        for i, value in pins.items():
            if i < len(dims) and declared_dim(dims[i]) is None:  # a name, nothing or -1
                dims[i].dim_value = value
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - a graph the checker rejects is simply not counted
        return None
    g = model.graph
    shapes = {v.name: d for v in (*g.input, *g.value_info, *g.output) if (d := _dims(v))}
    weights = {t.name: list(t.dims) for t in g.initializer}
    total = 0.0
    try:
        for node in g.node:
            if node.op_type in COUNTED_ONNX_OPS:
                total += _node_flops(node, shapes, weights)
    except ValueError:
        return None
    return total / 1e9 / batch if total else None


_CACHE: dict[tuple[str, str, tuple[int, int]], float | None] = {}


def gflop_per_image(artifacts: Any) -> float | None:
    """FLOPs of one image's forward pass for a sweep's model, cached per (model, size).

    None when they cannot be counted (an ONNX graph without static shapes, or a model
    the counter cannot trace); a figure is then left out, not guessed.
    """
    hw = artifacts.image_hw
    source = str(artifacts.spec.onnx_path or "")
    # a file replaced under the same name must be counted again
    stamp = f"{source}@{Path(source).stat().st_mtime_ns}" if source else ""
    key = (artifacts.model_name, stamp, hw)
    if key not in _CACHE:
        try:
            if artifacts.is_onnx_source:
                # a batch fixed inside the graph is the batch its shapes hold
                batch = getattr(artifacts, "graph_batch", None) or 1
                _CACHE[key] = onnx_gflop(source, batch=batch, hw=hw)
            else:
                _CACHE[key] = torch_gflop(artifacts.torch_module(), artifacts.image_hw)
        except Exception:  # noqa: BLE001 - counting is a bonus; a model it cannot trace keeps its timings
            _CACHE[key] = None
    return _CACHE[key]
