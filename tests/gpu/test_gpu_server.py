"""`streamlit run dashboard.py` on the GPU machine, checked over HTTP (no browser there)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read().decode("utf-8", "replace")


def test_dashboard_serves_on_the_gpu_machine(cuda, tmp_path):
    pytest.importorskip("streamlit")
    port = _free_port()
    env = {**os.environ, "VISIONBENCH_DATA": str(tmp_path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "dashboard.py",
            "--server.headless=true",
            # Streamlit installed outside site-packages (scripts/test-gpu.sh) thinks it is a
            # development checkout, which forbids --server.port.
            "--global.developmentMode=false",
            f"--server.port={port}",
            "--server.address=127.0.0.1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = _get(f"http://127.0.0.1:{port}/_stcore/health")
                break
            except OSError:
                time.sleep(0.5)
        assert health == (200, "ok"), proc.stdout.read() if proc.poll() is not None else health
        status, page = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and '<div id="root">' in page
        # The page must not pull anything from the internet (fonts, scripts).
        assert "fonts.googleapis" not in page and "fonts.gstatic" not in page
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
