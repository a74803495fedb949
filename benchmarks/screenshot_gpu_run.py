"""Screenshot of the dashboard rendering a committed GPU run, on a machine without a GPU.

The Benchmark page shows only the sweeps of its own session, so a run made elsewhere is
shown on the History page: the ``bench --json`` document is imported into a private
results store (a fresh ``VISIONBENCH_DATA``), ``streamlit run dashboard.py`` serves it on a
free loopback port, and Debian's Chromium (through Playwright) opens the History page and
takes a full-page PNG. The page compares the newest stored run with the quoted T4 study by
default, which is what the picture shows.

    python benchmarks/screenshot_gpu_run.py \
        --doc benchmarks/results/h200/resnet50-stability.json --out docs/img/history-h200.png
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("VISIONBENCH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("streamlit did not come up")
        time.sleep(0.5)


def settle(page, timeout_s: float = 120) -> None:
    """Wait until Streamlit has finished its run and nothing on the page is stale."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while quiet < 3:
        busy = page.locator(
            '[data-testid="stApp"]:not([data-test-script-state="notRunning"]), [data-stale="true"]'
        ).count()
        quiet = 0 if busy else quiet + 1
        if time.monotonic() > deadline:
            raise SystemExit(f"the page was still running after {timeout_s:.0f} s")
        page.wait_for_timeout(400)


def shoot(url: str, out: Path, width: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        page = browser.new_page(viewport={"width": width, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(url)
        # Open the entry, then History from the navigation: going to /history directly
        # showed the Benchmark page when this was written.
        page.get_by_role("button", name="Run sweep").wait_for()
        settle(page)
        page.locator('[data-testid="stSidebarNav"] a', has_text="History").click()
        page.get_by_text("Compare two runs").wait_for()
        settle(page)
        # The Plotly chart draws after the script finishes; wait for its SVG.
        page.locator(".js-plotly-plot .main-svg").first.wait_for()
        # Streamlit scrolls inside its own container, so a full-page shot of a normal
        # viewport stops at the fold: grow the viewport to the content's height first.
        height = page.locator('[data-testid="stMainBlockContainer"]').evaluate(
            "e => e.getBoundingClientRect().bottom"
        )
        page.set_viewport_size({"width": width, "height": min(int(height) + 40, 8000)})
        settle(page)
        page.wait_for_timeout(1500)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--doc", type=Path, required=True, help="a bench --json document")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--width", type=int, default=1300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vb-shot-") as data:
        env = {**os.environ, "VISIONBENCH_DATA": data}
        subprocess.run(
            [sys.executable, "-m", "engine", "import", str(args.doc.resolve())],
            cwd=ROOT,
            env=env,
            check=True,
        )
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, proc)
            shoot(url, args.out, args.width)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
