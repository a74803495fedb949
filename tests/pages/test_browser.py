"""End to end in a real headless Chromium: the dashboard as a user drives it.

Starts ``streamlit run dashboard.py`` on a free loopback port with private data
folders, picks a small model, moves the batch slider, runs a small sweep (PyTorch and
ONNX Runtime FP32, batches 1 and 2), checks that the Plotly chart and the results table
show numbers, and reads the diagnostics verdict. Screenshots go to ``artifacts/browser``.
"""

from __future__ import annotations

import re

import pytest

from engine.core.paths import python_command
from tests.pages.browser import ROOT, launch_chromium, need_browser, settle, streamlit_server

pytestmark = pytest.mark.browser

SHOTS = ROOT / "artifacts" / "browser"
MS = re.compile(r"\d+(\.\d+)? ms")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    need_browser()
    data = tmp_path_factory.mktemp("browser-data")
    log_path = tmp_path_factory.mktemp("browser-log") / "streamlit.log"
    with streamlit_server(data, log_path) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        pg = browser.new_page(viewport={"width": 1400, "height": 1100})
        pg.set_default_timeout(60_000)
        pg.goto(server)
        yield pg
        browser.close()


def fill(page, label: str, value: str) -> None:
    box = page.locator('[data-testid="stSidebar"]').get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")
    settle(page)


def test_benchmark_page_in_a_browser(page):
    from playwright.sync_api import expect

    page.get_by_role("button", name="Run sweep").wait_for()
    settle(page)
    model = page.get_by_role("combobox", name="Model")
    model.click()
    model.fill("resnet18")
    page.get_by_role("option", name="resnet18", exact=True).click()
    settle(page)
    fill(page, "Image size (pixels)", "64")
    fill(page, "Batch sizes (comma-separated)", "1,2")
    fill(page, "Timed iterations", "3")
    fill(page, "Warm-up iterations", "1")
    # The server runs this interpreter, so its command starts as python_command() says here.
    expect(page.locator('[data-testid="stCode"]').first).to_contain_text(
        f"{python_command()} -m engine bench --model resnet18 --image-size 64 --seed 0"
        " --backend torch,ort --device cpu --precision fp32 --batch 1,2 --warmup 1 --iters 3"
    )

    # The slider: one key press moves it to the next batch size and measures there.
    slider = page.get_by_role("slider").first
    slider.focus()
    slider.press("ArrowLeft")
    settle(page)
    metrics = page.locator('[data-testid="stMetric"]')
    metrics.nth(1).wait_for()
    values = [
        metrics.nth(i).locator('[data-testid="stMetricValue"]').inner_text() for i in range(2)
    ]
    assert all(MS.fullmatch(v.strip()) and float(v.split()[0]) > 0 for v in values), values
    page.screenshot(path=str(SHOTS / "benchmark-live.png"), full_page=True)

    page.get_by_role("button", name="Run sweep").click()
    page.get_by_text(re.compile(r"Sweep finished: 4 of 4 points measured")).wait_for(
        timeout=150_000
    )
    settle(page)
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.locator(".scatterlayer .trace").first.wait_for()
    assert chart.locator(".scatterlayer .trace").count() >= 2
    assert chart.locator(".xtick text").count() >= 2
    # The results table draws on a canvas; it keeps its cells in a hidden accessible table.
    table = page.locator('[data-testid="stDataFrame"]').last
    table.scroll_into_view_if_needed()
    table.locator("td").first.wait_for(state="attached")
    cells = table.locator("td").all_text_contents()
    numbers = [float(c) for c in cells if re.fullmatch(r"\d+\.\d+", c.strip())]
    assert numbers and all(n > 0 for n in numbers), cells[:40]
    page.screenshot(path=str(SHOTS / "benchmark-sweep.png"), full_page=True)


def test_diagnostics_page_in_a_browser(page):
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Diagnostics").click()
    verdict = page.locator('[data-testid="stAlert"]').first
    verdict.wait_for(timeout=120_000)
    settle(page)
    assert "ONNX Runtime will run on" in verdict.inner_text()
    page.screenshot(path=str(SHOTS / "diagnostics.png"), full_page=True)
