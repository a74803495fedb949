"""Which GPUs TensorRT for RTX runs on: its compute-capability table, by release.

Standard library only and free of other imports, so the TensorRT backend and the diagnostics
share it. TensorRT-RTX has no API that answers this before an engine is built or loaded (a plan
loaded on an unsupported GPU fails with "Error Code 6 ... compute capability"), so the answer
comes from NVIDIA's published support matrices, one row per release that changed the list.
"""

from __future__ import annotations

import dataclasses

MODULE = "tensorrt_rtx_bindings"  # the import name of the tensorrt-rtx-cu13-bindings wheel
FULL_TENSORRT_PACKAGE = "tensorrt-cu13"


@dataclasses.dataclass(frozen=True)
class SupportRow:
    since: str  # first TensorRT-RTX release this row applies to
    compute_capabilities: tuple[str, ...]
    source: str


SUPPORT = (
    SupportRow(
        "1.0",
        ("7.5", "8.6", "8.9", "12.0"),
        "https://docs.nvidia.com/deeplearning/tensorrt-rtx/latest/getting-started/support-matrix-1/1.0.html",
    ),
    SupportRow(  # 1.5 added 12.1 (GB10); 1.7's matrix lists the same set
        "1.5",
        ("7.5", "8.6", "8.9", "12.0", "12.1"),
        "https://docs.nvidia.com/deeplearning/tensorrt-rtx/latest/getting-started/support-matrix-1/1.5.html",
    ),
)


def _key(version: str) -> tuple[int, ...]:
    out = []
    for part in version.split("."):
        digits = "".join(c for c in part if c.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def support_row(version: str | None = None) -> SupportRow:
    """The table row for a TensorRT-RTX version (the newest row when the version is unknown)."""
    if not version:
        return SUPPORT[-1]
    rows = [r for r in SUPPORT if _key(r.since) <= _key(version)]
    return rows[-1] if rows else SUPPORT[0]


def supports(compute_capability: str, version: str | None = None) -> bool:
    """Whether TensorRT-RTX `version` runs on a GPU of this compute capability ("9.0")."""
    return compute_capability.strip() in support_row(version).compute_capabilities


def unsupported_reason(compute_capability: str, version: str | None = None) -> str | None:
    """The one-line answer for an unsupported GPU, or None where TensorRT-RTX runs."""
    if supports(compute_capability, version):
        return None
    return (
        f"TensorRT-RTX does not run on compute capability {compute_capability.strip()}; "
        "full TensorRT is needed"
    )
