"""Run a sweep in a child process so a native crash or a hang cannot take the caller down.

Front ends reach it through :class:`engine.running.launch.WorkerLauncher`.
:func:`run_sweep_in_worker` has the semantics of :func:`engine.running.sweep.run_sweep`, but the
sweep runs in a ``python -m engine.running.worker`` child that commits each row to the SQLite
store itself and streams progress and rows back as JSON lines on a pipe of its own (not stdout,
where libraries print). The caller's callbacks run in the calling process as the lines arrive. A
stop request is passed on through the child's stdin and, if the child does not finish within a
grace period, the child is terminated; a timeout kills it; a segfault or abort becomes a failed
outcome that names the signal. Rows the child committed before it died stay in the store, and
the store, not the pipe, is the record. A subprocess rather than ``multiprocessing`` so the
caller's ``__main__`` (a Streamlit script, a test runner) is never re-imported in the child.

Test hook: ``VISIONBENCH_TEST_CRASH`` in the child's environment (engine/running/faults.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.core import errors as _errors
from engine.core.config import ResultRow, SweepConfig
from engine.core.errors import EngineError
from engine.core.rows import ModelFacts, new_row
from engine.core.text import write_terminal
from engine.running.faults import CRASH_HOOK_ENV, fault_hook  # noqa: F401 - callers import the name here
from engine.running.plan import Callbacks, Plan, plan_of_config, plan_points
from engine.running.sweep import SweepOutcome
from engine.storage.runend import StopWord, WorkerSignals, end_of, held_for_child

FD_ENV = "VISIONBENCH_WORKER_FD"
STOP_GRACE_S = 10.0
_POLL_S = 0.1


@dataclass
class WorkerOutcome(SweepOutcome):
    """A :class:`SweepOutcome` plus how the worker process ended.

    ``failure`` is empty when the child finished normally; otherwise it says why it did
    not (``"the sweep worker was killed by SIGSEGV"``, ``"... timed out after 30 s"``).
    """

    exit_code: int | None = None
    failure: str = ""
    timed_out: bool = False
    crashed: bool = False


def signal_name(exit_code: int | None) -> str:
    """``-11`` → ``"SIGSEGV"``; a positive code → ``"exit code N"``."""
    if exit_code is None:
        return "no exit code"
    if exit_code < 0:
        try:
            return signal.Signals(-exit_code).name
        except ValueError:
            return f"signal {-exit_code}"
    return f"exit code {exit_code}"


def _error_payload(exc: EngineError) -> list[str]:
    return [type(exc).__name__, exc.what, exc.why, exc.fix]


def _error_from_payload(payload: list[str]) -> EngineError:
    name, what, why, fix = payload
    cls = getattr(_errors, name, EngineError)
    if not (isinstance(cls, type) and issubclass(cls, EngineError)):
        cls = EngineError
    return cls(what, why, fix)


# -- the child ----------------------------------------------------------------------


class _ReportingStore:
    """The child's store: tells the parent the run id as soon as the run exists."""

    def __init__(self, store: Any, send: Callable[[list], None]) -> None:
        self._store, self._send = store, send

    def create_run(self, *args: Any, **kw: Any) -> int:
        run_id = self._store.create_run(*args, **kw)
        self._send(["run", run_id])
        fault_hook(0)
        return run_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def child_main() -> int:
    """Entry point of ``python -m engine.running.worker``: a job on stdin, messages on FD_ENV."""
    if not os.environ.get(FD_ENV, "").isdigit():
        print(
            "error: engine.running.worker is started by run_sweep_in_worker, not by hand",
            file=sys.stderr,
        )
        return 2
    fd = int(os.environ[FD_ENV])
    lock = threading.Lock()

    def send(msg: list) -> None:
        data = (json.dumps(msg) + "\n").encode()
        with lock:
            try:
                while data:  # os.write is unbuffered: nothing is lost if we crash later
                    data = data[os.write(fd, data) :]
            except OSError:
                pass  # the parent is gone; the rows are in the store all the same

    stop = threading.Event()
    store = None
    # SIGINT and SIGTERM are stops after the point in flight (a terminal's Ctrl-C reaches
    # the parent too, which asks the same); the reason is theirs when sent to this alone.
    signalled = WorkerSignals(stop)
    try:
        line = sys.stdin.readline()
        if not line.endswith("\n"):  # the parent stopped before it sent the whole job
            return 0
        job = json.loads(line)

        word = StopWord(stop, signalled, send)
        threading.Thread(target=word.watch, daemon=True).start()
        from engine.running.sweep import run_sweep
        from engine.storage.store import Store

        plan = Plan.from_dict(job["plan"])  # as the parent made it: never planned again here
        store = _ReportingStore(Store(job["db_path"]), send)
        rows = 0

        def on_row(row: ResultRow) -> None:
            nonlocal rows
            rows += 1
            send(["row", row.to_dict()])
            fault_hook(rows)

        callbacks = Callbacks(
            progress=lambda d, t, m: send(["progress", d, t, m]),
            on_row=on_row,
            should_stop=stop.is_set,
            stop_reason=word.why,
        )
        outcome = run_sweep(plan, store=store, callbacks=callbacks)
        reason = outcome.end_reason if outcome.interrupted else ""
        send(
            [
                "done",
                outcome.run_id,
                outcome.interrupted,
                list(outcome.notes),
                [_error_payload(e) for e in outcome.errors],
                reason,
            ]
        )
    except EngineError as exc:
        send(["error", _error_payload(exc)])
    except BaseException:  # noqa: BLE001 - our bug: hand the traceback to the parent
        send(["bug", traceback.format_exc()])
    finally:
        if store is not None:  # closed, not left to exit: a store that lost its WAL
            with contextlib.suppress(Exception):  # copies what it wrote into the file
                store.close()
    return 0


