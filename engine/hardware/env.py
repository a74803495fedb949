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
    ort_pkg = next((d for d in ("onnxruntime-gpu", "onnxruntime") if _version(d)), None)
    fp: dict[str, Any] = {
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": _version("torch"),
        "torchvision": _version("torchvision"),
        "onnx": _version("onnx"),
        "onnxruntime": _version(ort_pkg) if ort_pkg else None,
        "onnxruntime_package": ort_pkg,
        "tensorrt": _version("tensorrt") or _version("tensorrt-cu12") or _version("tensorrt-cu13"),
        "tensorrt_rtx": _version("tensorrt-rtx-cu13-bindings"),
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
