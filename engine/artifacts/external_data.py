"""The external-data check of a user's ONNX file, over every place a tensor can sit.

A tensor's bytes may live in a file beside the model (``model.onnx.data``); its
``location`` is a path the file chooses, so ``../../etc/passwd`` must be refused before
ONNX Runtime (or onnx itself) opens anything. onnx's own walker skips sparse tensors, and
whether ONNX Runtime refuses them depends on its version (1.31 does, ``>=1.20`` is allowed),
so the walk here is ours: initializers, sparse initializers (values and indices), node
attributes (``t``, ``tensors``, ``sparse_tensor``, ``sparse_tensors``, as in
``Constant(sparse_value=…)``), subgraphs (``If``, ``Loop``, ``Scan``) and function bodies.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.core.errors import BadInput
from engine.core.limits import tensor_bytes


def _sparse(sp: Any) -> Iterator[Any]:
    yield sp.values
    yield sp.indices


def subgraphs(node: Any) -> Iterator[Any]:
    """The graphs ``node`` holds in its attributes (``If``'s branches, ``Loop``'s and
    ``Scan``'s bodies)."""
    for attr in node.attribute:
        if attr.HasField("g"):
            yield attr.g
        yield from attr.graphs


def _node_tensors(nodes: Any) -> Iterator[Any]:
    for node in nodes:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield from _sparse(attr.sparse_tensor)
            for sp in attr.sparse_tensors:
                yield from _sparse(sp)
        for g in subgraphs(node):
            yield from graph_tensors(g)


def graph_tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto of ``graph``, its nodes' attributes and its subgraphs."""
    yield from graph.initializer
    for sp in graph.sparse_initializer:
        yield from _sparse(sp)
    yield from _node_tensors(graph.node)


def all_tensors(model: Any) -> Iterator[Any]:
    """Every TensorProto of ``model``: its graph and its functions' bodies."""
    yield from graph_tensors(model.graph)
    for fn in model.functions:
        yield from _node_tensors(fn.node)


def all_nodes(model: Any) -> Iterator[Any]:
    """Every node of ``model``: its graph's, its subgraphs' (``If``, ``Loop``, ``Scan``, at
    any depth) and its functions' bodies'."""
    bodies = [model.graph.node, *(fn.node for fn in model.functions)]
    while bodies:
        for node in bodies.pop():
            yield node
            bodies.extend(g.node for g in subgraphs(node))


def _is_external(tensor: Any) -> bool:
    # data_location EXTERNAL is 1; a location entry alone is treated the same, so a file
    # that forgets the flag cannot slip a path past the check.
    return tensor.data_location == 1 or any(e.key == "location" for e in tensor.external_data)


def check_external_data(model: Any, folder: Path) -> None:
    """Refuse external-data entries that leave the model's folder, are missing or are short."""
    root = folder.resolve()
    for tensor in all_tensors(model):
        if not _is_external(tensor):
            continue
        loc = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (root / loc).resolve()
        if not loc or os.path.isabs(loc) or ".." in Path(loc).parts or root not in target.parents:
            raise BadInput(
                f"the ONNX file refers to external data '{loc}' outside its own folder",
                "external data must sit beside the model file",
                "re-save the model with its data files next to it",
            )
        if not target.is_file():
            raise BadInput(
                f"the ONNX file's external data '{loc}' is missing",
                "its weights live in that file, which must sit beside the model file",
                f"put {loc} next to the model file (in the dashboard: upload it together"
                " with the model, or both in one .zip)",
            )
        entry = {e.key: e.value for e in tensor.external_data}
        need = int(entry.get("offset") or 0) + int(entry.get("length") or tensor_bytes(tensor) or 0)
        have = target.stat().st_size
        if have < need:
            raise BadInput(
                f"the ONNX file's external data '{loc}' is cut short",
                f"it holds {have} bytes; the tensor {tensor.name} needs {need}",
                "copy the complete data file next to the model file, or export again",
            )


def external_locations(model: Any) -> list[str]:
    """The data files ``model`` refers to, in first-use order (for naming what is missing)."""
    seen: dict[str, None] = {}
    for tensor in all_tensors(model):
        if _is_external(tensor):
            loc = next((e.value for e in tensor.external_data if e.key == "location"), "")
            seen.setdefault(loc, None)
    return list(seen)


def model_digest(path: str | os.PathLike[str]) -> str:
    """The identity of an ONNX model for every cache keyed by it: the file's sha256, and
    with external data the data files' too (retrained weights leave ``model.onnx`` byte
    for byte the same, so its hash alone would hand back artifacts of the old weights)."""
    import onnx

    from engine.core.hashing import file_sha256

    p = Path(path)
    own = file_sha256(p)
    locations = external_locations(onnx.load(str(p), load_external_data=False))
    if not locations:
        return own
    h = hashlib.sha256(own.encode())
    for loc in sorted(locations):
        h.update(f"\0{loc}\0{file_sha256(p.parent / loc)}".encode())
    return h.hexdigest()
