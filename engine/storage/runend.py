"""How a run ends, recorded for every way it can end.

A stored run starts ``running`` and must leave that state however its process stops:
``done``; ``interrupted`` by Ctrl-C, the dashboard's stop or SIGTERM (which the CLI turns
into the same path as Ctrl-C); ``failed`` with the reason (``disk full``, ``out of
memory``, a timeout, the error's own words). Only SIGKILL or a power cut can leave a run
``running``; the store keeps the process id and host of each run, so History can say
``stale (process gone)`` for such a run instead of pretending it is still measuring.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable

from engine.core.errors import EngineError
from engine.core.safeio import disk_full

STALE = "stale (process gone)"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process was, so it unwinds exactly like Ctrl-C."""


def install_sigterm() -> Callable | int | None:
    """Make SIGTERM raise :class:`Terminated` in the main thread; returns the old handler."""

    def handler(signum, frame):  # noqa: ARG001 - the signal module's signature
        raise Terminated("terminated by SIGTERM")

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (a test runner's worker thread): leave it
        return None


def end_of(exc: BaseException | None, interrupted: bool = False) -> tuple[str, str]:
    """The stored status and reason of a run that stopped with ``exc`` (None: normally)."""
    if isinstance(exc, Terminated):
        return "interrupted", "terminated by SIGTERM"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", "Ctrl-C"
    if exc is None:
        return ("interrupted", "stopped") if interrupted else ("done", "")
    if disk_full(exc):
        return "failed", "disk full"
    if isinstance(exc, MemoryError):
        return "failed", "out of memory"
    if isinstance(exc, EngineError):
        return "failed", exc.user_message()[:300]
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    return "failed", f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def this_host() -> str:
    return socket.gethostname()


def process_gone(pid: int | None, host: str | None) -> bool:
    """True only when ``pid`` ran on this host and no longer exists; unknown is not gone."""
    if not pid or not host or host != this_host():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False
    return False