# -- the parent ---------------------------------------------------------------------


def _child_env(read_fd: int, write_fd: int) -> dict[str, str]:
    from engine.core.paths import engine_child_env

    return engine_child_env(**{FD_ENV: str(write_fd)})


class _Child:
    """The parent's side of one worker: the process, its message pipe, what it reported."""

    def __init__(self, plan: Plan, db_path: str, cb: Callbacks):
        self.cb = cb
        self.outcome = WorkerOutcome(run_id=None)
        self.delivered: list[ResultRow] = []
        self.finished = False
        self.error: EngineError | None = None
        self.bug: str | None = None
        self.buf = b""
        self.job_sent = False
        self.stored_reason = ""  # the end reason the child stored with the run
        self.job = {"plan": plan.to_dict(), "db_path": str(db_path)}
        self.proc: subprocess.Popen | None = None  # started by start()
        self.stderr_copier: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker (the caller holds SIGINT and SIGTERM: held_for_child)."""
        self.read_fd, write_fd = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engine.running.worker"],
                stdin=subprocess.PIPE,
                # The child's stderr (ONNX Runtime's own log lines name the model's nodes,
                # which come from a file) reaches the terminal only through the sanitiser.
                stderr=subprocess.PIPE,
                pass_fds=(write_fd,),
                env=_child_env(self.read_fd, write_fd),
                close_fds=True,
            )
        finally:
            os.close(write_fd)  # the parent sees EOF once the child is gone
        self.stderr_copier = threading.Thread(target=self._copy_stderr, daemon=True)
        self.stderr_copier.start()

    def send_job(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(self.job) + "\n").encode())
        self.proc.stdin.flush()
        self.job_sent = True

    def _copy_stderr(self) -> None:
        assert self.proc.stderr is not None
        try:
            for line in self.proc.stderr:
                write_terminal(sys.stderr, line)
        except (OSError, ValueError):  # our stderr was closed: the child's lines have nowhere to go
            pass

    def handle(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except ValueError:
            return  # a line cut off by a crash mid-write
        kind, out = msg[0], self.outcome
        if kind == "run":
            out.run_id = msg[1]
        elif kind == "progress":
            self.cb.say(msg[1], msg[2], msg[3])
        elif kind == "row":
            row = ResultRow.from_dict(msg[1])
            self.delivered.append(row)
            self.cb.row(row)
        elif kind == "done":
            _, out.run_id, interrupted, notes, errs, *reason = msg
            out.interrupted = out.interrupted or interrupted
            self.stored_reason = reason[0] if reason else ""
            out.end_reason = out.end_reason or self.stored_reason
            out.notes.extend(notes)
            out.errors.extend(_error_from_payload(e) for e in errs)
            self.finished = True
        elif kind == "signalled":  # did the signal reach us too? our reason, or none
            self.ask_stop(out.end_reason)
        elif kind in ("error", "bug"):
            if kind == "error":
                self.error = _error_from_payload(msg[1])
            else:
                self.bug = msg[1]
            self.finished = True

    def drain(self, wait_s: float) -> bool:
        """Handle complete lines from the child; False at EOF (the child is gone)."""
        ready, _, _ = select.select([self.read_fd], [], [], wait_s)
        if not ready:
            return True
        chunk = os.read(self.read_fd, 1 << 16)
        if not chunk:
            return False
        self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            self.handle(line)
        return True

    def ask_stop(self, reason: str = "") -> None:
        try:
            if self.job_sent:
                self.proc.stdin.write(f"stop {reason}".strip().encode() + b"\n")
                self.proc.stdin.flush()
            else:  # stopped before the whole job was sent: the child ends with nothing run
                self.proc.stdin.close()
        except (OSError, ValueError):  # the child is gone, or its stdin closed already
            pass

    def watch(self, timeout_s: float | None, stop_grace_s: float) -> None:
        """Pass messages on until the child ends, a stop is not honoured, or time is up."""
        out, started, stop_asked_at = self.outcome, time.monotonic(), None
        while self.drain(_POLL_S):
            now = time.monotonic()
            if stop_asked_at is None and self.cb.stop_requested():
                self.ask_stop()
                stop_asked_at = now
                out.interrupted = True
            if stop_asked_at is not None and now - stop_asked_at > stop_grace_s:
                _end(self.proc, kill=False)
                out.failure = (
                    f"the sweep worker did not stop within {stop_grace_s:g} s and was terminated"
                )
                return
            if timeout_s is not None and now - started > timeout_s:
                _end(self.proc, kill=True)
                out.timed_out = True
                out.failure = f"the sweep worker timed out after {timeout_s:g} s and was killed"
                return

    def close(self) -> None:
        """Read what is left (the "done" line, a last row) until EOF, briefly; reap the child."""
        deadline = time.monotonic() + 10
        try:
            while self.drain(0.2) and time.monotonic() < deadline:
                pass
        except OSError:
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            _end(self.proc, kill=True)
        os.close(self.read_fd)
        if self.stderr_copier is not None:  # a grandchild may hold the pipe open: never wait
            self.stderr_copier.join(5)
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        self.outcome.exit_code = self.proc.returncode

    def judge_end(self) -> None:
        """Raise what the child raised; name how a child that did not finish ended."""
        if self.error is not None:
            raise self.error
        if self.bug is not None:
            raise RuntimeError(f"the sweep worker raised an unexpected error:\n{self.bug}")
        out, code = self.outcome, self.proc.returncode
        if self.finished or out.failure or (out.interrupted and code == 0):
            return
        if out.interrupted and code in (-signal.SIGTERM, -signal.SIGINT, -signal.SIGHUP):
            return  # the signal that stopped the parent reached its group: a stop, no crash
        out.crashed = code is not None and code < 0
        how = "was killed by" if out.crashed else "ended with"
        out.failure = f"the sweep worker {how} {signal_name(code)}"


def run_sweep_in_worker(
    config: SweepConfig | Plan,
    db_path: str,
    command: str | None = None,
    callbacks: Callbacks | None = None,
    timeout_s: float | None = None,
    stop_grace_s: float = STOP_GRACE_S,
) -> WorkerOutcome:
    """Run a plan like :func:`engine.running.sweep.run_sweep`, in a child process; the
    child gets the plan as it is (a config made by hand is planned here, in the parent).

    Bad input raises the same :class:`EngineError` as in-process. A crash, a timeout or a
    stop that the child does not honour within ``stop_grace_s`` ends the child; the
    outcome then carries ``failure`` (the signal or the timeout), a ``failed`` row for the
    point that was running (not for a stop), and every row the child committed.
    """
    cb = callbacks or Callbacks()
    plan = config if isinstance(config, Plan) else plan_of_config(config, command=command)
    child = _Child(plan, db_path, cb)
    try:
        # A Ctrl-C while the child starts waits for its handlers (it inherits the held
        # signals). One another thread of ours took while it was set up (CI, 2026-12-08)
        # still stops it: `child.proc` is set as soon as the worker exists.
        with held_for_child():
            child.start()
        child.send_job()
        child.watch(timeout_s, stop_grace_s)
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP (engine.storage.runend.Terminated)
        if child.proc is None:
            raise  # no worker was started: nothing to stop or to store
        child.outcome.interrupted = True
        child.outcome.end_reason = end_of(exc, True)[1]
        child.ask_stop(child.outcome.end_reason)  # the child stores it with the run's end
        try:
            child.proc.wait(stop_grace_s)
        except subprocess.TimeoutExpired:
            _end(child.proc, kill=False)
    finally:
        if child.proc is not None:
            child.close()
    child.judge_end()
    _settle(plan.config, db_path, child)
    return child.outcome


def _end(proc: subprocess.Popen, kill: bool) -> None:
    if kill:
        proc.kill()
    else:
        proc.terminate()
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            proc.kill()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


def _settle(config: SweepConfig, db_path: str, child: _Child) -> None:
    """Make the outcome match the store, and record how an unfinished child ended."""
    outcome, delivered, cb = child.outcome, child.delivered, child.cb
    if outcome.run_id is None:
        outcome.rows = delivered
        if outcome.failure:
            outcome.errors.append(EngineError(outcome.failure, "before the run was created"))
        return
    from engine.storage.store import Store

    store = Store(db_path)
    try:
        # The store is the record: a row committed just before a crash may not have
        # made it through the pipe. The outcome holds the very rows the callbacks were
        # given, so a page charts and counts one list.
        stored = store.rows(outcome.run_id)
        for row in stored[len(delivered) :]:
            cb.row(row)
        outcome.rows = [*delivered, *stored[len(delivered) :]]
        if child.finished:
            if outcome.end_reason != child.stored_reason:  # our stop came after its end
                store.finish_run(outcome.run_id, "interrupted", outcome.end_reason)
            return
        if outcome.failure:
            plan = plan_points(config)  # the plan the child ran, in its order
            stopped = outcome.interrupted and not outcome.timed_out
            if len(stored) < len(plan) and not stopped:
                spec, batch = plan[len(stored)]
                like = stored[-1] if stored else None
                facts = (
                    ModelFacts(like.model, like.image_size, like.weights)
                    if like
                    else ModelFacts.of_config(config)
                )
                reason = f"{outcome.failure} while building or timing this point"
                row = new_row(facts, spec, batch, config, status="failed", reason=reason)
                store.add_row(outcome.run_id, row)
                outcome.rows.append(row)
                cb.row(row)
                left = len(plan) - len(stored) - 1
                if left:
                    outcome.notes.append(f"{left} later point(s) were not run")
            outcome.errors.append(
                EngineError(
                    outcome.failure,
                    f"The {len(stored)} row(s) recorded before are kept in the store",
                    "a native crash or hang in a backend library: run the other backends without it",
                )
            )
        _settle_notes(store, outcome)
        store.finish_run(
            outcome.run_id,
            "interrupted" if outcome.interrupted and not outcome.timed_out else "failed",
            outcome.failure or outcome.end_reason,
        )
    finally:
        store.close()


def _settle_notes(store: Any, outcome: WorkerOutcome) -> None:
    """A child that never said "done" stored its notes as it went: the outcome says them
    too (first, in their order), and what the parent adds is stored with them."""
    said = store.run(outcome.run_id)["notes"]
    outcome.notes[:0] = [n for n in said if n not in outcome.notes]
    store.add_notes(outcome.run_id, outcome.notes)


if __name__ == "__main__":
    sys.exit(child_main())
