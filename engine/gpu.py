"""GPU facts from NVML (through nvidia-ml-py when installed): memory, clocks, names.

Used for ONNX Runtime and TensorRT memory, which torch's counters cannot see.
Everything returns None when NVML is not there.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _nvml() -> Any:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # noqa: BLE001 - no library, no driver, no GPU
        return None


def nvml_used_mb(index: int = 0) -> float | None:
    nv = _nvml()
    if nv is None:
        return None
    try:
        info = nv.nvmlDeviceGetMemoryInfo(nv.nvmlDeviceGetHandleByIndex(index))
        return info.used / 2**20
    except Exception:  # noqa: BLE001
        return None


def gpu_clocks(index: int = 0) -> dict[str, Any]:
    """SM and memory clock now, with power draw and temperature where NVML gives them.

    Benchmarks sample this after each measurement: a figure taken at a throttled clock
    (power or heat) is not comparable with one taken at full clock.
    """
    nv = _nvml()
    if nv is None:
        return {}
    try:
        h = nv.nvmlDeviceGetHandleByIndex(index)
        out: dict[str, Any] = {
            "sm_clock_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
            "mem_clock_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM),
        }
    except Exception:  # noqa: BLE001
        return {}
    try:
        out["power_w"] = nv.nvmlDeviceGetPowerUsage(h) / 1000
        out["temperature_c"] = nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)
    except Exception:  # noqa: BLE001 - optional readings
        pass
    return out


def gpu_facts(index: int = 0) -> dict[str, Any]:
    nv = _nvml()
    if nv is None:
        return {}
    try:
        h = nv.nvmlDeviceGetHandleByIndex(index)
        facts = {
            "gpu_name": nv.nvmlDeviceGetName(h),
            "driver": nv.nvmlSystemGetDriverVersion(),
            "sm_clock_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
            "mem_clock_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM),
            "max_sm_clock_mhz": nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM),
            "memory_total_mb": nv.nvmlDeviceGetMemoryInfo(h).total / 2**20,
        }
        try:
            facts["power_limit_w"] = nv.nvmlDeviceGetPowerManagementLimit(h) / 1000
        except Exception:  # noqa: BLE001
            pass
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in facts.items()}
    except Exception:  # noqa: BLE001
        return {}
