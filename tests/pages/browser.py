"""What the browser tests share: a `streamlit run dashboard.py` server, Chromium, settling.

Not a test module (no ``test_`` prefix): the browser tests of the dashboard and the
whole-session test of the store (tests/reliability) start their servers and wait for a
page the same way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("VISIONBENCH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def need_browser() -> None:
    """Skip, saying why, where Debian's Chromium or Playwright is missing."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium (scripts/test.sh does)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"playwright is not installed ({exc}): pip install -r requirements-dev.txt")


def launch_chromium(playwright):
    """Debian's Chromium, headless; its sandbox needs privileges a CI container lacks."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """One `streamlit run dashboard.py` process, its address and its log."""

    proc: subprocess.Popen
    url: str
    log: IO[str]
    log_path: Path

    def wait_healthy(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"streamlit did not come up:\n{self.log_text()[-3000:]}")
            time.sleep(0.5)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        """Terminate it as a user's Ctrl-C would; its exit code (None if it had to be killed)."""
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        self.log.close()
        return code


def start_streamlit(data: Path, log_path: Path) -> Server:
    """Start the dashboard on a free local port with ``data`` as its store folder."""
    port = free_port()
    log = open(log_path, "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "VISIONBENCH_DATA": str(data)},
    )  # fmt: skip
    return Server(proc, f"http://127.0.0.1:{port}", log, log_path)


@contextlib.contextmanager
def streamlit_server(data: Path, log_path: Path) -> Iterator[str]:
    """`streamlit run dashboard.py` on a free local port with ``data`` as its store folder."""
    server = start_streamlit(data, log_path)
    try:
        server.wait_healthy()
        yield server.url
    finally:
        server.stop()


def settle(page, timeout_s: float = 120) -> None:
    """Wait until Streamlit has finished its run: the app says so and nothing is stale."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while quiet < 3:
        busy = page.locator(
            '[data-testid="stApp"]:not([data-test-script-state="notRunning"]), [data-stale="true"]'
        ).count()
        quiet = 0 if busy else quiet + 1
        if time.monotonic() > deadline:
            raise AssertionError(f"the page was still running after {timeout_s:.0f} s")
        page.wait_for_timeout(400)
