# ruff: noqa: F811 - the app fixture is imported from test_dashboard_upload
"""The dashboard with ONNX files as users have them: a model with its data file (two files
or one .zip), and a file that takes any size (height and width fields). AppTest, real
engine, the committed tiny files of tests/data/onnx/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip(
    "streamlit", reason="the dashboard pages need Streamlit, which is not installed here"
)

from streamlit.testing.v1 import AppTest  # noqa: E402

from tests.pages.test_dashboard import texts  # noqa: E402
from tests.pages.test_dashboard_upload import app, data_dir, upload  # noqa: E402, F401, F811

DATA = Path(__file__).resolve().parent.parent / "data" / "onnx"
MODEL = (DATA / "external" / "model.onnx").read_bytes()
WEIGHTS = (DATA / "external" / "model.onnx.data").read_bytes()


def test_a_model_with_its_data_file_uploads_and_runs(app: AppTest):
    upload(app, "model.onnx", MODEL)
    assert "model.onnx.data' is missing" in texts(app.error)
    assert app.button(key="vb_run").disabled
    # the header names no earlier model (nor random weights) while the upload is incomplete
    assert "resnet18" not in texts(app.caption) and "random weights" not in texts(app.caption)
    assert "No ONNX file yet" in texts(app.caption)
    # the auto toggle's sentence ended at "agree with" while there was no file
    assert app.toggle(key="vb_auto").label.endswith("agree with ONNX Runtime FP32 on cpu")

    both = [("model.onnx", MODEL, "application/octet-stream"),
            ("model.onnx.data", WEIGHTS, "application/octet-stream")]  # fmt: skip
    app.sidebar.get("file_uploader")[0].set_value(both).run()
    assert not app.error, texts(app.error)
    assert "Using the uploaded model.onnx" in texts(app.sidebar.get("caption"))
    assert "ONNX file model.onnx at 48×48" in texts(app.caption)
    assert "ImageNet mean/std normalised" in texts(app.caption)
    fixed = [n for n in app.sidebar.get("number_input") if "fixed by the file" in n.label]
    assert [(n.value, n.disabled) for n in fixed] == [(48, True), (48, True)]

    app.button(key="vb_run").click().run()
    assert not app.exception, app.exception
    assert "Sweep finished: 2 of 2 points measured" in texts(app.success)


def test_a_file_of_any_size_runs_at_the_height_and_width_given(app: AppTest):
    upload(app, "dyn.onnx", (DATA / "legacy_dynamic_hw.onnx").read_bytes())
    assert not app.error, texts(app.error)
    assert "takes any image size" in texts(app.sidebar.get("caption"))
    app.number_input(key="_vb_onnx_width").set_value(56).run()
    app.number_input(key="_vb_onnx_height").set_value(40).run()
    assert not app.error, texts(app.error)
    assert "at 40×56" in texts(app.caption)


def test_a_channels_last_file_from_tf2onnx_runs_with_the_layout_said(app: AppTest):
    """A Keras model through tf2onnx takes [N, 32, 40, 3]: it was refused on the page as
    it was in the CLI. Its sides are read where its layout has them, the sidebar says how
    it is fed, and the live card, the sweep (int8 too) and the Parity page run it."""
    upload(app, "keras.onnx", (DATA / "tf2onnx_nhwc_32x40.onnx").read_bytes())
    assert not app.error, texts(app.error)
    fixed = [n for n in app.sidebar.get("number_input") if "fixed by the file" in n.label]
    assert [(n.label, n.value) for n in fixed] == [
        ("Height (fixed by the file)", 32), ("Width (fixed by the file)", 40)]  # fmt: skip
    assert "is channels last (NHWC" in texts(app.sidebar.get("caption"))
    app.button(key="vb_measure").click().run()
    assert not app.error and not app.exception, texts(app.error)
    app.multiselect(key="_vb_precisions").set_value(["fp32", "int8"]).run()
    app.button(key="vb_run").click().run()
    assert not app.error and not app.exception, texts(app.error)
    table = app.dataframe[-1].value
    assert set(table["parity_status"]) == {"reference", "ok"}, table
    app.switch_page("pages/parity.py").run()
    app.button(key="vb_parity_run").click().run()
    assert not app.error, texts(app.error)
    assert set(app.dataframe[0].value["result"]) == {"reference", "pass"}


def test_a_file_of_uint8_pixels_says_so_and_measures(app: AppTest):
    """A model exported with its preprocessing inside takes uint8 pixels: it was refused
    ("not a float tensor"); the sidebar now says what it is fed, and the live card runs."""
    upload(app, "pixels.onnx", (DATA / "legacy_uint8_32.onnx").read_bytes())
    assert not app.error, texts(app.error)
    captions = texts(app.sidebar.get("caption"))
    assert "Inputs: generated images as uint8 pixels 0–255" in captions
    assert "ImageNet mean/std normalised" not in captions
    app.button(key="vb_measure").click().run()
    assert not app.error and not app.exception, texts(app.error)
    assert app.metric  # the live card


def test_a_bad_sweep_batch_list_leaves_measure_enabled(app: AppTest):
    from tests.pages.test_dashboard import small_model

    small_model(app, batches="1,zero")
    assert "zero" in texts(app.error)
    assert app.button(key="vb_run").disabled
    assert not app.button(key="vb_measure").disabled


def test_pretrained_weights_that_are_not_cached_are_said_up_front(
    app: AppTest, monkeypatch, tmp_path
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    app.radio(key="_vb_weights_kind").set_value("pretrained (if cached)").run()
    assert "not in the local torch cache" in texts(app.error)
    assert app.button(key="vb_run").disabled


def test_no_stale_state_across_pages_and_models(app: AppTest, small_artifacts):
    """The slider and the card agree after another page; a new model drops the old card
    and the old parity result."""
    from tests.pages.test_dashboard import small_model

    small_model(app)
    app.select_slider(key="_vb_live_batch").set_value(2).run()
    assert "batch 2:" in texts(app.caption)
    app.switch_page("pages/engines.py").run()
    app.switch_page("pages/benchmark.py").run()
    assert app.select_slider(key="_vb_live_batch").value == 2
    assert "batch 2:" in texts(app.caption)

    upload(app, "tiny.onnx", small_artifacts.onnx_path("fp32").read_bytes())
    assert not app.error, texts(app.error)
    assert not app.metric and "resnet18 (random weights), batch" not in texts(app.caption)


def test_a_batch_fixed_inside_the_graph_is_said_per_batch(app: AppTest):
    """A file whose dynamic batch is baked into a Reshape at 2: the sweep measures batch 2
    and says why batch 1 cannot run; the live card refuses batch 8 with the reason."""
    upload(app, "baked.onnx", (DATA / "legacy_baked_batch_2.onnx").read_bytes())
    assert not app.error, texts(app.error)
    app.button(key="vb_run").click().run()
    assert not app.exception, app.exception
    assert "Sweep finished: 1 of 2 points measured" in texts(app.success)
    assert "fixed at 2 inside the graph (Reshape node /Reshape)" in texts(app.warning)
    app.select_slider(key="_vb_live_batch").set_value(8).run()
    app.button(key="vb_measure").click().run()
    assert "batch 8 cannot run" in texts(app.error), texts(app.error)
    assert not app.get("metric")


def test_a_file_that_fixes_its_batch_offers_that_batch_only(app: AppTest):
    """torch.onnx.export(dynamo=True) fixes the batch at 1 unless told otherwise: the
    sidebar's batch list (1,2,4,…) and the slider's 8 stopped the sweep and the live
    measurement with "batch size 2 cannot run on this ONNX file". The file's batch is now
    the only one offered, as its size is, and both run, judged on 8 images, one a call."""
    upload(app, "static.onnx", (DATA / "dynamo_static_batch_1.onnx").read_bytes())
    assert not app.error, texts(app.error)
    fixed = [t for t in app.sidebar.get("text_input") if "fixed at 1 by the file" in t.label]
    assert [(t.value, t.disabled) for t in fixed] == [("1", True)]
    assert not app.get("select_slider")  # nothing to slide to
    assert "Batch size 1: the file fixes it." in texts(app.caption)

    app.button(key="vb_measure").click().run()
    assert not app.error and not app.exception, texts(app.error)
    assert ".onnx, batch 1:" in texts(app.caption) and app.metric  # the live card
    app.multiselect(key="_vb_precisions").set_value(["fp32", "int8"]).run()
    app.button(key="vb_run").click().run()
    assert not app.error and not app.exception, texts(app.error)
    assert "Sweep finished: 2 of 2 points measured" in texts(app.success)
    table = app.dataframe[-1].value
    rows = zip(table["series"], table["batch"], table["parity_status"], strict=True)
    assert sorted(rows) == [
        ("ONNX Runtime FP32 (cpu)", 1, "reference"),
        ("ONNX Runtime INT8 (cpu)", 1, "ok"),
    ], table
    app.switch_page("pages/parity.py").run()
    app.button(key="vb_parity_run").click().run()
    assert not app.error, texts(app.error)
    assert list(app.dataframe[0].value["result"]) == ["reference", "pass"]


def test_the_sidebar_reads_a_file_once_per_version(tmp_path, monkeypatch):
    """The sidebar's fields each read the file's protobuf at every rerun (a large upload,
    four times a rerun); now once per version of the file, and a new version is read."""
    import shutil

    import engine.artifacts.onnx_source as engine_source
    import pages.onnx_source as source

    reads = []
    real = engine_source.inspect_onnx
    monkeypatch.setattr(engine_source, "inspect_onnx", lambda p: reads.append(p) or real(p))
    path = tmp_path / "m.onnx"
    shutil.copy(DATA / "legacy_fixed_48.onnx", path)
    assert [source.inspected(str(path)).height for _ in range(3)] == [48, 48, 48]
    assert len(reads) == 1
    shutil.copy(DATA / "dynamo_static_batch_1.onnx", path)  # another file at the same path
    info = source.inspected(str(path))
    assert (info.height, info.fixed_batch, len(reads)) == (32, 1, 2)
