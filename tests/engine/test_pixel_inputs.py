"""ONNX files that take uint8 pixels and normalise them inside their graph (a model
exported for deployment with its preprocessing, or a Keras model with a Rescaling layer):
fed the generated images as the pixels they were made from, in every row, the reference
and int8 calibration; said so wherever the inputs are described.

The files are the committed ones of tests/data/onnx/ (scripts/make_test_onnx.py, and real
tf2onnx output from scripts/make_tf2onnx_test_files.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from engine.artifacts.images import MEAN, PIXELS, PREPROCESSING, STD, generated_images, to_pixels
from engine.artifacts.models import load_artifacts
from engine.artifacts.onnx_source import inputs_words, inspect_onnx, onnx_spec
from engine.artifacts.quantize import calibration_feeds
from engine.backends.ort_placement import input_numpy_dtype
from engine.cli.main import main

DATA = Path(__file__).resolve().parent.parent / "data" / "onnx"
FILES = {"legacy_uint8_32.onnx": "NCHW", "tf2onnx_nhwc_uint8_32.onnx": "NHWC"}


@pytest.mark.parametrize("name", list(FILES))
def test_a_pixel_file_is_read_and_fed_uint8_pixels_of_the_generated_images(name):
    info = inspect_onnx(DATA / name)
    assert info.pixels and info.layout == FILES[name] and (info.height, info.width) == (32, 32)
    assert inputs_words(str(DATA / name)) == PIXELS
    art = load_artifacts(onnx_spec(DATA / name, None)[0])
    x = art.sample_input(4)
    assert x.dtype == np.uint8 and x.shape == art.input_shape(4) and x.max() > 200
    normalised = np.concatenate(list(generated_images(4, 32, 32, seed=1234 + 4)))
    want = to_pixels(normalised)
    np.testing.assert_array_equal(x, want if FILES[name] == "NCHW" else want.transpose(0, 2, 3, 1))
    # the pixels are the images: normalised back, each within half a step of 0–255
    np.testing.assert_allclose((want / 255 - MEAN) / STD, normalised, atol=0.5 / 255 / 0.224)
    assert any("takes uint8 pixels" in n for n in art.notes)
    session = ort.InferenceSession(str(DATA / name), providers=["CPUExecutionProvider"])
    logits = session.run(None, {info.input_name: x})[0]
    assert np.ptp(logits, axis=0).max() > 1e-3  # the images differ, so do their logits
    feeds = calibration_feeds(art, info.input_name, None)
    assert {(f[info.input_name].dtype, f[info.input_name].shape) for f in feeds} == {
        (np.dtype(np.uint8), art.input_shape(1))
    }


def test_a_float_file_and_a_torchvision_model_are_said_to_get_normalised_images():
    assert inputs_words(str(DATA / "legacy_fixed_48.onnx")) == PREPROCESSING
    assert inputs_words(None) == PREPROCESSING
    assert inputs_words(str(DATA / "no-such-file.onnx")) == PREPROCESSING  # said elsewhere
    assert input_numpy_dtype("tensor(uint8)") is np.uint8
    assert input_numpy_dtype("tensor(float16)") is np.float16
    assert input_numpy_dtype("tensor(float)") is np.float32


@pytest.mark.parametrize("name", list(FILES))
def test_every_row_of_a_pixel_file_runs_and_is_judged_int8_too(name, tmp_path, capsys):
    """int8 was skipped as 'needs an FP32 model' (the input type stood for the model's)."""
    code = main(["bench", "--onnx", str(DATA / name), "--backend", "ort", "--precision",
                 "fp32,int8", "--batch", "2", "--json", str(tmp_path / "o.json"), "--db",
                 str(tmp_path / "r.sqlite"), "--inline", "--iters", "2", "--warmup", "1",
                 "--min-iters", "1", "--quiet"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "takes uint8 pixels" in out.err and f"inputs: {PIXELS}" in out.out
    rows = json.loads((tmp_path / "o.json").read_text())["rows"]
    assert [(r["precision"], r["status"], r["parity_status"]) for r in rows] == [
        ("fp32", "ok", "ok"),
        ("int8", "ok", "ok"),
    ], rows


def test_an_integer_input_other_than_uint8_pixels_is_still_refused(tmp_path):
    import onnx

    from engine.core.errors import BadInput

    model = onnx.load(str(DATA / "legacy_uint8_32.onnx"))
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.INT32
    onnx.save(model, str(tmp_path / "int32.onnx"))
    with pytest.raises(BadInput, match="not a float tensor"):
        inspect_onnx(tmp_path / "int32.onnx")
