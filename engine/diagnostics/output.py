"""The report as text (the CLI, the dashboard's copyable report) and as Markdown (a file).

Functions here read a report's attributes only, so they import nothing from the package.
"""

from __future__ import annotations

import json
import os
from typing import Any


def render_text(report: Any) -> str:
    """Verdict, findings, providers, remedies and environment as plain text."""
    lines = ["ONNX Runtime provider diagnostics", "=" * 33, "", report.verdict]
    if report.note:
        lines += ["", f"Note: {report.note}"]
    lines += ["", "Findings"]
    for f in report.findings:
        tail = f"  (consequence of {f.caused_by})" if f.caused_by else ""
        lines.append(f"  [{f.severity.upper()}] {f.id}: {f.title}{tail}")
        lines += _indent("why:      ", f.root_cause)
        lines += _indent("evidence: ", f.evidence)
        lines += _indent("fix:      ", report.fix_or_pointer(f))
    lines += ["", "Providers"]
    for label, key in (("requested", "requested"), ("available", "available"), ("used", "used")):
        lines.append(f"  {label + ':':11}{', '.join(report.providers.get(key, [])) or '-'}")
    remedies = report.checks.get("remedies", {})
    if remedies:
        lines += ["", "In-process remedies (re-probed in fresh processes)"]
        for r in remedies.values():
            detail = f" ({r['detail']})" if r.get("detail") else ""
            lines.append(f"  {r['label']}: {r['outcome']}{detail}")
    lines += ["", "Environment"] + [f"  {line}" for line in environment_lines(report.checks)]
    return "\n".join(lines) + "\n"


def render_markdown(report: Any) -> str:
    """The report for a Markdown file or an issue: a table of findings, then the details."""
    out = ["## ONNX Runtime provider diagnostics", "", f"**{report.verdict}**", ""]
    if report.note:
        out += [f"Note: {_md_cell(report.note)}", ""]
    out += ["| | id | finding | fix |", "|---|---|---|---|"]
    for f in report.findings:
        fix = report.fix_or_pointer(f)
        if fix == f.fix:
            fix = "<br>".join(f"`{line}`" for line in fix.splitlines() if line.strip())
        out.append(f"| {f.severity} | `{f.id}` | {_md_cell(f.title)} | {fix} |")
    out.append("")
    for f in report.findings:
        out += [f"### `{f.id}` ({f.severity})", "", _md_cell(f.root_cause), ""]
        if f.evidence:
            out += ["```", f.evidence, "```", ""]
    prov = report.providers
    out += ["### Providers", ""]
    out += [f"- {key}: `{prov.get(key)}`" for key in ("requested", "available", "used")] + [""]
    remedies = report.checks.get("remedies", {})
    if remedies:
        out += ["### In-process remedies", ""]
        for r in remedies.values():
            detail = f" ({r['detail']})" if r.get("detail") else ""
            out.append(f"- {r['label']}: **{r['outcome']}**{detail}")
        out.append("")
    out += ["### Environment", ""] + [f"- {line}" for line in environment_lines(report.checks)]
    raw = json.dumps(report.checks, indent=2, default=str)
    out += ["", "<details><summary>Raw checks (JSON)</summary>", "", "```json", raw, "```"]
    return "\n".join(out + ["", "</details>", ""])


def _indent(label: str, text: str) -> list[str]:
    pad = " " * (6 + len(label))
    rows = (text or "-").splitlines() or ["-"]
    return [f"      {label}{rows[0]}"] + [f"{pad}{row}" for row in rows[1:]]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def environment_lines(checks: dict) -> list[str]:
    """One line per fact of the environment, for the text and Markdown reports."""
    lines = []
    py = checks.get("python", {})
    lines.append(f"python {py.get('version')} ({py.get('executable')}) on {py.get('platform')}")
    pk = checks.get("packages", {})
    for d in pk.get("onnxruntime", []):
        lines.append(f"{d['name']} {d['version']} in {d['location']}")
    if not pk.get("onnxruntime"):
        lines.append("onnxruntime: not installed")
    build = checks.get("ort_build", {})
    if build.get("module_found"):
        cuda = build.get("cuda_version") or "none (CPU build)"
        lines.append(
            f"imported onnxruntime: {build.get('package_name')} {build.get('version')}"
            f", built for CUDA {cuda}, from {build.get('module_dir')}"
        )
    torch = pk.get("torch") or {}
    if torch.get("version"):
        cudnn = torch.get("cudnn_version") or "unknown"
        lines.append(f"torch {torch['version']} (CUDA {torch.get('cuda')}, cuDNN {cudnn})")
    else:
        lines.append("torch: not installed")
    nv = pk.get("nvidia", [])
    if nv:
        lines.append("NVIDIA packages: " + ", ".join(f"{d['name']} {d['version']}" for d in nv))
    drv = checks.get("system", {}).get("driver", {})
    if drv.get("libcuda", {}).get("loaded"):
        lines.append(
            f"NVIDIA driver {drv.get('driver_version') or '?'}"
            f" (supports CUDA {drv.get('cuda_driver_version') or '?'})"
        )
    else:
        lines.append(f"NVIDIA driver: not loadable ({drv.get('libcuda', {}).get('error')})")
    gpus = drv.get("gpus") or []
    for g in gpus:
        lines.append(f"GPU {g.get('index')}: {g.get('name')} (compute capability {g.get('cc')})")
    if not gpus:
        lines.append("GPU: none found")
    libs = checks.get("system", {}).get("libraries", {})
    if libs:
        lines.append(f"libraries the CUDA EP needs (CUDA {libs.get('cuda_major')}):")
        for name, lib in libs.get("libs", {}).items():
            lines.append(f"  {name:9} {lib['soname']:20} {lib_summary(lib)}")
    trt = checks.get("tensorrt") or {}
    if trt:
        state = "available" if trt.get("ok") else f"not usable: {trt.get('reason')}"
        lines.append(f"TensorRT: {state}")
    rtx = checks.get("tensorrt_rtx") or {}
    if rtx.get("installed"):
        lines.append(f"TensorRT-RTX {rtx.get('version')} ({rtx.get('module')})")
    return lines


def lib_summary(lib: dict) -> str:
    """Where one library was found, in a few words."""
    if lib.get("loader_path"):
        return f"on the loader path: {lib['loader_path']}"
    if lib.get("pip_path"):
        return f"only in {os.path.dirname(lib['pip_path'])} (not on the loader path)"
    others = lib.get("other_versions") or []
    if others:
        return "missing; other versions: " + ", ".join(others)
    return "missing"
