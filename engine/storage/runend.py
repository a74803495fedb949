"""How a run ends, recorded for every way it can end.

A stored run starts ``running`` and must leave that state however its process stops:
``done``; ``interrupted`` by Ctrl-C, the dashboard's stop, SIGTERM or SIGHUP (a closed
terminal or SSH session; the CLI turns both into the same path as Ctrl-C); ``failed`` with the reason (``disk full``, ``out of
memory``, a timeout, the error's own words). Only SIGKILL or a power cut can leave a run
``running``; the store keeps the process id and host of each run, so History can say
``stale (process gone)`` for such a run instead of pretending it is still measuring.
"""

from __future__ import annotations

import os
import signal
import socket
import threading

from engine.core.errors import EngineError
from engine.core.safeio import disk_full

STALE = "stale (process gone)"
WORKER_TERMINATED = "the sweep worker was terminated by SIGTERM"  # the worker alone


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the process was, so it unwinds exactly like Ctrl-C."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        self.signum = int(signum)
        super().__init__(f"terminated by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        """The shell's code for a command ended by this signal: 143 for SIGTERM, 129 SIGHUP."""
        return 128 + self.signum


# A closed terminal sends SIGHUP to the command's whole process group, worker included:
# unhandled, both died at once and the run stayed ``running`` with no reason.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


_STOPPING = threading.Event()


def install_sigterm() -> dict | None:
    """Make SIGTERM and SIGHUP raise :class:`Terminated` in the main thread; returns the
    old handlers.

    Only the first stop signal raises: ``timeout(1)`` sends SIGTERM to the process group
    and then to the command itself, and a second exception raised while the first one is
    recording how the run ended would leave the run ``running``. Later SIGTERMs, and a
    Ctrl-C after one, are ignored until the run is recorded (SIGKILL still ends it).
    """
    _STOPPING.clear()

    def handler(signum, frame):  # noqa: ARG001 - the signal module's signature
        if _STOPPING.is_set():
            return
        _STOPPING.set()
        raise Terminated(signum)

    def on_int(signum, frame):  # noqa: ARG001
        if _STOPPING.is_set():
            return
        _STOPPING.set()
        raise KeyboardInterrupt

    try:
        old = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, on_int)  # an ignored SIGINT (`cmd &`) stays ignored
    except ValueError:  # not the main thread (a test runner's worker thread): leave it
        return None
    return old


def stop_on_sigterm(stop: threading.Event, terminated: threading.Event) -> None:
    """SIGTERM sent to the worker alone (``kill`` on its pid) is a stop: the point in
    flight finishes and the run ends ``interrupted`` (it was "failed", with a failed row
    for a point nobody measured wrong, and exit 4). A SIGTERM once a stop was asked for
    (the parent's termination after its grace period) ends the worker at once."""

    def on_term(signum, frame):  # noqa: ARG001 - the signal module's signature
        if stop.is_set():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        terminated.set()
        stop.set()

    signal.signal(signal.SIGTERM, on_term)


def restore_signals(old: dict | None) -> None:
    """Undo :func:`install_sigterm` (``old``: what it returned)."""
    if old is None:
        return
    for sig, handler in old.items():
        signal.signal(sig, handler)
    if getattr(signal.getsignal(signal.SIGINT), "__name__", "") == "on_int":
        signal.signal(signal.SIGINT, signal.default_int_handler)


def end_of(exc: BaseException | None, interrupted: bool = False) -> tuple[str, str]:
    """The stored status and reason of a run that stopped with ``exc`` (None: normally)."""
    if isinstance(exc, Terminated):
        return "interrupted", str(exc)
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
