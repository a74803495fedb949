"""What the rules read and write: the checks, the probes, and the findings so far.

Each rule in `rules.RULES` receives one `Context`. The facts it derives once (is the driver
usable, which providers were requested and used, which libraries are missing) live here, so a
rule is a few lines that read them, add findings, and either return a `Verdict` (analysis ends)
or None (the next rule runs).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from engine.diagnostics.driver import driver_state
from engine.diagnostics.probe import Probes, used_providers
from engine.diagnostics.report import CUDA_EP, TRT_EP, Finding


@dataclasses.dataclass
class Verdict:
    text: str
    provider: str  # "CUDA" | "TensorRT" | "CPU" | "none"


@dataclasses.dataclass
class Context:
    requested: list[str]
    checks: dict
    probes: Probes
    probed: bool
    findings: list[Finding] = dataclasses.field(default_factory=list)
    conflict: Finding | None = None  # two onnxruntime packages in one folder
    root: Finding | None = None  # the deepest cause found so far
    caused: str = ""  # id that library findings are consequences of (driver, driver's CUDA)
    lib_severity: str = "error"
    fixed_by: str | None = None  # "preload_dlls" | "torch_first" where a remedy gets CUDA
    cuda_used: bool = False
    plain_errors: list[dict] = dataclasses.field(default_factory=list)
    ep_log: str = ""

    def __post_init__(self) -> None:
        self.pk = self.checks["packages"]
        self.build = self.checks["ort_build"]
        self.driver = self.checks["system"]["driver"]
        self.driver_ok, self.driver_why, self.driver_ev = driver_state(self.driver)
        self.libs = self.checks["system"].get("libraries", {}).get("libs", {})
        self.cuda_major = self.checks["system"].get("libraries", {}).get("cuda_major")
        self.trt = self.checks["tensorrt"]
        self.cuda_wanted = any(p in (CUDA_EP, TRT_EP) for p in self.requested)
        self.first = self.requested[0]
        self.plain = self.probes.plain
        ort_info = (self.plain or {}).get("ort", {}) or {}
        self.available = (
            ort_info.get("available_providers") or self.build.get("available_providers") or []
        )
        self.used = used_providers(self.plain, self.first) or []

    @property
    def install_one(self) -> str:
        """The onnxruntime package to install: the GPU build, which runs on the CPU too, where
        one exists for this platform (requirements.txt installs it as well)."""
        return "onnxruntime-gpu" if sys.platform.startswith(("linux", "win")) else "onnxruntime"

    @property
    def lib_missing(self) -> dict:
        return {k: v for k, v in self.libs.items() if not v["found"]}

    def add(self, *args: Any, **kw: Any) -> Finding:
        f = Finding(*args, **kw)
        self.findings.append(f)
        return f

    def verdict(self, provider: str, because: str = "", suffix: str = "") -> Verdict:
        text = f"ONNX Runtime will run on: {provider}"
        if provider == "none":
            text = "ONNX Runtime will run on: nothing"
        if because:
            text += f", because {because}"
        text += suffix
        if not self.probed and provider != "none":
            text += " (static checks only: the live probe was skipped)"
        return Verdict(text, provider)

    def providers(self) -> dict:
        """Requested, available and really used providers, with and without remedies."""
        return {
            "requested": list(self.requested),
            "available": self.available,
            "used": self.used,
            "used_by_request": {p: used_providers(self.plain, p) for p in self.requested},
            "used_with_remedy": {
                "preload_dlls": used_providers(self.probes.preload, self.first),
                "torch_first": used_providers(self.probes.torch_first, self.first),
            },
        }
