"""The Engines page's "Build TensorRT engines" with several precisions, and with bf16.

One press built one plan whatever was selected (fp16 where selected, else int8, else fp32),
so bf16 alone built an fp32 plan; trt-build's bf16 with no targets named failed on Turing
("Cannot compile for target(s) sm75 ... b16"). Now one press builds a plan per selected
precision TensorRT builds, bf16 for the targets that have BF16 (Ampere and newer), and says
which precisions it does not build. Real TensorRT-RTX, with no GPU, as
tests/backends/test_tensorrt_rtx.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit", reason="the dashboard pages need Streamlit")
rtx = pytest.importorskip(
    "tensorrt_rtx_bindings",
    reason="the TensorRT-RTX wheels are not installed (pip install -r requirements-trt-rtx.txt)",
)

from streamlit.testing.v1 import AppTest  # noqa: E402

from engine.backends.tensorrt.flavour import rtx_targets  # noqa: E402
from engine.core.config import ModelSpec  # noqa: E402
from engine.core.errors import BadInput  # noqa: E402
from engine.running.build import standalone_note  # noqa: E402
from tests.backends.test_tensorrt_rtx import GPU_CC, _bench_plan_key  # noqa: E402
from tests.conftest import engines_page  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _facts(shown: str, start: str) -> list[str]:
    return [x.removeprefix(start) for x in shown.splitlines() if x.startswith(start)]


@pytest.mark.skipif(GPU_CC is not None, reason="a GPU is visible: the targets are its own")
def test_one_press_builds_a_plan_per_precision_and_bf16_for_the_gpus_that_have_it(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VISIONBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(ROOT)
    at = engines_page("squeezenet1_1", 32, "2", ["fp16", "tf32", "bf16"])
    caption = " ".join(str(c.value) for c in at.caption).replace("\\", "")  # markdown escapes
    assert "one plan per precision: fp16 export; bf16 export (for compute capability 8.0" in (
        caption
    ), caption
    assert "(tf32: no TensorRT plan)" in caption
    at.button(key="vb_standalone_tensorrt").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [m.value for m in at.metric if m.label == "Precision"] == ["fp16", "bf16"]
    shown = "\n".join(str(t.value) for t in at.text)
    models = _facts(shown, "model: ")
    assert len(models) == 2 and "its fp16 ONNX export (fp16, image size 32," in models[0]
    assert "its bf16 ONNX export (bf16, image size 32," in models[1], models
    every = list(rtx_targets(rtx)[0])
    targets = [t.split(", ") for t in _facts(shown, "targets: compute capability ")]
    assert targets == [every, [t for t in every if t != "7.5"]], targets
    assert "compute capability 7.5 left out: BF16 needs compute capability 8.0 (Ampere)" in shown
    keys = _facts(shown, "cache key: ")
    model = ModelSpec(name="squeezenet1_1", image_size=32)
    assert keys == [
        _bench_plan_key(model, p, (2,), ",".join(t)).name
        for p, t in zip(("fp16", "bf16"), targets, strict=True)
    ]
    # trt-build's bf16 with no targets named: the page's plan (it failed on Turing)
    from engine.cli.main import main

    args = ["trt-build", "--model", "squeezenet1_1", "--image-size", "32", "--batch", "2"]
    assert main([*args, "--precision", "bf16"]) == 0
    out = capsys.readouterr().out
    assert f"cache key: {keys[1]}\n" in out and "build: cache" in out, out
    # a target named without BF16 is refused before a build, in one line
    assert main([*args, "--precision", "bf16", "--rtx-cc", "7.5,8.6"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: bf16 cannot be built for compute capability 7.5: BF16 needs compute capability"
        " 8.0 (Ampere) or newer. Fix: leave 7.5 out (--rtx-cc 8.6)\n"
    )


def test_what_one_press_builds_is_said_and_nothing_else_is_built_in_its_place():
    """bf16 alone said (and built) an fp32 plan; tf32 alone did too."""
    assert standalone_note("tensorrt", ("bf16",), {}).startswith("bf16 export (")
    assert standalone_note("tensorrt", ("int8", "fp32"), {}).startswith(
        "one plan per precision: int8, the model quantised as bench quantises it"
    )
    with pytest.raises(BadInput) as refused:
        standalone_note("tensorrt", ("tf32",), {})
    assert refused.value.what == "TensorRT builds no tf32 plan"
    assert refused.value.why == "TensorRT builds fp32, fp16, bf16, int8"


def test_the_sidebar_s_rtx_targets_field_takes_targets_and_the_page_refuses_bf16_for_turing():
    """The field was a whole-number input (a text option drawn as a number): 8.6 could not be
    typed, and 86 became the targets '86'. Drawn only where TensorRT is usable (a GPU), so
    the controls are drawn here as the sidebar draws them for TensorRT."""

    def sidebar() -> None:
        import streamlit as st

        from pages.widgets import option_controls

        st.session_state["chosen"] = option_controls(st.sidebar, ["tensorrt"])

    app = AppTest.from_function(sidebar).run()
    field = app.sidebar.text_input(key="_vb_opt_rtx_cc")
    assert field.label == "RTX targets (tensorrt)" and field.value == ""
    assert app.session_state["chosen"] == {}
    field.set_value(" 7.5,8.6 ").run()
    assert app.session_state["chosen"] == {"rtx_cc": "7.5,8.6"}
    chosen = {**app.session_state["chosen"], "trt_flavour": "rtx"}  # full TensorRT reads none
    # what the Engines page says before its button: fp16 builds, bf16 refused as trt-build does
    assert standalone_note("tensorrt", ("fp16",), chosen)
    with pytest.raises(BadInput) as refused:
        standalone_note("tensorrt", ("bf16",), chosen)
    assert refused.value.what == "bf16 cannot be built for compute capability 7.5"
