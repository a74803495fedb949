"""Table cells on a terminal: nothing is cut mid-word or mid-name."""

from __future__ import annotations

from engine.cli.history import format_runs
from engine.cli.main import format_table
from engine.core.config import ResultRow
from engine.core.text import short_clause
from engine.storage.history.queries import RunInfo

REASON = (
    "PyTorch on cuda is not available on this machine: no NVIDIA GPU or driver is visible"
    " (torch is built for CUDA 13.0). Fix: run on a machine with an NVIDIA GPU"
)


def test_a_skip_reason_shows_its_first_clause_whole():
    row = ResultRow("resnet18", "torch", "cuda", "fp32", 1, status="skipped", reason=REASON)
    table = format_table([row])
    assert "PyTorch on cuda is not available on this machine…" in table
    assert "no NVIDIA " not in table
    assert short_clause("word " * 30).endswith("word…")


def test_history_shows_the_whole_onnxruntime_version():
    info = RunInfo(1, "2026-12-06T00:00:00", "x", "resnet50", 224, "done", "local", "m", 1,
                   environment={"onnxruntime": "1.18 (onnxruntime-gpu)"})  # fmt: skip
    assert "1.18 (onnxruntime-gpu)" in format_runs([info])
