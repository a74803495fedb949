"""One timed run per device at a time, across threads, browser tabs and processes.

A file lock under the cache folder: the dashboard's sessions and the CLI all take it
before timing, so two sweeps never share a GPU (or the CPU cores) while measuring.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from filelock import FileLock, Timeout

from engine.core.devices import parse_device
from engine.core.errors import EngineError
from engine.core.paths import cache_dir


def lock_path(device: str) -> str:
    folder = cache_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    # One lock per physical device: "cuda" and "cuda:0" name the same GPU.
    kind, index = parse_device(device)
    return str(folder / ("cpu.lock" if kind == "cpu" else f"cuda_{index}.lock"))


@contextlib.contextmanager
def device_lock(device: str, timeout_s: float = 3600.0, on_wait=None) -> Iterator[None]:
    lock = FileLock(lock_path(device), thread_local=False)
    try:
        lock.acquire(timeout=0.05)
    except Timeout:
        if on_wait:
            on_wait(f"waiting for another run on {device} to finish")
        try:
            lock.acquire(timeout=timeout_s)
        except Timeout as exc:
            raise EngineError(
                f"{device} stayed busy for {timeout_s:.0f} s",
                "another sweep holds its lock",
                "wait for it to finish, or stop it",
            ) from exc
    try:
        yield
    finally:
        lock.release()
