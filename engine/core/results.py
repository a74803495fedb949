"""What was measured: a result row made of parts, stored flat.

A :class:`ResultRow` is one point (:class:`Point`: what ran, where, and how it ended), its
:class:`Timing` (latency statistics and their stability), its :class:`Parity` (how its
outputs compare with the reference), its :class:`Compute` (the FLOP/s it reached against
the device's peak) and its :class:`MachineState` (what the machine did while it was timed:
NVML's clocks and power, throttling, each library's CPU-thread pool). The sweep builds a
row from those parts as they are measured; nothing copies one part's fields into another
field by field.

Rows are stored and exchanged flat, as they always were: :meth:`ResultRow.to_dict` gives
the same 44 keys in the same order as before the parts, and :meth:`ResultRow.from_dict`
reads such a record (a stored row, a ``bench --json`` document, a row of any older
version) back into the parts. Every flat name reads (and writes) through its part:
``row.p50_ms`` is ``row.timing.p50_ms`` (``None`` when the point has no timing). The flat
``machine_state`` holds the machine part's readings with each thread pool as
``<name>_threads``, as rows always stored them; :meth:`MachineState.from_flat` is the one
place that turns those keys back into the part's declared ``threads``.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from engine.core.safeio import finite


@dataclass
class Point:
    """One point of a sweep: what ran, where, on what model, and how it ended."""

    model: str
    backend: str
    device: str
    precision: str
    batch: int
    provider: str = ""  # what really ran
    status: str = "ok"  # ok | skipped | failed | oom
    reason: str = ""
    image_size: int = 224
    weights: str = "random weights"
    image_width: int | None = None  # set only when the width differs from image_size
    mode: str = "device"
    options: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None
    created_at: str = ""


@dataclass
class Timing:
    """Latency statistics of one runner at one batch size (what the machine did meanwhile
    is the row's :class:`MachineState`)."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    p10_ms: float
    iters: int
    throughput_ips: float
    peak_mem_mb: float | None = None
    samples_ms: list[float] | None = None  # per iteration, in order (engine.core.stability)
    cv: float | None = None
    tail_ratio: float | None = None
    stable: bool | None = None
    stability_note: str = ""
    rounds: int = 1


@dataclass
class Parity:
    """How one backend's outputs compare with the reference on the same inputs."""

    max_rel_err: float | None
    mean_rel_err: float | None
    cosine: float | None
    top1_agree: float | None
    ok: bool | None  # None: not judged (see ``status``)
    tolerance: str = ""
    status: str = ""  # ok | failed | not judged
    reason: str = ""


@dataclass
class Compute:
    """One image's work and the rate reached against the device's dense peak."""

    gflop: float | None = None  # one image's forward pass
    tflops: float | None = None
    peak_tflops: float | None = None
    peak_pct: float | None = None
    peak_source: str = ""


THREADS_SUFFIX = "_threads"  # a thread pool's key in the flat machine_state


@dataclass
class MachineState:
    """What the machine did while one point was timed: NVML's readings of the GPU over the
    timed loop (clocks, power, clock-event reasons: ``readings``), whether it throttled or
    hit its power cap, and each library's CPU-thread pool (``threads``: ``{"torch": 4}``,
    from ``Runner.thread_counts``)."""

    readings: dict[str, Any] = field(default_factory=dict)
    throttled: bool | None = None
    power_capped: bool | None = None
    threads: dict[str, int] = field(default_factory=dict)

    @property
    def state(self) -> dict[str, Any]:
        """The flat record's ``machine_state``: the readings, then each thread pool as
        ``<name>_threads`` (the keys rows were always stored with)."""
        return {**self.readings, **{f"{k}{THREADS_SUFFIX}": n for k, n in self.threads.items()}}

    @state.setter
    def state(self, flat: dict[str, Any] | None) -> None:
        split = MachineState.from_flat(flat)
        self.readings, self.threads = split.readings, split.threads

    @classmethod
    def from_flat(
        cls,
        state: dict[str, Any] | None = None,
        throttled: bool | None = None,
        power_capped: bool | None = None,
    ) -> MachineState:
        """The part of a flat record (a stored row, a document of any version): a whole
        number under ``<name>_threads`` is that pool's thread count, anything else a reading."""
        readings: dict[str, Any] = {}
        threads: dict[str, int] = {}
        for key, value in (state or {}).items():
            whole = isinstance(value, int) and not isinstance(value, bool)
            if whole and isinstance(key, str) and key.endswith(THREADS_SUFFIX):
                threads[key.removesuffix(THREADS_SUFFIX)] = value
            else:
                readings[key] = value
        return cls(readings, throttled, power_capped, threads)


PARITY_STATUSES = ("ok", "failed", "not judged", "off")
PARITY_FROM_OK = {True: "ok", False: "failed", None: "off"}


def parity_label(status: str) -> str:
    """How a table cell shows a parity status: a failure stands out, "off" is a dash."""
    return {"ok": "ok", "failed": "FAIL", "not judged": "not judged"}.get(status, "-")


# The flat record, in the order rows were always written: name → (part, the part's field).
_PARITY_NAMES = {"parity_ok": "ok", "parity_status": "status", "parity_reason": "reason"}
_MACHINE_NAMES = {
    "machine_state": "state",
    "throttled": "throttled",
    "power_capped": "power_capped",
}
FLAT: dict[str, tuple[str, str]] = {}
for _name in (
    "model backend device precision batch provider status reason image_size weights"
    " image_width mode options p50_ms p90_ms p99_ms p10_ms mean_ms std_ms min_ms iters"
    " throughput_ips peak_mem_mb parity_ok max_rel_err cosine top1_agree threads created_at"
    " samples_ms cv tail_ratio stable stability_note rounds gflop tflops peak_tflops peak_pct"
    " peak_source machine_state throttled power_capped parity_status parity_reason"
).split():
    _part = (
        "parity"
        if _name in _PARITY_NAMES
        else "machine"
        if _name in _MACHINE_NAMES
        else next(
            p
            for p, cls in (
                ("point", Point),
                ("timing", Timing),
                ("parity", Parity),
                ("compute", Compute),
            )
            if _name in {f.name for f in fields(cls)}
        )
    )
    FLAT[_name] = (_part, {**_PARITY_NAMES, **_MACHINE_NAMES}.get(_name, _name))
PART_CLASSES = {
    "point": Point,
    "timing": Timing,
    "parity": Parity,
    "compute": Compute,
    "machine": MachineState,
}
PARTS = tuple(PART_CLASSES)


def _field(part: str, name: str) -> Any:
    """The dataclass field behind a flat name (``machine_state``'s: the readings', whose
    type and default it has)."""
    name = "readings" if (part, name) == ("machine", "state") else name
    return next(f for f in fields(PART_CLASSES[part]) if f.name == name)


def _default(part: str, name: str) -> Any:
    """A flat field's value when its part is absent (a point never timed or checked)."""
    if part == "parity" and name == "status":
        return "off"
    f = _field(part, name)
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None if f.default is MISSING else f.default


def flat_fields() -> list[tuple[str, str, Any]]:
    """(name, annotation, default) of each flat field, in order: the stored row's schema
    (engine.storage.schema builds its checked row from this)."""
    out = []
    for name, (part, attr) in FLAT.items():
        f = _field(part, attr)
        annotation = str(f.type)
        required = part == "point" and f.default is MISSING and f.default_factory is MISSING
        if not required and f.default is MISSING and f.default_factory is MISSING:
            annotation = annotation if "None" in annotation else f"{annotation} | None"
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        out.append(
            (name, annotation, MISSING if required else (None if default is MISSING else default))
        )
    return out


class ResultRow:
    """One measurement (or one skipped / failed point) of a sweep, made of its parts.

    Built from parts (``ResultRow(Point(...), timing=..., parity=...)``) or, for a record
    read back or written by hand, from flat names (``ResultRow(model=..., p50_ms=...)``).
    """

    __slots__ = PARTS

    def __init__(self, *parts: Any, **flat: Any) -> None:
        if parts and isinstance(parts[0], Point):
            given = dict(zip(PARTS, parts, strict=False))
            given.update({k: flat.pop(k) for k in PARTS[1:] if k in flat})
            if flat:
                raise TypeError(f"flat values beside parts: {', '.join(flat)}")
        else:  # flat, as a stored record (positionally in its order: model, backend, ...)
            positional = dict(zip(FLAT, parts, strict=False))
            given = _split({**positional, **flat})
        for part in PARTS:
            object.__setattr__(self, part, given.get(part))
        # A point always has a compute and a machine part (empty until measured).
        object.__setattr__(self, "compute", self.compute or Compute())
        object.__setattr__(self, "machine", self.machine or MachineState())

    def to_dict(self) -> dict[str, Any]:
        """The flat record (the keys rows were always stored with, in their order)."""
        out = {name: getattr(self, name) for name in FLAT}
        for key in ("options", "machine_state"):  # a copy: the record is not the row
            out[key] = dict(out[key]) if isinstance(out[key], dict) else out[key]
        if out["image_width"] is None:  # square: rows stored before non-square sizes match
            del out["image_width"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultRow:
        return cls(**{k: v for k, v in data.items() if k in FLAT})

    def to_json(self) -> str:
        # allow_nan=False: a NaN measurement is stored as null, never as invalid JSON.
        return json.dumps(finite(self.to_dict()), allow_nan=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResultRow) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment] - a row changes as it is measured

    def __repr__(self) -> str:
        return (
            f"ResultRow({self.point!r}, timing={self.timing!r}, parity={self.parity!r},"
            f" machine={self.machine!r})"
        )


def _split(flat: dict[str, Any]) -> dict[str, Any]:
    """A flat record's parts: a timing when it was timed (a latency or rate is there), a parity when it
    was judged (its status, or from older rows its ``parity_ok``, is not "off")."""
    unknown = [k for k in flat if k not in FLAT]
    if unknown:
        raise TypeError(f"ResultRow has no field {unknown[0]!r}")
    by_part: dict[str, dict[str, Any]] = {p: {} for p in PART_CLASSES}
    for name, value in flat.items():
        part, attr = FLAT[name]
        by_part[part][attr] = value
    timing = by_part["timing"]
    parity = by_part["parity"]
    if not parity.get("status"):  # rows stored before "not judged" existed had only parity_ok
        parity["status"] = PARITY_FROM_OK.get(parity.get("ok"), "off")
    return {
        "point": Point(**by_part["point"]),
        "timing": Timing(**{**_none_timing(), **timing}) if _timed(timing) else None,
        "parity": None if parity["status"] == "off" else Parity(**{**_none_parity(), **parity}),
        "compute": Compute(**by_part["compute"]),
        "machine": MachineState.from_flat(**by_part["machine"]),
    }


def _timed(timing: dict[str, Any]) -> bool:
    """A record was timed when any of its latency or rate figures is there."""
    return any(timing.get(name) is not None for name in _none_timing())


def _required(part: type) -> dict[str, Any]:
    """None for each field of ``part`` that has no default (one with a factory keeps it)."""
    return {
        f.name: None for f in fields(part) if f.default is MISSING and f.default_factory is MISSING
    }


def _none_timing() -> dict[str, Any]:
    return _required(Timing)


def _none_parity() -> dict[str, Any]:
    return _required(Parity)


def _flat_property(name: str, part: str, attr: str) -> property:
    def get(self: ResultRow) -> Any:
        whole = getattr(self, part)
        return _default(part, attr) if whole is None else getattr(whole, attr)

    def put(self: ResultRow, value: Any) -> None:
        whole = getattr(self, part)
        if whole is None:  # a value for a part the point did not have yet
            whole = PART_CLASSES[part](**(_none_timing() if part == "timing" else _none_parity()))
            object.__setattr__(self, part, whole)
        setattr(whole, attr, value)

    return property(get, put, doc=f"``{part}.{attr}`` as the flat record names it")


for _name, (_part, _attr) in FLAT.items():
    setattr(ResultRow, _name, _flat_property(_name, _part, _attr))
