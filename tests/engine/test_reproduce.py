"""Stored commands reproduce their runs: dashboard-made configs through the CLI's parser.

The configs are built the way the pages build them (``pages.common.Selection``), one is
really run and stored, and each stored (or reproduce) command is parsed back through the
CLI's own parser into a config that must equal the stored one.
"""

from __future__ import annotations

import shlex
from dataclasses import replace

import pytest

pytest.importorskip(
    "streamlit", reason="the dashboard-made runs need Streamlit, which is not installed here"
)


from engine.cli.main import bench_parser, build_config  # noqa: E402
from engine.core.config import BenchSettings, ModelSpec, SweepConfig  # noqa: E402
from engine.running.auto import plan_auto  # noqa: E402
from engine.running.launch import InlineLauncher, Job  # noqa: E402
from engine.running.plan import make_plan, normalise  # noqa: E402
from engine.running.reproduce import reproduce_command  # noqa: E402
from engine.storage.store import Store  # noqa: E402
from pages.common import Selection  # noqa: E402


def _parsed(command: str) -> tuple[SweepConfig, object]:
    argv = shlex.split(command)
    assert argv[1:4] == ["-m", "engine", "bench"]
    args = bench_parser().parse_args(argv[4:])
    return normalise(build_config(args))[0], args


SELECTIONS = [
    Selection(ModelSpec("mobilenet_v3_small", image_size=64, seed=7), backends=("torch", "ort")),
    Selection(
        ModelSpec("resnet18", image_size=96),
        device="cuda:1",
        backends=("torch", "ort", "tensorrt"),
        precisions=("fp32", "tf32", "fp16", "int8"),
        batches=(1, 32, 256),
        settings=BenchSettings(warmup=0, iters=7, max_time_s=30.0, threads=3, until_stable=True),
        options=(
            ("channels_last", True),
            ("cuda_graph", True),
            ("cudnn_conv_algo_search", "HEURISTIC"),
            ("opt_level", 5),
            ("strict_fp32", True),
            ("workspace_mb", 1024),
        ),
    ),
    Selection(
        ModelSpec("resnet18", weights="pretrained"),
        device="cuda",
        backends=("torch_compile",),
        precisions=("fp16", "bf16"),
        options=(("compile_mode", "reduce-overhead"), ("freezing", False)),
    ),
]


@pytest.mark.parametrize("sel", SELECTIONS)
def test_reproduce_command_parses_back_to_the_same_config(sel):
    config = sel.sweep_config()
    config.parity = False
    config.calibration_dir = "calib images"
    parsed, args = _parsed(reproduce_command(config))
    assert parsed.to_dict() == normalise(config)[0].to_dict()
    assert not args.auto


@pytest.mark.parametrize("sel", SELECTIONS)
def test_auto_mode_reproduces_its_candidates(sel):
    config = sel.sweep_config()
    parsed, args = _parsed(reproduce_command(config, auto=True, include_compile=True))
    assert args.auto and args.with_compile
    assert plan_auto(parsed, True).to_dict() == plan_auto(config, True).to_dict()


def test_stored_command_of_a_dashboard_run_reproduces_it(tmp_path, small_spec, small_artifacts):
    sel = Selection(
        small_spec,
        backends=("torch", "ort"),
        precisions=("fp32", "int8"),
        batches=(1, 2),
        settings=BenchSettings(warmup=0, iters=2, threads=1),
    )
    plan = make_plan(replace(sel.choice(), parity=False))
    assert [(r.backend, r.precision) for r in plan.config.runners] == [
        ("torch", "fp32"),
        ("ort", "fp32"),
        ("ort", "int8"),
    ]  # torch int8 left out, as the page does
    store = Store(tmp_path / "d.sqlite")
    outcome = InlineLauncher().launch(Job(plan), store)
    assert len(outcome.measured) == 6
    stored = store.run(outcome.run_id)
    # The plan went into the store as it was made: its command, its config, its words.
    assert stored["command"] == plan.command
    assert stored["configuration"] == plan.stored_configuration()
    assert stored["configuration"]["plan"]["left_out"] == plan.left_out != []
    parsed, _ = _parsed(stored["command"])
    assert parsed.to_dict() == SweepConfig.from_dict(stored["configuration"]).to_dict()
    assert "--only-runnable" in stored["command"] and "--no-parity" in stored["command"]
