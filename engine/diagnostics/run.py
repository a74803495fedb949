"""`run_diagnostics`: gather the checks, run the probes, apply the rules, shorten the paths.

Which provider is checked by default depends on the machine: CUDA where the NVIDIA driver sees
a GPU, else the CPU, with a one-line note on what CUDA would need. onnxruntime-gpu runs on the
CPU too, so on a machine without a GPU the question a user has is "does it run", not "why is
there no CUDA".
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import os
import platform
import sys
import tempfile
import time
from typing import Any

from engine.core.commands import engine_command
from engine.diagnostics.driver import check_driver, driver_state
from engine.diagnostics.libraries import check_libraries
from engine.diagnostics.packages import check_ort_build, check_packages, cuda_major_in_use
from engine.diagnostics.paths import shorten_paths
from engine.diagnostics.probe import (
    Probes,
    load_errors,
    probe_log,
    run_probe,
    tiny_model_bytes,
    used_providers,
)
from engine.diagnostics.report import (
    CPU_EP,
    CUDA_EP,
    DiagnosticsReport,
    Finding,
    normalise_provider,
)
from engine.diagnostics.rules import analyse
from engine.diagnostics.trt_checks import tensorrt_rtx_status, tensorrt_status


def no_gpu_note() -> str:
    return (
        "no NVIDIA GPU is usable here, so the CPU provider was checked; CUDA would need an"
        " NVIDIA driver that lists a GPU in nvidia-smi (then:"
        f" {engine_command('diagnose --provider CUDA')})"
    )


def run_diagnostics(
    requested: tuple[str, ...] | None = None,
    probe: bool = True,
    timeout_s: float = 60.0,
) -> DiagnosticsReport:
    """Check this environment and say where ONNX Runtime will run for `requested` providers.

    `requested=None` (or empty) checks CUDA where a GPU is usable and the CPU elsewhere.
    """
    deadline = _Deadline(timeout_s)
    checks = static_checks()
    note = ""
    requested_list = [normalise_provider(p) for p in requested or ()]
    if not requested_list:
        gpu_ok = driver_state(checks["system"]["driver"])[0]
        requested_list = [CUDA_EP if gpu_ok else CPU_EP]
        note = "" if gpu_ok else no_gpu_note()
    probes = Probes()
    if probe and checks["ort_build"].get("module_found"):
        probes = _run_probes(checks, requested_list, deadline)
    findings, verdict, verdict_provider, providers = analyse(
        requested_list, checks, probes, probed=probe
    )
    return DiagnosticsReport(
        verdict=shorten_paths(verdict),
        verdict_provider=verdict_provider,
        findings=[Finding(**shorten_paths(dataclasses.asdict(f))) for f in findings],
        providers=shorten_paths(providers),
        checks=shorten_paths(checks),
        note=note,
    )


def static_checks() -> dict[str, Any]:
    """Everything that can be read without importing onnxruntime: the layers of the report."""
    packages = check_packages()
    build = check_ort_build()
    cuda_major = cuda_major_in_use(build, packages)
    return {
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": {
            "version": platform.python_version(),
            "executable": sys.executable,
            "platform": f"{platform.system()} {platform.machine()}",
        },
        "packages": packages,
        "ort_build": build,
        "system": {"driver": check_driver(), "libraries": check_libraries(build, cuda_major)},
        "tensorrt": tensorrt_status(),
        "tensorrt_rtx": tensorrt_rtx_status(),
        "probe": {},
        "remedies": {},
    }


def _run_probes(checks: dict, requested: list[str], deadline: _Deadline) -> Probes:
    """The plain probe, then the remedies where the plain one did not get the provider."""
    probes = Probes()
    build, packages = checks["ort_build"], checks["packages"]
    with tempfile.TemporaryDirectory(prefix="ort-diagnostics-") as tmp:
        model, builder = tiny_model_bytes()
        model_path = os.path.join(tmp, "probe.onnx")
        with open(model_path, "wb") as fh:
            fh.write(model)
        checks["probe"]["model_builder"] = builder
        probes.plain = run_probe("none", requested, model_path, deadline.left())
        ort_info = probes.plain.get("ort") or {}
        if ort_info:
            build.update(
                import_ok=True,
                available_providers=ort_info.get("available_providers"),
                device=ort_info.get("device"),
                package_name=ort_info.get("package_name") or build.get("package_name"),
                cuda_version=ort_info.get("cuda_version") or build.get("cuda_version"),
            )
        elif probes.plain.get("stages", {}).get("import onnxruntime"):
            build["import_ok"] = False
        first = requested[0]
        gpu_build = CUDA_EP in (ort_info.get("available_providers") or [])
        plain_ok = (used_providers(probes.plain, first) or [None])[0] == first
        if first != CPU_EP and gpu_build and not plain_ok:
            jobs = {"preload": "preload_dlls"}
            if packages["torch"].get("version"):
                jobs["torch_first"] = "torch_first"
            with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
                futures = {
                    k: pool.submit(run_probe, v, requested, model_path, deadline.left())
                    for k, v in jobs.items()
                }
                for k, fut in futures.items():
                    setattr(probes, k, fut.result())
    _record_remedies(checks, probes, first, plain_ok, gpu_build)
    return probes


def _record_remedies(
    checks: dict, probes: Probes, first: str, plain_ok: bool, gpu_build: bool
) -> None:
    torch_info = (probes.torch_first or {}).get("torch") or {}
    if torch_info:
        checks["packages"]["torch"].update(
            cudnn_version=torch_info.get("cudnn_version"),
            cuda_available=torch_info.get("cuda_available"),
        )
    why_not = (
        "not needed: the plain session already works"
        if plain_ok
        else "not run (no CUDA build of onnxruntime)"
    )
    torch_why = why_not if (plain_ok or not gpu_build) else "not run (torch is not installed)"
    checks["remedies"] = {
        "preload_dlls": remedy_summary(
            "onnxruntime.preload_dlls() first", probes.preload, first, why_not
        ),
        "torch_first": remedy_summary("import torch first", probes.torch_first, first, torch_why),
    }
    checks["probe"].update(
        plain=probes.plain, preload_dlls=probes.preload, torch_first=probes.torch_first
    )


def remedy_summary(label: str, probe: dict | None, provider: str, why_not: str) -> dict:
    if probe is None:
        return {"label": label, "outcome": why_not, "used": None, "detail": ""}
    if probe.get("preload_unavailable"):
        return {
            "label": label,
            "outcome": "not available",
            "used": None,
            "detail": "this onnxruntime has no preload_dlls()",
        }
    if not probe.get("completed"):
        return {
            "label": label,
            "outcome": "probe failed",
            "used": None,
            "detail": probe.get("error"),
        }
    for name, st in probe.get("stages", {}).items():
        if not st["ok"] and not name.startswith("session"):
            return {
                "label": label,
                "outcome": "does not fix it",
                "used": None,
                "detail": f"{name}: {st['error']}",
            }
    used = used_providers(probe, provider) or []
    fixed = bool(used) and used[0] == provider
    errs = load_errors(probe_log(probe))
    detail = "; ".join(e["error"] for e in errs[:2]) if errs else f"session uses {used}"
    return {
        "label": label,
        "outcome": "fixes it" if fixed else "does not fix it",
        "used": used,
        "detail": "" if fixed else f"still fails: {detail}",
    }


class _Deadline:
    """Seconds left for all probes together (at least 5 for each probe)."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        return max(5.0, self._end - time.monotonic())
