"""Channels-last (NHWC) ONNX files, as tf2onnx writes a Keras model: read, fed, counted,
quantised and made static in their own layout.

The files are the committed ones of tests/data/onnx/ (scripts/make_tf2onnx_test_files.py,
real tf2onnx output); each is checked against the same graph given a channels-first input
in front (a Transpose), which must produce the same logits from the images a channels-first
file gets: the images are the same, only their layout differs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from engine.artifacts.flops import onnx_gflop
from engine.artifacts.models import load_artifacts
from engine.artifacts.onnx_source import filled_dims, inspect_onnx, onnx_spec
from engine.artifacts.quantize import calibration_feeds
from engine.artifacts.static_shapes import static_batch_model
from engine.cli.main import main

DATA = Path(__file__).resolve().parent.parent / "data" / "onnx"
FILES = {  # file → (height, width, channels, size asked for)
    "tf2onnx_nhwc_32x40.onnx": (32, 40, 3, None),
    "tf2onnx_nhwc_dynamic_hw.onnx": (48, 64, 3, (48, 64)),
    "tf2onnx_nhwc_gray_28.onnx": (28, 28, 1, None),
}


def channels_first_front(src: Path, dst: Path) -> Path:
    """``src`` with a new NCHW input and a Transpose (perm 0, 2, 3, 1) into its NHWC one."""
    model = onnx.load(str(src))
    old = model.graph.input[0]
    dims = [d.dim_value or d.dim_param for d in old.type.tensor_type.shape.dim]
    n, h, w, c = dims
    new = helper.make_tensor_value_info("x_nchw", old.type.tensor_type.elem_type, [n, c, h, w])
    front = helper.make_node("Transpose", ["x_nchw"], [old.name], perm=[0, 2, 3, 1])
    model.graph.node.insert(0, front)
    model.graph.input.remove(old)
    model.graph.input.insert(0, new)
    onnx.save(model, str(dst))
    return dst


def logits(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("name", list(FILES))
def test_a_channels_last_file_is_read_in_its_layout(name):
    h, w, c, _ = FILES[name]
    info = inspect_onnx(DATA / name)
    assert info.layout == "NHWC" and info.channels == c and info.input_name == "input_1"
    declared = (h, w) if "dynamic" not in name else (None, None)
    assert (info.height, info.width) == declared


@pytest.mark.parametrize("name", list(FILES))
def test_it_is_fed_the_images_a_channels_first_file_gets(name, tmp_path):
    h, w, c, asked = FILES[name]
    nhwc = load_artifacts(onnx_spec(DATA / name, asked)[0])
    front = channels_first_front(DATA / name, tmp_path / "f.onnx")
    nchw = load_artifacts(onnx_spec(front, asked)[0])
    assert nchw.layout == "NCHW" and nhwc.layout == "NHWC"
    assert nhwc.input_shape(3) == (3, h, w, c) and nchw.input_shape(3) == (3, c, h, w)
    x = nhwc.sample_input(3)
    assert x.shape == (3, h, w, c) and x.flags.c_contiguous
    np.testing.assert_array_equal(x, nchw.sample_input(3).transpose(0, 2, 3, 1))
    got, want = logits(DATA / name, x), logits(front, nchw.sample_input(3))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.ptp(got, axis=0).max() > 1e-4  # the images differ, so do their logits
    assert any("channels last (NHWC" in n for n in nhwc.notes)
    assert not any("channels last" in n for n in nchw.notes)


def test_int8_calibration_feeds_images_in_the_file_s_layout(tmp_path):
    from PIL import Image

    art = load_artifacts(onnx_spec(DATA / "tf2onnx_nhwc_32x40.onnx", None)[0])
    generated = calibration_feeds(art, "input_1", None)
    assert {f["input_1"].shape for f in generated} == {(1, 32, 40, 3)}
    for i in range(2):  # a folder of images, grey for the one-channel file
        Image.new("RGB", (50, 60), (40 * i, 90, 200)).save(tmp_path / f"{i}.png")
    gray = load_artifacts(onnx_spec(DATA / "tf2onnx_nhwc_gray_28.onnx", None)[0])
    from_folder = calibration_feeds(gray, "input_1", str(tmp_path))
    assert [f["input_1"].shape for f in from_folder] == [(1, 28, 28, 1)] * 2
    assert len({float(f["input_1"].mean()) for f in from_folder}) == 2  # each image its own


@pytest.mark.parametrize("name", ["tf2onnx_nhwc_gray_28.onnx", "legacy_gray_28.onnx"])
def test_a_one_channel_file_is_quantised_on_a_folder_of_colour_images(name, tmp_path, capsys):
    """A grey model calibrated on a folder: every image was read as RGB, three channels into
    a one-channel input, and the int8 row failed in ONNX Runtime's calibration."""
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((30, 40, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    code = main(["bench", "--onnx", str(DATA / name), "--backend", "ort", "--precision", "int8",
                 "--batch", "2", "--calibration-dir", str(folder), "--json",
                 str(tmp_path / "o.json"), "--db", str(tmp_path / "r.sqlite"), "--inline",
                 "--iters", "2", "--warmup", "1", "--min-iters", "1", "--quiet"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    (row,) = json.loads((tmp_path / "o.json").read_text())["rows"]
    assert row["status"] == "ok" and row["parity_status"] in ("ok", "failed"), row


def test_flops_are_counted_at_the_size_asked_for_in_the_file_s_layout():
    got = onnx_gflop(str(DATA / "tf2onnx_nhwc_dynamic_hw.onnx"), hw=(48, 64))
    # a 3×3 convolution, stride 2, no padding, 3 → 8 channels; an 8 → 10 dense head
    out_h, out_w = (48 - 3) // 2 + 1, (64 - 3) // 2 + 1
    assert got == pytest.approx((2 * 8 * 3 * 9 * out_h * out_w + 2 * 8 * 10) / 1e9)


def test_symbolic_sides_take_their_sizes_where_the_layout_has_them(tmp_path):
    assert filled_dims([-1, -1, -1, 3], 4, (48, 64)) == [4, 48, 64, 3]
    assert filled_dims([None, None, None, 1], 2, (28, 30)) == [2, 28, 30, 1]
    assert filled_dims([-1, 3, -1, -1], 4, (48, 64)) == [4, 3, 48, 64]
    assert filled_dims([-1, -1, -1, -1], 1, (48, 64)) == [1, 3, 48, 64]  # read as NCHW
    art = load_artifacts(onnx_spec(DATA / "tf2onnx_nhwc_dynamic_hw.onnx", (48, 64))[0])
    static = static_batch_model(DATA / "tf2onnx_nhwc_dynamic_hw.onnx", 4, "nhwc",
                                art.input_shape(1)[1:])  # fmt: skip
    dims = [d.dim_value for d in onnx.load(str(static)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [4, 48, 64, 3] and static.parent.name.startswith("nhwc-b4-48x64x3-r")
    x = art.sample_input(4)
    want = logits(DATA / "tf2onnx_nhwc_dynamic_hw.onnx", x)
    np.testing.assert_allclose(logits(static, x), want, rtol=1e-5, atol=1e-6)
