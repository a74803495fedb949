"""Every dashboard page through Streamlit's AppTest with a CUDA device picked in the sidebar.

The journey the product is for: the dashboard on a GPU machine, CUDA chosen, the batch slider
dragged, a sweep and auto mode run, then the other pages. Real engine, resnet18 at 64×64 with
random weights, results in this module's own folder. Each flow is a helper taking a
:class:`Target` (the device and what should then have run), so the same flow can be tried
with ``CPU`` on a machine without a GPU; only the ``CUDA`` tests are collected here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu

WHY = "the dashboard's pages need Streamlit and Plotly (scripts/test-gpu.sh installs them)"
st = pytest.importorskip("streamlit", reason=WHY)
pytest.importorskip("plotly", reason=WHY)

from streamlit.testing.v1 import AppTest  # noqa: E402

from engine.core.text import markdown_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "dashboard.py")
TIMEOUT_S = 600


@dataclass(frozen=True)
class Target:
    """A device as the sidebar names it, and what must then have run there."""

    device: str
    torch_provider: str
    ort_provider: str
    live_precision: str  # what the slider measures with PyTorch
    parity_precisions: tuple[str, ...]
    parity_rows: int  # runnable backend × precision pairs among them
    auto_backends: tuple[str, ...]
    diag_provider: str  # the diagnostics page's choice and its verdict
    diag_ep: str


# Auto mode on CUDA tries PyTorch's eight settings only: ONNX Runtime's CUDA rows are
# covered by the sweep and parity tests, and its five candidates would double the time.
CUDA = Target(
    "cuda:0", "torch-cuda", "CUDAExecutionProvider", "fp16", ("fp32", "fp16"), 4,
    ("torch",), "CUDA", "CUDAExecutionProvider",
)  # fmt: skip
CPU = Target(
    "cpu", "torch-cpu", "CPUExecutionProvider", "fp32", ("fp32", "int8"), 3,
    ("torch", "ort"), "CPU", "CPUExecutionProvider",
)  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("vb-gpu-pages")


@pytest.fixture(autouse=True)
def _fresh_caches():
    # Runners (and the GPU memory they hold) must not outlive the test that built them.
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def app(data_dir, monkeypatch) -> AppTest:
    # Exports come from the session's private cache (tests/conftest.py); results go to
    # this module's own database, which the worker process inherits through the env.
    monkeypatch.setenv("VISIONBENCH_DATA", str(data_dir))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def ok_page(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)


def results_table(at: AppTest):
    """The sweep's results table (the ladder and the runner listing lack these columns)."""
    return next(d.value for d in at.dataframe if {"series", "provider"} <= set(d.value.columns))


def choose(at: AppTest, t: Target, backends=("torch", "ort"), precisions=("fp32",), batches="1,2"):
    """The sidebar: the device first (it decides which backends are offered), then the rest."""
    at.selectbox(key="_vb_device").set_value(t.device).run()
    assert at.selectbox(key="_vb_device").value == t.device
    at.selectbox(key="_vb_model").set_value("resnet18")
    at.number_input(key="_vb_size").set_value(64)
    at.text_input(key="_vb_batches").set_value(batches)
    at.number_input(key="_vb_iters").set_value(3)
    at.number_input(key="_vb_warmup").set_value(1)
    at.multiselect(key="_vb_backends").set_value(list(backends))
    at.multiselect(key="_vb_precisions").set_value(list(precisions))
    at.run()
    ok_page(at)
    assert f"at 64×64 on {t.device}." in texts(at.caption)
    return at


