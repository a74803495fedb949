"""Markdown injection on the History page, in a real headless Chromium (issue 18.2).

An imported run whose ``rows[].backend`` is ``![p](http://127.0.0.1:PORT/t.png)`` made the
page fetch that URL on open: the "Only in A/B" caption rendered it as a markdown image.
Here a local HTTP server counts every request it gets while the page draws the
comparison; the page must show the text itself, hold no image from it and send nothing.
Issue 26.1: the same through the "Parity failed or not judged" caption, and a bare
``http://…`` (which GFM links with no markup at all) must not become a link either.
"""

from __future__ import annotations

import copy
import http.server
import socket
import threading
from pathlib import Path

import pytest

from engine.core.config import BenchSettings, RunnerSpec, SweepConfig
from engine.running.sweep import run_sweep
from engine.storage.documents import import_document
from engine.storage.store import Store
from tests.pages.browser import free_port, launch_chromium, need_browser, settle, streamlit_server

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def trap():
    """A server on a free port that records every request made to it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], _Counter.hits
    server.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory, small_artifacts, trap):
    """A results store: one real run, and the same run imported with markdown in its fields."""
    port, _ = trap
    folder = tmp_path_factory.mktemp("browser-history")
    store = Store(folder / "results.sqlite")
    config = SweepConfig(
        model=small_artifacts.spec,
        runners=[RunnerSpec("torch")],
        batches=[1, 2],
        bench=BenchSettings(warmup=1, iters=3, min_iters=1, max_time_s=5.0),
    )
    outcome = run_sweep(config, store=store, artifacts=small_artifacts)
    assert outcome.measured
    doc = copy.deepcopy(store.document(int(outcome.run_id)))
    doc["run"]["created_at"] = "2099-01-01T00:00:00+00:00"  # the newest: the page's default B
    doc["run"]["environment"]["gpu"] = f"![g](http://127.0.0.1:{port}/gpu.png)"
    doc["rows"][0]["backend"] = f"![p](http://127.0.0.1:{port}/t.png)"
    # A failed parity puts the row in the "Parity failed or not judged" caption too.
    doc["rows"][0].update(parity_ok=False, parity_status="failed")
    doc["rows"][1]["backend"] = f"http://127.0.0.1:{port}/bare.png www.example.com"
    doc["rows"][1].update(parity_ok=None, parity_status="not judged")
    assert import_document(store, doc, "evil.json")[1]
    store.close()
    return folder


@pytest.fixture(scope="module")
def url(data, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("browser-history-log") / "streamlit.log"
    with streamlit_server(data, log_path) as base:
        yield base


def test_history_page_renders_imported_markdown_as_text(url, trap):
    need_browser()
    from playwright.sync_api import sync_playwright

    port, hits = trap
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(60_000)
        page.goto(url)
        settle(page)
        page.get_by_role("link", name="History").click()
        settle(page)
        page.get_by_text("Only in", exact=False).first.wait_for()
        page.get_by_text("Parity failed or not judged", exact=False).first.wait_for()
        body = page.locator("body").inner_text().replace("\u2060", "")
        images = page.locator(f'img[src*="127.0.0.1:{port}"]').count()
        links = page.locator(f'a[href*="127.0.0.1:{port}"], a[href*="example.com"]').count()
        browser.close()
    assert f"![p](http://127.0.0.1:{port}/t.png)" in body  # shown as the text it is
    assert f"http://127.0.0.1:{port}/bare.png" in body
    assert images == 0 and links == 0
    assert hits == [], f"the page fetched {hits}"


def _handshake(url: str, host: str, origin: str) -> str:
    """The status line the dashboard answers to a WebSocket upgrade with these headers."""
    port = int(url.rsplit(":", 1)[1])
    request = (
        "GET /_stcore/stream HTTP/1.1\r\n"
        f"Host: {host}\r\nOrigin: {origin}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: streamlit\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(request.encode())
        return s.recv(4096).decode("latin-1").split("\r\n", 1)[0]


def test_websocket_with_a_forged_host_or_origin_is_refused(url):
    """Issue 18.4: DNS rebinding or a page from elsewhere must not reach the app's socket."""
    port = url.rsplit(":", 1)[1]
    ours = f"127.0.0.1:{port}"
    assert " 101 " in _handshake(url, ours, f"http://{ours}")  # the dashboard's own page
    for host, origin in (
        (f"evil.example:{port}", f"http://evil.example:{port}"),  # rebinding: both forged
        (ours, "http://evil.example"),  # another site's page
    ):
        assert " 101 " not in _handshake(url, host, origin), (host, origin)
