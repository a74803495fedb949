"""The CLI command that runs a sweep again, exactly: written from the user's choice.

A :class:`~engine.core.config.Choice` holds what was asked (model source and seed,
backends, devices and precisions in their order, every non-default backend option as its
generated flag, ``--only-runnable`` when the runnable part of the grid was asked for, as
the dashboard does), the timing (warm-up, iterations, time limit, minimum iterations,
mode, threads), parity on or off, auto mode and the calibration folder; the command says
exactly that, so nothing is guessed back from the runners (the grid is never planned
again here). Parsing the command back with the CLI's parser gives the same plan (the
test ``tests/engine/test_reproduce.py`` checks this for dashboard-made runs).
"""

from __future__ import annotations

import shlex
from typing import Any

from engine.core.config import Choice, SweepConfig


def _ordered(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def choice_of(config: SweepConfig, auto: bool = False, include_compile: bool = False) -> Choice:
    """The choice a hand-made config stands for (tests, benchmark scripts): its runners'
    backends, devices and precisions in order, their options merged; ``only_runnable``
    when the runners are fewer than that grid."""
    options: dict[str, Any] = {}
    for spec in config.runners:
        for k, v in spec.options:
            options.setdefault(k, v)
    backends = _ordered([r.backend for r in config.runners])
    devices = _ordered([r.device for r in config.runners])
    precisions = _ordered([r.precision for r in config.runners])
    grid = len(backends) * len(devices) * len(precisions)
    return Choice(
        model=config.model,
        backends=backends,
        devices=devices,
        precisions=precisions,
        batches=tuple(config.batches),
        options=tuple(sorted(options.items())),
        bench=config.bench,
        parity=config.parity,
        calibration_dir=config.calibration_dir,
        only_runnable=grid > len(set(config.runners)),
        auto=auto,
        include_compile=include_compile,
    )


def command_of(choice: Choice) -> str:
    """The ``python -m engine bench`` command line that makes the same plan."""
    from engine.backends import declared_options
    from engine.core.options import cli_args, setting_args
    from engine.core.paths import python_command

    m = choice.model
    args = [python_command(), "-m", "engine", "bench"]
    args += ["--onnx", m.onnx_path] if m.onnx_path else ["--model", m.name]
    if m.weights != "random" and not m.onnx_path:
        args += ["--weights", m.weights]
    args += ["--image-size", m.size_text, "--seed", str(m.seed)]
    args += ["--backend", ",".join(choice.backends), "--device", ",".join(choice.devices)]
    args += ["--precision", ",".join(choice.precisions)]
    args += ["--batch", ",".join(map(str, sorted(set(choice.batches))))]
    args += cli_args(declared_options(), dict(choice.options))
    if choice.only_runnable and not choice.auto:
        args.append("--only-runnable")
    args += setting_args(choice.bench)  # from the settings' one declaration
    if not choice.parity:
        args.append("--no-parity")
    if choice.auto:
        args.append("--auto")
        if choice.include_compile:
            args.append("--with-compile")
    if choice.calibration_dir:
        args += ["--calibration-dir", choice.calibration_dir]
    return shlex.join(args)


def reproduce_command(
    config: SweepConfig | Choice, auto: bool = False, include_compile: bool = False
) -> str:
    """The command that runs ``config`` again (a choice as it is; a config as the choice
    it stands for)."""
    if isinstance(config, Choice):
        return command_of(config)
    return command_of(choice_of(config, auto, include_compile))
