"""Device names (``cpu``, ``cuda``, ``cuda:N``): parsing and availability."""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.commands import pip_command
from engine.core.errors import BadInput, Unavailable


@dataclass(frozen=True)
class Availability:
    """Whether something can run here; if not, why and the fix."""

    ok: bool
    reason: str = ""
    fix: str = ""

    def raise_if_missing(self, what: str) -> None:
        if not self.ok:
            raise Unavailable(f"{what} is not available on this machine", self.reason, self.fix)


def parse_device(device: str) -> tuple[str, int]:
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()):
        raise BadInput(
            f"unknown device '{device}'", "devices are cpu, cuda or cuda:N", "use --device cpu"
        )
    if kind == "cpu" and index:
        raise BadInput(f"unknown device '{device}'", fix="use --device cpu")
    return kind, int(index or 0)


def device_kind(device: str) -> str:
    """``cpu`` or ``cuda`` for a device string; a stored name that does not parse as itself."""
    try:
        return parse_device(device)[0]
    except BadInput:
        return device.split(":", 1)[0]


def is_cuda(device: str) -> bool:
    """True for ``cuda`` / ``cuda:N``; False for the CPU and for names that do not parse."""
    try:
        return parse_device(device)[0] == "cuda"
    except BadInput:
        return False


def cuda_availability(device: str) -> Availability:
    kind, index = parse_device(device)
    if kind == "cpu":
        return Availability(True)
    try:
        import torch
    except ImportError as exc:
        return Availability(
            False, f"torch does not import: {exc}", f"{pip_command()} install -r requirements.txt"
        )
    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            return Availability(
                False,
                "the installed torch is a CPU-only build",
                f"install a CUDA build of torch: {pip_command()} install -r requirements.txt",
            )
        return Availability(
            False,
            f"no NVIDIA GPU or driver is visible (torch is built for CUDA {torch.version.cuda})",
            "run on a machine with an NVIDIA GPU and driver, or use --device cpu",
        )
    count = torch.cuda.device_count()
    if index >= count:
        return Availability(
            False, f"{device} does not exist: this machine has {count} GPU(s)", "use cuda:0"
        )
    return Availability(True)


def device_title(device: str) -> str:
    kind, index = parse_device(device)
    if kind == "cpu":
        return "CPU"
    import torch

    return f"{torch.cuda.get_device_name(index)} (cuda:{index})"
