"""Engine-side facts for the engines page: what was built and what it cost.

For an ONNX file: its size, operator histogram and node count, and the same after ONNX
Runtime's graph optimisations at ``ORT_ENABLE_ALL`` (written out through
``SessionOptions.optimized_model_filepath``), which makes operator fusion concrete.
For the artifact cache (listed by :mod:`engine.artifacts.cache`): each entry's kind, size,
location and the build time its ``meta.json`` records.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.errors import BadInput
from engine.core.paths import cache_dir, short_path

# meta.json fields that record how long an artifact took to make (export, quantise, build).
BUILD_TIME_KEYS = ("export_s", "quantize_s", "build_s", "seconds")


@dataclass
class GraphFacts:
    """Size and shape of one ONNX graph."""

    path: str
    size_bytes: int
    node_count: int
    op_histogram: dict[str, int] = field(default_factory=dict)
    opset: int = 0


@dataclass
class OptimisedGraph:
    """A graph before and after ONNX Runtime's optimisations, and what fusion did."""

    original: GraphFacts
    optimised: GraphFacts
    level: str
    optimise_s: float

    @property
    def nodes_removed(self) -> int:
        return self.original.node_count - self.optimised.node_count

    def op_changes(self) -> list[tuple[str, int, int]]:
        """(op type, count before, count after) for every op whose count changed."""
        ops = sorted(set(self.original.op_histogram) | set(self.optimised.op_histogram))
        rows = [
            (op, self.original.op_histogram.get(op, 0), self.optimised.op_histogram.get(op, 0))
            for op in ops
        ]
        return [r for r in rows if r[1] != r[2]]


def _histogram(graph: Any) -> dict[str, int]:
    hist: dict[str, int] = {}
    for node in graph.node:
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        hist[op] = hist.get(op, 0) + 1
    return dict(sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])))


def graph_facts(path: str | os.PathLike[str]) -> GraphFacts:
    """Size, node count, operator histogram and opset of an ONNX file."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise BadInput(f"ONNX file {p.name} does not exist", fix="export the model first")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several kinds
        raise BadInput(
            f"{p.name} is not a readable ONNX model", f"{type(exc).__name__}: {exc}"
        ) from exc
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return GraphFacts(
        path=short_path(p),
        size_bytes=p.stat().st_size,
        node_count=len(model.graph.node),
        op_histogram=_histogram(model.graph),
        opset=opset,
    )


def optimised_graph(path: str | os.PathLike[str], level: str = "ORT_ENABLE_ALL") -> OptimisedGraph:
    """Let ONNX Runtime optimise ``path`` on the CPU provider and compare the graphs."""
    import onnxruntime as ort

    original = graph_facts(path)
    try:
        opt_level = getattr(ort.GraphOptimizationLevel, level)
    except AttributeError as exc:
        raise BadInput(
            f"unknown optimisation level {level}",
            fix="use ORT_ENABLE_BASIC, ORT_ENABLE_EXTENDED or ORT_ENABLE_ALL",
        ) from exc
    with tempfile.TemporaryDirectory(prefix="vb-optimised-") as tmp:
        out = Path(tmp) / "optimised.onnx"
        so = ort.SessionOptions()
        so.graph_optimization_level = opt_level
        so.optimized_model_filepath = str(out)
        so.log_severity_level = 3
        t0 = time.perf_counter()
        # CPU only: the optimised graph is what the CPU provider runs, which is what the
        # default sweep measures; a GPU session would fuse differently.
        ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
        seconds = time.perf_counter() - t0
        optimised = graph_facts(out)
    optimised.path = f"{original.path} (optimised by ONNX Runtime, not kept)"
    return OptimisedGraph(original, optimised, level, seconds)


def cache_summary(root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Where the artifact cache lives and how much each kind of artifact takes."""
    from engine.artifacts.cache import cache_entries

    base = Path(root) if root else cache_dir()
    by_kind: dict[str, dict[str, int]] = {}
    for item in cache_entries(base):
        k = by_kind.setdefault(item.kind, {"entries": 0, "size_bytes": 0})
        k["entries"] += 1
        k["size_bytes"] += item.size_bytes
    return {
        "location": short_path(base),
        "size_bytes": sum(k["size_bytes"] for k in by_kind.values()),
        "by_kind": by_kind,
    }


def cache_rows(root: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """One display row per cache entry, newest first, with its recorded build time."""
    from engine.artifacts.cache import cache_entries, human_bytes, recorded_seconds

    rows = []
    for item in sorted(cache_entries(root), key=lambda i: -i.created_s):
        times = (recorded_seconds(item.meta.get(k)) for k in BUILD_TIME_KEYS)
        build_s = next((t for t in times if t is not None), None)
        rows.append(
            {
                "kind": item.kind,
                "what": item.what
                or " ".join(str(item.meta[k]) for k in ("format", "calibration") if k in item.meta),
                "size": human_bytes(item.size_bytes),
                "size_bytes": item.size_bytes,
                "build_s": round(float(build_s), 2) if build_s is not None else None,
                "created_utc": dt.datetime.fromtimestamp(item.created_s, dt.UTC).isoformat(
                    timespec="seconds"
                ),
                "folder": short_path(item.path),
                "key": item.key,
                "meta": item.meta,
            }
        )
    return rows
