"""The TensorRT backend's options, declared once: bench's flags, the sidebar's controls,
``trt-build``'s flags and the labels are made of them (:mod:`engine.core.options`).

A module of its own so that :mod:`.standalone` (``trt-build``) reads the same declaration
as :mod:`.backend` without importing the backend.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.backends.tensorrt.cache import DEFAULT_OPT_LEVEL, DEFAULT_WORKSPACE_MB, MAX_OPT_LEVEL
from engine.core.options import option


def _check_rtx_cc(text: str) -> None:
    # Imported when a value is given: the check reads TensorRT-RTX's own target list.
    from engine.backends.tensorrt.targets import check_rtx_cc

    check_rtx_cc(text)


@dataclass(frozen=True)
class TensorRTOptions:
    """The builder's settings and the flavour (engine.core.options makes flags and controls of them)."""

    workspace_mb: int = option(
        DEFAULT_WORKSPACE_MB, "builder workspace in MiB", "workspace MiB", minimum=64,
        maximum=1 << 20,
    )  # fmt: skip
    opt_level: int = option(
        DEFAULT_OPT_LEVEL, "builder optimisation level", "opt level", minimum=0,
        maximum=MAX_OPT_LEVEL,
    )  # fmt: skip
    opt_batch: int | None = option(
        None, "the profile's opt batch (default: the largest)", "opt batch", minimum=1
    )
    max_batch: int | None = option(None, "the profile's max batch", "max batch", minimum=1)
    trt_flavour: str = option(
        "auto",
        "TensorRT flavour: auto (full TensorRT where installed, else TensorRT-RTX), full, or"
        " rtx (TensorRT for RTX: GeForce/RTX GPUs of compute capability 7.5-12.x)",
        "flavour",
        choices=("auto", "full", "rtx"),
    )
    rtx_cc: str | None = option(
        None, "TensorRT-RTX target compute capabilities, e.g. 8.6,8.9", "RTX targets",
        check=_check_rtx_cc,
    )  # fmt: skip
