"""The sweep worker: a real child process that really segfaults, aborts or hangs.

Faults come from the documented test hook ``VISIONBENCH_TEST_CRASH`` (read only in the
child); the parent must survive, name what happened, and keep every committed row.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from engine.core.config import BenchSettings, ModelSpec, RunnerSpec, SweepConfig
from engine.core.errors import BadInput
from engine.running.plan import Callbacks
from engine.running.worker import CRASH_HOOK_ENV, run_sweep_in_worker, signal_name
from engine.storage.store import Store

QUICK = BenchSettings(warmup=1, iters=2, max_time_s=5.0, min_iters=1)


def _config(batches=(1, 2, 3), **model) -> SweepConfig:
    spec = ModelSpec(name=model.get("name", "resnet18"), image_size=model.get("image_size", 64))
    return SweepConfig(spec, [RunnerSpec("torch")], list(batches), QUICK, parity=False)


@pytest.fixture
def crash_hook(monkeypatch):
    def set_hook(value: str) -> None:
        monkeypatch.setenv(CRASH_HOOK_ENV, value)

    return set_hook


def _stored(db, run_id):
    con = sqlite3.connect(db)
    try:
        status = con.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()[0]
        rows = con.execute(
            "SELECT batch, status FROM rows WHERE run_id=? ORDER BY id", (run_id,)
        ).fetchall()
    finally:
        con.close()
    return status, rows


def test_worker_streams_rows_and_progress_like_run_sweep(tmp_path):
    db = str(tmp_path / "r.sqlite")
    seen, progress = [], []
    out = run_sweep_in_worker(
        _config((1, 2)),
        db,
        callbacks=Callbacks(
            on_row=seen.append, progress=lambda d, t, m: progress.append((d, t, m))
        ),
    )
    assert out.failure == "" and out.exit_code == 0 and not out.interrupted
    assert [(r.batch, r.status, r.provider) for r in seen] == [
        (1, "ok", "torch-cpu"),
        (2, "ok", "torch-cpu"),
    ]
    assert all(r.p50_ms > 0 for r in seen)
    assert progress[-1][:2] == (2, 2)
    status, rows = _stored(db, out.run_id)
    assert status == "done" and rows == [(1, "ok"), (2, "ok")]
    assert [r.p50_ms for r in out.rows] == [r.p50_ms for r in seen]


def test_bad_input_in_the_worker_raises_the_same_error(tmp_path):
    with pytest.raises(BadInput, match="did you mean.*resnet18"):
        run_sweep_in_worker(_config(name="resnet81"), str(tmp_path / "r.sqlite"))


@pytest.mark.parametrize("kind, sig", [("segv", "SIGSEGV"), ("abort", "SIGABRT")])
def test_native_crash_is_a_failed_outcome_and_earlier_rows_are_kept(
    tmp_path, crash_hook, kind, sig
):
    crash_hook(f"{kind}@1")
    db = str(tmp_path / "r.sqlite")
    seen = []
    out = run_sweep_in_worker(_config(), db, callbacks=Callbacks(on_row=seen.append), timeout_s=300)
    assert out.crashed and out.exit_code < 0 and signal_name(out.exit_code) == sig
    assert sig in out.failure and sig in out.errors[-1].user_message()
    status, rows = _stored(db, out.run_id)
    # batch 1 was measured and committed before the crash; batch 2 was the point running.
    assert status == "failed"
    assert rows == [(1, "ok"), (2, "failed")]
    assert out.rows[0].p50_ms > 0 and sig in out.rows[1].reason
    assert [r.batch for r in seen] == [1, 2]
    assert "1 later point(s) were not run" in out.notes


def test_hang_is_killed_at_the_timeout_and_recorded(tmp_path, crash_hook):
    crash_hook("hang@0")
    db = str(tmp_path / "r.sqlite")
    t0 = time.monotonic()
    out = run_sweep_in_worker(_config((1, 2)), db, timeout_s=25)  # room for a slow start
    assert time.monotonic() - t0 < 90
    assert out.timed_out and "timed out after 25 s" in out.failure
    assert out.exit_code == -9
    status, rows = _stored(db, out.run_id)
    assert status == "failed" and rows == [(1, "failed")]
    assert "timed out" in out.rows[0].reason
    assert "timed out after 25 s" in Store(db).run(out.run_id)["end_reason"]  # the run says why


def test_stop_is_honoured_between_points(tmp_path):
    db = str(tmp_path / "r.sqlite")
    seen = []
    config = _config(range(1, 17))
    config.bench = BenchSettings(warmup=1, iters=20, max_time_s=30.0)  # each point ≫ 0.1 s
    stop = Callbacks(on_row=seen.append, should_stop=lambda: bool(seen))
    out = run_sweep_in_worker(config, db, callbacks=stop)
    assert out.interrupted and out.failure == "" and out.exit_code == 0
    status, rows = _stored(db, out.run_id)
    assert status == "interrupted"
    assert 1 <= len(rows) < 16 and all(s == "ok" for _, s in rows)


def test_stop_ignored_by_a_hung_child_ends_in_termination(tmp_path, crash_hook):
    crash_hook("hang@1")
    db = str(tmp_path / "r.sqlite")
    seen = []
    out = run_sweep_in_worker(
        _config((1, 2)),
        db,
        callbacks=Callbacks(on_row=seen.append, should_stop=lambda: bool(seen)),
        stop_grace_s=1,
    )
    assert out.interrupted and "did not stop within 1 s" in out.failure
    assert out.exit_code == -15
    status, rows = _stored(db, out.run_id)
    assert status == "interrupted" and rows == [(1, "ok")]


def test_a_ctrl_c_as_the_worker_is_spawned_is_a_stop_not_an_escape(tmp_path, monkeypatch):
    """A Ctrl-C landing between the worker's spawn and the parent's watch escaped as a bare
    KeyboardInterrupt (the CLI printed "interrupted" alone; seen once in CI). The signal
    is sent while the worker is being spawned, the moment it is held for: it is a stop."""
    import signal
    import threading

    from engine.running import worker

    spawn_env = worker._child_env

    def ctrl_c_during_spawn(*args):
        # to this (the main) thread, which holds it: this process's library threads do not
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        return spawn_env(*args)

    monkeypatch.setattr(worker, "_child_env", ctrl_c_during_spawn)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        out = run_sweep_in_worker(_config((1, 2)), str(tmp_path / "r.sqlite"))
    finally:
        signal.signal(signal.SIGINT, old)
    assert out.interrupted and out.run_id is None and out.rows == [], out
    assert out.end_reason == "Ctrl-C" and out.failure == ""
