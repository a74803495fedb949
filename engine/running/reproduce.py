"""The CLI command that runs a sweep again, exactly: every setting a config holds.

Model source and seed, what to run (backends, devices, precisions in their order,
every non-default backend option as its generated flag, ``--only-runnable`` when the
runners are the runnable part of the grid, as the dashboard builds them), timing
(warm-up, iterations, time limit, minimum iterations, mode, threads), parity on or off,
auto mode and the calibration folder. Parsing the command back with the CLI's parser
gives an equal configuration once each runner is reduced to its own options (the test
``tests/engine/test_reproduce.py`` checks this for dashboard-made runs).
"""

from __future__ import annotations

import shlex
from typing import Any

from engine.core.config import SweepConfig


def _ordered(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _options(config: SweepConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in config.runners:
        for k, v in spec.options:
            out.setdefault(k, v)
    return out


def _grid_flag(config: SweepConfig, backends, devices, precisions, options) -> list[str]:
    """``--only-runnable`` when the runners are the grid's runnable part, not all of it."""
    from engine.running.plan import normalise, runner_grid

    grid = [d for d in devices for _ in backends for _ in precisions]
    if len(grid) == len(config.runners):
        return []
    runnable, _ = runner_grid(backends, devices, precisions, options, config.model, True)
    if normalise(SweepConfig(config.model, runnable, config.batches))[0].runners == list(
        config.runners
    ):
        return ["--only-runnable"]
    return []


def reproduce_command(
    config: SweepConfig, auto: bool = False, include_compile: bool = False
) -> str:
    """The ``python -m engine bench`` command line that runs ``config`` again."""
    from engine.backends import declared_options
    from engine.core.options import cli_args
    from engine.running.plan import normalise

    config = normalise(config)[0]
    m = config.model
    backends = _ordered([r.backend for r in config.runners])
    devices = _ordered([r.device for r in config.runners])
    precisions = _ordered([r.precision for r in config.runners])
    options = _options(config)
    from engine.core.paths import python_command

    args = [python_command(), "-m", "engine", "bench"]
    args += ["--onnx", m.onnx_path] if m.onnx_path else ["--model", m.name]
    if m.weights != "random" and not m.onnx_path:
        args += ["--weights", m.weights]
    args += ["--image-size", m.size_text, "--seed", str(m.seed)]
    args += ["--backend", ",".join(backends), "--device", ",".join(devices)]
    args += ["--precision", ",".join(precisions)]
    args += ["--batch", ",".join(map(str, config.batches))]
    args += cli_args(declared_options(), options)
    if not auto:
        args += _grid_flag(config, backends, devices, precisions, options)
    b = config.bench
    args += ["--warmup", str(b.warmup), "--iters", str(b.iters), "--mode", b.mode]
    args += ["--max-time", f"{b.max_time_s:g}", "--min-iters", str(b.min_iters)]
    if b.threads:
        args += ["--threads", str(b.threads)]
    if b.until_stable:
        args += ["--until-stable", "--stable-budget", f"{b.stable_budget_s:g}"]
    if not config.parity:
        args.append("--no-parity")
    if auto:
        args.append("--auto")
        if include_compile:
            args.append("--with-compile")
    if config.calibration_dir:
        args += ["--calibration-dir", config.calibration_dir]
    return shlex.join(args)
