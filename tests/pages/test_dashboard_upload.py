"""The dashboard as a newcomer meets it: an uploaded ONNX file, a bad upload, a finished
sweep, the live metric cards. Real engine through Streamlit's AppTest, resnet18 at 64×64.
"""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip(
    "streamlit", reason="the dashboard pages need Streamlit, which is not installed here"
)

import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests.conftest import run_cli  # noqa: E402
from tests.pages.test_dashboard import APP, ROOT, TIMEOUT_S, small_model, texts  # noqa: E402

# engine.hardware.machine.busy_check's notes, "machine busy: ..." and "GPU 0 busy: ...", as the page
# writes them (markdown_text escapes the colon)
MACHINE_STATE = re.compile(r"(machine|GPU \d+) busy\\?: ")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("vb-upload-data")


@pytest.fixture
def app(data_dir, monkeypatch) -> AppTest:
    monkeypatch.setenv("VISIONBENCH_DATA", str(data_dir))
    monkeypatch.chdir(ROOT)
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.run()
    assert not at.exception, at.exception
    return at


def upload(app: AppTest, name: str, data: bytes) -> AppTest:
    small_model(app)
    app.radio(key="_vb_source").set_value("ONNX file").run()
    return app.sidebar.get("file_uploader")[0].upload(name, data).run()


def test_an_uploaded_onnx_sweep_reads_as_an_onnx_file(app: AppTest, small_artifacts, data_dir):
    upload(app, "tiny.onnx", small_artifacts.onnx_path("fp32").read_bytes())
    assert not app.error, texts(app.error)
    captions = texts(app.caption)
    assert "meaningless predictions" not in captions
    assert "parity is checked against ONNX Runtime FP32 on cpu" in captions
    auto = app.toggle(key="vb_auto").label
    assert "ONNX Runtime FP32 on cpu" in auto and "PyTorch" not in auto

    app.button(key="vb_run").click().run()
    assert not app.exception, app.exception
    assert "Sweep finished: 2 of 2 points measured" in texts(app.success)
    # The sweep has ended: no Stop button, no notes made of progress lines. The one note a
    # sweep of a healthy file may carry is the busy check's word on the machine's state.
    assert not [b for b in app.button if b.key == "vb_stop"]
    notes = [c.value for e in app.expander if "Notes from the sweep" in e.label for c in e.caption]
    assert all(MACHINE_STATE.match(n) for n in notes), notes
    # No PyTorch baseline for a file: one line instead of an empty speed-up chart.
    assert len(app.get("plotly_chart")) == 2
    assert "No speed-up chart" in texts(app.caption)
    table = app.dataframe[-1].value
    assert set(table["parity_status"]) == {"reference"}

    listed = run_cli("history", "--db", str(data_dir / "results.sqlite"), "--json")
    runs = [r for r in json.loads(listed.stdout) if r["source"] == "local"]
    assert [r["model"] for r in runs] == [r["label"].removeprefix("ONNX file ")[:-5] for r in runs]
    assert runs and all(r["model"].startswith("tiny-") for r in runs)

    app.switch_page("pages/parity.py").run()
    app.button(key="vb_parity_run").click().run()
    assert not app.error, texts(app.error)
    assert list(app.dataframe[0].value["result"]) == ["reference"]
    assert "it is the reference" in texts(app.info)


def test_a_bogus_onnx_upload_is_refused_at_once(app: AppTest, data_dir):
    upload(app, "bogus.onnx", b"this is not an ONNX model\n" * 40)
    assert "bogus" in texts(app.error) and "ONNX" in texts(app.error)
    assert "Using the uploaded" not in texts(app.sidebar.get("caption"))
    assert app.button(key="vb_run").disabled
    assert not list((data_dir / "uploads").rglob("bogus*"))


def test_live_metric_cards_show_no_change_arrow(app: AppTest):
    small_model(app)
    app.select_slider(key="_vb_live_batch").set_value(2).run()
    assert not app.error, texts(app.error)
    assert len(app.metric) == 2
    for m in app.metric:
        assert m.value.endswith(" ms") and not m.delta
    assert texts(app.caption).count("images/s") == 2
