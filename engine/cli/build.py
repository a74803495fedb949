"""``python -m engine build``: build engines ahead of time, without measuring anything.

A compiled engine (``torch_compile``'s AOTInductor package) is built per batch size and
cached; auto mode then tries it without being asked, and a sweep loads it in seconds.
With no precision or options given, what is built is exactly what auto mode would try on
that device. A backend with a build command of its own (TensorRT's ``trt-build``) is
handed the arguments. Prints one line per engine (``--json``: a document); bad input
exits 2, a missing library 3.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from engine.cli.args import Parser, parse_list
from engine.core.errors import BadInput
from engine.core.text import safe_text

PROG = "python -m engine build"


def default_backend() -> str:
    """The first registered backend that builds engines in this command."""
    from engine.backends import backend_names, get_backend

    return next(
        n
        for n in backend_names()
        if get_backend(n).BUILDS_ENGINES and not get_backend(n).BUILD_COMMAND
    )


def _say(message: str) -> None:
    print(safe_text(message), file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    from engine.backends import declared_options
    from engine.core.options import add_cli_flags

    p = Parser(prog=PROG, description="build and cache engines without measuring them")
    p.add_argument("--model", help="torchvision classifier name (default resnet50)")
    p.add_argument("--weights", help="random | pretrained | FILE (default random)")
    p.add_argument("--image-size", help="N or HxW (default 224)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--backend", default=default_backend(), help=f"default {default_backend()}")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--precision", help="default: what auto mode tries on the device")
    p.add_argument("--batch", default="32", help="comma list; one engine per batch size")
    p.add_argument("--cache-dir", help="artifact cache (default: the user cache folder)")
    p.add_argument("--json", action="store_true", help="print the facts as one JSON document")
    add_cli_flags(p.add_argument_group("backend options"), declared_options())
    return p


def _own_command(argv: list[str]) -> str:
    """The build command of the backend named by ``--backend X`` / ``--backend=X``, if any."""
    from engine.backends import backend_names, get_backend

    for i, arg in enumerate(argv):
        value = argv[i + 1] if arg == "--backend" and i + 1 < len(argv) else None
        if arg.startswith("--backend="):
            value = arg.split("=", 1)[1]
        if value in backend_names():
            return get_backend(value).BUILD_COMMAND
    return ""


def _without_backend(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--backend":
            skip = True
        elif not arg.startswith("--backend="):
            out.append(arg)
    return out


def specs_to_build(args: argparse.Namespace) -> list:
    """The configurations to build: the given precision and options, packaged; or, with
    none given, the slow candidates auto mode tries on the device."""
    from engine.backends import declared_options, get_backend
    from engine.core.config import RunnerSpec
    from engine.core.options import from_cli

    backend = get_backend(args.backend)
    if not backend.BUILDS_ENGINES:
        raise BadInput(
            f"the {backend.TITLE} backend builds nothing ahead of time",
            "its runners are made when a sweep starts, in seconds",
            f"use --backend {default_backend()}",
        )
    options = from_cli(args, declared_options())
    if args.precision is None and not options:
        ladder = [c for c in backend.auto_ladder(args.device) if c.slow]
        return [RunnerSpec(backend.NAME, args.device, c.precision, c.options) for c in ladder]
    precisions = parse_list(args.precision or "fp32", str, "precision")
    options.update(backend.BUILD_OPTIONS)
    return [RunnerSpec(backend.NAME, args.device, p, options) for p in precisions]


def build_one(spec: Any, art: Any, batch: int) -> dict[str, Any]:
    """Build (or find cached) ``spec``'s engine for ``batch``; the facts of what happened."""
    from engine.backends import describe, get_backend
    from engine.backends.base import PrepareContext

    ctx = PrepareContext(batches=(batch,), progress=_say)
    t0 = time.perf_counter()
    with get_backend(spec.backend).prepare(spec, art, ctx) as runner:
        runner.infer(art.sample_input(batch))
        info = dict(runner.info)
    return {
        "configuration": describe(spec),
        "batch": batch,
        "engine": info.get("engine", ""),
        "key": info.get("engine_key", ""),
        "build_s": info.get("build_s"),
        "load_s": info.get("load_s"),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str]) -> int:
    command = _own_command(argv)
    if command:
        import importlib

        from engine.cli.main import COMMANDS

        module, function = COMMANDS[command][0].split(":")
        return getattr(importlib.import_module(module), function)(_without_backend(argv))
    args = parser().parse_args(argv)
    if args.cache_dir:
        from engine.core.paths import set_cache_dir

        set_cache_dir(args.cache_dir)
    from engine.artifacts.models import check_batches, load_artifacts
    from engine.backends import get_backend
    from engine.cli.args import check_some_device_runs, model_spec

    args.onnx = None
    model, _ = model_spec(args)
    batches = check_batches(parse_list(args.batch, int, "batch size"))
    check_some_device_runs([args.device])
    specs = specs_to_build(args)
    for spec in specs:
        get_backend(spec.backend).ready(spec, model)
    art = load_artifacts(model)
    done = [build_one(spec, art, b) for spec in specs for b in batches]
    if args.json:
        print(json.dumps({"model": model.label, "engines": done}, indent=1))
        return 0
    for d in done:
        how = (
            f"built in {d['build_s']:.0f} s"
            if d["engine"] == "built now"
            else f"already cached (built in {d['build_s']:.0f} s), loaded in {d['load_s']:.1f} s"
        )
        print(f"{d['configuration']}, batch {d['batch']}: {how}; key {d['key']}")
    from engine.core.paths import python_command

    listing = f"{python_command()} -m engine cache list"
    print(f"{len(done)} engine(s) for {model.label}; list them with {listing}")
    return 0
