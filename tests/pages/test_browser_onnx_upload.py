# ruff: noqa: F811 - the server and page fixtures come from test_browser
"""In a real Chromium: an ONNX model and its data file picked together in one file dialog,
as torch.onnx.export writes them (model.onnx + model.onnx.data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pages.browser import settle
from tests.pages.test_browser import page, server  # noqa: F401

pytestmark = pytest.mark.browser
EXT = Path(__file__).resolve().parent.parent / "data" / "onnx" / "external"


def test_model_and_data_file_upload_together(page):
    from playwright.sync_api import expect

    page.get_by_role("button", name="Run sweep").wait_for()
    settle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("ONNX file", exact=True).click()
    settle(page)
    sidebar.locator('input[type="file"]').set_input_files(
        [str(EXT / "model.onnx"), str(EXT / "model.onnx.data")]
    )
    settle(page)
    expect(sidebar.get_by_text("Using the uploaded model.onnx.")).to_be_visible()
    expect(page.get_by_text("ONNX file model.onnx at 48×48", exact=False)).to_be_visible()
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
