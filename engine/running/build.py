"""Building engines ahead of time, without measuring: what the ``build`` command and the
Engines page's button do.

A backend that builds engines worth keeping (``BUILDS_ENGINES``: a compiled model, kept as
a package per batch size) is prepared and run once per batch; its runner builds the
engine, or finds it cached, and says which. With no precision or options given, what is
built is what auto mode would try on the device, so auto mode then finds it cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from engine.backends import get_backend
from engine.backends.base import PrepareContext
from engine.core.config import RunnerSpec
from engine.core.errors import BadInput
from engine.running.locks import device_lock


def builders() -> list[str]:
    """Backends this module builds for (one with a build command of its own is not one)."""
    from engine.backends import backend_names

    return [
        n
        for n in backend_names()
        if get_backend(n).BUILDS_ENGINES and not get_backend(n).BUILD_COMMAND
    ]


def build_specs(
    backend: str, device: str, precisions: list[str] | None, options: dict[str, Any]
) -> list[RunnerSpec]:
    """The configurations to build: each precision with the options (and the backend's
    build options); with neither given, the slow candidates auto mode tries on ``device``."""
    b = get_backend(backend)
    for precision in precisions or []:
        if precision not in b.PRECISIONS:
            raise _elsewhere(b, precision)
    if not b.BUILDS_ENGINES:
        routes = [b.precision_route(p) for p in dict.fromkeys(precisions or [])]
        raise BadInput(
            f"the {b.TITLE} backend builds nothing ahead of time",
            "its runners are made when a sweep starts, in seconds",
            "; ".join(routes) or f"use --backend {', '.join(builders())}",
        )
    if not precisions and not options:
        return [
            RunnerSpec(b.NAME, device, c.precision, c.options)
            for c in b.auto_ladder(device)
            if c.slow
        ]
    merged = {**options, **b.BUILD_OPTIONS}
    return [RunnerSpec(b.NAME, device, p, merged) for p in dict.fromkeys(precisions or ["fp32"])]


def _elsewhere(b: Any, precision: str) -> BadInput:
    """A precision the backend does not have: where it is made instead, asked of every
    backend (int8 is a TensorRT plan, or ONNX Runtime's quantised model: not one build)."""
    from engine.backends import backend_names

    routes = [
        f"{get_backend(n).TITLE}: {route}"
        for n in backend_names()
        if n != b.NAME and (route := get_backend(n).precision_route(precision))
    ]
    verb = f"builds no {precision} engine" if b.BUILDS_ENGINES else f"does not run {precision}"
    return BadInput(
        f"{b.TITLE} {verb}",
        f"its precisions are {', '.join(b.PRECISIONS)}",
        "; ".join(routes) or "choose one of those precisions",
    )


def build_engine(
    spec: RunnerSpec, art: Any, batch: int, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Build (or find cached) ``spec``'s engine for ``batch``; the facts of what happened."""
    from engine.backends import describe

    ctx = PrepareContext(batches=(batch,), progress=progress)
    t0 = time.perf_counter()
    with get_backend(spec.backend).prepare(spec, art, ctx) as runner:
        # A build times kernels (max-autotune) and fills the cores: never while another
        # process measures on the device, which would skew both.
        with device_lock(spec.device, on_wait=progress):
            runner.infer(art.sample_input(batch))
        info = dict(runner.info)
    return {
        "configuration": describe(spec),
        "batch": batch,
        "engine": info.get("engine", ""),
        "built": info.get("engine") == "built now",
        "key": info.get("engine_key", ""),
        "build_s": info.get("build_s"),
        "load_s": info.get("load_s"),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def build_text(done: dict[str, Any]) -> str:
    """One line for a built (or found) engine."""
    build_s, load_s = done.get("build_s") or 0.0, done.get("load_s") or 0.0
    how = (
        f"built in {build_s:.0f} s"
        if done["built"]
        else f"already cached (built in {build_s:.0f} s), loaded in {load_s:.1f} s"
    )
    return f"{done['configuration']}, batch {done['batch']}: {how}; key {done['key']}"


def standalone_builders() -> list[str]:
    """Backends with a build command of their own (TensorRT's ``trt-build``): they build an
    engine without running it, where nothing could run it (TensorRT-RTX without a GPU)."""
    from engine.backends import backend_names

    return [n for n in backend_names() if get_backend(n).BUILD_COMMAND]


def _typed(backend: str, options: dict[str, Any]) -> Any:
    """The selection's options as ``backend``'s typed options (others' names ignored)."""
    from engine.core.options import validate

    b = get_backend(backend)
    return validate(b.Options, options, b.TITLE)


def standalone_note(backend: str, precisions: tuple[str, ...], options: dict[str, Any]) -> str:
    """What :func:`build_standalone` would build for this selection, in the backend's words
    (BadInput where it builds nothing of it)."""
    return get_backend(backend).standalone_note(tuple(precisions), _typed(backend, options))


def build_standalone(
    backend: str,
    art: Any,
    precisions: tuple[str, ...],
    batches: tuple[int, ...],
    options: dict[str, Any],
    progress: Callable[[str], None] | None = None,
) -> list[Any]:
    """Build ``backend``'s engines for the selection without running them (its
    ``BuiltEngine`` per precision it builds)."""
    return get_backend(backend).build_standalone(
        art, tuple(precisions), tuple(batches), _typed(backend, options), progress
    )
