"""Compiled engines: one AOTInductor package per key, built once, loaded in seconds.

``torch.compile`` compiles on the first call of every new process: it traces the model,
generates kernels and, in max-autotune, times several per layer, minutes per input shape.
Its shared on-disk caches shorten a second start but still trace, and no single entry can
be listed or removed. A packaged engine is the other way, the way TensorRT plans are kept:
``torch.export`` plus ``aoti_compile_and_package`` writes one self-contained ``.pt2`` file per
key under ``cache_dir()/"compiled"/<name>/`` with a ``meta.json`` (the key, the file's
SHA-256, build time, size); ``aoti_load_package`` loads it with no tracing, compiling or
autotuning. The key holds everything that makes one engine differ from another: weights
hash, input shape, precision, compile settings, the torch/Triton/CUDA versions, the
torchvision version whose code made the model, and the device. Nothing here imports torch at import time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from engine.artifacts.cache import build_lock, recorded_seconds
from engine.artifacts.models import torchvision_version
from engine.core.errors import BadInput
from engine.core.hashing import file_sha256
from engine.core.paths import cache_dir
from engine.core.safeio import write_text

# bump when what goes into a package changes (2: the CPU thread count; 3: the mode compiled,
# not the mode asked for; 4: the torchvision version)
SCHEMA = 4
KIND = "compiled"
PACKAGE = "model.pt2"
# torch.compile's modes whose speed comes with CUDA graphs, and the mode each compiles the
# same package as: a package has none of its own (the build drops Inductor's
# ``triton.cudagraphs``), so its runner captures one per shape (as Inductor's cudagraph
# trees do for the JIT path). Keyed by the mode compiled, trying both modes of a pair
# builds one package, not two identical ones minutes apart.
GRAPHLESS = {"max-autotune": "max-autotune-no-cudagraphs", "reduce-overhead": "default"}
GRAPH_MODES = tuple(GRAPHLESS)
VERSIONED = ("torch_version", "triton_version", "cuda_version")
RECORD_MAX = 1 << 20  # a record is a few hundred bytes: anything far larger is not ours
LONGEST_BUILD_S = 7 * 86400.0  # a recorded build time beyond a week is not a build time


@dataclass(frozen=True)
class EngineKey:
    """Everything that makes one compiled engine differ from another."""

    model: str
    weights_hash: str
    batch: int
    channels: int
    height: int
    width: int
    precision: str
    compiled_mode: str  # the mode whose kernels are compiled: see package_mode
    freezing: bool
    channels_last: bool
    torch_version: str
    triton_version: str
    cuda_version: str
    device_name: str  # the GPU's name, or "cpu", its instruction set, model and flags
    compute_capability: str  # "9.0"; "" on the CPU
    # Inductor writes CPU code for the thread count of the process that compiles it (one
    # thread: no OpenMP loops at all); 0 on a GPU.
    cpu_threads: int = 0
    # torchvision's model code can change between releases with the same weights; "" for
    # a model whose code is not torchvision's
    torchvision_version: str = ""
    schema: int = SCHEMA

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    @property
    def name(self) -> str:
        """The cache key as shown to users: model, batch, precision and a digest of the rest."""
        slug = re.sub(r"[^A-Za-z0-9]+", "-", self.model).strip("-").lower()[:32] or "model"
        return f"aoti-{slug}-b{self.batch}-{self.precision}-{self.digest()[:20]}"

    @property
    def folder(self) -> Path:
        return cache_dir() / KIND / self.name

    @property
    def package(self) -> Path:
        return self.folder / PACKAGE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineKey | None:
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) != names:
            return None
        try:
            return cls(**data)
        except TypeError:
            return None


def package_mode(mode: str) -> str:
    """The torch.compile mode a package for ``mode`` is compiled in: ``mode`` without its
    CUDA graphs, which the runner captures itself where ``mode`` asks for them."""
    return GRAPHLESS.get(mode, mode)


def key_meaning(meta: dict[str, Any]) -> str:
    """What a cached engine's key means, for `cache list` and the Engines page: the mode
    compiled and the mode that also loads it and captures a CUDA graph at run time ("" for
    a record of an older key, which names no compiled mode)."""
    key = meta.get("key")
    compiled = key.get("compiled_mode") if isinstance(key, dict) else None
    if not isinstance(compiled, str) or compiled not in GRAPHLESS.values():  # a record is data
        return ""
    (graph_mode,) = (m for m, plain in GRAPHLESS.items() if plain == compiled)
    if str(key.get("device_name", "")).startswith("cpu"):
        return f"mode {compiled}; {graph_mode} loads it too (no CUDA graph on the CPU)"
    return f"mode {compiled}; {graph_mode} loads it too and captures a CUDA graph at run time"


def device_identity(device: str) -> tuple[str, str]:
    """(device name, compute capability) of ``device``: the GPU that will run the engine,
    or the CPU's instruction set (generated C++ is built for it)."""
    import torch

    from engine.core.devices import parse_device

    kind, index = parse_device(device)
    if kind == "cuda":
        cap = torch.cuda.get_device_capability(index)
        return torch.cuda.get_device_name(index), f"{cap[0]}.{cap[1]}"
    from engine.hardware.env import cpu_model

    flags = cpu_flags_digest()
    tail = f", flags {flags}" if flags else ""
    return f"cpu {torch.backends.cpu.get_cpu_capability()} ({cpu_model()}{tail})", ""


