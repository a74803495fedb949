"""The environment fingerprint stored with every run: hardware and library versions."""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from importlib import metadata
from typing import Any

from engine.core.devices import is_cuda, parse_device


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


@lru_cache(maxsize=4)
def fingerprint(device: str = "cpu") -> dict[str, Any]:
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
