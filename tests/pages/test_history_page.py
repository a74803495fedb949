"""The dashboard's history page, driven by Streamlit's AppTest against a real results store.

Two real CPU sweeps (resnet18 at 64×64, random weights) and the document of one rewritten as
if from an H100 host (data, not a mock) are imported; the page must list them, filter them,
compare two with the environment differences, import uploads once, and show bad uploads as
an error while the rest of the page keeps working.
"""

from __future__ import annotations

import copy
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

pytest.importorskip(
    "streamlit", reason="the dashboard pages need Streamlit, which is not installed here"
)

from streamlit.testing.v1 import AppTest  # noqa: E402

from engine.core.config import BenchSettings, RunnerSpec, SweepConfig  # noqa: E402
from engine.running.sweep import run_sweep  # noqa: E402
from engine.storage import (
    documents,  # noqa: E402
    history,
)
from engine.storage.store import Store  # noqa: E402
from pages.common import ENTRY_KEY  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "history.py")
H100 = "NVIDIA H100 80GB HBM3"


def as_other_machine(doc: dict, created_at: str) -> dict:
    doc = copy.deepcopy(doc)
    doc["run"]["environment"].update(gpu=H100, cpu_count=52, torch="2.9.0")
    doc["run"]["created_at"] = created_at
    return doc


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, small_artifacts):
    folder = tmp_path_factory.mktemp("history_page")
    store = Store(folder / "results.sqlite")
    for batches in ([1, 2], [2]):
        config = SweepConfig(
            model=small_artifacts.spec,
            runners=[RunnerSpec("torch")],
            batches=batches,
            bench=BenchSettings(warmup=1, iters=3, min_iters=1, max_time_s=5.0),
        )
        assert run_sweep(config, store=store, artifacts=small_artifacts).measured
    doc = as_other_machine(store.document(1), "2026-11-01T09:00:00+00:00")
    assert history.import_document(store, doc) == (3, True)
    upload = as_other_machine(store.document(2), "2026-10-01T09:00:00+00:00")
    store.close()
    return folder, json.dumps(upload).encode()


