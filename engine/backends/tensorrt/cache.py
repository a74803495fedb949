"""TensorRT's on-disk caches: built plans, timing and runtime caches, the optimisation profile.

A plan is only valid for the TensorRT flavour and version, GPU and build settings that
made it, so its key holds all of them (flavour, version, GPU name, compute capability,
target compute capabilities, ONNX hash, precision, profile, workspace limit, optimisation
level, build path). A TensorRT-RTX plan built without a GPU has no build GPU: its key
names the compute capabilities it targets instead. Plans live under
``cache_dir()/"tensorrt"/plan-<key>/`` with a ``meta.json`` that records the plan's
SHA-256; a plan is handed to TensorRT only after that hash matches, and a plan whose
record is missing, unreadable or mismatched is removed with a note so it gets rebuilt.
The timing cache (kernel timings TensorRT measured) is keyed by TensorRT version and GPU
only, so every build on that GPU reuses it. TensorRT-RTX compiles kernels just in time
when a plan is loaded; its runtime cache keeps them, beside the plans, keyed by version
and the GPU it runs on. Nothing here imports TensorRT.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.core.errors import BadInput
from engine.core.paths import cache_dir

# Bump when what we put into a plan changes (e.g. the profiling verbosity), so old plans
# are not reused for a build that would differ.
PLAN_SCHEMA = 3  # 3: the image size is part of the key (a dynamic height and width)
PLAN_FILE = "plan.engine"
TIMING_FILE = "timing.cache"
RUNTIME_FILE = "runtime.cache"
DEFAULT_WORKSPACE_MB = 4096
DEFAULT_OPT_LEVEL = 3
MAX_OPT_LEVEL = 5


def trt_root() -> Path:
    root = cache_dir() / "tensorrt"
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass(frozen=True)
class BatchProfile:
    """The batch range an engine accepts (``min_batch`` ≤ batch ≤ ``max_batch``)."""

    min_batch: int
    opt_batch: int
    max_batch: int

    def contains(self, batch: int) -> bool:
        return self.min_batch <= batch <= self.max_batch

    def shapes(self, tail: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
        """(min, opt, max) input shapes for an input of shape (batch, *tail)."""
        return tuple((b, *tail) for b in (self.min_batch, self.opt_batch, self.max_batch))

    @property
    def label(self) -> str:
        return f"batch {self.min_batch}..{self.max_batch} (tuned for {self.opt_batch})"


def profile_for(
    batches: tuple[int, ...] | list[int],
    opt_batch: int | None = None,
    max_batch: int | None = None,
    fixed_batch: int | None = None,
    extra: tuple[int, ...] = (),
) -> BatchProfile:
    """The profile for a sweep: min 1, opt the chosen (default: largest) batch, max the largest.

    ``extra`` are batches that must also fit (the parity check's batch); ``fixed_batch`` is
    a user ONNX file's fixed batch, which pins all three.
    """
    if fixed_batch:
        return BatchProfile(fixed_batch, fixed_batch, fixed_batch)
    wanted = [int(b) for b in (*batches, *extra)]
    if not wanted or min(wanted) < 1:
        raise BadInput("a TensorRT profile needs batch sizes of at least 1", fix="use e.g. 1,8,32")
    top = max(wanted)
    if max_batch is not None:
        if max_batch < top:
            raise BadInput(
                f"the TensorRT option max_batch={max_batch} is smaller than batch {top}",
                "an engine only accepts batches inside its optimisation profile",
                f"set max_batch to at least {top}, or leave it out",
            )
        top = max_batch
    opt = opt_batch if opt_batch is not None else max(int(b) for b in batches or [top])
    if not 1 <= opt <= top:
        raise BadInput(
            f"the TensorRT option opt_batch={opt} is outside the profile 1..{top}",
            fix=f"choose opt_batch between 1 and {top}",
        )
    return BatchProfile(1, opt, top)


def sweep_profile(
    batches: tuple[int, ...] | list[int],
    opt_batch: int | None = None,
    max_batch: int | None = None,
    fixed_batch: int | None = None,
) -> BatchProfile:
    """The profile a sweep's runner builds and looks up: its batches and the parity check's.

    ``trt-build`` and the Engines page build with it too, so the plan they make on a GPU
    for some batches is the one a sweep of those batches there finds in the cache."""
    from engine.core.parity import PARITY_BATCH

    return profile_for(batches, opt_batch, max_batch, fixed_batch, extra=(PARITY_BATCH,))


def options_profile(
    opts: Mapping[str, Any], batches: tuple[int, ...] | list[int], fixed_batch: int | None = None
) -> BatchProfile:
    """The sweep's profile with a spec's ``opt_batch`` and ``max_batch`` options: what a
    sweep's runner, ``trt-build`` and the Engines page build and look up."""
    return sweep_profile(
        batches,
        opt_batch=opts.get("opt_batch"),
        max_batch=opts.get("max_batch"),
        fixed_batch=fixed_batch,
    )


def check_batch(batch: int, profile: BatchProfile) -> None:
    """Raise BadInput for a batch the engine was not built for."""
    if not profile.contains(batch):
        raise BadInput(
            f"batch {batch} is outside the TensorRT engine's profile ({profile.label})",
            "a TensorRT engine accepts only the batch range it was built for",
            f"rebuild with a larger maximum: include {batch} in the sweep's batches"
            f" or set the tensorrt option max_batch={batch}",
        )


@dataclass(frozen=True)
class PlanKey:
    """Everything that makes one built plan different from another."""

    trt_version: str
    gpu_name: str
    compute_capability: str
    onnx_sha256: str
    precision: str
    build_path: str  # "10.x-flags" or "11.x-strong"
    min_batch: int
    opt_batch: int
    max_batch: int
    workspace_mb: int
    opt_level: int
    schema: int = PLAN_SCHEMA
    flavour: str = "full"  # "full" TensorRT or "rtx" (TensorRT for RTX)
    targets: str = ""  # RTX: the compute capabilities the plan was built for, e.g. "8.6,8.9"
    # HEIGHTxWIDTH the profile gives a symbolic height and width (a plan built for 40x56
    # does not take 224x224); said for every file, so a fixed file's key says its size too
    image_hw: str = ""

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    @property
    def folder(self) -> Path:
        return trt_root() / self.name

    @property
    def name(self) -> str:
        """The cache key as shown to users: flavour, targets and a digest of the rest."""
        where = f"sm{self.targets.replace('.', '').replace(',', '-')}" if self.targets else ""
        parts = ["plan", "rtx" if self.flavour == "rtx" else "", where, self.digest()[:32]]
        return "-".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_plan(key: PlanKey) -> tuple[bytes | None, str]:
    """The cached plan for ``key`` after its hash check, or (None, why it was not used).

    The note is empty for a plain miss; a corrupt or mismatched entry is removed and the
    note says so, because the rebuild it causes costs minutes and should not be a mystery.
    """
    folder = key.folder
    plan_file, meta_file = folder / PLAN_FILE, folder / "meta.json"
    if not folder.exists():
        return None, ""
    problem = ""
    try:
        record = json.loads(meta_file.read_text())
        data = plan_file.read_bytes()
        if record.get("key") != key.to_dict():
            problem = "its record belongs to other build settings"
        elif record.get("sha256") != _sha(data):
            problem = "its SHA-256 does not match the recorded one (truncated or altered)"
    except (OSError, ValueError) as exc:
        problem = f"its files could not be read ({type(exc).__name__})"
    if not problem:
        return data, ""
    discard_plan(key)
    return None, f"the cached TensorRT plan {folder.name} was discarded: {problem}; rebuilding"


def store_plan(key: PlanKey, plan: bytes, record: dict[str, Any] | None = None) -> Path:
    """Write a plan and its hash record; the rename makes a half-written plan impossible."""
    folder = key.folder
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{PLAN_FILE}.{os.getpid()}.tmp"
    tmp.write_bytes(plan)
    os.replace(tmp, folder / PLAN_FILE)
    meta = {
        **(record or {}),
        "key": key.to_dict(),
        "sha256": _sha(plan),
        "bytes": len(plan),
        "created": time.time(),
    }
    tmp_meta = folder / f"meta.{os.getpid()}.tmp"
    tmp_meta.write_text(json.dumps(meta, indent=1))
    os.replace(tmp_meta, folder / "meta.json")
    return folder / PLAN_FILE


def plan_record(key: PlanKey) -> dict[str, Any]:
    """The stored record of a cached plan (build time, layer log), {} if there is none."""
    try:
        record = json.loads((key.folder / "meta.json").read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def discard_plan(key: PlanKey) -> None:
    shutil.rmtree(key.folder, ignore_errors=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()[:40]


def _gpu_cache_file(kind: str, file: str, version: str, gpu_name: str, cc: str) -> Path:
    ident = f"{version}|{gpu_name}|{cc}"
    digest = hashlib.sha256(ident.encode()).hexdigest()[:12]
    gpu = _slug(gpu_name) or "no-gpu"
    return trt_root() / f"{kind}-{gpu}-trt{_slug(version)}-{digest}" / file


def timing_cache_file(trt_version: str, gpu_name: str, compute_capability: str) -> Path:
    """Where the timing cache for this TensorRT version and GPU lives."""
    return _gpu_cache_file("timing", TIMING_FILE, trt_version, gpu_name, compute_capability)


def runtime_cache_file(rtx_version: str, gpu_name: str, compute_capability: str) -> Path:
    """Where TensorRT-RTX's runtime cache (JIT-compiled kernels) for this GPU lives.

    Beside the plans and keyed by the GPU that runs them, not by the plan: the same
    kernels serve every plan loaded on that GPU, and another GPU needs its own.
    """
    return _gpu_cache_file("runtime", RUNTIME_FILE, rtx_version, gpu_name, compute_capability)


def read_timing_cache(path: Path) -> bytes:
    """The stored timing (or runtime) cache, or b"" (TensorRT then starts an empty one)."""
    try:
        return path.read_bytes()
    except OSError:
        return b""


read_runtime_cache = read_timing_cache


def write_timing_cache(path: Path, data: bytes, record: dict[str, Any] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    meta = {**(record or {}), "sha256": _sha(data), "bytes": len(data), "created": time.time()}
    (path.parent / "meta.json").write_text(json.dumps(meta, indent=1))


write_runtime_cache = write_timing_cache
