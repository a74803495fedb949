"""A plan made once: from the user's choice, carried as it is to the worker and the store.

The planning functions are wrapped (the real ones, counted) so a test sees every call
the CLI's planning or the worker child makes; the dashboard's rerun count is in
tests/pages/test_dashboard.py.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
from collections import Counter

import pytest

from engine.core.config import BenchSettings, Choice, RunnerSpec, SweepConfig
from engine.running import plan as plan_module
from engine.running import reproduce, worker
from engine.running.plan import Plan, make_plan
from engine.storage.store import Store


@pytest.fixture
def calls(monkeypatch) -> Counter:
    """Counts of the real planning functions' calls, wherever the engine calls them."""
    seen: Counter = Counter()

    def counted(module, name):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            seen[name] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    for name in ("runner_grid", "normalise", "plan_auto"):
        counted(plan_module, name)
    counted(reproduce, "command_of")
    return seen


def _choice(spec, **kw) -> Choice:
    bench = BenchSettings(warmup=0, iters=2, max_time_s=5)
    return Choice(spec, ("torch", "ort"), ("cpu",), ("fp32", "int8"), (1,), bench=bench, **kw)


def test_a_plan_is_made_once_from_the_choice(calls, small_spec):
    plan = make_plan(_choice(small_spec, only_runnable=True, parity=False))
    assert calls == {"runner_grid": 1, "normalise": 1, "command_of": 1}
    assert [(r.backend, r.precision) for r in plan.config.runners] == [
        ("torch", "fp32"),
        ("ort", "fp32"),
        ("ort", "int8"),
    ]
    assert plan.left_out and plan.left_out[0].startswith("torch int8")
    assert "--only-runnable" in plan.command and "--no-parity" in plan.command
    # It crosses a process boundary as JSON and comes back equal.
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_auto_mode_is_part_of_the_plan(calls, small_spec):
    plan = make_plan(_choice(small_spec, auto=True))
    assert calls["runner_grid"] == 1 and calls["plan_auto"] == 1
    assert plan.auto and "--auto" in plan.command and "--only-runnable" not in plan.command
    from engine.running.auto import candidates

    assert plan.config.runners == candidates("cpu", ["torch", "ort"])  # not the grid
    assert len(plan.chosen) == 4  # the grid the user picked (what a live measurement times)
    assert plan.config.parity


def test_reproduce_command_never_plans_the_grid_again(calls, small_spec):
    config = SweepConfig(
        small_spec,
        [RunnerSpec("torch"), RunnerSpec("ort"), RunnerSpec("ort", precision="int8")],
        [1],
    )
    command = reproduce.reproduce_command(config)
    assert "--only-runnable" in command  # 3 of the 2 × 2 grid: its runnable part
    assert calls["runner_grid"] == 0 and calls["normalise"] == 0


def _run_child(job: dict) -> list[list]:
    """``python -m engine.running.worker``'s main, in this process: the job on its stdin,
    its messages from its pipe."""
    read_fd, write_fd = os.pipe()
    stdin_r, stdin_w = os.pipe()
    os.write(stdin_w, (json.dumps(job) + "\n").encode())
    messages = io.BytesIO()
    reader = threading.Thread(
        target=lambda: [messages.write(c) for c in iter(lambda: os.read(read_fd, 1 << 16), b"")]
    )
    reader.start()
    old_env, old_stdin = os.environ.get(worker.FD_ENV), sys.stdin
    old_sigint = signal.getsignal(signal.SIGINT)
    os.environ[worker.FD_ENV] = str(write_fd)
    sys.stdin = os.fdopen(stdin_r, "r")
    try:
        assert worker.child_main() == 0
    finally:
        signal.signal(signal.SIGINT, old_sigint)
        sys.stdin = old_stdin
        if old_env is None:
            os.environ.pop(worker.FD_ENV, None)
        else:
            os.environ[worker.FD_ENV] = old_env
        os.close(write_fd)
        os.close(stdin_w)  # the child's stop watcher sees EOF and ends
        reader.join(30)
        os.close(read_fd)
    return [json.loads(line) for line in messages.getvalue().splitlines()]


def test_the_worker_child_runs_the_plan_as_it_is(calls, small_spec, small_artifacts, tmp_path):
    plan = make_plan(_choice(small_spec, only_runnable=True, parity=False))
    made = dict(calls)
    db = tmp_path / "w.sqlite"
    messages = _run_child({"plan": plan.to_dict(), "db_path": str(db)})
    assert calls == made, "the worker child planned, reduced or wrote the command again"
    done = [m for m in messages if m[0] == "done"]
    assert done, messages
    store = Store(db)
    run = store.run(done[0][1])
    assert run["command"] == plan.command
    assert run["configuration"] == plan.stored_configuration()
    assert [(r.backend, r.precision, r.status) for r in store.rows(run["id"])] == [
        ("torch", "fp32", "ok"),
        ("ort", "fp32", "ok"),
        ("ort", "int8", "ok"),
    ]
    store.close()
