"""Every dashboard page through Streamlit's AppTest, on the CPU with resnet18 at 64×64.

Real engine, real caches (in a temporary folder), no mocks: a sweep must produce charts
and a table with numbers, the slider a measurement, and bad input an error box while
the rest of the page keeps working.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip(
    "streamlit", reason="the dashboard pages need Streamlit, which is not installed here"
)

import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from engine.core.commands import python_command  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "dashboard.py")
TIMEOUT_S = 600


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("vb-data")


@pytest.fixture
def app(data_dir, monkeypatch) -> AppTest:
    # The artifact cache is the session's private one (conftest), so exports are shared
    # with the other tests; results go to this module's own database.
    monkeypatch.setenv("VISIONBENCH_DATA", str(data_dir))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.run()
    assert not at.exception, at.exception
    return at


def small_model(at: AppTest, batches: str = "1,2", precisions=("fp32",)) -> AppTest:
    at.selectbox(key="_vb_model").set_value("resnet18")
    at.number_input(key="_vb_size").set_value(64)
    at.text_input(key="_vb_batches").set_value(batches)
    at.number_input(key="_vb_iters").set_value(3)
    at.number_input(key="_vb_warmup").set_value(1)
    at.multiselect(key="_vb_backends").set_value(["torch", "ort"])
    at.multiselect(key="_vb_precisions").set_value(list(precisions))
    return at.run()


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_sweep_draws_charts_and_a_table_with_numbers(app: AppTest, data_dir):
    small_model(app)
    assert not app.error, texts(app.error)
    assert "python -m engine bench --model resnet18" in texts(app.code)
    # Live charts cost the sweep CPU time on a small machine: off unless asked for.
    assert app.toggle(key="vb_live_charts").value is False
    app.button(key="vb_run").click().run()
    assert not app.exception, app.exception
    assert not app.error, texts(app.error)
    assert "Sweep finished: 4 of 4 points measured" in texts(app.success)
    charts = app.get("plotly_chart")
    assert len(charts) >= 3
    table = app.dataframe[-1].value
    measured = table[table["status"] == "ok"]
    assert len(measured) == 4
    assert (measured["p50_ms"] > 0).all() and (measured["throughput_ips"] > 0).all()
    assert set(measured["batch"]) == {1, 2}
    assert app.get("download_button")
    from engine.storage.store import Store

    store = Store(data_dir / "results.sqlite")
    stored = [r for r in store.rows() if r.status == "ok"]
    store.close()
    assert {(r.backend, r.batch) for r in stored} >= {("torch", 1), ("ort", 2)}


def test_batch_slider_gives_a_measurement(app: AppTest):
    small_model(app)
    app.select_slider(key="_vb_live_batch").set_value(2).run()
    assert not app.error, texts(app.error)
    metrics = app.metric
    assert len(metrics) == 2
    for m in metrics:
        assert m.value.endswith(" ms") and float(m.value.split()[0]) > 0
    # The runners are cached now: the listing names both.
    assert len(app.expander[0].dataframe[0].value) >= 2
    app.button(key="vb_clear_runners").click().run()
    assert not app.exception


def test_bad_input_shows_an_error_and_the_page_keeps_working(app: AppTest):
    small_model(app)
    app.text_input(key="_vb_batches").set_value("1,zero").run()
    assert "batch size 'zero'" in texts(app.error)
    assert app.title[0].value == "Benchmark"
    app.text_input(key="_vb_batches").set_value("1").run()
    app.radio(key="_vb_weights_kind").set_value("local file").run()
    app.text_input(key="_vb_weights_path").set_value("no-such-weights.pt").run()
    app.button(key="vb_measure").click().run()
    assert "no-such-weights.pt does not exist" in texts(app.error)
    assert app.get("plotly_chart")  # the rest of the page is still drawn


def test_parity_page_passes_for_fp32_and_int8(app: AppTest):
    small_model(app, precisions=("fp32", "int8"))
    app.switch_page("pages/parity.py").run()
    app.button(key="vb_parity_run").click().run()
    assert not app.error, texts(app.error)
    table = app.dataframe[0].value
    assert set(table["series"]) == {
        "PyTorch FP32 (cpu)",
        "ONNX Runtime FP32 (cpu)",
        "ONNX Runtime INT8 (cpu)",
    }
    fp32 = table[table["series"] == "ONNX Runtime FP32 (cpu)"].iloc[0]
    assert fp32["result"] == "pass" and fp32["cosine"] > 0.9999
    assert "not run" not in texts(app.caption).lower() or "torch int8" in texts(app.caption)


def test_engines_page_shows_fusion_and_cache(app: AppTest):
    small_model(app)
    app.switch_page("pages/engines.py").run()
    app.button(key="vb_inspect").click().run()
    assert not app.error, texts(app.error)
    metrics = {m.label: m.value for m in app.metric}
    exported, optimised = int(metrics["Nodes exported"]), int(metrics["Nodes after ONNX Runtime"])
    assert optimised < exported
    assert "Artifact cache" in texts(app.subheader)
    assert len(app.dataframe[-1].value) >= 1


def test_diagnostics_page_shows_a_verdict(app: AppTest):
    app.switch_page("pages/diagnostics.py").run()
    assert not app.exception, app.exception
    banners = list(app.success) + list(app.warning) + list(app.error)
    assert banners and "ONNX Runtime" in texts(banners)
    report_text = texts(app.code)
    assert "ONNX Runtime provider diagnostics" in report_text
    assert "<details>" not in report_text  # the copyable report is text, not raw Markdown
    from engine.diagnostics import check_driver

    if not check_driver()["libcuda"]["loaded"]:  # no GPU: the CPU is checked, and it works
        assert app.success and not app.error, texts(app.error)
        assert "CUDA would need" in report_text
    # the fixes it prints start the way the README's install runs things (issue 27, item 8)
    from tests.engine.test_printed_commands import BARE

    everything = report_text + texts(app.markdown) + texts(app.caption)
    assert not BARE.search(everything), BARE.search(everything)
    assert f"{python_command()} -m engine diagnose" in everything
    app.button(key="vb_diag_recheck").click().run()
    assert not app.exception
    app.selectbox(key="vb_diag_provider").set_value("CUDA").run()
    assert not app.exception
    assert "requested: CUDAExecutionProvider" in texts(app.code)


def test_an_uploaded_onnx_file_runs_on_onnx_runtime(app: AppTest, small_artifacts, data_dir):
    onnx_bytes = small_artifacts.onnx_path("fp32").read_bytes()
    small_model(app)
    app.radio(key="_vb_source").set_value("ONNX file").run()
    assert "Upload an ONNX image classifier" in texts(app.error)
    app.sidebar.get("file_uploader")[0].upload("../../evil name.onnx", onnx_bytes).run()
    assert not app.error, texts(app.error)
    command = texts(app.code)
    # The command says what was chosen; --only-runnable leaves PyTorch out, as the page did.
    assert "--onnx" in command and "--backend torch,ort" in command
    assert "--only-runnable" in command
    assert "PyTorch cannot run an ONNX file" in texts(app.caption)
    saved = list((data_dir / "uploads").rglob("*.onnx"))
    assert len(saved) == 1 and "evil" in saved[0].name and ".." not in saved[0].name
    app.button(key="vb_run").click().run()
    assert "Sweep finished: 2 of 2 points measured" in texts(app.success)


def test_a_stopped_sweep_ends_early_and_says_so(small_spec, data_dir):
    import time

    from engine.core.config import BenchSettings, RunnerSpec, SweepConfig
    from pages.common import SweepJob

    config = SweepConfig(
        small_spec,
        [RunnerSpec("torch"), RunnerSpec("ort")],
        [1, 2, 4, 8],
        BenchSettings(warmup=1, iters=3),
    )
    job = SweepJob(config, str(data_dir / "stopped.sqlite")).start()
    job.stop.set()
    deadline = time.monotonic() + 300
    while not job.finished and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.finished and job.error is None, job.error
    assert job.outcome.interrupted
    assert len(job.outcome.measured) < 8
    # The page counts the outcome's rows and charts them: the very rows that landed.
    assert len(job.outcome.rows) == len(job.rows)
    assert all(a is b for a, b in zip(job.outcome.rows, job.rows, strict=True))


@pytest.fixture(autouse=True)
def _fresh_caches():
    # Runners and artifacts must not outlive the test that built them.
    st.cache_resource.clear()
    st.cache_data.clear()
    yield


def test_auto_mode_picks_a_winner_and_shows_the_ladder(app: AppTest):
    small_model(app, batches="2")
    app.toggle(key="vb_auto").set_value(True).run()
    app.button(key="vb_run").click().run()
    assert not app.exception, app.exception
    assert not app.error, texts(app.error)
    winner = [s for s in texts(app.success).splitlines() if "Fastest agreeing setting" in s]
    assert winner and "batch 2:" in winner[0], texts(app.success)
    ladder = next(d.value for d in app.dataframe if "speedup" in d.value.columns)
    assert len(ladder) >= 3 and ladder["best"].sum() == 1
    best = ladder[ladder["best"]].iloc[0]
    agreeing = ladder[(ladder["status"] == "ok") & (ladder["parity_ok"] == True)]  # noqa: E712
    assert best["parity_ok"] and best["p50_ms"] == agreeing["p50_ms"].min()


def test_one_rerun_plans_the_sweep_once(app: AppTest, monkeypatch):
    """The Benchmark page makes one plan per rerun: the grid is planned once (the real
    runner_grid, counted), whatever the page then shows (left out, live runners, command)."""
    from engine.running import plan as plan_module

    calls = []
    real = plan_module.runner_grid

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(plan_module, "runner_grid", counted)
    small_model(app, precisions=("fp32", "int8"))
    assert not app.exception, app.exception
    assert len(calls) == 1
    assert "Not run: torch int8" in texts(app.caption)
    assert "--only-runnable" in texts(app.code)
    calls.clear()
    app.toggle(key="vb_auto").set_value(True).run()
    assert len(calls) == 1 and "--auto" in texts(app.code)
    calls.clear()
    app.run()
    assert len(calls) == 1
