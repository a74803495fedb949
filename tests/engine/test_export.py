import json

import numpy as np
import onnx
import onnxruntime as ort
import torch

from engine.artifacts.export import export_onnx


def test_export_is_cached_and_dynamic(small_artifacts):
    first = export_onnx(small_artifacts, "fp32")
    second = export_onnx(small_artifacts, "fp32")
    assert second.reused and second.path == first.path
    assert "reused" in second.message
    model = onnx.load(str(first.path))
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value
    sess = ort.InferenceSession(str(first.path), providers=["CPUExecutionProvider"])
    module = small_artifacts.torch_module()
    for b in (1, 3):
        x = small_artifacts.sample_input(b)
        with torch.inference_mode():
            ref = module(torch.from_numpy(x)).numpy()
        out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        assert out.shape == (b, 1000)
        np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-4)


def test_corrupt_cache_entry_is_rebuilt(small_artifacts):
    first = export_onnx(small_artifacts, "fp32")
    data = first.path.read_bytes()
    first.path.write_bytes(data[: len(data) // 2])
    again = export_onnx(small_artifacts, "fp32")
    assert not again.reused
    onnx.checker.check_model(str(again.path))
    assert json.loads((again.path.parent / "meta.json").read_text())["sha256"]


def test_fp16_variant(small_artifacts):
    res = export_onnx(small_artifacts, "fp16")
    sess = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(float16)"


def test_export_key_names_the_torchvision_version_and_both_sides(small_artifacts, monkeypatch):
    """torchvision's model code can change between releases with the same weights; the
    export was keyed without it, so every TensorRT plan (keyed by the file's hash) of the
    old code was reused too. A non-square size was keyed by its height alone, so 32x48
    reused the 32x32 file, whose static sides refuse a 48-wide input."""
    from dataclasses import replace

    from engine.artifacts import models
    from engine.artifacts.export import export_key

    before = export_key(small_artifacts, "fp32")
    monkeypatch.setattr(models, "torchvision_version", lambda: "0.0.1")
    assert export_key(small_artifacts, "fp32") != before
    monkeypatch.undo()
    assert export_key(small_artifacts, "fp32") == before
    h = small_artifacts.spec.image_size
    wide = replace(small_artifacts, spec=replace(small_artifacts.spec, image_width=h + 16))
    assert export_key(wide, "fp32") != before
