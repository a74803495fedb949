"""Explain where ONNX Runtime will run, why, and how to fix it.

`onnxruntime.get_available_providers()` lists what was compiled in, not what can load: an
onnxruntime-gpu whose CUDA libraries are missing prints one warning and quietly runs on the CPU.
This package looks at the environment in layers (installed packages, the ONNX Runtime build, the
NVIDIA driver and CUDA libraries, a live session in a subprocess with ONNX Runtime's native log
captured, and the in-process remedies re-probed) and turns what it saw into one verdict and
findings with a root cause, evidence and a copyable fix.

It needs only the standard library and whichever onnxruntime is installed, and imports nothing
from the engine outside this package but ``engine.core.commands`` (standard library only: how a
printed fix starts), because broken environments are exactly where it is needed: it also runs
as a plain script (`python engine/diagnostics --json report.json`).

Layout: checks (`packages`, `libraries` with `elf` and `cuda_wheels`, `driver`, `trt_checks`,
`trt_rtx`), the live `probe` (`probe_child`), the `rules` (`rules_cuda`, `rules_trt`) over a
`context`, the `report` and its `output`, `run` (run_diagnostics) and `cli` (main).
"""

from engine.diagnostics.cli import main
from engine.diagnostics.driver import check_driver
from engine.diagnostics.paths import shorten_paths
from engine.diagnostics.probe import (
    clean_log_line,
    load_errors,
    tiny_model_bytes,
    tiny_model_protobuf,
)
from engine.diagnostics.report import SEVERITIES, DiagnosticsReport, Finding
from engine.diagnostics.run import run_diagnostics
from engine.diagnostics.trt_checks import tensorrt_rtx_status, tensorrt_status

__all__ = [
    "SEVERITIES",
    "DiagnosticsReport",
    "Finding",
    "check_driver",
    "clean_log_line",
    "load_errors",
    "main",
    "run_diagnostics",
    "shorten_paths",
    "tensorrt_rtx_status",
    "tensorrt_status",
    "tiny_model_bytes",
    "tiny_model_protobuf",
]
