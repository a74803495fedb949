"""Auto mode: find the fastest setting whose outputs still agree, and show the ladder.

For each device the sweep asks for, a fixed list of candidate configurations is tried in
"ladder" order: the naive baseline first (PyTorch FP32), then one setting at a time
(TF32, FP16, channels-last, cuDNN autotuning with batch-norm folded, CUDA graphs, fused
convolution + bias + ReLU; ONNX Runtime as shipped, then FP16, NHWC kernels and CUDA
graphs; optionally torch.compile). All candidates are measured as one sweep through
the caller's launcher (:mod:`engine.running.launch`: in-process or in a worker), the same code
path as any sweep, with parity on; the winner at each batch size is the fastest row whose outputs agree with
the FP32 reference. The ladder (baseline → each step → best) is plain data computed from
the rows, so a stored run can be charted again without measuring anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from engine.backends import auto_candidates, describe, switches
from engine.core.config import ResultRow, RunnerSpec, SweepConfig, parity_label
from engine.core.stability import overlap, pick_with_ties, row_ci
from engine.running.plan import Callbacks, Plan, plan_auto, plan_of_config
from engine.running.sweep import SweepOutcome, run_sweep

__all__ = ["AutoOutcome", "LadderStep", "auto_outcome", "candidates", "plan_auto", "run_auto"]


def candidates(
    device: str, backends: list[str] | None = None, include_compile: bool = False
) -> list[RunnerSpec]:
    """The configurations auto mode tries on ``device``, baseline first, in ladder order:
    each registered backend's own ladder (:meth:`Backend.auto_ladder`), in registry order.

    ``backends`` limits them to those backends. Candidates that compile for minutes per
    batch size (torch.compile) are only tried when asked (``include_compile``).
    """
    return auto_candidates(device, backends, include_compile)[0]


@dataclass
class LadderStep:
    """One configuration at one batch size, compared with the baseline of that batch."""

    batch: int
    step: int
    label: str
    backend: str
    precision: str
    options: dict[str, Any]
    status: str
    p50_ms: float | None = None
    throughput_ips: float | None = None
    speedup: float | None = None  # baseline p50 / this p50
    parity_ok: bool | None = None
    best: bool = False
    reason: str = ""
    ci_ms: tuple[float, float] | None = None  # ~95 % CI of the median (engine.core.stability)
    tie_note: str = ""  # on the best step: why it won (outside the noise, or which tie rule)
    parity_status: str = "off"

    @property
    def eligible(self) -> bool:
        """Only a row whose parity was judged and passed can win: "off" and "not judged"
        say nothing about whether it computes the same thing."""
        return self.status == "ok" and self.parity_status == "ok" and bool(self.p50_ms)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _key(backend: str, options: dict[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in switches(backend, options).items()))


def ladders_from_rows(rows: list[ResultRow]) -> dict[int, list[LadderStep]]:
    """Batch → ladder, from a sweep's rows in the order they were measured.

    The first row of each batch is the baseline. The best step is the fastest measured
    row whose parity was judged and passed.
    Pure: the dashboard can chart a stored run with it.
    """
    by_batch: dict[int, list[ResultRow]] = {}
    for r in rows:
        by_batch.setdefault(r.batch, []).append(r)
    out: dict[int, list[LadderStep]] = {}
    for batch, group in sorted(by_batch.items()):
        base = group[0].p50_ms if group[0].status == "ok" else None
        steps = []
        seen: dict[tuple, int] = {}
        for i, r in enumerate(group):
            speedup = base / r.p50_ms if (base and r.status == "ok" and r.p50_ms) else None
            reason = r.reason
            same = seen.setdefault((r.backend, r.precision, _key(r.backend, r.options)), i)
            if same != i:
                reason = f"the same configuration as step {same}: {reason or 'nothing changed'}"
            if r.status == "ok" and r.parity_status == "failed":
                reason = f"outputs disagree with FP32 (max rel err {r.max_rel_err:.3g})"
            elif r.status == "ok" and r.parity_status != "ok":
                why = f": {r.parity_reason}" if r.parity_reason else ""
                reason = f"cannot win: parity {r.parity_status}{why}"
            steps.append(
                LadderStep(
                    batch=batch,
                    step=i,
                    label=describe(r, "short"),
                    backend=r.backend,
                    precision=r.precision,
                    options=dict(r.options),
                    status=r.status,
                    p50_ms=r.p50_ms,
                    throughput_ips=r.throughput_ips,
                    speedup=speedup,
                    parity_ok=r.parity_ok,
                    reason=reason,
                    ci_ms=row_ci(r) if r.status == "ok" else None,
                    parity_status=r.parity_status,
                )
            )
        _choose(steps)
        out[batch] = steps
    return out


@dataclass
class AutoOutcome(SweepOutcome):
    """A sweep outcome plus, per batch size, the ladder and the chosen row."""

    ladders: dict[int, list[LadderStep]] = field(default_factory=dict)

    @property
    def best(self) -> dict[int, LadderStep]:
        return {b: s for b, steps in self.ladders.items() for s in steps if s.best}

    def ladder_records(self) -> list[dict[str, Any]]:
        """Flat records (one per step and batch) for a DataFrame or JSON."""
        return [s.to_dict() for steps in self.ladders.values() for s in steps]


SweepFn = Callable[[Plan, Any, Callbacks], SweepOutcome]


def _inline_sweep(plan: Plan, store: Any, cb: Callbacks):
    return run_sweep(plan, store=store, callbacks=cb)


def run_auto(
    config: SweepConfig,
    store: Any = None,
    command: str | None = None,
    callbacks: Callbacks | None = None,
    include_compile: bool = False,
    sweep: SweepFn | None = None,
) -> AutoOutcome:
    """Measure the candidates (through ``sweep``, a launcher's; default in-process); pick per batch.

    The stored command is ``command`` or the reproduce command of ``config`` with
    ``--auto``, never the expanded candidate list (which the CLI cannot express).
    """
    plan = plan_of_config(config, True, include_compile, command)
    return auto_outcome((sweep or _inline_sweep)(plan, store, callbacks or Callbacks()))


def auto_outcome(outcome: SweepOutcome) -> AutoOutcome:
    """The ladders per batch (one per device, then the overall best) from a sweep's rows."""
    result = AutoOutcome(**{f.name: getattr(outcome, f.name) for f in fields(SweepOutcome)})
    devices = list(dict.fromkeys(r.device for r in outcome.rows))
    for device in devices:
        rows = [r for r in outcome.rows if r.device == device]
        for batch, steps in ladders_from_rows(rows).items():
            result.ladders.setdefault(batch, []).extend(steps)
    if len(devices) > 1:  # one ladder per batch across devices: re-pick the overall best
        for steps in result.ladders.values():
            for s in steps:
                s.best, s.tie_note = False, ""
            _choose(steps)
    return result


def _choose(steps: list[LadderStep]) -> None:
    """Mark the best agreeing step; settings within noise of the fastest are ties."""
    ok = [s for s in steps if s.eligible]
    if ok:
        pick, why = pick_with_ties(ok, ci=lambda s: s.ci_ms)
        pick.best, pick.tie_note = True, why


def format_ladder(outcome: AutoOutcome) -> str:
    """The ladder as text: one block per batch size, the chosen step marked."""
    lines: list[str] = []
    for batch, steps in sorted(outcome.ladders.items()):
        why = next((s.tie_note for s in steps if s.best), "")
        lines.append(f"batch {batch}:" + (f" (chosen: {why})" if why else ""))
        if not any(s.best for s in steps):
            lines.append(f"   no winner: {_no_winner(steps)}")
        for s in steps:
            mark = "*" if s.best else " "
            if s.status == "ok":
                speed = f"{s.speedup:.2f}x" if s.speedup else "-"
                if s.step and overlap(steps[0].ci_ms, s.ci_ms):
                    speed = "noise"  # within the baseline's noise: not a speed-up
                parity = parity_label(s.parity_status)
                if s.parity_status in ("not judged", "off"):
                    lines.append(f"   ({s.reason[:120]})")
                lines.append(
                    f" {mark} {s.label:<70} {s.p50_ms:9.3f} ms {s.throughput_ips:10.1f} img/s"
                    f" {speed:>7} parity {parity}"
                )
            else:
                lines.append(f" {mark} {s.label:<70} {s.status}: {s.reason[:80]}")
    return "\n".join(lines)


def _no_winner(steps: list[LadderStep]) -> str:
    """Why a batch has no winner: the one reason every candidate was skipped for (a batch
    the model cannot run), else that no measured candidate agreed."""
    reasons = {s.reason for s in steps}
    if all(s.status == "skipped" for s in steps) and len(reasons) == 1:
        return reasons.pop().split(". Fix: ")[0]
    return "no measured candidate's parity was judged and passed"
