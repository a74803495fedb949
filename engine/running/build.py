"""Building engines ahead of time, without measuring: what the ``build`` command and the
Engines page's button do.

A backend that builds engines worth keeping (``BUILDS_ENGINES``: a compiled model, kept as
a package per batch size) is prepared and run once per batch; its runner builds the
engine, or finds it cached, and says which. With no precision or options given, what is
built is what auto mode would try on the device, so auto mode then finds it cached.

Both run the build in a child process (:func:`build_in_child`): a native crash of a compiler
or loader while it builds or loads (torch 2.11's package loader on an H100 died so) ends
that child, not the terminal's command with a bare exit 139 or the dashboard's server.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from engine.backends import get_backend
from engine.backends.base import PrepareContext
from engine.core.config import ModelSpec, RunnerSpec
from engine.core.errors import BadInput, EngineError
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


BUILD_CHILD = "VISIONBENCH_BUILD_CHILD"  # set in the child: it builds in its own process


def in_build_child() -> bool:
    return os.environ.get(BUILD_CHILD) == "1"


def build_argv(model: ModelSpec, backend: str, device: str, batches: Iterable[int]) -> list[str]:
    """``python -m engine build``'s arguments for a torchvision model (the Engines page's
    selection), into this process's cache folder, facts as JSON."""
    from engine.core.paths import cache_dir

    argv = ["--model", model.name, "--weights", model.weights, "--image-size", model.size_text]
    argv += ["--seed", str(model.seed), "--backend", backend, "--device", device]
    argv += ["--batch", ",".join(map(str, batches)), "--cache-dir", str(cache_dir()), "--json"]
    return argv


def build_in_child(
    argv: list[str],
    progress: Callable[[str], None] | None = None,
    waiting: Callable[[float], None] | None = None,
) -> tuple[int, str]:
    """Run ``python -m engine build ARGV`` in a child process; its exit code (a shell's:
    128 + N for a stop by signal N) and stdout.

    Without ``progress`` the child writes to this process's terminal. With it, each line the
    child writes to stderr goes to ``progress``, its stdout is returned, and a child that
    fails raises its own "error:" line. A child killed by a signal (other than a stop)
    raises EngineError naming the signal; engines it finished first stay cached. A Ctrl-C
    reaches the child too, which stops as a build stops; a SIGTERM sent to this process
    alone is passed on to the child after 2 s. An exception out of ``progress`` (the
    dashboard's script stopped: its user left the page or pressed another button) stops
    the child as a SIGTERM does, then goes on up. ``waiting`` (with ``progress``) is called
    with the seconds since the build began about once a second while the child says nothing
    (a compile is silent for minutes): the dashboard shows the time there, and a stop
    raised from it ends the child as one from ``progress`` does, within a second.
    """
    from engine.core.paths import engine_child_env
    from engine.running.worker import signal_name

    cmd = [sys.executable, "-m", "engine", "build", *argv]
    env = engine_child_env(**{BUILD_CHILD: "1"})
    if progress is None:
        code, out = _wait(subprocess.Popen(cmd, env=env)), ""
    else:
        code, out, error = _relayed(cmd, env, progress, waiting)
        if code > 0:
            raise EngineError(error or f"the build process ended with exit code {code}")
    if code < 0 and -code not in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        from engine.core.commands import engine_command

        raise EngineError(
            f"the build process was killed by {signal_name(code)}",
            "a native crash in a library while it built or loaded the engine; the engines"
            " it finished before stay cached",
            f"see them with {engine_command('cache list')}; meanwhile bench without this backend",
        )
    # A child that died of a stop signal N (it had said so, or had no time to): the shell's
    # 128 + N, where passing -N on was exit status 254 (SIGINT) or 241 (SIGTERM).
    return (128 - code if code < 0 else code), out


def _relayed(
    cmd: list[str],
    env: dict[str, str],
    progress: Callable[[str], None],
    waiting: Callable[[float], None] | None = None,
) -> tuple[int, str, str]:
    """The child's exit code, stdout and last "error:" line; its other stderr lines relayed,
    ``waiting`` called about once a second between them."""
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, encoding="utf-8", errors="replace",
    )  # fmt: skip
    out: list[str] = []
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True).start()
    error = ""
    try:
        while True:
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                if waiting is not None:
                    waiting(time.monotonic() - start)
                continue
            if line is None:  # the child closed its stderr: it has ended
                break
            if line.startswith("error: "):
                error = line.removeprefix("error: ")
            elif line.strip():
                progress(line)
    except BaseException:  # the caller stopped (a page left mid-build): the build stops too
        _stop(proc)
        raise
    code = _wait(proc)
    reader.join()
    return code, "".join(out), error


def _lines(stream, lines: queue.Queue) -> None:
    """Each line of ``stream`` into ``lines`` (newline removed), then None at its end."""
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def _stop(proc: subprocess.Popen) -> None:
    """Stop the child as a SIGTERM stops a build (nothing half-built is cached), else kill it."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait(proc: subprocess.Popen) -> int:
    """The child's exit code; a stop of this process waits for the child's own stop."""
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the child's group too; SIGTERM did not
            try:
                return proc.wait(2)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                proc.send_signal(signal.SIGTERM)