# -- the flows, one per page ----------------------------------------------------------
def check_live_measurement(at: AppTest, t: Target) -> None:
    from engine.backends import describe
    from engine.core.config import RunnerSpec
    from pages import common

    choose(at, t, backends=("torch",), precisions=(t.live_precision,))
    at.select_slider(key="_vb_live_batch").set_value(2).run()
    ok_page(at)
    (card,) = at.metric
    assert card.label == describe(RunnerSpec("torch", t.device, t.live_precision), "series")
    assert card.value.endswith(" ms") and float(card.value.split()[0]) > 0
    assert f"ran on {t.torch_provider}" in card.help
    assert ", batch 2:" in texts(at.caption)
    listing = next(e for e in at.expander if e.label == "Cached runners").dataframe[0].value
    assert list(listing["provider"]) == [t.torch_provider]
    if t.device != "cpu":  # a GPU runner reports the device memory it holds
        assert float(listing["device memory (MiB)"].iloc[0]) > 0  # shown as text: "not tracked"
    # The page's runner cache (st.cache_resource, shared by every session), read directly:
    # the second move must time the very runner the first one built, not build another.
    first = dict(common._live_runners())
    assert len(first) == 1 and next(iter(first.values())).provider == t.torch_provider
    at.select_slider(key="_vb_live_batch").set_value(4).run()
    ok_page(at)
    assert ", batch 4:" in texts(at.caption)
    (card,) = at.metric
    assert float(card.value.split()[0]) > 0 and f"ran on {t.torch_provider}" in card.help
    second = dict(common._live_runners())
    assert second.keys() == first.keys()
    assert all(second[k] is first[k] for k in first)
    listing = next(e for e in at.expander if e.label == "Cached runners").dataframe[0].value
    assert len(listing) == 1


def check_sweep(at: AppTest, t: Target) -> None:
    choose(at, t)
    assert f"--device {t.device}" in texts(at.code)
    at.button(key="vb_run").click().run()
    ok_page(at)
    assert "Sweep finished: 4 of 4 points measured" in texts(at.success)
    assert len(at.get("plotly_chart")) >= 3
    table = results_table(at)
    ok = table[table["status"] == "ok"]
    assert len(ok) == 4 and set(ok["batch"]) == {1, 2}
    assert (ok["p50_ms"] > 0).all() and (ok["throughput_ips"] > 0).all()
    assert all(f"({t.device})" in s for s in ok["series"])
    by_backend = {s.split(" ")[0]: set(g["provider"]) for s, g in ok.groupby("series")}
    assert by_backend == {"PyTorch": {t.torch_provider}, "ONNX": {t.ort_provider}}, by_backend
    assert list(ok["parity_status"]) == ["ok"] * 4, ok[["series", "parity_status", "max_rel_err"]]
    if t.device != "cpu":
        torch_rows = ok[ok["provider"] == t.torch_provider]
        assert (torch_rows["peak_mem_mb"] > 0).all()


def check_auto(at: AppTest, t: Target) -> None:
    from engine.running.auto import candidates

    choose(at, t, backends=t.auto_backends, batches="1")
    at.toggle(key="vb_auto").set_value(True).run()
    assert "--auto" in texts(at.code)
    at.button(key="vb_run").click().run()
    ok_page(at)
    winner = [s for s in texts(at.success).splitlines() if "Fastest agreeing setting" in s]
    assert winner and "batch 1:" in winner[0], texts(at.success)
    ladder = next(d.value for d in at.dataframe if "speedup" in d.value.columns)
    assert len(ladder) == len(candidates(t.device, list(t.auto_backends)))
    assert ladder["best"].sum() == 1
    best = ladder[ladder["best"]].iloc[0]
    assert best["label"] in winner[0]
    # The winner's outputs were compared with the FP32 reference and agreed (not "not judged").
    assert best["status"] == "ok" and best["parity_status"] == "ok", best.to_dict()
    agreeing = ladder[(ladder["status"] == "ok") & (ladder["parity_ok"] == True)]  # noqa: E712
    assert best["step"] in set(agreeing["step"])
    rows = results_table(at)
    providers = set(rows[rows["status"] == "ok"]["provider"])
    assert t.torch_provider in providers
    assert providers <= {t.torch_provider, t.ort_provider}


def _verdict(at: AppTest, t: Target) -> None:
    ok_page(at)
    (banner,) = at.success  # the provider asked for is the one that really runs
    assert f"will run on: {t.diag_provider}" in banner.value.replace("\\", ""), banner.value
    assert f"Really used: {t.diag_ep}" in texts(at.text)


def check_diagnostics(at: AppTest, t: Target) -> None:
    at.switch_page("pages/diagnostics.py").run()
    # The default choice checks CUDA where a GPU is usable, and the CPU elsewhere.
    _verdict(at, t)
    if t.device != "cpu":
        assert "no NVIDIA GPU is usable here" not in texts(at.caption)
    at.selectbox(key="vb_diag_provider").set_value(t.diag_provider).run()
    _verdict(at, t)
    report = texts(at.code)
    assert f"requested: {t.diag_ep}" in report
    assert f"will run on: {t.diag_provider}" in report


