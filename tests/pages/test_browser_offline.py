"""Offline in a real Chromium: loading every dashboard page asks nothing of other hosts.

The README promises that nothing is downloaded at run time; a page that fetched an icon
or a font from the internet would hang or log errors on an offline machine. Every request
the browser makes while each page loads is recorded and its host checked.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from test_browser import server  # noqa: F401 - a fixture

from tests.pages.browser import launch_chromium, settle

pytestmark = pytest.mark.browser

PAGES = ["", "parity", "engines", "diagnostics", "history"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def test_no_page_load_leaves_the_machine(server):  # noqa: F811 - the imported fixture
    from playwright.sync_api import sync_playwright

    requests: list[tuple[str, str]] = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(60_000)
        current = {"page": ""}
        page.on("request", lambda r: requests.append((current["page"], r.url)))
        try:
            for name in PAGES:
                current["page"] = name or "benchmark"
                page.goto(f"{server}/{name}")
                page.locator('[data-testid="stSidebarNav"]').wait_for()
                settle(page, timeout_s=180)
                page.wait_for_timeout(1500)  # late requests (favicons, fonts) land too
        finally:
            browser.close()
    pages_seen = {p for p, _ in requests}
    assert pages_seen == {n or "benchmark" for n in PAGES}, pages_seen
    remote = [
        (p, url)
        for p, url in requests
        if urlsplit(url).scheme not in ("data", "blob")
        and urlsplit(url).hostname not in LOCAL_HOSTS
    ]
    assert remote == [], remote
