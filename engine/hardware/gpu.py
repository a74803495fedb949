"""GPU facts from NVML (through nvidia-ml-py when installed): memory, clocks, names.

Used for ONNX Runtime and TensorRT memory, which torch's counters cannot see.
Everything returns None when NVML is not there.
"""

from __future__ import annotations

import os
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


def nvml_target(cuda_index: int) -> int | str:
    """NVML's name for CUDA device ``cuda_index``: NVML ignores CUDA_VISIBLE_DEVICES.

    With ``CUDA_VISIBLE_DEVICES=1`` CUDA's device 0 is NVML's device 1; entries may also be
    UUIDs. Without the mapping, clocks and other processes would be read off another GPU.
    """
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")]
    visible = [v for v in visible if v]
    if cuda_index >= len(visible):
        return cuda_index
    entry = visible[cuda_index]
    return int(entry) if entry.isdigit() else entry


def nvml_handle(nv: Any, cuda_index: int) -> Any:
    """The NVML handle of CUDA device ``cuda_index`` (by index or UUID, see nvml_target)."""
    target = nvml_target(cuda_index)
    if isinstance(target, str):
        return nv.nvmlDeviceGetHandleByUUID(target)
    return nv.nvmlDeviceGetHandleByIndex(target)


def nvml_used_mb(index: int = 0) -> float | None:
    nv = _nvml()
    if nv is None:
        return None
    try:
        info = nv.nvmlDeviceGetMemoryInfo(nvml_handle(nv, index))
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
        h = nvml_handle(nv, index)
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
        h = nvml_handle(nv, index)
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


# NVML's clock-event (throttle) reason bits; stable across driver versions.
REASON_BITS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
THROTTLE_MASK = 0x8 | 0x20 | 0x40 | 0x80  # slowdowns forced by heat or the board
POWER_CAP_MASK = 0x4


def _reasons(nv: Any, h: Any) -> int:
    fn = (
        getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None)
        or nv.nvmlDeviceGetCurrentClocksThrottleReasons
    )  # the older name in nvidia-ml-py before 12.535
    return int(fn(h))


class ClockSampler:
    """Samples SM/memory clocks, power and throttle reasons in a thread over a timed loop.

    ``with ClockSampler(index) as s: loop()`` then ``s.summary()``. Without NVML (no
    library, driver or GPU) no thread starts and the summary is empty. ctypes releases
    the GIL during each NVML call, so the sampler does not stall the timing thread.
    """

    def __init__(self, index: int | None = 0, interval_s: float = 0.1) -> None:
        import threading

        self.index, self.interval_s = index, interval_s
        self.samples: list[tuple[int, int, float | None, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nv, self._h, self.limit_w = (_nvml() if index is not None else None), None, None
        if self._nv is not None:
            try:
                self._h = nvml_handle(self._nv, index)
                self.limit_w = self._nv.nvmlDeviceGetEnforcedPowerLimit(self._h) / 1000
            except Exception:  # noqa: BLE001 - no such GPU or no power reading: sample what works
                pass

    def _sample(self) -> None:
        nv, h = self._nv, self._h
        try:
            sm = nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)
            mem = nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM)
            reasons = _reasons(nv, h)
        except Exception:  # noqa: BLE001 - a failed reading is skipped, not fatal
            return
        try:
            power = nv.nvmlDeviceGetPowerUsage(h) / 1000
        except Exception:  # noqa: BLE001
            power = None
        self.samples.append((sm, mem, power, reasons))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> ClockSampler:
        import threading

        if self._h is not None:
            self._sample()
            self._thread = threading.Thread(target=self._loop, name="nvml-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._sample()

    def summary(self) -> dict[str, Any]:
        """Clocks min/mean/max, power mean/max against the limit, reasons and their share."""
        if not self.samples:
            return {}
        sm = [s[0] for s in self.samples]
        mem = [s[1] for s in self.samples]
        power = [s[2] for s in self.samples if s[2] is not None]
        n = len(self.samples)
        share = {
            name: sum(1 for s in self.samples if s[3] & bit) / n
            for bit, name in REASON_BITS.items()
            if any(s[3] & bit for s in self.samples)
        }
        return {
            "nvml_samples": n,
            "sm_clock_mhz_min": min(sm),
            "sm_clock_mhz_mean": sum(sm) / n,
            "sm_clock_mhz_max": max(sm),
            "mem_clock_mhz_min": min(mem),
            "mem_clock_mhz_max": max(mem),
            "power_w_mean": sum(power) / len(power) if power else None,
            "power_w_max": max(power) if power else None,
            "power_limit_w": self.limit_w,
            "clock_event_reasons": share,
            "throttled": any(s[3] & THROTTLE_MASK for s in self.samples),
            "power_capped": any(s[3] & POWER_CAP_MASK for s in self.samples),
        }
