"""The live probe: a tiny ONNX model run in a fresh process per remedy, and its log parsed.

Everything that loads native code (onnxruntime, torch) happens in child processes, so a crash
there becomes evidence instead of taking the report down.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys

from engine.diagnostics.probe_child import CHILD_SOURCE

MARKER = "@@VISIONBENCH-DIAGNOSTICS@@"


def _pb_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb(field: int, value: int | str | bytes) -> bytes:
    if isinstance(value, int):
        return _pb_varint(field << 3) + _pb_varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _pb_varint(field << 3 | 2) + _pb_varint(len(data)) + data


def tiny_model_protobuf() -> bytes:
    """Y = X + X over float[1, 4], as ModelProto bytes written by hand (no onnx package needed).

    Field numbers are those of onnx.proto: ModelProto(ir_version=1, producer_name=2, graph=7,
    opset_import=8), GraphProto(node=1, name=2, input=11, output=12), NodeProto(input=1,
    output=2, name=3, op_type=4), ValueInfoProto(name=1, type=2), TypeProto(tensor_type=1),
    TypeProto.Tensor(elem_type=1, shape=2), TensorShapeProto(dim=1), Dimension(dim_value=1).
    """
    dims = b"".join(_pb(1, _pb(1, d)) for d in (1, 4))
    type_proto = _pb(1, _pb(1, 1) + _pb(2, dims))  # elem_type 1 = FLOAT

    def value_info(name: str) -> bytes:
        return _pb(1, name) + _pb(2, type_proto)

    node = _pb(1, "X") + _pb(1, "X") + _pb(2, "Y") + _pb(3, "add") + _pb(4, "Add")
    graph = (
        _pb(1, node) + _pb(2, "diagnostics") + _pb(11, value_info("X")) + _pb(12, value_info("Y"))
    )
    opset = _pb(1, "") + _pb(2, 13)
    return _pb(1, 7) + _pb(2, "visionbench-diagnostics") + _pb(7, graph) + _pb(8, opset)


def tiny_model_bytes() -> tuple[bytes, str]:
    """The probe model, built with onnx.helper when onnx is installed, else from raw protobuf."""
    try:
        from onnx import TensorProto, helper
    except Exception:  # onnx missing or broken: the hand-written bytes are the same model
        return tiny_model_protobuf(), "embedded protobuf"
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "X"], ["Y"], name="add")], "diagnostics", [x], [y]
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="visionbench-diagnostics"
    )
    model.ir_version = 7  # old enough for any onnxruntime this may meet
    return model.SerializeToString(), "onnx.helper"


def run_probe(remedy: str, providers: list[str], model_path: str, timeout_s: float) -> dict:
    args = {"remedy": remedy, "providers": providers, "model": model_path, "marker": MARKER}
    cmd = [sys.executable, "-c", CHILD_SOURCE, json.dumps(args)]
    env = dict(os.environ, PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1")
    base = {"remedy": remedy, "completed": False, "stages": {}, "sessions": {}}
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=max(timeout_s, 1.0),
            env=env,
            cwd=os.path.dirname(model_path),  # not the caller's folder: nothing there can shadow
        )
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-2000:]
        tail = tail.decode("utf-8", "replace") if isinstance(tail, bytes) else tail
        return {
            **base,
            "error": f"the probe did not finish within {timeout_s:.0f} s",
            "stderr": tail,
        }
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            data.update(completed=True, returncode=proc.returncode, stderr=proc.stderr[-4000:])
            return data
    rc = proc.returncode
    why = f"exit status {rc}"
    if rc < 0:
        try:
            why = f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            why = f"killed by signal {-rc}"
    return {
        **base,
        "error": f"the probe process crashed ({why})",
        "returncode": rc,
        "stderr": (proc.stderr or "")[-4000:],
        "stdout": (proc.stdout or "")[-2000:],
    }


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LOAD_FAIL = re.compile(r"Failed to load library (\S+) with error: (.+)")
_MISSING_SO = re.compile(r"([\w.+-]+\.so(?:\.\d+)*): cannot open shared object file")


def probe_log(probe: dict, stage: str | None = None) -> str:
    stages = probe.get("stages", {})
    parts = [stages[stage]["log"]] if stage in stages else [s["log"] for s in stages.values()]
    return _ANSI.sub("", "".join(parts))


def load_errors(log: str) -> list[dict]:
    """`Failed to load library X with error: Y` lines of an ONNX Runtime log, as dicts."""
    out = []
    for m in _LOAD_FAIL.finditer(_ANSI.sub("", log)):
        error = m.group(2).strip()
        missing = _MISSING_SO.search(error)
        out.append(
            {
                "library": os.path.basename(m.group(1)),
                "error": error,
                "missing": missing.group(1) if missing else None,
                "line": f"Failed to load library {m.group(1)} with error: {error}",
            }
        )
    return out


_LOG_PREFIX = re.compile(
    r"^\d{4}-\d\d-\d\d [\d:.]+ \[[EWIV]:onnxruntime:[^\]]*\] "  # timestamp [E:onnxruntime:...]
    r"(?:\S+ .*?\[ONNXRuntimeError\] : \d+ : \w+ : )?"  # source location and error code
)


def clean_log_line(line: str) -> str:
    """An ONNX Runtime log line without colour codes, timestamp and source location."""
    return _LOG_PREFIX.sub("", _ANSI.sub("", line).strip())


def interesting_lines(log: str) -> list[str]:
    keep = ("Failed to load", "Failed to create", "EP Error", "Falling back", "cannot open", "CUDA")
    out = []
    for line in _ANSI.sub("", log).splitlines():
        line = clean_log_line(line)
        if line and any(k in line for k in keep) and line not in out:
            out.append(line)
    return out


@dataclasses.dataclass
class Probes:
    """The probe results: plain, after onnxruntime.preload_dlls(), after `import torch`."""

    plain: dict | None = None
    preload: dict | None = None
    torch_first: dict | None = None


def used_providers(probe: dict | None, provider: str) -> list[str] | None:
    """What the probe's session asked for `provider` really used."""
    if not probe:
        return None
    return probe.get("sessions", {}).get(provider, {}).get("used")