def cpu_flags_digest() -> str:
    """A short digest of this CPU's instruction-set flags ("" where /proc/cpuinfo has none).

    Inductor compiles CPU code with ``-march=native``: an engine built on one AVX-512 CPU
    may use instructions (AMX, AVX512-FP16, ...) another AVX-512 CPU lacks, and a cache
    shared by both (a network home folder) would load it there and die of SIGILL."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    words = sorted(set(line.split(":", 1)[1].split()))
                    return hashlib.sha256(" ".join(words).encode()).hexdigest()[:12]
    except OSError:
        pass
    return ""


def library_versions() -> dict[str, str]:
    """The versions an engine is built against (an engine of other versions is stale)."""
    import torch

    try:
        from importlib import metadata

        triton = metadata.version("triton")
    except Exception:  # noqa: BLE001 - no Triton (the CPU wheel) is a version of its own
        triton = ""
    return {
        "torch_version": torch.__version__,
        "triton_version": triton,
        "cuda_version": torch.version.cuda or "",
    }


def current_versions() -> dict[str, str]:
    """The versions a cached engine is judged against: the libraries it is built with and
    torchvision, whose code makes the models."""
    return {**library_versions(), "torchvision_version": torchvision_version()}


def _read_record(folder: Path) -> dict[str, Any]:
    """``folder``'s meta.json as a dict, {} unless it is a regular file of ours: a link is
    not followed, and a FIFO or device planted there is never opened for a blocking read."""
    try:
        fd = os.open(folder / "meta.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return {}
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return {}
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = json.loads(f.read(RECORD_MAX + 1))
    except (OSError, ValueError):
        return {}
    finally:
        os.close(fd)
    return data if isinstance(data, dict) else {}


def _real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def _regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _root() -> Path:
    """The cache's ``compiled/`` folder, refused when it is a link (or not a folder): engines
    are written and removed only inside the cache, never where a link points."""
    root = cache_dir() / KIND
    if root.is_symlink() or (root.exists() and not _real_dir(root)):
        raise BadInput(
            f"{root} is not a folder of the cache (a symbolic link or a file)",
            "compiled engines are only written inside the artifact cache",
            "remove it; the next build makes the folder again",
        )
    return root


def record(key: EngineKey) -> dict[str, Any]:
    """The stored record of a cached engine, {} if there is none or it is unreadable."""
    if not _real_dir(key.folder):
        return {}
    return _read_record(key.folder)


def lookup(key: EngineKey) -> tuple[Path | None, str]:
    """The cached package for ``key`` after its hash check, or (None, why it was not used).

    The note is empty for a plain miss; a mismatched or damaged entry is removed with a
    note, because the rebuild it causes takes minutes and should not be a mystery.
    """
    if not key.folder.exists() and not key.folder.is_symlink():
        return None, ""
    meta = record(key)
    problem = ""
    if not _real_dir(key.folder):
        problem = "its folder is not a folder (a symbolic link or a file)"
    elif not meta and any(p.name.startswith("pre.") for p in key.folder.iterdir()):
        problem = "a build of it was killed before it finished"  # we hold its lock: none runs
    elif not meta:
        problem = "its record is missing or unreadable"
    elif meta.get("key") != key.to_dict():
        problem = "its record belongs to other build settings"
    elif key.package.is_symlink() or (key.package.exists() and not _regular_file(key.package)):
        problem = "its package is not a regular file (a symbolic link is never followed)"
    else:
        try:
            if file_sha256(key.package) != meta.get("sha256"):
                problem = "its SHA-256 does not match the recorded one (truncated or altered)"
        except OSError as exc:
            problem = f"its package could not be read ({type(exc).__name__})"
    if not problem:
        return key.package, ""
    discard(key)
    return None, f"the cached compiled engine {key.name} was discarded: {problem}; rebuilding"


def discard(key: EngineKey) -> None:
    """Remove ``key``'s entry; a link or file in its place is unlinked, never followed."""
    if _real_dir(key.folder):
        shutil.rmtree(key.folder, ignore_errors=True)
    else:
        try:
            key.folder.unlink(missing_ok=True)
        except OSError:
            pass


def is_cached(key: EngineKey) -> bool:
    """Cheap: the package and a record of this key exist, of the recorded size (no hash
    check). A truncated package (a full disk, a killed copy) is not counted as cached:
    auto mode would try it, discard it and compile for minutes unasked."""
    if not _regular_file(key.package):
        return False
    meta = record(key)
    return meta.get("key") == key.to_dict() and meta.get("bytes") == key.package.stat().st_size


