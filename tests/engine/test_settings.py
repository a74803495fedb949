"""Sweep settings declared once (engine.core.config.BenchSettings), like a backend's options.

A setting declared there (here: a subclass with one more field, installed where the
settings' declaration is read) appears as a CLI flag with its help, as a sidebar control,
and in the reproduce command, with nothing else written for it. ``threads`` is one value:
it is a setting, never part of a configuration's spec, and reaches the runner when it is
built.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.cli.main import bench_parser, build_choice
from engine.core import config
from engine.core.config import BenchSettings, Choice
from engine.core.options import option
from engine.running.launch import InlineLauncher, Job
from engine.running.plan import make_plan
from engine.running.reproduce import reproduce_command
from engine.storage.store import Store


@dataclass(frozen=True)
class MoreSettings(BenchSettings):
    cooldown_s: float = option(
        0.0,
        "seconds to rest between points",
        "Cool-down between points (s)",
        flag="--cooldown",
        dashboard=2.0,
    )


@pytest.fixture
def more_settings(monkeypatch):
    monkeypatch.setattr(config, "SWEEP_SETTINGS", MoreSettings)


def test_a_new_setting_is_a_flag_and_in_the_reproduce_command(more_settings):
    parser = bench_parser()
    assert "--cooldown COOLDOWN" in parser.format_help()
    assert "seconds to rest between points (default 0)" in parser.format_help()
    choice = build_choice(parser.parse_args(["--model", "resnet18", "--cooldown", "1.5"]))
    assert isinstance(choice.bench, MoreSettings) and choice.bench.cooldown_s == 1.5
    command = reproduce_command(choice)
    assert "--cooldown 1.5" in command
    again = build_choice(bench_parser().parse_args(shlex.split(command)[4:]))
    assert again.bench == choice.bench


def test_a_new_setting_is_a_sidebar_control(more_settings, tmp_path, monkeypatch):
    pytest.importorskip("streamlit", reason="the sidebar needs Streamlit")
    from streamlit.testing.v1 import AppTest

    root = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("VISIONBENCH_DATA", str(tmp_path))
    monkeypatch.chdir(root)
    at = AppTest.from_file(str(root / "dashboard.py"), default_timeout=300)
    at.run()
    control = at.number_input(key="_vb_cooldown_s")
    assert control.label == "Cool-down between points (s)" and control.value == 2.0
    assert "--cooldown 2" in "\n".join(c.value for c in at.code)
    control.set_value(3.5).run()
    assert not at.exception, at.exception
    assert "--cooldown 3.5" in "\n".join(c.value for c in at.code)


def test_threads_is_one_value(tmp_path, small_spec):
    bench = BenchSettings(warmup=0, iters=2, threads=1)
    choice = Choice(small_spec, ("torch", "ort"), batches=(1,), bench=bench, parity=False)
    plan = make_plan(choice)
    # Not in any spec, so not in any label, key or stored option.
    assert all(spec.options == () for spec in plan.config.runners)
    assert "--threads 1" in plan.command
    store = Store(tmp_path / "t.sqlite")
    outcome = InlineLauncher().launch(Job(plan), store)
    rows = store.rows(outcome.run_id)
    assert [r.status for r in rows] == ["ok", "ok"]
    assert all(r.options == {} and r.threads == 1 for r in rows)
    # ... and it reached each runner when it was built: the libraries ran one thread.
    assert rows[0].machine.threads["torch"] == 1
    assert rows[1].machine.threads["ort"] == 1
    store.close()
