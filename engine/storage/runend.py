"""How a run ends, recorded for every way it can end.

A stored run starts ``running`` and must leave that state however its process stops:
``done``; ``interrupted`` by Ctrl-C, the dashboard's stop, SIGTERM or SIGHUP (a closed
terminal or SSH session; the CLI turns both into the same path as Ctrl-C); ``failed`` with the reason (``disk full``, ``out of
memory``, a timeout, the error's own words). Only SIGKILL or a power cut can leave a run
``running``; the store keeps the process id and host of each run, so History can say
``stale (process gone)`` for such a run instead of pretending it is still measuring.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator

from engine.core.errors import EngineError
from engine.core.safeio import disk_full

STALE = "stale (process gone)"
ASK_PARENT_S = 5.0  # a signalled worker waits this long for its parent's word at most
WORKER_TERMINATED = "the sweep worker was terminated by SIGTERM"  # the worker alone
WORKER_INTERRUPTED = "the sweep worker was interrupted by SIGINT"  # the worker alone


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


HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def held_for_child() -> Iterator[None]:
    """A child process started inside starts with SIGINT and SIGTERM held (blocked, kept
    pending), as the mask of the thread that starts it is inherited through exec; the
    sweep worker lets them through once :class:`WorkerSignals` is installed. Without it,
    a Ctrl-C in the second the worker spends importing the engine was a traceback on the
    terminal (a ``Fatal Python error`` while the interpreter itself started). The hold is
    this thread's: a signal another thread takes still raises here, so the caller must
    know the child as soon as it exists (engine/running/worker.py ``_Child.start``)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class WorkerSignals:
    """SIGTERM or SIGINT sent to the sweep worker alone (``kill`` or ``kill -INT`` on its
    pid, a process manager) is a stop: the point in flight finishes, the run ends
    ``interrupted`` and :attr:`reason` names the signal. SIGTERM was a crash before (run
    ``failed``, a failed row for a point nobody measured wrong, exit 4); SIGINT was ignored
    and the sweep ran to its end.

    A SIGTERM once a stop was asked for (the parent's termination after its grace period)
    ends the worker at once. A SIGINT never does: a terminal's Ctrl-C reaches the parent
    and the worker together, the parent asks the worker to stop as well, and a second
    Ctrl-C must not cut the point in flight. The handlers only set ``stop``: nothing is
    raised in the middle of a backend's call.
    """

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.reason = ""  # set only when a signal, not the parent, stopped the worker
        signal.signal(signal.SIGTERM, self._on_term)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self._on_int)  # ignored (`cmd &`): as its parent
        # The worker started with both held (held_for_child): one that came while Python
        # and the engine's imports started is delivered now, as a stop, not a traceback.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)

    def _on_term(self, signum, frame) -> None:  # noqa: ARG002 - the signal module's signature
        if self.stop.is_set():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        self.reason = WORKER_TERMINATED
        self.stop.set()

    def _on_int(self, signum, frame) -> None:  # noqa: ARG002
        if not self.stop.is_set():
            self.reason = WORKER_INTERRUPTED
            self.stop.set()


class StopWord:
    """Why the worker stopped, decided once, before the run's end is stored.

    A terminal's Ctrl-C (or timeout(1)'s SIGTERM) reaches the parent and this worker
    together; the parent's word ("stop Ctrl-C" on stdin) names it. A worker that took a
    signal and has no word from its parent asks it (``signalled``): the parent answers
    with its own reason, or none when the signal was sent to this worker alone. The run
    was stored with the worker's reason and then overwritten with the parent's, so a
    reader (history, the History page) saw "interrupted by SIGINT" for a Ctrl-C.
    """

    def __init__(
        self, stop: threading.Event, signalled: WorkerSignals, send: Callable[[list], None]
    ) -> None:
        self.stop, self.signalled, self.send = stop, signalled, send
        self.told = threading.Event()
        self.reason = ""

    def watch(self) -> None:
        """The parent's ``stop [reason]`` lines, then EOF when it went away: both stop."""
        for line in iter(sys.stdin.readline, ""):
            self.reason = self.reason or line.strip().partition(" ")[2]
            self.told.set()
            self.stop.set()
        self.told.set()
        self.stop.set()

    def why(self) -> str:
        if self.signalled.reason and not self.told.is_set():
            self.send(["signalled"])
            self.told.wait(ASK_PARENT_S)
        return self.reason or self.signalled.reason


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
