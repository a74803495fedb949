"""The worked example of docs/extending.md, run: one module plus one registry line.

The example backend (tests/examples/ort_graph_level.py) is registered for the test only;
its option must then appear in the CLI, the sidebar and the reproduce command, and a
sweep must measure it, with nothing else changed.
"""

from __future__ import annotations

import shlex

import pytest

from engine import backends
from engine.backends import describe
from engine.cli.main import bench_parser, build_config
from engine.core.config import BenchSettings, RunnerSpec, SweepConfig
from engine.running.launch import InlineLauncher, Job
from engine.running.plan import normalise
from engine.running.reproduce import reproduce_command
from engine.storage.store import Store

TARGET = "tests.examples.ort_graph_level:OrtLevelBackend"


@pytest.fixture
def registered():
    backends.register("ort_level", TARGET)  # the one registry line
    yield
    backends.unregister("ort_level")


def test_its_option_is_a_cli_flag_and_a_reproduce_flag(registered, small_spec):
    assert "--graph-level" in bench_parser().format_help()
    config = SweepConfig(
        small_spec,
        [RunnerSpec("ort_level", "cpu", "fp32", (("graph_level", "basic"),))],
        [1],
    )
    command = reproduce_command(config)
    assert "--graph-level basic" in command
    again = build_config(bench_parser().parse_args(shlex.split(command)[4:]))
    assert normalise(again)[0].to_dict() == config.to_dict()
    assert describe(config.runners[0]).endswith("+ graph level=basic")


def test_its_option_is_a_sidebar_control(registered):
    from streamlit.testing.v1 import AppTest

    def page():
        import streamlit as st

        from engine import backends
        from pages.common import option_controls

        backends.register("ort_level", "tests.examples.ort_graph_level:OrtLevelBackend")
        st.session_state["chosen"] = option_controls(st.sidebar, ["ort_level"])

    app = AppTest.from_function(page).run()
    box = app.sidebar.selectbox[0]
    assert box.label == "graph level (ort_level)" and box.value == "all"
    box.set_value("basic").run()
    assert app.session_state["chosen"] == {"graph_level": "basic"}


def test_a_sweep_measures_it(registered, tmp_path, small_spec, small_artifacts):
    config = SweepConfig(
        small_spec,
        [RunnerSpec("ort_level", "cpu", "fp32", (("graph_level", "disabled"),))],
        [1, 2],
        BenchSettings(warmup=0, iters=2),
    )
    store = Store(tmp_path / "x.sqlite")
    out = InlineLauncher().launch(Job(config), store)
    assert [(r.status, r.parity_ok) for r in out.rows] == [("ok", True), ("ok", True)]
    assert "--graph-level disabled" in store.run(out.run_id)["command"]
