"""The environment fingerprint stored with every run: hardware and library versions."""

from __future__ import annotations

import os
import platform
import sys
from functools import lru_cache
from importlib import metadata
from typing import Any

from engine.core.devices import is_cuda, parse_device
from engine.core.modules import package_dir, read_constants


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loaded_torch() -> Any | None:
    """The torch module where this process has loaded it, else None (never imports it)."""
    return sys.modules.get("torch")


@lru_cache(maxsize=4)
def fingerprint(device: str = "cpu", torch_facts: bool = True) -> dict[str, Any]:
    """The machine and its libraries. ``torch_facts=False`` leaves out PyTorch's thread
    count, for a process that never loads PyTorch (an ONNX file on ONNX Runtime alone:
    importing it only to say so costs about 1.2 s); its CUDA build is read from its files."""
    fp: dict[str, Any] = {
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        # The model sources' libraries; each backend adds its own (engine.backends.environment).
        "torchvision": _version("torchvision"),
        "onnx": _version("onnx"),
    }
    if not torch_facts:
        torch_dir = package_dir("torch")
        version = read_constants(os.path.join(torch_dir, "version.py")) if torch_dir else {}
        fp["cuda"] = version.get("cuda")
        return fp
    try:
        import torch

        fp["torch_threads"] = torch.get_num_threads()
        fp["cuda"] = torch.version.cuda
        if is_cuda(device) and torch.cuda.is_available():
            index = parse_device(device)[1]
            fp["gpu"] = torch.cuda.get_device_name(index)
            cap = torch.cuda.get_device_capability(index)
            fp["compute_capability"] = f"{cap[0]}.{cap[1]}"
            fp["cudnn"] = torch.backends.cudnn.version()
            from engine.hardware.gpu import gpu_facts

            fp.update(gpu_facts(index))
    except ImportError:
        pass
    return fp


def machine_label(fp: dict[str, Any]) -> str:
    return fp.get("gpu") or fp.get("cpu") or "unknown machine"
