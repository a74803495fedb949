"""Issue 28's "done when": a backend written from docs/extending.md alone, registered by one
entry point, appears everywhere with its own label and runs in the worker child.

The backend is ONNX's reference evaluator (tests/examples/onnx_reference.py), installed for
the test as a real distribution (a dist-info folder on the path) that this process and the
worker child both see. Nothing else names it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli.main import bench_parser
from engine.core.config import BenchSettings, Choice
from engine.reporting import charts
from engine.running.auto import format_ladder
from engine.running.launch import Job, WorkerLauncher
from engine.running.plan import make_plan
from engine.storage.store import Store
from tests.conftest import installed_backend

ROOT = Path(__file__).resolve().parents[2]
TITLE = "ONNX reference evaluator"


@pytest.fixture
def installed(tmp_path, monkeypatch):
    with installed_backend(
        tmp_path, monkeypatch, "visionbench-onnx-reference", "onnx_reference",
        "tests.examples.onnx_reference:OnnxReferenceBackend",
    ):  # fmt: skip
        yield


def test_the_reference_evaluator_runs_in_the_worker_with_its_own_label(
    installed, tmp_path, small_spec
):
    assert "onnx_reference" in bench_parser().format_help()
    bench = BenchSettings(warmup=0, iters=2)
    choice = Choice(small_spec, ("torch", "onnx_reference"), batches=(1,), bench=bench)
    plan = make_plan(choice)
    store = Store(tmp_path / "ref.sqlite")
    out = WorkerLauncher().launch(Job(plan), store)
    assert [(r.backend, r.status, r.parity_status) for r in out.rows] == [
        ("torch", "ok", "ok"),
        ("onnx_reference", "ok", "ok"),
    ]
    assert out.rows[1].provider == "onnx.reference"
    run = store.run(out.run_id)
    assert "--backend torch,onnx_reference" in run["command"] == plan.command
    assert run["environment"]["onnx"]  # the library it declares, recorded with the run
    series = set(charts.results_frame(out.rows)["series"])
    assert f"{TITLE} FP32 (cpu)" in series
    store.close()
    html = tmp_path / "ref.html"
    from engine.cli import main as cli

    assert (
        cli.main(["report", "--run", str(out.run_id), "--db", str(store.path), "--out", str(html)])
        == 0
    )
    assert f"{TITLE} FP32" in html.read_text()


def test_auto_mode_asks_it_for_its_ladder(installed, tmp_path, small_spec):
    bench = BenchSettings(warmup=0, iters=2)
    plan = make_plan(Choice(small_spec, ("onnx_reference",), batches=(1,), bench=bench, auto=True))
    assert [(r.backend, r.precision) for r in plan.config.runners] == [("onnx_reference", "fp32")]
    store = Store(tmp_path / "auto.sqlite")
    out = WorkerLauncher().launch(Job(plan), store)
    assert f"* {TITLE} FP32" in format_ladder(out)
    assert "--auto" in store.run(out.run_id)["command"]
    store.close()
