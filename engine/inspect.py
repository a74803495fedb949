"""Engine-side facts for the engines page: what was built and what it cost.

For an ONNX file: its size, operator histogram and node count, and the same after ONNX
Runtime's graph optimisations at ``ORT_ENABLE_ALL`` (written out through
``SessionOptions.optimized_model_filepath``), which makes operator fusion concrete.
For the artifact cache: each entry's kind, size, location and the times recorded in its
``meta.json`` (export seconds; creation time for all).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import BadInput
from engine.paths import cache_dir, short_path


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


@dataclass
class CacheEntry:
    """One folder of the artifact cache (an ONNX export, an int8 model, an engine...)."""

    kind: str
    key: str
    folder: str
    size_bytes: int
    created: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def build_s(self) -> float | None:
        for k in ("export_s", "quantize_s", "build_s", "seconds"):
            if isinstance(self.meta.get(k), int | float):
                return float(self.meta[k])
        return None


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


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def cache_entries(root: str | os.PathLike[str] | None = None) -> list[CacheEntry]:
    """Every artifact folder under the cache (``<kind>/<key>/``), newest first."""
    base = Path(root) if root else cache_dir()
    entries: list[CacheEntry] = []
    if not base.is_dir():
        return entries
    for kind_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        if kind_dir.name == "locks":
            continue
        for folder in sorted(p for p in kind_dir.iterdir() if p.is_dir()):
            meta: dict[str, Any] = {}
            meta_file = folder / "meta.json"
            if meta_file.is_file():
                try:
                    meta = json.loads(meta_file.read_text())
                except (OSError, ValueError):
                    meta = {"error": "meta.json is unreadable"}
            created = meta.get("created")
            stamp = (
                dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="seconds")
                if isinstance(created, int | float)
                else ""
            )
            entries.append(
                CacheEntry(
                    kind=kind_dir.name,
                    key=folder.name,
                    folder=short_path(folder),
                    size_bytes=_folder_size(folder),
                    created=stamp,
                    meta=meta,
                )
            )
    return sorted(entries, key=lambda e: e.created, reverse=True)


def cache_summary(root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Where the cache lives and how much each kind of artifact takes."""
    base = Path(root) if root else cache_dir()
    by_kind: dict[str, dict[str, int]] = {}
    for e in cache_entries(base):
        k = by_kind.setdefault(e.kind, {"entries": 0, "size_bytes": 0})
        k["entries"] += 1
        k["size_bytes"] += e.size_bytes
    return {
        "location": short_path(base),
        "size_bytes": sum(k["size_bytes"] for k in by_kind.values()),
        "by_kind": by_kind,
    }


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
