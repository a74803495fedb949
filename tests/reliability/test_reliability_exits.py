"""Exit codes as the README's table states them, from real ``python -m engine bench`` runs:
a run whose worker died is not a success, and SIGTERM sent the way timeout(1) sends it (to
the group, then again to the parent) ends the run ``interrupted`` with its reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, default_sigint, stored, wait_for_rows

TINY = ("--model", "resnet18", "--image-size", "32", "--backend", "torch", "--device", "cpu")
FAST = ("--iters", "3", "--warmup", "1", "--no-parity", "--quiet")


def _start(db: Path, batches: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "bench",
            *TINY,
            *FAST,
            "--batch",
            batches,
            "--db",
            str(db),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, as timeout(1) gives it
        preexec_fn=default_sigint,  # as in a terminal
        env={**os.environ, **(env or {})},
    )


def test_two_sigterms_like_timeout_end_the_run_interrupted(tmp_path):
    db = tmp_path / "r.sqlite"
    proc = _start(db, ",".join(str(b) for b in range(1, 41)))
    wait_for_rows(proc, db, 1)
    os.killpg(proc.pid, signal.SIGTERM)  # timeout(1): the whole group first ...
    time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # ... then the command itself
    _, err = proc.communicate(timeout=120)
    runs, rows = stored(db)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert runs == [(1, "interrupted", "terminated by SIGTERM")], (runs, err)
    assert len(rows) >= 1


def _children(pid: int) -> list[int]:
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(k) for k in kids]


def test_a_worker_killed_outright_is_not_a_success(tmp_path):
    db = tmp_path / "r.sqlite"
    proc = _start(db, ",".join(str(b) for b in range(1, 21)))
    wait_for_rows(proc, db, 1)
    for child in _children(proc.pid):
        os.kill(child, signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    runs, rows = stored(db)
    assert proc.returncode == 4, err
    assert "SIGKILL" in err and "Traceback" not in err
    assert runs[0][1] == "failed" and len(rows) >= 2  # the measured points and the failed one


@pytest.mark.parametrize("target", ["worker", "terminal"])
def test_sigint_ends_the_run_once_keeping_every_measured_point(tmp_path, target):
    """Before: SIGINT to the sweep worker alone (``kill -INT`` on its pid, as a process
    manager sends it) was ignored: the sweep measured all its points and exited 0. Now it
    stops like SIGTERM: the point in flight finishes, the run is ``interrupted`` with the
    reason, exit 130. A terminal's Ctrl-C (SIGINT to the whole group, pressed twice) still
    ends the run once, cleanly: one message, reason "Ctrl-C", every row measured is kept."""
    db = tmp_path / "r.sqlite"
    proc = _start(db, ",".join(str(b) for b in range(1, 41)))
    wait_for_rows(proc, db, 1)
    (worker,) = _children(proc.pid)
    if target == "worker":
        os.kill(worker, signal.SIGINT)
    else:
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
    seen = len(stored(db)[1])
    ends = _ends_seen_until_exit(proc, db)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    said = [line for line in err.splitlines() if "interrupt" in line.lower()]
    assert said == ["interrupted: the points measured so far are stored"], err
    assert "Traceback" not in err
    runs, rows = stored(db)
    reason = "the sweep worker was interrupted by SIGINT" if target == "worker" else "Ctrl-C"
    assert runs == [(1, "interrupted", reason)], (runs, err)
    # Before: the worker stored "stopped", then "interrupted by SIGINT", and the parent
    # "Ctrl-C" once the worker had exited; History read the wrong reason in between.
    assert ends <= {("running", ""), ("interrupted", reason)}, ends
    with contextlib.closing(sqlite3.connect(db)) as con:
        statuses = [s for (s,) in con.execute("SELECT status FROM rows ORDER BY id")]
    assert seen <= len(rows) < 40 and set(statuses) == {"ok"}, statuses


def _ends_seen_until_exit(proc: subprocess.Popen, db: Path) -> set:
    """Every (status, end reason) a reader of the store saw while the run was stopping."""
    ends = set()
    while proc.poll() is None:
        ends.update((status, reason) for _, status, reason in stored(db)[0])
        time.sleep(0.005)
    return ends


def test_every_point_measured_or_not_applicable_is_exit_0(tmp_path):
    db = tmp_path / "r.sqlite"
    proc = _start(db, "1")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


def _catches_sigint(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False


def _worker_starting(proc: subprocess.Popen) -> int:
    """The worker's pid once its interpreter is up (Python's own SIGINT handler is in):
    it is importing the engine, a second before it could take a signal as a stop."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for kid in _children(proc.pid):
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{kid}/cmdline").read_bytes()  # exec'd, not the fork
                if b"engine.running.worker" in cmdline and _catches_sigint(kid):
                    return kid
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.002)
    proc.kill()
    raise AssertionError("no sweep worker started")


@pytest.mark.parametrize("target", ["terminal", "worker"])
def test_a_stop_while_the_worker_starts_is_one_line_and_no_run(tmp_path, target):
    """Before: a Ctrl-C that reached the worker while it imported the engine raised
    KeyboardInterrupt there, and its traceback (or "Fatal Python error" while the
    interpreter itself started) reached the terminal through the parent; SIGTERM to the
    worker alone then killed it, a crash (exit 4) where it is a stop once it runs."""
    db = tmp_path / "r.sqlite"
    proc = _start(db, "1,2")
    worker = _worker_starting(proc)
    if target == "terminal":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(worker, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == (130 if target == "terminal" else 143), err
    assert "Traceback" not in err and "Fatal Python error" not in err, err
    assert [line for line in err.splitlines() if "interrupt" in line.lower()] == [
        "interrupted before any point was measured: nothing was stored"
    ], err
    assert stored(db) == ([], [])  # no run was opened


def _python(script: str) -> subprocess.CompletedProcess:
    """``script`` in a fresh interpreter started as a terminal starts a command."""
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=default_sigint,
    )


# A real SIGINT, sent by the process to itself at the moment ``python -m engine`` imports
# its command line: the moment is too short (30 ms) to hit from outside reliably.
_CTRL_C_WHILE_IMPORTING = """
import os, runpy, signal, sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "engine.cli.main":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, CtrlC())
sys.argv = ["engine", "bench", "--model", "resnet18"]
runpy.run_module("engine", run_name="__main__", alter_sys=True)
"""


def test_ctrl_c_while_the_command_starts_is_one_line(tmp_path):
    """Before: the traceback of ``from engine.cli.main import main``, status -2."""
    proc = _python(_CTRL_C_WHILE_IMPORTING)
    assert (proc.returncode, proc.stderr) == (130, "interrupted\n")


# A Ctrl-C while Python shuts down after the command has said how it ended (the second of
# a double press on a slow machine): sent from the last exit handler, so it lands there.
_CTRL_C_WHILE_EXITING = """
import atexit, os, runpy, signal, sys

atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT))  # runs last: registered first
sys.argv = ["engine", "--help"]
runpy.run_module("engine", run_name="__main__", alter_sys=True)
"""


def test_ctrl_c_again_while_the_command_exits_changes_nothing():
    """Before: Python's own handler was back once ``main`` returned: "Exception ignored in
    atexit callback", a KeyboardInterrupt traceback (or status -2 a little later)."""
    proc = _python(_CTRL_C_WHILE_EXITING)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
