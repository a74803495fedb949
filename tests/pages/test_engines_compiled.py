"""The Engines page's compiled engines (issue 29): listed with their state, removable one
at a time, and a stale one (built by other library versions) marked so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("streamlit", reason="the dashboard pages need Streamlit")

from streamlit.testing.v1 import AppTest  # noqa: E402

from engine.backends.compiled_engine import EngineKey, build, library_versions, record  # noqa: E402
from tests.conftest import engines_page  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def stand_in(model: str, batch: int, **versions) -> EngineKey:
    """A cached engine record with a stand-in package (the page only reads records)."""
    key = EngineKey(
        model=model, weights_hash="w" * 8, batch=batch, channels=3, height=32, width=32,
        precision="fp16", compiled_mode="max-autotune-no-cudagraphs", freezing=True, channels_last=True,
        **{**library_versions(), **versions}, device_name="NVIDIA H200",
        compute_capability="9.0",
    )  # fmt: skip
    build(key, lambda path: Path(path).write_bytes(b"x" * 64), {})
    return key


def test_engines_are_listed_marked_stale_and_removed_one_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VISIONBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(ROOT)
    fresh = stand_in("efficientnet_b1", 32)
    old = stand_in("convnext_tiny", 32, torch_version="2.0.0")
    hostile = stand_in("<b>x</b>", 8)
    meta = record(hostile)
    meta["model"] = "**bold** <script>alert(1)</script>"
    (hostile.folder / "meta.json").write_text(json.dumps(meta))
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=300)
    at.run()
    at.switch_page("pages/engines.py").run()
    assert not at.exception, at.exception
    (table,) = [d.value for d in at.dataframe if "state" in d.value.columns]
    states = dict(zip(table["key"], table["state"], strict=True))
    assert states[fresh.name] == "ready"
    assert states[old.name].startswith("stale: built with other versions (torch 2.0.0")
    assert "**bold** <script>alert(1)</script>" in " ".join(table["what"])  # a cell, as text
    whats = dict(zip(table["key"], table["what"], strict=True))
    assert whats[fresh.name].endswith(
        "mode max-autotune-no-cudagraphs; max-autotune loads it too and captures a CUDA graph"
        " at run time"
    )
    at.selectbox(key="vb_prune_torch_compile").set_value(old.name).run()
    at.button(key="vb_prune_go_torch_compile").click().run()
    assert not at.exception and not at.error, at.error
    assert not old.folder.exists() and fresh.folder.exists() and hostile.folder.exists()


def test_the_build_button_builds_in_a_child_whose_crash_leaves_the_page_working(
    tmp_path, monkeypatch
):
    """The button builds through `python -m engine build` in a child process: a native crash
    there (a real SIGSEGV, the test hook's) is one error box and the dashboard goes on; the
    next press builds the engine for real, and the page lists it."""
    from engine.running.worker import CRASH_HOOK_ENV

    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VISIONBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv(CRASH_HOOK_ENV, "segv@0")
    monkeypatch.chdir(ROOT)
    at = engines_page("squeezenet1_1", 32, "8")
    assert not at.exception, at.exception
    at.button(key="vb_build_torch_compile").click().run()
    assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    assert "the build process was killed by SIGSEGV" in errors, errors
    assert "Artifact cache" in [s.value for s in at.subheader]  # the rest of the page runs
    monkeypatch.delenv(CRASH_HOOK_ENV)
    at.button(key="vb_build_torch_compile").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    shown = " ".join(str(m.value) for m in at.markdown)
    assert "built the compiled engine aoti-squeezenet1-1-b8-fp32" in shown, shown
    at.run()
    (table,) = [d.value for d in at.dataframe if "state" in d.value.columns]
    assert [k.startswith("aoti-squeezenet1-1-b8-fp32") for k in table["key"]] == [True]
    assert list(table["state"]) == ["ready"]