def check_engines(at: AppTest, t: Target) -> None:
    from engine.backends import backend_names, get_backend

    choose(at, t, backends=("torch",), precisions=(t.live_precision,))
    at.select_slider(key="_vb_live_batch").set_value(2).run()  # a runner on the device
    ok_page(at)
    at.switch_page("pages/engines.py").run()
    ok_page(at)
    assert "at 64×64." in texts(at.caption)
    at.button(key="vb_inspect").click().run()
    ok_page(at)
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Nodes after ONNX Runtime"]) < int(metrics["Nodes exported"])
    captions, infos = texts(at.caption), texts(at.info)
    # Each engine-inspecting backend (TensorRT) says, for this device, why it cannot run
    # here or how to see its layers.
    for name in backend_names():
        backend = get_backend(name)
        if not backend.INSPECTS:
            continue
        on = t.device if "cpu" in backend.DEVICES or t.device != "cpu" else "cuda"
        avail = backend.availability(on)
        if avail.ok:
            assert f"Select the {name} backend" in captions
        else:
            # The reason is a library's message, shown escaped (engine.core.text.markdown_text).
            assert markdown_text(f"{backend.TITLE} is not available here: {avail.reason}") in infos
    assert "Artifact cache" in texts(at.subheader)
    assert "Runners cached in this dashboard process: 1." in captions


def check_parity(at: AppTest, t: Target) -> None:
    choose(at, t, precisions=t.parity_precisions)
    at.switch_page("pages/parity.py").run()
    ok_page(at)
    at.button(key="vb_parity_run").click().run()
    ok_page(at)
    table = at.dataframe[0].value
    assert len(table) == t.parity_rows, table
    for _, row in table.iterrows():
        assert f"({t.device})" in row["series"]
        want = t.torch_provider if row["series"].startswith("PyTorch") else t.ort_provider
        assert row["provider"] == want, row.to_dict()
        assert row["result"] == "pass" and row["cosine"] > 0.99, row.to_dict()
    assert set(table["series"].str.split(" ").str[0]) == {"PyTorch", "ONNX"}
    assert "Every backend agrees with the reference" in texts(at.success)


def check_history(at: AppTest, t: Target) -> None:
    choose(at, t, backends=("torch",), batches="1")
    at.button(key="vb_run").click().run()
    ok_page(at)
    done = re.search(
        r"Sweep finished: 1 of 1 points measured, stored as run (\d+)", texts(at.success)
    )
    assert done, texts(at.success)
    run_id = done.group(1)
    at.switch_page("pages/history.py").run()
    ok_page(at)
    assert [x.value for x in at.title] == ["History"]
    runs = next(d.value for d in at.dataframe if "backends" in d.value.columns)
    measured = runs[runs["source"] != "quoted"]
    assert measured["id"].iloc[0] == run_id  # the newest run is listed first
    run = measured.set_index("id").loc[run_id]
    assert (run["model"], run["backends"], run["devices"]) == ("resnet18", "torch", t.device)
    assert (run["image_size"], run["rows"], run["source"]) == (64, 1, "local")
    if t.device != "cpu":  # a GPU run is named after its GPU
        import torch

        assert torch.cuda.get_device_name(0) in run["machine"]


# -- on CUDA ----------------------------------------------------------------------------
def test_slider_measures_on_cuda_and_reuses_the_cached_runner(cuda, app):
    check_live_measurement(app, CUDA)


def test_sweep_runs_pytorch_and_onnx_runtime_on_cuda(ort_cuda, app):
    check_sweep(app, CUDA)


def test_auto_mode_on_cuda_shows_a_judged_winner(cuda, app):
    check_auto(app, CUDA)


def test_diagnostics_page_says_onnx_runtime_runs_on_cuda(ort_cuda, app):
    check_diagnostics(app, CUDA)


def test_engines_page_with_cuda_selected(cuda, app):
    check_engines(app, CUDA)


def test_parity_page_on_cuda(ort_cuda, app):
    check_parity(app, CUDA)


def test_history_page_lists_the_cuda_run_just_made(cuda, app):
    check_history(app, CUDA)
