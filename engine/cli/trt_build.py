"""``python -m engine trt-build``: build a TensorRT plan without running it.

Prints the flavour and version, build time, plan size and the cache key, one fact a line
(``--json`` for a document). TensorRT-RTX builds on a machine without a GPU; a user's
RTX card then loads the plan. On a GPU the plan is the one ``bench`` with the same batches
finds in the cache: int8 of a model is quantised as that sweep quantises it, into the same
file, and the profile is a sweep's.
Bad input exits 2, no usable TensorRT exits 3.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cli.args import Parser, add_image_size, model_spec, parse_list, weights_file
from engine.core.commands import engine_command
from engine.core.errors import BadInput
from engine.core.options import add_cli_flags
from engine.core.text import safe_text

if TYPE_CHECKING:
    from engine.backends.tensorrt.standalone import StandaloneBuild


def _say(message: str) -> None:
    # stderr is not behind the CLI's stdout sanitiser; TensorRT's log text passes here.
    print(safe_text(message), file=sys.stderr)


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=engine_command("trt-build"), description="build a TensorRT plan without running it"
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="torchvision classifier name (exported with random weights)")
    src.add_argument(
        "--onnx",
        help="an ONNX file of the precision asked for (fp32 of an FP16 file: its FP32 copy)",
    )
    p.add_argument("--weights", help="random | pretrained | FILE (default random), as bench's")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    add_image_size(p)
    p.add_argument("--precision", default="fp16", help="fp32, fp16, bf16 or int8")
    p.add_argument("--batch", default="1,8,32", help="batch sizes the plan must accept")
    p.add_argument("--out", help="also write the plan to this file")
    p.add_argument(
        "--device",
        default="cuda",
        help="cuda (the first GPU, or none: TensorRT-RTX builds for its targets), as build's",
    )
    p.add_argument(
        "--calibration-dir",
        help="int8: folder of images to calibrate on, as bench's (default: generated images)",
    )
    p.add_argument("--json", action="store_true", help="print the facts as one JSON document")
    p.add_argument("--cache-dir", help="artifact cache (default: the user cache folder)")
    group = p.add_argument_group("backend options (bench's: the same options, the same plan)")
    # --flavour: this command's name for the flavour before it took bench's flags
    add_cli_flags(group, _own_options(), aliases={"--trt-flavour": ("--flavour",)})
    return p


def _own_options() -> dict:
    """The declared options of this command's backend, as bench's parser holds them (the
    same flags, checks and messages)."""
    from engine.backends import declared_options

    name = _backend_name()
    return {n: entry for n, entry in declared_options().items() if name in entry[1]}


def _options(args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    """(the options given, as a spec holds them; all of them, typed), checked as bench
    checks its flags."""
    from engine.backends import get_backend
    from engine.core.options import from_cli, non_default, validate

    backend = get_backend(_backend_name())
    given = from_cli(args, _own_options())
    return non_default(backend.Options, given), validate(backend.Options, given, backend.TITLE)


def _source(args: argparse.Namespace, batches: list[int]) -> tuple[str, Any, int | None]:
    """(what to call the model, its artifacts, the one batch its graph runs or None).

    The size follows bench's rules (:func:`engine.cli.args.model_spec`): an ONNX file's
    declared size is its size, a different ``--image-size`` is refused, a symbolic side
    takes the size given or 224 with a note.
    """
    from engine.artifacts.models import load_artifacts

    spec, note = model_spec(args)
    if note:
        _say(f"note: {note}")
    art = load_artifacts(spec)
    one = art.graph_batch if args.onnx else None
    if one and batches != [one]:
        where = "on its input" if art.fixed_batch else f"inside its graph ({art.baked_batch.node})"
        _say(f"note: {Path(args.onnx).name} runs batch {one} only (fixed {where}):"
             f" the plan takes batch {one}")  # fmt: skip
    return spec.label, art, one


def _onnx(
    art: Any, args: argparse.Namespace, precision: str, batches: list[int]
) -> tuple[Path, str]:
    """(the ONNX file to build ``precision`` from, what to call it). int8 of a model (or
    of a file without Q/DQ nodes) is quantised as a sweep quantises it (:func:`_quantised`);
    a Q/DQ file is built as it is."""
    from engine.backends.tensorrt.standalone import has_qdq

    if precision == "int8" and not (args.onnx and has_qdq(Path(args.onnx))):
        return _quantised(art, args, batches), _int8_name(art, args)
    if not args.onnx:
        path = Path(art.onnx_path(precision, progress=_say))
        return path, f"{art.spec.label}, its {precision} ONNX export"
    name = Path(args.onnx).name
    if _widened(art, precision):
        for note in art.notes:  # what runs: the FP32 copy of an FP16 file
            _say(f"note: {note}")
        return Path(art.onnx_path("fp32", progress=_say)), f"{name}, its FP32 copy"
    return Path(args.onnx), name  # the file as given


def _quantised(art, args: argparse.Namespace, batches: list[int]) -> Path:
    """The int8 model a sweep's TensorRT runner builds from: the same quantiser, symmetric
    activations and calibration, so the same file (and the same plan key)."""
    from engine.backends.base import PrepareContext
    from engine.backends.tensorrt.recipe import int8_onnx

    ctx = PrepareContext(
        batches=tuple(batches), calibration_dir=args.calibration_dir, progress=_say
    )
    return int8_onnx(art, ctx)


def _int8_name(art: Any, args: argparse.Namespace) -> str:
    from engine.backends.tensorrt.recipe import build_recipe, source_name

    return source_name(build_recipe(0, "int8", None, "rtx"), art, Path(), args.calibration_dir)


def _widened(art, precision: str) -> bool:
    """fp32 of a file exported in FP16: its FP32 copy (engine/artifacts/widen.py), the file
    a sweep's fp32 row builds; the file itself was refused or, with FP32 input and output,
    built as an FP16 plan labelled fp32."""
    return precision == "fp32" and art.onnx_info is not None and art.onnx_info.weights == "fp16"


def _check_device(device: str) -> None:
    """A plan is built on the first GPU (or, with TensorRT-RTX, on none): ``--device`` is
    there for build's and bench's commands, and says so where it asks for anything else."""
    from engine.core.devices import parse_device

    kind, index = parse_device(device)
    if kind == "cpu":
        raise BadInput(
            "trt-build builds TensorRT plans for NVIDIA GPUs, not for device 'cpu'",
            "TensorRT runs only on NVIDIA GPUs; TensorRT-RTX builds their plans on a machine"
            " without one",
            "leave --device out (or give --device cuda)",
        )
    if index:
        raise BadInput(
            f"trt-build builds on the first GPU, not on {device}",
            "the plan is built and keyed for the GPU it sees first",
            f"run it with CUDA_VISIBLE_DEVICES={index} and --device cuda",
        )


def _checked_precisions(text: str, several: bool) -> list[str]:
    """The precisions asked, each one TensorRT builds; one a run unless ``several`` (build's
    hand-over: one plan each). Refused before anything is exported or built."""
    from engine.backends.tensorrt.recipe import PRECISIONS

    asked = list(dict.fromkeys(parse_list(text, str, "precision")))
    bad = [p for p in asked if p not in PRECISIONS]
    if bad:
        others = [p for p in asked if p not in bad]
        raise BadInput(
            f"TensorRT builds no {' or '.join(bad)} plan",
            f"it builds {', '.join(PRECISIONS)}",
            f"leave {', '.join(bad)} out (--precision {','.join(others)})" if others
            else "use --precision fp16 (or fp32, bf16, int8)",
        )  # fmt: skip
    if len(asked) > 1 and not several:
        build = engine_command(f"build --backend {_backend_name()} --precision {text}")
        raise BadInput(
            f"trt-build builds one precision a run, not {','.join(asked)}",
            "each precision is a plan of its own",
            f"run it once per precision, or {build} (one plan each)",
        )
    return asked


def _backend_name() -> str:
    """The backend whose build command this is (asked, not named: engine/backends owns names)."""
    from engine.backends import backend_names, get_backend

    return next(n for n in backend_names() if get_backend(n).BUILD_COMMAND == "trt-build")


def _plans(
    args: argparse.Namespace, several: bool
) -> tuple[str, list[StandaloneBuild], dict[str, Any]]:
    """(the model's label, a plan per precision asked, the options given as a spec holds
    them): every check first, then the builds."""
    from engine.artifacts.models import check_batches
    from engine.backends.tensorrt.standalone import build_standalone

    if args.cache_dir:
        from engine.core.paths import set_cache_dir

        set_cache_dir(args.cache_dir)
    precisions = _checked_precisions(args.precision, several)
    opts, typed = _options(args)
    if args.out:  # never the input model, the store or a link; before the build, not after
        from engine.core.paths import check_output

        if len(precisions) > 1:
            raise BadInput(
                "--out writes one plan, and several precisions were asked",
                fix="give one --precision with --out, or leave --out out (the cache keeps each)",
            )
        check_output(
            args.out,
            "--out",
            {
                "the --onnx model": args.onnx,
                "the --weights file": weights_file(args.weights),
                "the --calibration-dir folder": args.calibration_dir,
            },
        )
    _check_device(args.device)
    batches = check_batches(parse_list(args.batch, int, "batch size"))
    from engine.backends.tensorrt.cache import options_profile
    from engine.backends.tensorrt.flavour import tensorrt_availability
    from engine.backends.tensorrt.targets import check_plan_targets

    if not args.onnx:  # the profile options checked as bench checks them, before the export
        options_profile(opts, batches)

    # Before an export that takes seconds: is the flavour asked for here at all, and can
    # it build each precision for the targets named?
    flavour = typed.trt_flavour
    tensorrt_availability(flavour)[1].raise_if_missing(f"TensorRT ({flavour})")
    check_plan_targets(flavour, typed.rtx_cc, precisions)
    label, art, fixed = _source(args, batches)
    # A file's own batch known: a fixed one pins the profile, a dynamic one takes the
    # options, checked before it is quantised or copied (a model's were checked above)
    options_profile(opts, batches, fixed)
    built = []
    for precision in precisions:
        path, shown = _onnx(art, args, precision, batches)
        built.append(
            build_standalone(
                path,
                precision,
                batches,
                art.image_hw,
                flavour_choice=flavour,
                targets=typed.rtx_cc or "",
                out=args.out or "",
                fixed_batch=fixed,
                progress=_say,
                shown=shown,
                options=opts,
            )
        )
    return label, built, opts


def _document(result: StandaloneBuild) -> dict:
    doc = result.to_dict()
    doc["layers"] = len(result.layers)
    return doc


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    _, (result,), _ = _plans(args, several=False)
    if args.json:
        print(json.dumps(_document(result), indent=1))
    else:
        print("\n".join(result.lines()))
    return 0


def from_build(argv: list[str]) -> int:
    """``build --backend`` of this command's backend: one plan per precision of the comma
    list, reported as build reports engines (``--json``: build's document, its engines
    these plans' facts with build's ``configuration``, ``built``, ``key`` and ``build_s``)."""
    from engine.backends import describe
    from engine.core.config import RunnerSpec

    args = parser().parse_args(argv)
    label, built, opts = _plans(args, several=True)
    name = _backend_name()
    options = tuple(sorted(opts.items()))
    engines = [
        {  # named as bench names the configuration this plan serves
            "configuration": describe(RunnerSpec(name, args.device, r.precision, options)),
            "built": r.source != "cache",
            **_document(r),
        }
        for r in built
    ]
    if args.json:
        print(json.dumps({"model": label, "engines": engines}, indent=1))
        return 0
    print("\n\n".join("\n".join(r.lines()) for r in built))
    print(f"{len(built)} engine(s) for {label}; list them with {engine_command('cache list')}")
    return 0
