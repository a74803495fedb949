"""One timed run per device at a time, across threads, browser tabs and processes.

A file lock under the cache folder: the dashboard's sessions and the CLI all take it
before timing, so two sweeps never share a GPU (or the CPU cores) while measuring. The
lock file is opened by :func:`engine.core.safeio.open_lock_file` (never through a link,
never truncated): the cache folder may sit where others can plant a link under a lock's
predictable name, and older ``filelock`` releases opened it following the link and
truncating its target. ``flock`` belongs to the open file, so each holder opens its own
descriptor and two threads of one process exclude each other too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

from engine.core.devices import parse_device
from engine.core.errors import EngineError
from engine.core.paths import cache_dir
from engine.core.safeio import open_lock_file
from engine.hardware.gpu import nvml_target

POLL_S = 0.05


def lock_path(device: str) -> str:
    folder = cache_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    # One lock per physical device: "cuda" and "cuda:0" name the same GPU, and so do
    # cuda:0 under CUDA_VISIBLE_DEVICES=1 and cuda:1 without it.
    kind, index = parse_device(device)
    if kind == "cpu":
        return str(folder / "cpu.lock")
    # CUDA_VISIBLE_DEVICES' entry: a physical index, or a UUID or MIG name (read without
    # starting CUDA; a GPU one process names by UUID and another by index is not seen as one)
    gpu = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(nvml_target(index)))
    return str(folder / f"cuda_{gpu[:120]}.lock")


def _taken(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def device_lock(device: str, timeout_s: float = 3600.0, on_wait=None) -> Iterator[None]:
    fd = open_lock_file(lock_path(device), f"the lock file of {device}")
    try:
        if not _taken(fd):
            if on_wait:
                on_wait(f"waiting for another run on {device} to finish")
            deadline = time.monotonic() + timeout_s
            while not _taken(fd):
                if time.monotonic() >= deadline:
                    raise EngineError(
                        f"{device} stayed busy for {timeout_s:.0f} s",
                        "another sweep holds its lock",
                        "wait for it to finish, or stop it",
                    )
                time.sleep(POLL_S)
        yield
    finally:
        os.close(fd)  # closing drops the lock
