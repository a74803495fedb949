"""ONNX files as TensorFlow and deployment exports write them, on CUDA: a channels-last
(NHWC) input and uint8 pixels. The CPU suite checks what they are fed (tests/engine/
test_channels_last.py, test_pixel_inputs.py); here ONNX Runtime's CUDA provider binds them
on the GPU (I/O binding, a uint8 input too), and a CUDA graph runs the static-shape copy
made in the file's own layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli.main import main

pytestmark = pytest.mark.gpu

DATA = Path(__file__).resolve().parents[1] / "data" / "onnx"
FILES = {  # file → (extra args, what the notes say)
    "tf2onnx_nhwc_dynamic_hw.onnx": (["--image-size", "48x64"], "channels last (NHWC"),
    "legacy_uint8_32.onnx": ([], "takes uint8 pixels"),
    "tf2onnx_nhwc_uint8_32.onnx": ([], "takes uint8 pixels"),
}


@pytest.mark.parametrize("graph", [False, True], ids=["bound", "cuda-graph"])
@pytest.mark.parametrize("name", list(FILES))
def test_each_row_runs_on_the_cuda_provider_and_agrees(name, graph, ort_cuda, tmp_path, capsys):
    extra, said = FILES[name]
    out = tmp_path / "o.json"
    code = main([
        "bench", "--onnx", str(DATA / name), "--backend", "ort", "--device", "cuda",
        "--precision", "fp32,fp16", "--batch", "1,4", "--iters", "5", "--warmup", "2",
        "--cuda-graph" if graph else "--no-cuda-graph", *extra,
        "--db", str(tmp_path / "r.sqlite"), "--json", str(out), "--quiet",
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert said in err, err
    rows = json.loads(out.read_text())["rows"]
    assert {(r["precision"], r["status"]) for r in rows} == {("fp32", "ok"), ("fp16", "ok")}
    assert {r["provider"] for r in rows} == {"CUDAExecutionProvider"}
    assert {r["parity_status"] for r in rows} == {"ok"}
