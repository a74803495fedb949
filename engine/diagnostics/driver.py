"""The NVIDIA driver: does libcuda load, which CUDA it supports, which GPUs it sees.

NVML (through ctypes) names the GPUs and their compute capabilities without initialising CUDA
in this process; where NVML cannot load, `nvidia-smi --query-gpu=name,compute_cap` is asked.
"""

from __future__ import annotations

import ctypes
import glob
import shutil
import subprocess
import sys
from typing import Any


def _loaded_path(fragment: str) -> str | None:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if fragment in line and "/" in line:
                    return line[line.index("/") :].strip()
    except OSError:
        pass
    return None


def check_driver() -> dict:
    """Does the NVIDIA driver library load; driver version; GPUs with name and compute capability.

    Uses NVML for the GPUs (it does not initialise CUDA in this process) and the driver API
    only for cuDriverGetVersion, which needs no cuInit.
    """
    info: dict[str, Any] = {
        "libcuda": {"loaded": False, "path": None, "error": None},
        "cuda_driver_version": None,
        "driver_version": None,
        "nvml": {"loaded": False, "error": None},
        "gpus": [],
        "gpu_source": None,
        "kernel_module": None,
        "device_nodes": sorted(glob.glob("/dev/nvidia[0-9]*")),
    }
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as fh:
            info["kernel_module"] = fh.readline().strip()
    except OSError:
        pass
    windows = sys.platform.startswith("win")
    try:
        cuda = ctypes.CDLL("nvcuda.dll" if windows else "libcuda.so.1")
        info["libcuda"].update(loaded=True, path=_loaded_path("libcuda.so") or "libcuda.so.1")
        version = ctypes.c_int(0)
        if cuda.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value:
            info["cuda_driver_version"] = f"{version.value // 1000}.{(version.value % 1000) // 10}"
    except (OSError, AttributeError) as exc:
        info["libcuda"]["error"] = str(exc)
    try:
        nvml = ctypes.CDLL("nvml.dll" if windows else "libnvidia-ml.so.1")
        rc = nvml.nvmlInit_v2()
        if rc != 0:
            info["nvml"]["error"] = f"nvmlInit_v2 returned {rc}"
        else:
            info["nvml"]["loaded"] = True
            _nvml_facts(nvml, info)
    except (OSError, AttributeError) as exc:
        info["nvml"]["error"] = str(exc)
    if not info["gpus"]:
        info["gpus"] = nvidia_smi_gpus()
        info["gpu_source"] = "nvidia-smi" if info["gpus"] else None
    return info


def _nvml_facts(nvml: Any, info: dict) -> None:
    buf = ctypes.create_string_buffer(96)
    if nvml.nvmlSystemGetDriverVersion(buf, 96) == 0:
        info["driver_version"] = buf.value.decode()
    count = ctypes.c_uint(0)
    nvml.nvmlDeviceGetCount_v2(ctypes.byref(count))
    for i in range(count.value):
        handle = ctypes.c_void_p()
        if nvml.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(handle)) != 0:
            continue
        name = ctypes.create_string_buffer(96)
        nvml.nvmlDeviceGetName(handle, name, 96)
        cc_major, cc_minor = ctypes.c_int(0), ctypes.c_int(0)
        nvml.nvmlDeviceGetCudaComputeCapability(
            handle, ctypes.byref(cc_major), ctypes.byref(cc_minor)
        )
        info["gpus"].append(
            {
                "index": i,
                "name": name.value.decode(errors="replace"),
                "cc": f"{cc_major.value}.{cc_minor.value}",
            }
        )
    nvml.nvmlShutdown()
    info["gpu_source"] = "NVML"


def parse_nvidia_smi(text: str) -> list[dict]:
    """GPUs from `nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader` output."""
    gpus = []
    for line in text.splitlines():
        name, sep, cc = line.rpartition(",")
        if sep and name.strip() and cc.strip():
            gpus.append({"index": len(gpus), "name": name.strip(), "cc": cc.strip()})
    return gpus


def nvidia_smi_gpus() -> list[dict]:
    """GPU names and compute capabilities from nvidia-smi; [] where it is absent or fails."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    cmd = [exe, "--query-gpu=name,compute_cap", "--format=csv,noheader"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(proc.stdout) if proc.returncode == 0 else []


def driver_state(driver: dict) -> tuple[bool, str, str]:
    """(usable, root cause sentence, evidence) for the NVIDIA driver."""
    lib = driver.get("libcuda", {})
    evidence = []
    if lib.get("loaded"):
        evidence.append(f"libcuda loaded from {lib.get('path')}")
    else:
        evidence.append(f"loading libcuda.so.1: {lib.get('error')}")
    if driver.get("nvml", {}).get("loaded"):
        evidence.append(f"NVML sees {len(driver.get('gpus', []))} GPU(s)")
    else:
        evidence.append(f"NVML: {driver.get('nvml', {}).get('error')}")
    evidence.append(f"/proc/driver/nvidia/version: {driver.get('kernel_module') or 'absent'}")
    evidence.append(f"/dev/nvidia* device nodes: {len(driver.get('device_nodes', []))}")
    ev = "\n".join(evidence)
    if not lib.get("loaded"):
        if driver.get("kernel_module") or driver.get("device_nodes"):
            why = (
                "the NVIDIA kernel driver is present but its user-space library libcuda.so.1 "
                "cannot be loaded (a container started without GPU access?)"
            )
        else:
            why = "this machine has no NVIDIA driver: libcuda.so.1 cannot be loaded"
        return False, why, ev
    if driver.get("nvml", {}).get("loaded") and not driver.get("gpus"):
        return False, "the NVIDIA driver loads but sees no GPU", ev
    return True, "", ev
