"""Where ONNX Runtime really runs each node, read from a one-off profiled session.

Placement comes from a session of its own, so a timed session is never profiled (ONNX
Runtime as shipped is not). A CUDA result with compute nodes on the CPU is an error that
names them; a CUDA graph with any node on the CPU cannot be captured, which is known here
before capture and reported as not applicable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Any

import numpy as np

from engine.core.commands import engine_command
from engine.core.errors import NotApplicable, ProviderFallback
from engine.core.safeio import private_folder
from engine.core.text import safe_text

COMPUTE_OPS = {"Conv", "Gemm", "MatMul", "ConvTranspose", "QLinearConv", "MatMulInteger"}
TRT_EP = "TensorrtExecutionProvider"


def node_placement(profile_path: str) -> dict[str, dict[str, int]]:
    """From an ORT profile: provider → op type → nodes run there."""
    with open(profile_path) as f:
        events = json.load(f)
    seen: dict[str, dict[str, str]] = {}
    for ev in events:
        args = ev.get("args") or {}
        if ev.get("cat") == "Node" and "provider" in args and "op_name" in args:
            name = ev.get("name", "").removesuffix("_kernel_time")
            seen.setdefault(args["provider"], {})[name] = args["op_name"]
    out: dict[str, dict[str, int]] = {}
    for provider, nodes in seen.items():
        counts: dict[str, int] = {}
        for op in nodes.values():
            counts[op] = counts.get(op, 0) + 1
        out[provider] = counts
    return out


def check_placement(requested: str, used: list[str], placement: dict[str, dict[str, int]]):
    """Raise ProviderFallback for a whole or partial fallback away from ``requested``."""
    if requested not in used:
        raise ProviderFallback(
            f"ONNX Runtime was asked for {requested} but the session uses only {', '.join(used)}",
            "the provider's libraries failed to load (ONNX Runtime's log says which)",
            f"run `{engine_command('diagnose')}` for the root cause and the fix",
        )
    if requested == "CPUExecutionProvider":
        return
    on_cpu = placement.get("CPUExecutionProvider", {})
    heavy = {op: n for op, n in on_cpu.items() if op in COMPUTE_OPS}
    if heavy:
        listing = ", ".join(f"{n}× {op}" for op, n in sorted(heavy.items()))
        raise ProviderFallback(
            f"{requested} ran, but compute nodes fell back to the CPU ({listing})",
            "ONNX Runtime assigns nodes the provider cannot run to the CPU",
            f"use a precision or opset the provider supports, or see `{engine_command('diagnose')}`",
        )
    on_cuda = placement.get("CUDAExecutionProvider", {}) if requested == TRT_EP else {}
    heavy = {op: n for op, n in on_cuda.items() if op in COMPUTE_OPS}
    if heavy:
        listing = ", ".join(f"{n}× {op}" for op, n in sorted(heavy.items()))
        raise ProviderFallback(
            f"{requested} ran, but compute nodes fell back to the CUDA EP ({listing})",
            "ONNX Runtime gives nodes TensorRT's parser cannot take to the next provider",
            "use the tensorrt backend to see the parser's errors per node",
        )


def _without_graph_capture(providers: list[Any]) -> list[Any]:
    out = []
    for p in providers:
        if isinstance(p, tuple):
            p = (p[0], {k: v for k, v in p[1].items() if k != "enable_cuda_graph"})
        out.append(p)
    return out


def probe_shape(declared: list[Any], batch: int, tail: tuple[int, ...] | None) -> list[int]:
    """The input shape of the probe's run: the batch on the batch axis only, and the size
    that is measured (``tail``: channels, height, width) on every other symbolic axis."""
    out = []
    for i, d in enumerate(declared):
        if isinstance(d, int) and d > 0:
            out.append(d)
        elif i == 0:
            out.append(batch)
        elif tail is not None and i - 1 < len(tail):
            out.append(tail[i - 1])
        else:
            out.append(batch)  # no size known: the old guess, for callers without one
    return out


def input_numpy_dtype(ort_type: str) -> type:
    """The NumPy type an input of ONNX Runtime's type string (``tensor(float16)``) is fed:
    float16, uint8 (pixels, for a file that normalises them itself) or float32."""
    return {"tensor(float16)": np.float16, "tensor(uint8)": np.uint8}.get(ort_type, np.float32)


def probe_placement(
    ort: Any,
    model_path: str,
    so: Any,
    providers: list[Any],
    batch: int,
    tail: tuple[int, ...] | None = None,
) -> dict[str, dict[str, int]]:
    """Provider → op type → nodes run there, from a one-off profiled session and one run.

    A session of its own, so the timed session is never profiled (ONNX Runtime as
    shipped is not). Graph capture is left off here: the probe runs without I/O binding,
    and the partitioning it reports is decided when the session is created.
    """
    so.enable_profiling = True
    # ONNX Runtime names the profile itself (prefix + date): in a shared temporary folder
    # that name is guessable, so it goes into a private (0700) folder of its own.
    private = private_folder(prefix="vb-ort-probe-")
    try:
        so.profile_file_prefix = os.path.join(private, "profile")
        session = ort.InferenceSession(
            model_path, sess_options=so, providers=_without_graph_capture(providers)
        )
        inp = session.get_inputs()[0]
        dims = probe_shape(list(inp.shape), batch, tail)
        feed = {inp.name: np.zeros(dims, dtype=input_numpy_dtype(inp.type))}
        session.run([session.get_outputs()[0].name], feed)
        return node_placement(session.end_profiling())
    finally:
        shutil.rmtree(private, ignore_errors=True)


def check_graph_capture(placement: dict[str, dict[str, int]]) -> None:
    """NotApplicable when any node runs on the CPU: a CUDA graph needs every node on the GPU."""
    on_cpu = placement.get("CPUExecutionProvider", {})
    if on_cpu:
        listing = ", ".join(f"{n}× {op}" for op, n in sorted(on_cpu.items()))
        raise NotApplicable(
            "ONNX Runtime cannot capture a CUDA graph of this model",
            f"even with a static batch these nodes run on the CPU ({listing}), and a CUDA"
            " graph needs every node on the GPU",
            "measure it without the CUDA graph option",
        )


# Capture-only limits: conditions under which ONNX Runtime runs a model fine but cannot
# record it as a CUDA graph. Each is reported as "not applicable" with the node and the
# limit; any other capture error stays a failure.
# Operators whose output size depends on the data: the CUDA EP copies a count back to the
# host mid-run, which a graph cannot record. Control flow is refused by ORT itself.
HOST_SYNC_OPS = {
    "NonZero": "its output size depends on the data, so the CUDA EP reads it back to the host",
    "Unique": "its output size depends on the data, so the CUDA EP reads it back to the host",
    "NonMaxSuppression": "its output size depends on the data (a host read-back)",
    "Compress": "its output size depends on the data (a host read-back)",
    "If": "control flow: ONNX Runtime does not capture graphs with subgraphs",
    "Loop": "control flow: ONNX Runtime does not capture graphs with subgraphs",
    "Scan": "control flow: ONNX Runtime does not capture graphs with subgraphs",
}
# ONNX Runtime's and CUDA's words when capture meets such a limit at run time.
CAPTURE_MESSAGES = (
    ("operation not permitted when stream is capturing", "a host synchronisation or copy"
     " during capture (CUDA error 900), which a CUDA graph cannot record"),
    ("cudaErrorStreamCaptureUnsupported", "a call CUDA does not allow during capture"),
    ("cudaErrorStreamCaptureInvalidated", "a call that invalidated the capture"),
    ("capture was invalidated", "a call that invalidated the capture"),
    ("control flow nodes", "control flow (If/Loop/Scan), which ONNX Runtime does not capture"),
)  # fmt: skip
_NODE = re.compile(r"running (\w+) node\. Name:'([^']*)'")


def check_capture_ops(model_path: str) -> None:
    """NotApplicable, before any session, when the graph holds an operator that cannot
    be recorded in a CUDA graph (the first found, by name)."""
    import onnx

    graph = onnx.load(model_path, load_external_data=False).graph
    for node in graph.node:
        if node.op_type in HOST_SYNC_OPS:
            raise NotApplicable(
                "ONNX Runtime cannot capture a CUDA graph of this model",
                f"node {safe_text(node.name or '(unnamed)')[:80]} ({node.op_type}):"
                f" {HOST_SYNC_OPS[node.op_type]}",
                "measure it without the CUDA graph option",
            )


def capture_limit(exc: Exception) -> NotApplicable | None:
    """The error of a capture that met a known capture-only limit, else None."""
    text = " ".join(str(exc).split())
    for words, limit in CAPTURE_MESSAGES:
        if words.lower() in text.lower():
            found = _NODE.search(text)
            node = f"node {safe_text(found[2])[:80]} ({found[1]}): " if found else ""
            return NotApplicable(
                "ONNX Runtime could not capture a CUDA graph of this model",
                f"{node}{limit}",
                "measure it without the CUDA graph option",
            )
    return None
