"""TensorRT-RTX's build targets (``rtx_cc``), checked in one place before anything is built.

Two checks, each made once and called by every front end: :func:`check_rtx_cc`, the
option's own check of a value (bench's, ``trt-build``'s and ``build``'s flags, the
sidebar's field: every target one TensorRT-RTX builds for), and :func:`check_targets`,
which adds the precision (bf16 for a target older than Ampere: the builder refused it
only after the export, "Cannot compile for target(s) sm75 ... HW-specific datatypes: b16").
"""

from __future__ import annotations

from typing import Any

from engine.backends.tensorrt.flavour import parse_targets, try_import
from engine.backends.tensorrt.recipe import BF16_MIN_CC, BF16_MIN_TEXT
from engine.core.errors import BadInput

BF16_WHY = f"BF16 needs compute capability {BF16_MIN_TEXT} (Ampere) or newer"


def check_rtx_cc(text: Any) -> None:
    """The ``rtx_cc`` option's check: each named target one TensorRT-RTX builds for (the
    library's own list where it imports, else the support matrix's), whichever flavour
    runs: a value that names no such target is wrong wherever it is given."""
    module, _ = try_import("rtx")
    parse_targets(text, module)


def before_bf16(precision: str, targets: tuple[str, ...]) -> list[str]:
    """The targets a bf16 plan cannot be built for (none for another precision)."""
    if precision != "bf16":
        return []
    return [t for t in targets if tuple(int(x) for x in t.split(".")) < BF16_MIN_CC]


def check_targets(text: Any, precision: str, module: Any = None) -> tuple[str, ...]:
    """The targets named in ``text`` (``()`` for none), refused before a build where
    TensorRT-RTX cannot build ``precision`` for one of them."""
    named = parse_targets(text, module)
    older = before_bf16(precision, named)
    if older:
        left = [t for t in named if t not in older]
        raise BadInput(
            f"bf16 cannot be built for compute capability {', '.join(older)}",
            BF16_WHY,
            f"leave {', '.join(older)} out (--rtx-cc {','.join(left)})" if left
            else "build fp16 for those GPUs, or name newer targets with --rtx-cc",
        )  # fmt: skip
    return named


def check_plan_targets(choice: str, text: Any, precisions: tuple[str, ...] | list[str]) -> None:
    """Before an export (``trt-build``, ``build``, the Engines page): the named targets of
    each precision, where the flavour ``choice`` picks is TensorRT-RTX (full TensorRT
    builds for the GPU it is on, and reads no targets)."""
    if not text:
        return
    from engine.backends.tensorrt.flavour import tensorrt_availability

    flavour, _ = tensorrt_availability(choice)
    if flavour is not None and flavour.name == "rtx":
        for precision in precisions:
            check_targets(text, precision, flavour.module)
