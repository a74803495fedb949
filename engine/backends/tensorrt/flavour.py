"""Which TensorRT is installed: full TensorRT, TensorRT for RTX, or none, and why.

Two flavours share one Python API: full TensorRT (``import tensorrt``, datacenter and
consumer GPUs, builds need a GPU) and TensorRT for RTX (``import tensorrt_rtx_bindings``,
from the ``tensorrt-rtx-cu13-*`` wheels: GeForce and RTX workstation GPUs only, builds
without a GPU for named compute capabilities, compiles kernels just in time when a plan
is loaded). ``auto`` prefers full TensorRT where both are installed, because it runs on
every GPU the other does. Nothing here imports a flavour until it is asked for.

TensorRT-RTX refuses GPUs it has no kernels for (Hopper, compute capability 9.0, is one:
on an H200 it answers "Error Code 6: API Usage Error (The engine cannot run on this GPU,
which has compute capability 9.0. Supported compute capabilities: None. …)"). The GPUs it
supports are read from the library's own ``ComputeCapability`` targets where it imports,
else from the support-matrix table of :mod:`engine.diagnostics.trt_rtx`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from engine.backends.base import Availability
from engine.core.commands import pip_command
from engine.core.errors import BadInput, Unavailable

SUPPORTED_MAJORS = (10, 11)
FLAVOURS = ("auto", "full", "rtx")
TITLES = {"full": "TensorRT", "rtx": "TensorRT-RTX"}
MODULES = {"full": "tensorrt", "rtx": "tensorrt_rtx_bindings"}
RTX_PACKAGES = "tensorrt-rtx-cu13-libs tensorrt-rtx-cu13-bindings"
# Where the bindings do not import, the GPUs TensorRT-RTX runs on come from the support-matrix
# table of engine.diagnostics.trt_rtx (standard library only, shared with diagnostics).
_REFUSAL_RE = re.compile(r"Error Code 6\b.*?compute capability (\d+\.\d+)", re.S)


@dataclass(frozen=True)
class Flavour:
    """One imported TensorRT: which flavour, its module and version."""

    name: str  # "full" | "rtx"
    module: Any
    version: str

    @property
    def title(self) -> str:
        return TITLES[self.name]

    @property
    def label(self) -> str:
        """'TensorRT-RTX 1.7.1.116': what every result names."""
        return f"{self.title} {self.version}"

    @property
    def provider(self) -> str:
        return f"{'tensorrt-rtx' if self.name == 'rtx' else 'tensorrt'} {self.version}"


def check_flavour(choice: Any) -> str:
    value = str(choice or "auto").strip().lower()
    if value not in FLAVOURS:
        raise BadInput(
            f"the TensorRT flavour '{choice}' is not known",
            f"flavours are {', '.join(FLAVOURS)}",
            "use --trt-flavour auto, full or rtx",
        )
    return value


def _import(name: str) -> Any:
    import importlib

    return importlib.import_module(MODULES[name])


def try_import(name: str) -> tuple[Any, str]:
    """(module, "") or (None, why it does not import)."""
    try:
        return _import(name), ""
    except (ImportError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return None, f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def import_tensorrt() -> Any:
    """``import tensorrt`` (full TensorRT); ImportError or OSError propagate."""
    return _import("full")


def try_import_tensorrt() -> tuple[Any, str]:
    return try_import("full")


def trt_major(version: str) -> int:
    """The major number of a TensorRT version string such as ``10.14.1.48``."""
    match = re.match(r"\s*(\d+)", str(version))
    if not match:
        raise Unavailable(f"the TensorRT version '{version}' cannot be read")
    return int(match.group(1))


def install_command() -> str:
    """``pip install tensorrt-cuNN`` for the CUDA major torch was built for."""
    major = None
    try:
        import torch

        if torch.version.cuda:
            major = int(str(torch.version.cuda).split(".")[0])
    except ImportError:
        pass
    return f"{pip_command()} install tensorrt-cu{major or 12}"


def _disk_facts() -> dict[str, Any]:
    """What engine.diagnostics found on disk (module folder, libnvinfer); {} if unavailable.

    Reused so the library search lives in one place; it reads files only and never
    imports tensorrt, so it is safe to call when the import is what fails.
    """
    try:
        from engine.diagnostics import tensorrt_status

        return tensorrt_status()
    except Exception:  # noqa: BLE001 - diagnostics is best effort; the import error still explains
        return {}


def missing_reason(import_error: str, facts: dict[str, Any] | None = None) -> str:
    """Why TensorRT cannot be used, from the import error and the on-disk facts."""
    facts = facts if facts is not None else {}
    if not facts:
        return f"the tensorrt Python package does not import ({import_error})"
    if not facts.get("importable") and not facts.get("libnvinfer_found"):
        return (
            "TensorRT is not installed: there is no tensorrt Python package and no libnvinfer"
            f" library ({import_error})"
        )
    if not facts.get("importable"):
        return f"libnvinfer is present but the tensorrt Python package is not ({import_error})"
    lib = "" if facts.get("libnvinfer_found") else "; libnvinfer was not found on disk"
    version = f" {facts['version']}" if facts.get("version") else ""
    return f"the tensorrt{version} package is installed but does not load ({import_error}){lib}"


def version_problem(version: str) -> Availability | None:
    """Why full TensorRT ``version`` cannot be used (unreadable, older than 10.0), else None."""
    try:
        major = trt_major(version)
    except Unavailable as exc:
        return Availability(False, exc.what, install_command())
    if major < min(SUPPORTED_MAJORS):
        return Availability(
            False,
            f"TensorRT {version} is older than 10.0, which this product needs (name-based I/O"
            " tensors, execute_async_v3, no implicit batch)",
            f"{install_command()} --upgrade",
        )
    return None


def _full_availability() -> tuple[Flavour | None, Availability]:
    trt, error = try_import("full")
    if trt is None:
        return None, Availability(False, missing_reason(error, _disk_facts()), install_command())
    version = str(getattr(trt, "__version__", "?"))
    problem = version_problem(version)
    if problem is not None:
        return None, problem
    return Flavour("full", trt, version), Availability(True)


def _rtx_availability() -> tuple[Flavour | None, Availability]:
    trt, error = try_import("rtx")
    if trt is None:
        return None, Availability(
            False,
            f"TensorRT-RTX does not import ({error})",
            f"{pip_command()} install {RTX_PACKAGES} (Python 3.11/3.12)",
        )
    return Flavour("rtx", trt, str(getattr(trt, "__version__", "?"))), Availability(True)


def tensorrt_availability(choice: str = "auto") -> tuple[Flavour | None, Availability]:
    """(flavour or None, availability of TensorRT itself, GPU aside).

    ``auto`` takes full TensorRT where it imports, else TensorRT-RTX; where neither does,
    the reason names full TensorRT's problem and the fix offers both.
    """
    choice = check_flavour(choice)
    if choice == "rtx":
        return _rtx_availability()
    full, why = _full_availability()
    if full is not None or choice == "full":
        return full, why
    rtx, _ = _rtx_availability()
    if rtx is not None:
        return rtx, Availability(True)
    return None, Availability(
        False,
        why.reason,
        f"{why.fix}, or for GeForce/RTX GPUs {pip_command()} install {RTX_PACKAGES}",
    )


# --------------------------------------------------------------------------- compute capability


def rtx_targets(module: Any = None) -> tuple[tuple[str, ...], str]:
    """(compute capabilities TensorRT-RTX builds for, where that answer came from)."""
    enum = getattr(module, "ComputeCapability", None) if module is not None else None
    if enum is not None:
        found = []
        for name in getattr(enum, "__members__", {}):
            m = re.fullmatch(r"SM(\d+)(\d)", name)
            if m:
                found.append(f"{int(m.group(1))}.{m.group(2)}")
        if found:
            version = getattr(module, "__version__", "?")
            return tuple(found), f"TensorRT-RTX {version} ComputeCapability enum"
    from engine.diagnostics.trt_rtx import support_row

    row = support_row(getattr(module, "__version__", None) if module is not None else None)
    return row.compute_capabilities, f"support matrix {row.source} (the bindings did not answer)"


def unsupported_message(cc: str) -> str:
    # The same sentence as engine.diagnostics.trt_rtx.unsupported_reason's finding.
    return f"TensorRT-RTX does not run on compute capability {cc}; full TensorRT is needed"


def rtx_refusal(cc: str, source: str = "") -> Unavailable:
    """The one answer for a GPU TensorRT-RTX cannot run on, before or after a build."""
    return Unavailable(
        unsupported_message(cc),
        "TensorRT-RTX ships kernels for GeForce and RTX workstation GPUs only"
        + (f" ({source})" if source else ""),
        f"{install_command()} and use --trt-flavour full (or auto)",
    )


def check_rtx_gpu(cc: str, module: Any = None) -> None:
    """Raise the refusal when TensorRT-RTX cannot run on a GPU of compute capability ``cc``."""
    targets, source = rtx_targets(module)
    if cc not in targets:
        raise rtx_refusal(cc, f"it targets {', '.join(targets)} per the {source}")


def refusal_in(text: str) -> Unavailable | None:
    """The refusal for a load-time 'Error Code 6 … compute capability X' message, if it is one."""
    m = _REFUSAL_RE.search(text or "")
    return rtx_refusal(m.group(1), "TensorRT-RTX refused to load the plan") if m else None


def parse_targets(text: Any, module: Any = None) -> tuple[str, ...]:
    """'8.6,8.9' → ('8.6', '8.9'), each one TensorRT-RTX can build for; '' → ()."""
    items = [t.strip() for t in str(text or "").split(",") if t.strip()]
    targets, source = rtx_targets(module)
    bad = [t for t in items if t not in targets]
    if bad:
        raise BadInput(
            f"TensorRT-RTX cannot build for compute capability {', '.join(bad)}",
            f"it targets {', '.join(targets)} ({source})",
            "give a comma list of those, e.g. --rtx-cc 8.6,8.9",
        )
    return tuple(dict.fromkeys(items))


def gpu_facts(index: int) -> tuple[str, str, tuple[int, int]]:
    """(name, compute capability "9.0", (major, minor)) of GPU ``index``."""
    import torch

    cap = torch.cuda.get_device_capability(index)
    return torch.cuda.get_device_name(index), f"{cap[0]}.{cap[1]}", tuple(cap)


def visible_cc(device: str) -> str | None:
    """The compute capability of ``device`` where torch sees a CUDA GPU, else None."""
    try:
        import torch

        from engine.core.devices import parse_device

        _, index = parse_device(device)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            return None
        return gpu_facts(index)[1]
    except Exception:  # noqa: BLE001 - no GPU to ask is the same as no answer
        return None
