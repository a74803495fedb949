"""Where a warm start's seconds go (``compiled_engines.py --profile-load``): the winner
prepared and run once under cProfile in a fresh process, what its cached package holds,
and whether the driver JIT-compiled anything while it loaded."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def profile_load(request: str) -> None:
    """A fresh process that prepares the winner and runs it once under cProfile: where a
    warm start's seconds go (a cached package loaded in 31 to 37 s on an H100 on 2026-12-07,
    against 0.0 s in the process that had just built it). Prints the profile's top lines."""
    import cProfile
    import io
    import pstats

    from engine.artifacts.models import load_artifacts
    from engine.backends import get_backend
    from engine.backends.base import PrepareContext
    from engine.core.config import ModelSpec, RunnerSpec

    r = json.loads(request)
    art = load_artifacts(ModelSpec(r["model"], "random", r["image_size"]))
    x = art.sample_input(r["batch"])
    spec = RunnerSpec(r["backend"], r["device"], r["precision"], r["options"])
    ctx = PrepareContext(batches=(r["batch"],), progress=lambda m: print(m, file=sys.stderr))
    package_summary(spec, art, r["batch"])
    jit_cache = Path(os.environ.get("CUDA_CACHE_PATH", Path.home() / ".nv" / "ComputeCache"))
    jit_before = folder_bytes(jit_cache)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    with get_backend(spec.backend).prepare(spec, art, ctx) as runner:
        runner.infer(x)
    prof.disable()
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(15)
    print(f"prepared and ran once in {time.perf_counter() - t0:.1f} s; notes: {ctx.notes}")
    grown = folder_bytes(jit_cache) - jit_before  # the driver JIT-compiling PTX fills it
    print(f"CUDA JIT cache grew by {grown} bytes while it loaded and ran")
    print(text.getvalue().replace(str(ROOT), "<repository>"))


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def package_summary(spec, art, batch: int) -> None:
    """What the cached package holds, by kind: kernels as cubin (loaded as they are), PTX or
    fatbin (which the driver may JIT-compile on load), the shared library, weights."""
    import zipfile
    from collections import Counter

    from engine.backends.compiled import TorchCompileBackend

    if spec.backend != TorchCompileBackend.NAME or not dict(spec.options).get("packaged"):
        return  # no package: the winner compiles in memory, or is not compiled
    package = TorchCompileBackend.engine_key(spec, art, batch).package
    if not package.is_file():
        print(f"no cached package at the key {package.parent.name}")
        return
    kinds: Counter = Counter()
    sizes: Counter = Counter()
    with zipfile.ZipFile(package) as z:
        for item in z.infolist():
            kind = Path(item.filename).suffix or "(none)"
            kinds[kind] += 1
            sizes[kind] += item.file_size
    print(f"package {package.parent.name}: {package.stat().st_size} bytes")
    for kind, n in kinds.most_common():
        print(f"  {kind}: {n} files, {sizes[kind]} bytes")
