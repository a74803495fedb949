"""A user's FP16 ONNX file on CUDA: its fp16 rows run the file as it is on the CUDA provider
and are judged against FP32 math on the same weights (its widened copy), not against itself.
On the CPU the fp16 rows cannot run (tests/engine/test_fp16_files.py covers the rest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli.main import main

pytestmark = pytest.mark.gpu

FP16_FILE = Path(__file__).resolve().parents[1] / "data" / "onnx" / "legacy_fp16_32.onnx"


def test_an_fp16_files_fp16_row_runs_the_file_on_cuda_and_is_judged(ort_cuda, tmp_path, capsys):
    out = tmp_path / "o.json"
    code = main([
        "bench", "--onnx", str(FP16_FILE), "--backend", "ort", "--device", "cuda",
        "--precision", "fp32,fp16", "--batch", "1,4", "--iters", "5", "--warmup", "2",
        "--db", str(tmp_path / "r.sqlite"), "--json", str(out), "--quiet",
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "holds FP16 weights" in err
    rows = json.loads(out.read_text())["rows"]
    assert {(r["precision"], r["status"]) for r in rows} == {("fp32", "ok"), ("fp16", "ok")}
    fp16 = [r for r in rows if r["precision"] == "fp16"]
    assert {r["provider"] for r in fp16} == {"CUDAExecutionProvider"}
    assert {r["parity_status"] for r in fp16} == {"ok"}  # against FP32 math, same weights
