"""A dynamic batch that is a lie: the export batch baked into a ``Reshape`` of the graph.

A classifier traced with ``x.view(2, -1)`` (literal numbers, the legacy exporter) declares
``batch`` symbolic on its input, yet a ``Reshape`` inside holds the constant shape
``[2, -1]``: only batch 2 runs, any other fails deep in the graph (a ``Gemm`` dimension
mismatch) or returns the wrong number of rows. Reading the graph finds the suspects (a
``Reshape`` whose constant shape starts with a positive number); a probe decides, because a
constant leading number is also how a model reshapes its own weights: ONNX Runtime on the
CPU runs the file at that batch and at another one, and only when the first runs and the
second does not (or gives another number of rows) is the file's batch fixed inside the
graph. Each other batch is then a "not applicable" row with the reason, not a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.core.errors import BadInput

MAX_SUSPECTS = 3  # distinct leading numbers probed; each costs two small inferences
# Exports are traced at small batches; a larger leading number is a reshape of something
# else (weights, a sequence), and probing at it would cost an inference that large.
MAX_PROBED_BATCH = 64


class BatchFixedInGraph(BadInput):
    """A batch the graph cannot run although its input says any batch: the point is
    skipped with the reason (exit 2 when nothing else ran)."""

    row_status = "skipped"


@dataclass(frozen=True)
class BakedBatch:
    """The batch a file's graph is fixed at, and the node that fixes it."""

    batch: int
    node: str

    def refusal(self, batch: int) -> BatchFixedInGraph:
        return BatchFixedInGraph(
            f"this file's batch is fixed at {self.batch} inside the graph (Reshape node"
            f" {self.node}): batch {batch} cannot run",
            "its input declares a dynamic batch, but the model was exported with the batch"
            f" as a constant (a reshape such as x.view({self.batch}, -1))",
            f"measure batch {self.batch}, or export again with the batch taken from the"
            " input (x.flatten(1) or x.view(x.size(0), -1))",
        )


def reshape_suspects(graph: Any) -> list[tuple[str, int]]:
    """``(node name, leading number)`` of every ``Reshape`` whose shape is a constant that
    starts with a positive number (0 copies the input's dimension, -1 infers it)."""
    from onnx import numpy_helper

    consts = {i.name: i for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            consts[node.output[0]] = node.attribute[0].t
    found = []
    for i, node in enumerate(graph.node):
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in consts:
            continue
        shape = numpy_helper.to_array(consts[node.input[1]]).reshape(-1)
        if shape.size and int(shape[0]) > 0:
            found.append((node.name or f"#{i}", int(shape[0])))
    return found


def find_baked_batch(
    suspects: list[tuple[str, int]], runs: Callable[[int], bool]
) -> BakedBatch | None:
    """The batch a suspect fixes, confirmed by ``runs(batch)`` (True when the file runs
    at that batch and returns that many rows); None when no suspect is confirmed."""
    tried: set[int] = set()
    for node, n in suspects:
        if n in tried or len(tried) == MAX_SUSPECTS or n > MAX_PROBED_BATCH:
            continue
        tried.add(n)
        other = 1 if n > 1 else 2
        if runs(n) and not runs(other):
            return BakedBatch(n, node)
    return None


def ort_probe(path: str, output: str, sample: Callable[[int], Any]) -> Callable[[int], bool]:
    """``runs(batch)`` for ``path`` through one ONNX Runtime CPU session: True when its
    ``output`` has ``batch`` rows (errors stay quiet: a failure here is the answer)."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4
    try:
        session = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - a file ONNX Runtime cannot load: the backends say why
        return lambda batch: False
    inp = session.get_inputs()[0]
    dtype = np.float16 if "float16" in inp.type else np.float32

    def runs(batch: int) -> bool:
        try:
            (out,) = session.run([output], {inp.name: sample(batch).astype(dtype)})
        except Exception:  # noqa: BLE001 - ONNX Runtime raises several kinds
            return False
        return out.ndim >= 1 and out.shape[0] == batch

    return runs
