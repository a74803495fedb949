"""Reports: what the HTML page and the markdown summary contain, the CLI, and that the page
shows its charts in a real headless Chromium with every network request refused.

The runs are a real sweep of resnet18 at 64×64 (random weights) on the CPU, and its exported
document rewritten as if from an H100 host (data, not a mock).
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest

from engine.cli import main as cli
from engine.core.config import BenchSettings, RunnerSpec, SweepConfig
from engine.reporting.report import html_report, markdown_report
from engine.running.sweep import run_sweep
from engine.storage import history
from engine.storage.store import Store

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_artifacts):
    folder = tmp_path_factory.mktemp("report")
    store = Store(folder / "results.sqlite")
    config = SweepConfig(
        model=small_artifacts.spec,
        runners=[RunnerSpec("torch"), RunnerSpec("ort")],
        batches=[1, 2],
        bench=BenchSettings(warmup=1, iters=3, min_iters=1, max_time_s=5.0),
    )
    local = run_sweep(config, store=store, artifacts=small_artifacts).run_id
    doc = copy.deepcopy(store.document(local))
    doc["run"]["environment"].update(gpu="NVIDIA H100 80GB HBM3", cpu_count=52, torch="2.9.0")
    doc["run"]["created_at"] = "2026-11-01T09:00:00+00:00"
    imported, _ = history.import_document(store, doc)
    # An older document in which ONNX Runtime was asked for CUDA and ran on the CPU.
    fell = copy.deepcopy(doc)
    fell["run"]["created_at"] = "2026-10-01T09:00:00+00:00"
    for r in fell["rows"]:
        if r["backend"] == "ort":
            r["device"] = "cuda"
    fallback, _ = history.import_document(store, fell)
    return {"store": store, "local": local, "imported": imported, "fallback": fallback}


@pytest.fixture(scope="module")
def verdict() -> str:
    from engine.diagnostics import run_diagnostics

    return run_diagnostics(probe=False).verdict


def test_html_report_contents(runs, verdict):
    store = runs["store"]
    ids = [runs["imported"], runs["local"], "t4"]
    page = html_report(store, ids)
    rows = store.rows(runs["local"])
    env = store.run(runs["local"])["environment"]
    # Plotly's library once, inline; one chart call per figure: 2 per run + 2 comparisons.
    assert page.count("Plotly.newPlot(") == 2 * 3 + 2
    assert len(re.findall(r"<script[^>]+src=\"https?:", page)) == 0
    assert page.count("* plotly.js v") == 1
    for r in rows:
        assert f'<td class="num">{r.p50_ms:.3f}</td>' in page
        assert f"{r.max_rel_err:.6f}" in page  # the parity table
    assert "Parity with the FP32 reference" in page
    assert f"<td>{env['torch']}</td>" in page and f"<td>{env['cpu']}</td>" in page
    assert "NVIDIA H100 80GB HBM3" in page and "Imported from a bench document" in page
    assert "Quoted figures from the study" in page and "not measured here" in page
    assert verdict.split(",")[0] in page  # the diagnostics verdict at the time
    assert 'id="markdown"' in page  # the markdown summary travels with the page
    assert "Asked for the GPU, ran on the CPU" not in page


def test_html_report_calls_out_a_silent_fallback(runs):
    page = html_report(runs["store"], [runs["fallback"]], diagnostics=False)
    assert "Asked for the GPU, ran on the CPU" in page
    assert "ort fp32 (ran on CPUExecutionProvider)" in page
    assert "Diagnostics were not run" in page


def test_markdown_report_contents(runs, verdict):
    store = runs["store"]
    text = markdown_report(store, [runs["imported"], runs["local"]])
    assert "| backend | precision | device | ran on | batch |" in text
    for r in store.rows(runs["local"]):
        line = f"| {r.backend} | {r.precision} | {r.device} | {r.provider} | {r.batch} |"
        assert f"{line} {r.p50_ms:.3f} | {r.p90_ms:.3f} | {r.throughput_ips:.1f} | ok |" in text
    sp = history.speedups(store.rows(runs["imported"]), store.rows(runs["local"]))
    assert sp and all(f"| {s.speedup:.2f}× |" in text for s in sp)
    assert "| environment | gpu | NVIDIA H100 80GB HBM3 | — |" in text
    assert verdict in text
    assert "<script" not in text
    best = max(store.rows(runs["local"]), key=lambda r: r.throughput_ips)
    assert (
        f"Best throughput: {best.throughput_ips:.1f} images/s with {best.backend} "
        f"{best.precision} on cpu at batch {best.batch}"
    ) in text
    warned = markdown_report(store, [runs["fallback"]], diagnostics=False)
    assert (
        "asked for the GPU but ran on the CPU" in warned
        and "ONNX Runtime diagnostics" not in warned
    )


def test_report_cli(runs, tmp_path, capsys):
    db = str(runs["store"].path)
    out = tmp_path / "r.html"
    assert cli.main(["report", "--db", db, "--run", f"{runs['local']},t4", "--out", str(out)]) == 0
    assert out.read_text().count("Plotly.newPlot(") == 2 * 2 + 1
    md = tmp_path / "r.md"
    assert cli.main(["report", "--db", db, "--out", str(md), "--no-diagnostics"]) == 0
    # No --run: the newest stored run.
    newest = max(r["id"] for r in runs["store"].runs())
    assert md.read_text().count("### Run ") == 1 and f"### Run {newest}:" in md.read_text()
    capsys.readouterr()
    empty = tmp_path / "empty.sqlite"
    for argv in (
        ["--db", db, "--out", str(tmp_path / "r.pdf")],
        ["--db", db, "--run", "4242", "--out", str(out)],
        ["--db", str(empty), "--out", str(out)],
    ):
        assert cli.main(["report", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


@pytest.mark.browser
def test_html_report_shows_its_charts_with_no_network(runs, tmp_path):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        print("skipped: no chromium at /usr/bin/chromium (scripts/test.sh installs it as root)")
        pytest.skip("chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    path = tmp_path / "report.html"
    path.write_text(html_report(runs["store"], [runs["imported"], runs["local"]]))
    url = path.as_uri()
    refused: list[str] = []

    def only_the_file(route) -> None:
        if route.request.url == url:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=["--no-sandbox"],
        )
        try:
            page = browser.new_page()
            page.route("**/*", only_the_file)
            page.goto(url)
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60000)
            plots = page.locator(".js-plotly-plot")
            assert plots.count() == 2 * 2 + 1
            # Every chart drew its lines, not only an empty frame.
            assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 5
            assert page.evaluate("typeof Plotly") == "object"
        finally:
            browser.close()
    assert refused == [], f"the report asked the network for {refused}"