def build(
    key: EngineKey,
    compile_package: Callable[[str], None],
    facts: dict[str, Any],
    progress: Callable[[str], None] | None = None,
) -> tuple[Path, float, bool]:
    """The package for ``key``: from the cache, else made by ``compile_package(path)`` and
    cached. Returns (path, build seconds, built now). One build per key at a time: a second
    process waits for the first and then loads what it made."""
    root = _root()
    # One build per key at a time; `cache prune` reads the lock: an entry whose lock is
    # free holds no live build, so a ``pre.*`` folder there is a killed build's.
    with build_lock(key.folder, "compiled engine", progress):
        path, note = lookup(key)
        if note and progress:
            progress(note)
        if path is not None:
            return path, _build_seconds(record(key)) or 0.0, False
        root.mkdir(parents=True, exist_ok=True)
        key.folder.mkdir(exist_ok=True)
        # A private folder named "pre.*", made before the minutes of compiling: `cache prune`
        # leaves an entry holding one alone, and nobody can plant a link at the name the
        # compiler writes to (a link there would have the package written over its target).
        private = Path(tempfile.mkdtemp(prefix="pre.", dir=key.folder))
        partial = private / PACKAGE
        t0 = time.perf_counter()
        try:
            compile_package(str(partial))
            build_s = time.perf_counter() - t0
            digest = file_sha256(partial)
            size = partial.stat().st_size
            os.replace(partial, key.package)
        finally:
            shutil.rmtree(private, ignore_errors=True)
            with contextlib.suppress(OSError):  # a failed or interrupted build: no entry
                key.folder.rmdir()  # only when empty
        meta = {
            **facts,
            "key": key.to_dict(),
            "sha256": digest,
            "bytes": size,
            "build_s": round(build_s, 1),
            "created": time.time(),
            "model": key.model,
            "precision": key.precision,
            "batch": key.batch,
        }
        write_text(key.folder / "meta.json", json.dumps(meta, indent=1), "the engine's record")
        return key.package, build_s, True


def _number(value: Any, high: float) -> float | None:
    """``value`` as a float from 0 to ``high``; None for anything else (a record is data:
    a string, a bool, NaN, an infinity or 1e300 is no time)."""
    seconds = recorded_seconds(value)
    return seconds if seconds is not None and seconds <= high else None


def _build_seconds(meta: dict[str, Any]) -> float | None:
    return _number(meta.get("build_s"), LONGEST_BUILD_S)


def entries() -> list[dict[str, Any]]:
    """Every cached engine's record (unreadable ones left out), newest first."""
    root = cache_dir() / KIND
    out = []
    if _real_dir(root):
        for folder in root.iterdir():
            data = _read_record(folder) if _real_dir(folder) else {}
            if isinstance(data.get("key"), dict):
                out.append(data)
    return sorted(out, key=lambda d: -(_number(d.get("created"), math.inf) or 0.0))


def estimate_s(key: EngineKey) -> float | None:
    """A build time to expect for ``key``, from earlier builds: the same model, device and
    compiled mode (the nearest batch), else None."""
    best: tuple[int, float] | None = None
    for data in entries():
        k = data["key"]
        same = all(k.get(f) == getattr(key, f) for f in ("model", "device_name", "compiled_mode"))
        build_s, batch = _build_seconds(data), k.get("batch")
        if same and build_s is not None and isinstance(batch, int) and not isinstance(batch, bool):
            gap = abs(batch - key.batch)
            if best is None or gap < best[0]:
                best = (gap, build_s)
    return best[1] if best else None


def no_estimate(on_cpu: bool) -> str:
    """What to expect of a first build, with no earlier one here to estimate from."""
    expect = (
        "on the CPU, a C++ compile of every kernel: seconds to minutes, with the model's size"
        if on_cpu
        else "minutes on a GPU"
    )
    return f"no earlier build of this model here to estimate from; {expect}"


def estimate_text(key: EngineKey) -> str:
    seconds = estimate_s(key)
    if seconds is None:
        return no_estimate(not key.compute_capability)
    return f"about {seconds:.0f} s, from an earlier build of {key.model} on this device"


def stale_reason(meta: dict[str, Any], current: dict[str, str] | None = None) -> str:
    """Why a cached engine can no longer be loaded here ("" when it still matches): a
    library version changed since it was built (torchvision's only for an engine of a
    torchvision model: its key names a version)."""
    key = meta.get("key")
    if not isinstance(key, dict):
        return ""
    now = current if current is not None else current_versions()
    names = [*VERSIONED, *(["torchvision_version"] if key.get("torchvision_version") else [])]
    changed = [
        f"{name.removesuffix('_version')} {key.get(name) or 'none'} → {now[name] or 'none'}"
        for name in names
        if name in now and key.get(name) != now[name]
    ]
    if changed:
        return f"stale: built with other versions ({', '.join(changed)})"
    if key.get("schema") != SCHEMA:
        return "stale: keyed by an older release of this tool (its key lacks what it now holds)"
    return ""
