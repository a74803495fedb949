"""The analysis: an ordered list of small rules that turn the checks into findings and a verdict.

Rules run in order, from the outermost layer (is there one onnxruntime at all) inwards (the
driver, the CUDA libraries, the live session). A rule adds findings and returns a `Verdict` when
it has said the last word, or None to let the next rule look deeper. TensorRT-RTX's GPU check
runs after the list, whatever the verdict, because it concerns a separate backend.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from engine.core.commands import pip_command
from engine.diagnostics.context import Context, Verdict
from engine.diagnostics.probe import Probes, probe_log
from engine.diagnostics.report import CUDA_EP, SEVERITIES, Finding, short_name
from engine.diagnostics.rules_cuda import RULES as CUDA_RULES
from engine.diagnostics.rules_cuda import session_evidence
from engine.diagnostics.rules_trt import rtx_unsupported_gpu, tensorrt_findings

Rule = Callable[[Context], Verdict | None]


def package_conflict(ctx: Context) -> None:
    by_location: dict[str, list[dict]] = {}
    for d in ctx.pk["onnxruntime"]:
        by_location.setdefault(d["location"], []).append(d)
    for loc, ds in by_location.items():
        if len(ds) > 1:
            names = " ".join(d["name"] for d in ds)
            listed = " and ".join(f"{d['name']} {d['version']}" for d in ds)
            ctx.conflict = ctx.root = ctx.add(
                "ort-package-conflict",
                "error",
                f"{listed} are installed together",
                f"{listed} are installed into the same folder, where the files of the one "
                "installed last overwrote the other's",
                f"both in {loc}; they share the onnxruntime/ package folder\n"
                f"the import reports package_name={ctx.build.get('package_name')!r}, "
                f"built for CUDA {ctx.build.get('cuda_version')}, "
                f"get_available_providers() = {ctx.available or 'not probed'}",
                f"{pip_command()} uninstall -y {names} && {pip_command()} install {ctx.install_one}",
            )
            return


def packages_shadowed(ctx: Context) -> None:
    ort_dists = ctx.pk["onnxruntime"]
    if ctx.conflict or len({d["location"] for d in ort_dists}) < 2:
        return
    imported = ctx.build.get("module_dir", "")
    winner = next(
        (d for d in ort_dists if os.path.join(d["location"], "onnxruntime") == imported), None
    )
    others = [d for d in ort_dists if d is not winner]
    ctx.add(
        "ort-package-shadowed",
        "warning",
        "several onnxruntime packages are installed in different folders",
        "only the first on sys.path is imported; the others are shadowed and take over "
        "if the search path changes (another PYTHONPATH, another venv)",
        "\n".join(f"{d['name']} {d['version']} in {d['location']}" for d in ort_dists)
        + f"\nimported: {imported}",
        "# remove the shadowed copy from the environment that holds it, e.g.\n"
        + "\n".join(
            f"{pip_command()} uninstall -y {d['name']}  # the one in {d['location']}"
            for d in others
        ),
    )


def ort_missing(ctx: Context) -> Verdict | None:
    if ctx.build.get("module_found"):
        return None
    if ctx.conflict:
        return ctx.verdict("none", "the onnxruntime packages are broken")
    ctx.add(
        "ort-missing",
        "error",
        "onnxruntime is not installed",
        "no onnxruntime package can be imported by this Python",
        f"importlib.util.find_spec('onnxruntime') is None for {ctx.checks['python']['executable']}",
        f"{pip_command()} install {ctx.install_one}"
        + ("  # runs on the CPU too" if ctx.install_one.endswith("-gpu") else ""),
    )
    if not ctx.driver_ok:
        ctx.add(
            "cuda-driver-missing",
            "info",
            "no usable NVIDIA driver",
            ctx.driver_why,
            ctx.driver_ev,
            "nvidia-smi  # must list a GPU; without one, sessions run on the CPU",
        )
    return ctx.verdict("none", "onnxruntime is not installed")


def import_failed(ctx: Context) -> Verdict | None:
    plain = ctx.plain
    imp = (plain or {}).get("stages", {}).get("import onnxruntime")
    crashed_before_import = plain is not None and not plain.get("completed") and not imp
    if not ctx.probed or plain is None or not (crashed_before_import or imp and not imp["ok"]):
        return None
    error = (imp or {}).get("error") or plain.get("error") or "unknown error"
    ctx.add(
        "ort-import-failed",
        "error",
        "onnxruntime is installed but cannot be imported",
        "importing onnxruntime fails, so no session can be created at all",
        f"{error}\n{((imp or {}).get('log') or plain.get('stderr') or '').strip()[-1500:]}",
        f"{pip_command()} install --force-reinstall {ctx.build.get('package_name') or ctx.install_one}",
        caused_by=ctx.conflict.id if ctx.conflict else "",
    )
    because = "the onnxruntime packages are broken" if ctx.conflict else ""
    return ctx.verdict("none", because or "onnxruntime cannot be imported")


def cpu_only_build(ctx: Context) -> Verdict | None:
    gpu_build = CUDA_EP in ctx.available if ctx.available else bool(ctx.build.get("cuda_version"))
    if not ctx.cuda_wanted or gpu_build:
        return None
    build, no_gpu = ctx.build, "" if ctx.driver_ok else "  # needs an NVIDIA GPU"
    name = build.get("package_name") or "onnxruntime"
    fix = f"{pip_command()} uninstall -y {name} && {pip_command()} install onnxruntime-gpu"
    cpu_pkg = ctx.add(
        "ort-cpu-only-package",
        "error" if ctx.driver_ok else "info",
        f"the imported onnxruntime ({build.get('package_name')} {build.get('version')}) "
        "is the CPU-only build",
        "the installed onnxruntime package is the CPU-only build: it has no CUDA execution provider"
        + ("" if ctx.driver_ok else " (and this machine has no NVIDIA driver either)"),
        f"package_name={build.get('package_name')!r}, built for CUDA: {build.get('cuda_version')}\n"
        f"get_available_providers() = {ctx.available}",
        ctx.conflict.fix if ctx.conflict else fix + no_gpu,
        caused_by=ctx.conflict.id if ctx.conflict else "",
    )
    if not ctx.driver_ok:
        ctx.add(
            "cuda-driver-missing",
            "info",
            "no usable NVIDIA driver",
            ctx.driver_why,
            ctx.driver_ev,
            "nvidia-smi  # must list a GPU; on a machine without one, CPU is the only choice",
        )
    root = ctx.conflict or cpu_pkg
    if ctx.used:
        log = probe_log(ctx.plain, f"session {ctx.first}")
        warning = [ln.strip() for ln in log.splitlines() if "not in available provider names" in ln]
        chain = ctx.plain["sessions"][ctx.first]["chain"]
        ctx.add(
            "cpu-fallback",
            "error" if ctx.driver_ok else "info",
            f"{short_name(ctx.first)} was requested, the session runs on {ctx.used[0]}",
            "ONNX Runtime ignores execution providers it does not have and runs on the CPU",
            "\n".join([f"requested {chain} -> session uses {ctx.used}"] + warning),
            root.fix,
            caused_by=root.id,
        )
    tensorrt_findings(ctx, "")
    return ctx.verdict("CPU", root.root_cause)


def cpu_requested(ctx: Context) -> Verdict | None:
    if ctx.cuda_wanted:
        return None
    if not ctx.probed:  # every onnxruntime build has the CPU EP; without a probe, say no more
        ctx.add(
            "ok-cpu",
            "ok",
            f"sessions will run on {ctx.first}",
            "only the CPU was requested, and every onnxruntime build has the CPU provider",
            "(not probed)",
            "",
        )
        return ctx.verdict("CPU")
    ok = bool(ctx.used) and ctx.used[0] == ctx.first
    ctx.add(
        "ok-cpu" if ok else "probe-failed",
        "ok" if ok else "error",
        f"sessions run on {ctx.used[0] if ctx.used else 'nothing'}",
        "only the CPU was requested" if ok else "the CPU session could not be created",
        session_evidence(ctx.plain, ctx.first),
        "" if ok else f"{pip_command()} install --force-reinstall {ctx.build.get('package_name')}",
    )
    return ctx.verdict("CPU" if ok else "none")


RULES: tuple[Rule, ...] = (
    package_conflict,
    packages_shadowed,
    ort_missing,
    import_failed,
    cpu_only_build,
    cpu_requested,
    *CUDA_RULES,
)


def analyse(requested: list[str], checks: dict, probes: Probes, probed: bool) -> tuple:
    """(findings in report order, verdict text, verdict provider, providers dict)."""
    ctx = Context(requested, checks, probes, probed)
    verdict = None
    for rule in RULES:
        verdict = rule(ctx)
        if verdict is not None:
            break
    if verdict is None:  # the last CUDA rule always answers; this keeps the type honest
        verdict = ctx.verdict("CPU", "the CUDA execution provider did not load")
    rtx_unsupported_gpu(ctx)
    return order_findings(ctx.findings), verdict.text, verdict.provider, ctx.providers()


def order_findings(findings: list[Finding]) -> list[Finding]:
    """Root causes first (most severe first), then their consequences and the rest."""
    order = {s: i for i, s in enumerate(SEVERITIES)}
    roots = [f for f in findings if not f.caused_by and f.severity != "ok"]
    rest = sorted((f for f in findings if f not in roots), key=lambda f: order.get(f.severity, 9))
    return sorted(roots, key=lambda f: order.get(f.severity, 9)) + rest
