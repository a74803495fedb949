"""The argument parsing every ``python -m engine`` command shares.

argparse prints usage and calls ``sys.exit(2)`` on a bad flag; commands here raise
:class:`BadInput` instead, so the CLI's one error policy (one line, exit code, no
traceback) holds for a mistyped flag too, and a page can call a command's parser safely.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable

from engine.core.errors import BadInput
from engine.core.text import safe_text


class Parser(argparse.ArgumentParser):
    """argparse that raises BadInput instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadInput(f"{self.prog}: {message}", fix=f"see `{self.prog} --help`")


def parse_list(text: str, kind: Callable = str, what: str = "value") -> list:
    """A comma list of ``kind`` values; BadInput naming the first that is not one."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise BadInput(f"no {what} given")
    out = []
    for t in items:
        try:
            out.append(kind(t))
        except ValueError as exc:
            raise BadInput(
                f"{what} '{t}' is not valid",
                "it must be a whole number" if kind is int else "",
                fix=f"give a comma list, e.g. {what}s 1,8,32" if kind is int else "",
            ) from exc
    return out


def utf8_arguments(argv: Iterable[str]) -> None:
    """Refuse an argument holding bytes that are not UTF-8, in one line.

    Python hands such bytes over as lone surrogates (``'\\udcff'``), which cannot be
    written as text: the results database, the worker's job file, bench documents and
    the stored reproduce command are all UTF-8, so each of them ended in a
    UnicodeEncodeError somewhere later. A path is the usual source; it can be renamed.
    """
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise BadInput(
                f"the argument {safe_text(arg)[:200]} holds bytes that are not UTF-8",
                "paths and names are stored as UTF-8 text (results, documents, commands)",
                "rename the file or folder to a UTF-8 name",
            ) from None


def add_image_size(group: argparse._ActionsContainer, onnx: bool = True) -> None:
    """``--image-size`` as every command takes it: ``224`` or ``HEIGHTxWIDTH``, no default,
    so that an ONNX file's own size is used unless the user gives one (:func:`model_spec`)."""
    own = "; an ONNX file's own size" if onnx else ""
    group.add_argument("--image-size", help=f"pixels: 224, or HEIGHTxWIDTH (default 224{own})")


def model_spec(args: argparse.Namespace):
    """The model of ``--model``/``--onnx``, ``--weights``, ``--image-size`` and ``--seed``
    (each optional on the command's parser), and a note when the size was chosen for the user.

    ``--model`` and ``--weights`` say nothing about an ONNX file, so giving them beside
    ``--onnx`` is refused instead of ignored; an ONNX file's declared size is its size.
    """
    from pathlib import Path

    from engine.core.config import DEFAULT_MODEL, ModelSpec, parse_size

    asked = parse_size(args.image_size) if args.image_size is not None else None
    onnx, weights = getattr(args, "onnx", None), getattr(args, "weights", None)
    seed = getattr(args, "seed", 0)
    if onnx:
        given = [f for f, v in (("--model", args.model), ("--weights", weights)) if v]
        if given:
            raise BadInput(
                f"{' and '.join(given)} cannot be used with --onnx",
                "an ONNX file is the model and holds its weights",
                f"leave {' and '.join(given)} out, or leave --onnx out",
            )
        if not Path(onnx).is_file():
            raise BadInput(f"ONNX file {Path(onnx).name} does not exist", fix="check the path")
        from engine.artifacts.onnx_source import onnx_spec

        return onnx_spec(onnx, asked, seed)
    h, w = asked or (224, 224)
    name = args.model or DEFAULT_MODEL
    return ModelSpec(name, weights or "random", h, seed=seed, image_width=w), ""


def weights_file(weights: str | None) -> str | None:
    """The input file ``--weights`` names (None for random or pretrained weights)."""
    return weights if weights and weights not in ("random", "pretrained") else None


def check_some_device_runs(devices: list[str]) -> None:
    """Refuse, in one line and before anything is planned, a run whose every device is
    unavailable (``--device cuda`` without CUDA): otherwise each point became a skipped
    row, and each backend printed its ladder, before the one error that mattered."""
    from engine.core.devices import cuda_availability
    from engine.core.errors import Unavailable

    found = [(d, cuda_availability(d)) for d in devices]
    if found and not any(a.ok for _, a in found):
        device, why = found[0]
        raise Unavailable(
            f"nothing requested could run: {device} is not available on this machine",
            why.reason,
            why.fix,
        )
