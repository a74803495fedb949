"""What a diagnostics run concluded: the verdict, findings with evidence and fixes, the raw checks.

`Finding.caused_by` names the finding this one is a consequence of; it is set only where the
one really causes the other (a missing driver stops the CUDA EP from loading; it does not
uninstall TensorRT).
"""

from __future__ import annotations

import dataclasses
import json

from engine.diagnostics.output import render_markdown, render_text

CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"

SHORT_NAMES = {CPU_EP: "CPU", CUDA_EP: "CUDA", TRT_EP: "TensorRT"}
ALIASES = {"cpu": CPU_EP, "cuda": CUDA_EP, "tensorrt": TRT_EP, "trt": TRT_EP}

SEVERITIES = ("error", "warning", "info", "ok")


def short_name(provider: str) -> str:
    return SHORT_NAMES.get(provider, provider.replace("ExecutionProvider", ""))


def normalise_provider(provider: str) -> str:
    """`cuda` -> `CUDAExecutionProvider`; full names pass through."""
    return ALIASES.get(provider.strip().lower(), provider.strip())


@dataclasses.dataclass
class Finding:
    """One thing the diagnostics concluded, with the evidence that shows it and a fix."""

    id: str
    severity: str  # "error" | "warning" | "info" | "ok"
    title: str
    root_cause: str
    evidence: str
    fix: str
    caused_by: str = ""  # id of the finding this one is a consequence of, if any


@dataclasses.dataclass
class DiagnosticsReport:
    """The verdict, findings and everything the checks saw."""

    verdict: str
    verdict_provider: str  # "CUDA" | "TensorRT" | "CPU" | "none"
    findings: list[Finding]
    providers: dict
    checks: dict
    note: str = ""  # one line on what was not checked and why (e.g. CUDA on a machine without GPU)

    @property
    def finding_ids(self) -> list[str]:
        return [f.id for f in self.findings]

    def finding(self, finding_id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == finding_id), None)

    def fix_or_pointer(self, f: Finding) -> str:
        """The fix, or a pointer to the root finding's identical fix."""
        root = self.finding(f.caused_by) if f.caused_by else None
        if root is not None and root.fix == f.fix:
            return f"the fix of {root.id}, above"
        return f.fix

    def to_dict(self) -> dict:
        return {
            "schema": 1,
            "verdict": self.verdict,
            "verdict_provider": self.verdict_provider,
            "note": self.note,
            "findings": [dataclasses.asdict(f) for f in self.findings],
            "providers": self.providers,
            "checks": self.checks,
        }

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False, default=str)

    def to_text(self) -> str:
        return render_text(self)

    def to_markdown(self) -> str:
        return render_markdown(self)
