"""The Engines page's standalone TensorRT build with int8 selected: the int8 plan, built from
the model quantised as bench quantises it, under the key a sweep then finds (it built an
FP32 plan, labelled so). Real TensorRT-RTX, with no GPU, as tests/backends/test_tensorrt_rtx.py."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit", reason="the dashboard pages need Streamlit")
rtx = pytest.importorskip(
    "tensorrt_rtx_bindings",
    reason="the TensorRT-RTX wheels are not installed (pip install -r requirements-trt-rtx.txt)",
)


from engine.backends.tensorrt.flavour import rtx_targets  # noqa: E402
from engine.core.config import ModelSpec  # noqa: E402
from tests.backends.test_tensorrt_rtx import GPU_CC, _bench_plan_key  # noqa: E402
from tests.conftest import engines_page  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(GPU_CC is not None, reason="a GPU is visible: the targets are its own")
def test_engines_page_builds_the_int8_plan_bench_finds(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VISIONBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(ROOT)
    at = engines_page("squeezenet1_1", 32, "2", ["int8"])
    caption = " ".join(str(c.value) for c in at.caption)
    assert "2\\: int8, the model quantised as bench quantises it" in caption, caption
    at.button(key="vb_standalone_tensorrt").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = "\n".join(str(t.value) for t in at.text)
    assert (
        "model: the int8 copy of squeezenet1_1 (random weights), quantised as bench quantises"
        " it (symmetric Q/DQ, calibrated on 16 generated images) (int8, image size 32," in shown
    ), shown
    key = next(x.split(": ", 1)[1] for x in shown.splitlines() if x.startswith("cache key: "))
    # No GPU and no targets chosen: the targets the page names (every one the library has).
    line = next(x for x in shown.splitlines() if x.startswith("targets: compute capability "))
    targets = line.removeprefix("targets: compute capability ").replace(", ", ",")
    assert set(targets.split(",")) <= set(rtx_targets(rtx)[0])
    model = ModelSpec(name="squeezenet1_1", image_size=32)
    assert key == _bench_plan_key(model, "int8", (2,), targets).name
