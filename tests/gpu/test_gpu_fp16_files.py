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


@pytest.mark.parametrize("case", ["mixed", "fp16 input"])
def test_a_mixed_file_and_an_fp16_input_run_their_fp16_rows_on_cuda(
    case, ort_cuda, tmp_path, capsys
):
    # tests/engine/test_fp16_mixed.py's hand-made files: a mixed FP32/FP16 file's fp16 rows
    # run it as it is (FP16 Conv among FP32 layers) and are judged at FP16's tolerance
    # against its FP32 copy; an FP16 input's fp16 rows run an FP16 copy fed FP16 images.
    import onnx

    from tests.engine.test_fp16_mixed import autocast_like, fp16_input

    path = tmp_path / f"{case.replace(' ', '-')}.onnx"
    onnx.save(autocast_like() if case == "mixed" else fp16_input(), str(path))
    out = tmp_path / "o.json"
    code = main([
        "bench", "--onnx", str(path), "--backend", "ort", "--device", "cuda",
        "--precision", "fp32,fp16", "--batch", "1,4", "--iters", "5", "--warmup", "2",
        "--db", str(tmp_path / "r.sqlite"), "--json", str(out), "--quiet",
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert ("is mixed FP32/FP16" if case == "mixed" else "takes FP16 input") in err, err
    rows = json.loads(out.read_text())["rows"]
    assert {(r["precision"], r["status"]) for r in rows} == {("fp32", "ok"), ("fp16", "ok")}
    fp16 = [r for r in rows if r["precision"] == "fp16"]
    assert {r["provider"] for r in fp16} == {"CUDAExecutionProvider"}
    assert {r["parity_status"] for r in fp16} == {"ok"}  # judged at FP16's tolerance
