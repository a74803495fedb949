"""``python -m engine build``: build engines ahead of time, without measuring anything.

A compiled engine (an AOTInductor package) is built per batch size and cached; auto mode
then tries it without being asked, and a sweep loads it in seconds. With no precision or
options given, what is built is exactly what auto mode would try on that device. A
backend with a build command of its own (TensorRT's ``trt-build``) is handed the
arguments. One line per engine (``--json``: a document); bad input exits 2, a missing
library 3.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from engine.cli.args import Parser, parse_list
from engine.core.errors import BadInput
from engine.core.text import safe_text


def _say(message: str) -> None:
    print(safe_text(message), file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    from engine.backends import declared_options
    from engine.core.options import add_cli_flags
    from engine.running.build import builders

    default = builders()[0]
    from engine.core.commands import engine_command

    p = Parser(
        prog=engine_command("build"), description="build and cache engines without measuring them"
    )
    p.add_argument("--model", help="torchvision classifier name (default resnet50)")
    p.add_argument("--weights", help="random | pretrained | FILE (default random)")
    p.add_argument("--image-size", help="N or HxW (default 224)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--backend", default=default, help=f"default {default}")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--precision", help="comma list; default: what auto mode tries on the device")
    p.add_argument("--batch", default="32", help="comma list; one engine per batch size")
    p.add_argument(
        "--threads",
        type=int,
        help="the CPU threads a compiled CPU engine is compiled for (as bench --threads)",
    )
    p.add_argument("--cache-dir", help="artifact cache (default: the user cache folder)")
    p.add_argument("--json", action="store_true", help="print the facts as one JSON document")
    builders_options = {
        name: (f, owners)
        for name, (f, owners) in declared_options().items()
        if set(owners) & set(builders())
    }
    add_cli_flags(p.add_argument_group("backend options"), builders_options)
    return p


def _own_command(argv: list[str]) -> str:
    """The build command of the backend named by ``--backend X`` / ``--backend=X``, if any."""
    from engine.backends import backend_names, get_backend

    named = _named_backend(argv)
    return get_backend(named).BUILD_COMMAND if named in backend_names() else ""


def _named_backend(argv: list[str]) -> str:
    named = ""  # the last one wins, as argparse reads a repeated flag
    for i, arg in enumerate(argv):
        if arg == "--backend" and i + 1 < len(argv):
            named = argv[i + 1]
        elif arg.startswith("--backend="):
            named = arg.split("=", 1)[1]
    return named


def _handed_over(argv: list[str]) -> list[str]:
    """build's arguments for the backend's own command: without ``--backend``, and with
    build's default model where no model or file is named (build's own rule, and bench's
    and export's: the hand-over stopped at "one of the arguments --model --onnx is
    required")."""
    from engine.core.config import DEFAULT_MODEL

    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--backend":
            skip = True
        elif not arg.startswith("--backend="):
            out.append(arg)
    named = {a.split("=", 1)[0] for a in out} & {"--model", "--onnx", "-h", "--help"}
    return out if named else ["--model", DEFAULT_MODEL, *out]


def _hand_over(command: str, argv: list[str]) -> int:
    """Run the backend's own build command's ``from_build`` (its module's hand-over from
    build: one engine per precision of a comma list, reported as build reports them),
    after refusing, in build's words, a flag of build's that the command does not take
    (``--threads``: it ended in the command's "unrecognized arguments")."""
    from engine.cli.main import COMMANDS

    module = importlib.import_module(COMMANDS[command][0].split(":")[0])
    handed = _handed_over(argv)
    _refuse_flags_not_taken(module.parser(), handed, _named_backend(argv))
    return module.from_build(handed)


def _refuse_flags_not_taken(theirs: argparse.ArgumentParser, argv: list[str], named: str) -> None:
    """BadInput for the first of build's own flags the command's parser does not know,
    saying what the flag is for; flags neither knows are left to the command's parser."""
    from engine.backends import get_backend

    taken = {s for a in theirs._actions for s in a.option_strings}
    ours = {s: a for a in parser()._actions for s in a.option_strings}
    for arg in argv:
        flag = arg.split("=", 1)[0]
        if flag in ours and flag not in taken:
            title = get_backend(named).TITLE
            raise BadInput(
                f"{title} takes no {flag}",
                f"build's {flag} sets {ours[flag].help}; {title}'s engines take none",
                f"leave {flag} out with --backend {named}",
            )


def main(argv: list[str]) -> int:
    command = _own_command(argv)
    if command:
        return _hand_over(command, argv)
    from engine.running.build import build_in_child, in_build_child

    if not in_build_child():  # a native crash ends the child: one line here, not exit 139
        return build_in_child(argv)[0]
    args = parser().parse_args(argv)
    if args.cache_dir:
        from engine.core.paths import set_cache_dir

        set_cache_dir(args.cache_dir)
    from engine.artifacts.models import check_batches, load_artifacts
    from engine.backends import declared_options, get_backend
    from engine.cli.args import check_some_device_runs, model_spec
    from engine.core.commands import engine_command
    from engine.core.options import from_cli
    from engine.running.build import build_engine, build_specs, build_text

    args.onnx = None
    model, _ = model_spec(args)
    batches = check_batches(parse_list(args.batch, int, "batch size"))
    check_some_device_runs([args.device])
    precisions = parse_list(args.precision, str, "precision") if args.precision else None
    specs = build_specs(args.backend, args.device, precisions, from_cli(args, declared_options()))
    if args.threads is not None:  # filled in as a sweep's runner gets it: auto mode finds it
        from engine.core.limits import check_threads

        settings = {"threads": check_threads(args.threads)}
        specs = [get_backend(s.backend).settled(s, settings) for s in specs]
    if not specs:
        raise BadInput(
            f"the {get_backend(args.backend).TITLE} backend has nothing to build on {args.device}",
            "auto mode tries none of its engines there",
            "name a --precision (and options) to build, or another --device",
        )
    for spec in specs:
        get_backend(spec.backend).ready(spec, model)
    art = load_artifacts(model)
    from engine.running.faults import fault_hook

    done: list[dict] = []
    for spec in specs:
        for b in get_backend(spec.backend).engine_batches(spec, tuple(batches)):
            fault_hook(len(done))  # tests only: a real native fault before engine N
            done.append(build_engine(spec, art, b, _say))
    if args.json:
        print(json.dumps({"model": model.label, "engines": done}, indent=1))
        return 0
    for d in done:
        print(build_text(d))
    listing = engine_command("cache list")
    print(f"{len(done)} engine(s) for {model.label}; list them with {listing}")
    return 0
