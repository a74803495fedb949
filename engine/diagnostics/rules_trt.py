"""Rules for TensorRT: ONNX Runtime's TensorRT EP, and whether TensorRT-RTX runs on this GPU.

A missing TensorRT is a consequence of nothing else on the machine, so `tensorrt-missing` names
a cause only where TensorRT is installed and the EP still could not start (no driver).
"""

from __future__ import annotations

from engine.core.commands import pip_command
from engine.diagnostics.context import Context
from engine.diagnostics.probe import interesting_lines, load_errors, probe_log, used_providers
from engine.diagnostics.report import TRT_EP, Finding
from engine.diagnostics.trt_rtx import (
    FULL_TENSORRT_PACKAGE,
    support_row,
    supports,
    unsupported_reason,
)


def tensorrt_findings(ctx: Context, caused: str) -> None:
    trt, plain = ctx.trt, ctx.plain
    caused = caused if trt.get("ok") else ""  # TensorRT absent: not the driver's doing
    used = used_providers(plain, TRT_EP)
    if TRT_EP in ctx.requested and TRT_EP not in (used or []):
        log = probe_log(plain, f"session {TRT_EP}") if plain else ""
        lines = [e["line"] for e in load_errors(log)] or interesting_lines(log)[:4]
        ctx.add(
            "tensorrt-missing",
            "warning" if not caused else "info",
            "the TensorRT execution provider is not usable",
            trt["reason"] or "the TensorRT execution provider failed to load",
            "\n".join(lines + [f"ONNX Runtime fell back to {used}" if used else ""]).strip(),
            trt["install"]
            + "\n# pip puts libnvinfer in site-packages/tensorrt_libs: `import tensorrt` before"
            " creating the session (or add that folder to LD_LIBRARY_PATH)",
            caused_by=caused,
        )
    elif TRT_EP not in ctx.requested and not trt["ok"]:
        ctx.add(
            "tensorrt-missing",
            "info",
            "TensorRT is not available",
            trt["reason"],
            f"tensorrt module: {trt['module_dir'] or 'not found'}; libnvinfer: "
            f"{'found' if trt['libnvinfer_found'] else 'not found'}",
            trt["install"],
            caused_by=caused,
        )


def rtx_unsupported_finding(rtx: dict, gpus: list[dict], gpu_source: str = "") -> Finding | None:
    """`tensorrt-rtx-unsupported-gpu` where TensorRT-RTX is installed and a GPU is not in its
    compute-capability table; None otherwise (not installed, no GPU, or every GPU supported)."""
    if not rtx.get("installed") or not gpus:
        return None
    version = rtx.get("version")
    row = support_row(version)
    bad = [g for g in gpus if not supports(str(g.get("cc", "")), version)]
    if not bad:
        return None
    ccs = sorted({str(g["cc"]) for g in bad})
    reasons = [unsupported_reason(cc, version) for cc in ccs]
    source = f" (from {gpu_source})" if gpu_source else ""
    evidence = [
        f"GPU {g.get('index')}: {g.get('name')}, compute capability {g['cc']}{source}" for g in gpus
    ]
    evidence.append(
        f"TensorRT-RTX {version} ({rtx.get('module')}) runs on compute capability "
        f"{', '.join(row.compute_capabilities)} (support matrix: {row.source})"
    )
    return Finding(
        "tensorrt-rtx-unsupported-gpu",
        "warning" if len(bad) == len(gpus) else "info",
        f"TensorRT-RTX does not run on {', '.join(sorted({g['name'] for g in bad}))}",
        "; ".join(r for r in reasons if r),
        "\n".join(evidence),
        f"# {reasons[0]}:\n{pip_command()} install {FULL_TENSORRT_PACKAGE}"
        "  # then choose the full TensorRT flavour of the tensorrt backend",
    )


def rtx_unsupported_gpu(ctx: Context) -> None:
    rtx = ctx.checks.get("tensorrt_rtx") or {}
    f = rtx_unsupported_finding(
        rtx, ctx.driver.get("gpus") or [], ctx.driver.get("gpu_source") or ""
    )
    if f is not None:
        ctx.findings.append(f)
