"""Machine state around a measurement: is anything else busy, and what did each point use.

:func:`busy_check` runs just before a sweep: over a short window it reads ``/proc/stat``
and every ``/proc/[pid]/stat`` to find CPU time spent by processes outside our own
process tree (this process and its descendants, e.g. the sweep worker), and asks NVML
which other processes hold the GPU. A busy machine is not refused, it is recorded: the
warning goes into the sweep's notes and the run's environment record.
:func:`annotate_point` adds to one row the FLOPs/peak figures and the CPU thread counts
the libraries actually used.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.core.text import safe_text

BUSY_CPU_SHARE = 0.10  # others using ≥ 10 % of all cores' time: enough to move a CPU figure


@dataclass
class Proc:
    pid: int
    ppid: int
    name: str
    ticks: int  # utime + stime, clock ticks


def read_procs(root: str = "/proc") -> dict[int, Proc]:
    """Every visible process with its parent and CPU ticks so far."""
    out: dict[int, Proc] = {}
    for entry in os.listdir(root):
        if not entry.isdigit():
            continue
        try:
            with open(f"{root}/{entry}/stat") as f:
                text = f.read()
        except OSError:  # exited meanwhile, or not ours to read
            continue
        # the name is in parentheses and may itself hold spaces or ')'
        name = text[text.index("(") + 1 : text.rindex(")")]
        rest = text[text.rindex(")") + 2 :].split()
        out[int(entry)] = Proc(int(entry), int(rest[1]), name, int(rest[11]) + int(rest[12]))
    return out


def own_tree(procs: dict[int, Proc], root_pid: int | None = None) -> set[int]:
    """``root_pid`` (default: this process) and all its descendants."""
    root = os.getpid() if root_pid is None else root_pid
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    tree, todo = {root}, [root]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in tree:
                tree.add(c)
                todo.append(c)
    return tree


def _total_ticks() -> int:
    with open("/proc/stat") as f:
        return sum(int(v) for v in f.readline().split()[1:9])


@dataclass
class BusyReport:
    """What else ran during the check window."""

    window_s: float
    cpu_other_share: float | None  # of all cores' time
    cpu_other_cores: float | None
    top_cpu: list[dict[str, Any]] = field(default_factory=list)
    gpu_others: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return bool(self.notes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_others(window_s: float = 0.5) -> tuple[float, float, list[dict[str, Any]]]:
    """(share of all cores, cores, top processes) used outside our tree over ``window_s``."""
    hz = os.sysconf("SC_CLK_TCK")
    before, total0, t0 = read_procs(), _total_ticks(), time.monotonic()
    time.sleep(window_s)
    after, total1, elapsed = read_procs(), _total_ticks(), time.monotonic() - t0
    mine = own_tree(after) | own_tree(before)
    used = []
    for pid, p in after.items():
        if pid in mine:
            continue
        start = before[pid].ticks if pid in before else p.ticks  # new: only its first window
        if p.ticks - start > 0:
            used.append({"pid": pid, "name": p.name, "cores": (p.ticks - start) / hz / elapsed})
    used.sort(key=lambda d: -d["cores"])
    cores = sum(d["cores"] for d in used)
    capacity = max(total1 - total0, 1) / hz / elapsed  # ≈ number of cores
    return cores / max(capacity, 1e-9), cores, used[:5]


def gpu_others(index: int = 0) -> list[dict[str, Any]]:
    """Processes outside our tree holding GPU ``index`` (NVML), with their memory."""
    from engine.hardware.gpu import _nvml, nvml_handle

    nv = _nvml()
    if nv is None:
        return []
    mine = own_tree(read_procs())
    out = []
    try:
        h = nvml_handle(nv, index)
        procs = list(nv.nvmlDeviceGetComputeRunningProcesses(h))
        procs += list(nv.nvmlDeviceGetGraphicsRunningProcesses(h))
    except Exception:  # noqa: BLE001 - a driver without per-process accounting
        return []
    for p in procs:
        if p.pid in mine:
            continue
        mem = getattr(p, "usedGpuMemory", None)
        # in a container NVML may report host pids that /proc here cannot show
        visible = os.path.exists(f"/proc/{p.pid}")
        out.append({"pid": p.pid, "visible": visible, "used_mb": mem / 2**20 if mem else None})
    return out


def busy_check(window_s: float = 0.5, gpu_index: int | None = None) -> BusyReport:
    """Measure, now, whether other processes use the CPU or the GPU."""
    try:
        share, cores, top = cpu_others(window_s)
    except OSError:  # no /proc (not Linux): say nothing rather than guess
        share, cores, top = None, None, []
    report = BusyReport(window_s, share, cores, top)
    if share is not None and share >= BUSY_CPU_SHARE:
        names = ", ".join(f"{d['name']} ({d['cores']:.2f} cores)" for d in top[:3])
        report.notes.append(
            f"machine busy: other processes used {share:.0%} of the CPU time in the"
            f" {window_s:.1f} s before this sweep ({cores:.2f} cores; {names});"
            " CPU figures may be slower and noisier than on an idle machine"
        )
    if gpu_index is not None:
        report.gpu_others = gpu_others(gpu_index)
        if report.gpu_others:
            pids = ", ".join(str(d["pid"]) for d in report.gpu_others[:5])
            report.notes.append(
                f"GPU {gpu_index} busy: {len(report.gpu_others)} other process(es) hold it"
                f" (pid {pids}); GPU figures may be slower than on an idle GPU"
            )
    return report


def physical_cores() -> int:
    """Distinct (package, core) pairs in /proc/cpuinfo; the logical count if unreadable."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return os.cpu_count() or 1
    cores, phys = set(), None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "physical id":
            phys = value.strip()
        elif key.strip() == "core id":
            cores.add((phys, value.strip()))
    return len(cores) or os.cpu_count() or 1


def annotate_point(
    row: Any, runner: Any, gflop: float | None, gpu_name: str | None, math: str | None = None
) -> None:
    """Add FLOP/s against the peak and, on the CPU, the thread counts (the machine part's
    ``threads``) to a measured row."""
    from engine.hardware.peaks import annotate

    annotate(row, gflop, gpu_name, math)
    if not str(row.device).startswith("cuda"):
        row.machine.threads = {**row.machine.threads, **runner.thread_counts()}


def busy_summary(environment: dict[str, Any] | None) -> str:
    """One phrase for a run's busy check: 'idle', 'not checked' or what was busy."""
    check = (environment or {}).get("busy_check")
    if not isinstance(check, dict):
        return "not checked"
    parts = []
    share = check.get("cpu_other_share")
    if isinstance(share, (int, float)) and share >= BUSY_CPU_SHARE:
        parts.append(f"other processes used {share:.0%} of the CPU")
    others = check.get("gpu_others")
    if others:  # a list when we wrote it; an imported document may hold a count
        n = len(others) if isinstance(others, list) else others
        parts.append(f"{safe_text(n)} other process(es) on the GPU")
    return "; ".join(parts) or "idle"


def without_busy(environment: dict[str, Any] | None) -> dict[str, Any]:
    """The environment without its per-sweep busy check (compared apart, as machine state)."""
    return {k: v for k, v in (environment or {}).items() if k != "busy_check"}