@pytest.fixture
def app(prepared, tmp_path, monkeypatch):
    """The page on a private copy of the prepared store (Store() honours VISIONBENCH_DATA)."""
    folder, _ = prepared
    shutil.copyfile(folder / "results.sqlite", tmp_path / "results.sqlite")
    monkeypatch.setenv("VISIONBENCH_DATA", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state[ENTRY_KEY] = True  # as if dashboard.py had drawn the navigation
    at.run()
    assert not at.exception, at.exception
    return at


# Plain st.dataframe tables carry no key in AppTest; each of ours has a telling column.
TELLING_COLUMN = {"vb_hist_runs": "backends", "vb_hist_speedups": "speedup", "vb_hist_diff": "kind"}


def frame(at: AppTest, key: str):
    column = TELLING_COLUMN[key]
    return next(d.value for d in at.dataframe if column in d.value.columns)


def n_runs(at_dir: Path) -> int:
    con = sqlite3.connect(at_dir / "results.sqlite")
    try:
        return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    finally:
        con.close()


def test_page_lists_runs_with_fingerprints(app):
    assert [e.value for e in app.error] == []
    runs = frame(app, "vb_hist_runs")
    assert list(runs["id"]) == ["t4", "3", "2", "1"]
    by_id = runs.set_index("id")
    assert by_id.loc["3", "machine"] == H100 and by_id.loc["3", "source"] == "import"
    assert by_id.loc["t4", "source"] == "quoted" and "not measured here" in by_id.loc["t4", "label"]
    assert by_id.loc["1", "torch"] != "2.9.0" and by_id.loc["3", "torch"] == "2.9.0"
    # Defaults: the newest measured run (B) against the one before it (A).
    a, b = (s.value for s in app.selectbox)
    assert (a, b) == ("2", "3")


def test_page_compares_two_runs(app, tmp_path):
    app.selectbox(key="vb_hist_a").set_value("3")
    app.selectbox(key="vb_hist_b").set_value("1")
    app.run()
    assert not app.exception and [e.value for e in app.error] == []
    assert len(app.get("plotly_chart")) == 1
    sp = frame(app, "vb_hist_speedups")
    store = Store(tmp_path / "results.sqlite")
    a = {r.batch: r.p50_ms for r in store.rows(3)}
    b = {r.batch: r.p50_ms for r in store.rows(1)}
    assert sorted(sp["batch"]) == [1, 2]
    for batch, speedup in zip(sp["batch"], sp["speedup"], strict=True):
        assert speedup == pytest.approx(a[batch] / b[batch])
    diff = frame(app, "vb_hist_diff").set_index("key")
    assert diff.loc["gpu", "A (run 3)"] == H100 and diff.loc["gpu", "B (run 1)"] == "—"
    assert diff.loc["cpu_count", "A (run 3)"] == "52"
    assert "python" not in diff.index
    labels = [d.label for d in app.get("download_button")]
    assert labels[:3] == ["HTML report", "Markdown summary", "CSV of the rows"]
    assert "JSON document of run 3 (importable elsewhere)" in labels


def test_page_filters(app):
    app.text_input(key="vb_hist_machine").set_value("h100").run()
    assert list(frame(app, "vb_hist_runs")["id"]) == ["3"]
    assert any("Two runs are needed" in i.value for i in app.info)
    app.text_input(key="vb_hist_machine").set_value("").run()
    app.multiselect(key="vb_hist_model").set_value(["resnet50"]).run()
    assert list(frame(app, "vb_hist_runs")["id"]) == ["t4"]
    app.multiselect(key="vb_hist_model").set_value([]).run()
    app.checkbox(key="vb_hist_reference").uncheck().run()
    assert "t4" not in list(frame(app, "vb_hist_runs")["id"])


def test_page_imports_an_upload_once(app, prepared, tmp_path):
    _, upload = prepared
    app.file_uploader(key="vb_hist_upload").set_value(("h100.json", upload, "application/json"))
    app.run()
    assert [s.value for s in app.success] == ["Imported h100.json as run 4."]
    assert "4" in list(frame(app, "vb_hist_runs")["id"])
    app.run()  # the uploader hands the file back on every rerun
    assert n_runs(tmp_path) == 4
    app.file_uploader(key="vb_hist_upload").set_value(("copy.json", upload, "application/json"))
    app.run()
    assert any("copy.json is already run 4" in i.value for i in app.info)
    assert n_runs(tmp_path) == 4


def test_page_shows_a_bad_upload_and_keeps_working(app, tmp_path):
    newer = json.dumps({"schema": 99, "run": {}, "rows": []}).encode()
    app.file_uploader(key="vb_hist_upload").set_value(
        [("broken.json", b"{not json", "application/json"), ("new.json", newer, "application/json")]
    )
    app.run()
    assert not app.exception
    errors = [e.value for e in app.error]
    assert len(errors) == 2
    assert errors[0].startswith("broken.json is not valid JSON")
    assert errors[1].startswith("new.json has document schema 99")
    assert list(frame(app, "vb_hist_runs")["id"]) == ["t4", "3", "2", "1"]
    assert n_runs(tmp_path) == 3


def test_page_through_the_dashboard(prepared, tmp_path, monkeypatch):
    if not (ROOT / "dashboard.py").is_file():
        pytest.skip("dashboard.py is not in this checkout")
    folder, _ = prepared
    shutil.copyfile(folder / "results.sqlite", tmp_path / "results.sqlite")
    monkeypatch.setenv("VISIONBENCH_DATA", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=120)
    at.run()  # the entry draws the navigation first, as a browser session would
    at.switch_page("pages/history.py")
    at.run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["History"]
    assert list(frame(at, "vb_hist_runs")["id"]) == ["t4", "3", "2", "1"]


def test_uploader_states_and_enforces_the_import_limit(app):
    """One number: the box's caption and the uploader's own limit (issue 17.7)."""
    limit = documents.MAX_IMPORT_BYTES // 2**20
    assert app.file_uploader(key="vb_hist_upload").proto.max_upload_size_mb == limit
    captions = " ".join(c.value for c in app.caption)
    assert f"Up to {limit} MB each" in captions


def test_a_mistyped_upload_is_one_error_that_stays_on_rerun(app, prepared, tmp_path):
    """A document with a number where a string belongs: one error box, kept on every rerun."""
    _, upload = prepared
    doc = json.loads(upload)
    doc["rows"][0]["device"] = 0
    doc["run"]["environment"]["gpu"] = "![p](http://127.0.0.1:8999/t.png)"
    app.file_uploader(key="vb_hist_upload").set_value(
        ("bad ![x](http://127.0.0.1:8999/n.png).json", json.dumps(doc).encode(), "application/json")
    )
    for _ in range(2):  # the uploader hands the file back on the rerun: still one message
        app.run()
        assert not app.exception
        errors = [e.value for e in app.error]
        assert len(errors) == 1 and "row 0 has device 0, not a string" in errors[0], errors
        # The file name is text in the box, never a markdown image.
        assert "![x](" not in errors[0] and "\\[x\\]" in errors[0]
    assert n_runs(tmp_path) == 3


def test_a_refused_upload_shows_the_files_newline_escaped_once(app, prepared, tmp_path):
    """The error box shows the file's newline as ``\\x0a`` (its bytes), not ``\\\\x0a``."""
    _, upload = prepared
    doc = json.loads(upload)
    doc["run"]["created_at"] = "2026-12-07\nnot a date"
    app.file_uploader(key="vb_hist_upload").set_value(
        ("d.json", json.dumps(doc).encode(), "application/json")
    )
    app.run()
    assert not app.exception
    errors = [e.value for e in app.error]
    # markdown source: a backslash is written "\\", so the box reads '2026-12-07\x0anot a date'
    assert len(errors) == 1 and "created\\_at '2026-12-07\\\\x0anot a date'" in errors[0], errors
    assert n_runs(tmp_path) == 3
