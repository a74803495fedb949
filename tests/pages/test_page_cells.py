"""Small page cells: what a CPU runner says about device memory."""

from __future__ import annotations

import pytest

pytest.importorskip("streamlit", reason="the dashboard pages need Streamlit")

from engine.backends import get_backend  # noqa: E402
from engine.backends.base import PrepareContext  # noqa: E402
from engine.core.config import RunnerSpec  # noqa: E402
from pages import common  # noqa: E402


def test_a_cpu_runner_lists_its_memory_as_not_tracked_not_none(small_artifacts):
    spec = RunnerSpec("ort", "cpu", "fp32")
    with get_backend("ort").prepare(spec, small_artifacts, PrepareContext(batches=(1,))) as r:
        common._live_runners()["ort cpu"] = r
        listed = [x for x in common.live_runners() if x["runner"] == "ort cpu"]
        assert [x["device memory (MiB)"] for x in listed] == ["not tracked"]
