"""A static-shape copy of an ONNX model for one batch size, with its shape subgraph folded.

Why: an exported model with a dynamic batch computes shapes at run time (``Shape``,
``Gather``, ``Range``, ``Concat`` on int64 tensors). ONNX Runtime's CUDA EP places those
small nodes on the CPU, and a CUDA graph can only be captured when every node runs on the
GPU ("all compute graph nodes have not been partitioned to the CUDAExecutionProvider", seen
on ViT-B/16 and ConvNeXt-T). Fixing the batch dimension and folding constants with the
onnxscript optimizer removes that subgraph without touching the arithmetic: the folding is
done on the graph alone, not by an ONNX Runtime session of another provider (a CPU session
would insert Casts around FP16 nodes it cannot run). The result is cached beside the source
under a key of the source's hash, the batch and this recipe's version; rows measured on it
are labelled "static shape (batch N)".
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from engine.artifacts.export import in_use
from engine.core.paths import cache_dir
from engine.core.safeio import private_folder, write_text

RECIPE = 2  # 2: symbolic height and width take the measured size (1 put the batch there)
# Nodes that compute on shapes rather than on the image: the CUDA EP runs them on the CPU.
SHAPE_OPS = frozenset({"Shape", "Size", "Range", "ConstantOfShape", "NonZero"})


def shape_nodes(model) -> list[str]:
    """``op_type`` of every node that reads a tensor's shape at run time, sorted."""
    return sorted(n.op_type for n in model.graph.node if n.op_type in SHAPE_OPS)


def static_batch_model(
    src: str | os.PathLike[str],
    batch: int,
    source_hash: str,
    tail: tuple[int, int, int] = (3, 224, 224),
) -> Path:
    """The cached static-shape model of ``src`` at ``batch`` and ``tail`` (channels,
    height, width, or height, width, channels for a channels-last input: what a symbolic
    axis other than the batch takes), built on first use."""
    import onnx
    import onnxscript.optimizer
    from onnxruntime.tools.onnx_model_utils import make_input_shape_fixed

    key = f"{source_hash[:24]}-b{batch}-{'x'.join(map(str, tail))}-r{RECIPE}"
    folder = cache_dir() / "onnx-static" / key
    final = folder / "model.onnx"
    if final.is_file() and (folder / "meta.json").is_file():
        return in_use(folder, final)
    folder.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(src))
    for inp in model.graph.input:
        declared = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        fill = (batch, *tail) if len(declared) == 4 else (batch,) * len(declared)
        dims = [d if d > 0 else fill[i] for i, d in enumerate(declared)]
        dims[0] = batch
        make_input_shape_fixed(model.graph, inp.name, dims)
    model = onnx.shape_inference.infer_shapes(model)
    model = onnxscript.optimizer.optimize(model)
    onnx.checker.check_model(model)
    # Written in a private folder (its ".tmp" name marks the entry busy for a prune), then
    # renamed into place: no predictable name a link could be planted at.
    private = private_folder(folder, "model.tmp.")
    try:
        onnx.save(model, str(private / "model.onnx"))
        os.replace(private / "model.onnx", final)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    meta = {
        "batch": batch,
        "tail": list(tail),
        "recipe": RECIPE,
        "shape_nodes_left": shape_nodes(model),
    }
    write_text(folder / "meta.json", json.dumps(meta), "the cache's meta.json")
    return in_use(folder, final)
