"""Concurrency: sweeps on one device are serialised, shared runners and stores stay sound.

The two-process case runs benchmarks/gpu_faults.py (the script run on the H100) on the
CPU: the device lock is per device, so the CPU run exercises the same lock for real.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.artifacts.models import load_artifacts
from engine.backends import PrepareContext, get_backend
from engine.core.config import BenchSettings, ModelSpec, RunnerSpec
from engine.running.locks import device_lock
from engine.running.timing import time_runner
from tests.conftest import benchmarks_on_path

ROOT = Path(__file__).resolve().parents[2]


def test_two_sweep_processes_on_one_device_never_overlap(tmp_path):
    out = tmp_path / "serialise.json"
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_faults.py"),
            "serialise",
            "--device",
            "cpu",
            "--model",
            "resnet18",
            "--image-size",
            "64",
            "--batches",
            "1,2",
            "--iters",
            "10",  # long enough sections that the two processes do contend for the lock
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["checks"] == {
        "both_completed": True,
        "no_timed_section_overlaps": True,
        "one_waited_for_the_other": True,
    }
    sections = doc["timed_sections"]
    assert len(sections) == 4 and len({s["pid"] for s in sections}) == 2
    for a, b in zip(sections, sections[1:], strict=False):
        assert b["start_s"] >= a["end_s"]


def test_overlap_detector_reports_a_real_overlap():
    """The check above can fail: two sections of different processes that do overlap."""
    with benchmarks_on_path():
        from gpu_faults import overlaps
    a = {"pid": 1, "batch": 1, "start": 0.0, "end": 2.0}
    b = {"pid": 2, "batch": 1, "start": 1.5, "end": 3.0}
    c = {"pid": 2, "batch": 2, "start": 3.0, "end": 4.0}
    assert overlaps([a, b, c]) == [(a, b)]
    assert overlaps([a, c]) == []


@pytest.fixture(scope="module")
def ort_runner():
    art = load_artifacts(ModelSpec("resnet18", image_size=64))
    spec = RunnerSpec("ort", "cpu", "fp32")
    with get_backend("ort").prepare(spec, art, PrepareContext(batches=(2,))) as runner:
        yield art, runner


def test_one_ort_runner_shared_by_two_threads_under_the_device_lock(ort_runner):
    art, runner = ort_runner
    x = art.sample_input(2)
    expected = runner.infer(x)
    settings = BenchSettings(warmup=1, iters=4, max_time_s=30.0)
    spans: list[tuple[str, float, float]] = []
    results: dict[str, object] = {}
    errors: list[BaseException] = []

    def session(name: str) -> None:
        try:
            for _ in range(2):
                with device_lock("cpu"):
                    t0 = time.monotonic()
                    timing = time_runner(runner, x, settings)
                    out = runner.infer(x)
                    spans.append((name, t0, time.monotonic()))
                results[name] = (timing, out)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(n,)) for n in ("tab-a", "tab-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert set(results) == {"tab-a", "tab-b"}
    for timing, out in results.values():
        assert timing.iters == 4 and timing.p50_ms > 0
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    spans.sort(key=lambda s: s[1])
    assert len(spans) == 4
    for (_, _, end), (_, start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end  # the lock held each thread's timing apart


def test_device_lock_blocks_a_second_holder_in_the_same_process():
    """The lock is per open file, so threads of one process exclude each other too."""
    inside = threading.Event()
    release = threading.Event()
    got_in: list[float] = []

    def holder() -> None:
        with device_lock("cpu"):
            inside.set()
            release.wait(10)

    def waiter() -> None:
        with device_lock("cpu"):
            got_in.append(time.monotonic())

    t1 = threading.Thread(target=holder)
    t1.start()
    assert inside.wait(10)
    t2 = threading.Thread(target=waiter)
    t2.start()
    time.sleep(0.5)
    assert got_in == []  # still blocked
    released_at = time.monotonic()
    release.set()
    t1.join(10)
    t2.join(10)
    assert got_in and got_in[0] >= released_at


def test_new_store_opened_by_several_processes_at_once(tmp_path):
    code = (
        "import sys; from engine.storage.store import Store; "
        "s = Store(sys.argv[1]); s.create_run({'model': {'name': 'x'}}, {}, ''); s.close()"
    )
    for attempt in range(3):
        db = tmp_path / f"new{attempt}.sqlite"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(db)], cwd=ROOT, stderr=subprocess.PIPE, text=True
            )
            for _ in range(4)
        ]
        errs = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], errs
        import sqlite3

        con = sqlite3.connect(db)
        assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 4
        con.close()


@pytest.mark.parametrize(
    ("first", "second", "shared"),
    [
        (("1", "cuda:0"), (None, "cuda:1"), True),  # one GPU, named two ways
        (("0", "cuda"), ("1", "cuda"), False),  # two GPUs, each a process's cuda:0
        (("2,3", "cuda:1"), ("3", "cuda:0"), True),
        (("GPU-6f1c0a2e-aaaa", "cuda:0"), ("GPU-6f1c0a2e-aaaa,GPU-77", "cuda:0"), True),
        (("MIG-1/2/3", "cuda:0"), ("MIG-1/2/4", "cuda:0"), False),
    ],
)
def test_the_device_lock_is_the_physical_gpus_whatever_cuda_visible_devices_says(
    monkeypatch, first, second, shared
):
    """The lock was named by the process's device index: cuda:0 of a process started with
    CUDA_VISIBLE_DEVICES=1 and cuda:1 of one without it (one GPU) timed at once, and two
    processes each given a GPU of their own (cuda:0 in both) waited for each other. Held
    here by one open file per environment, as two processes hold it."""
    from engine.core.errors import EngineError

    def lock(visible: str | None, device: str):
        if visible is None:
            monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        else:
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        return device_lock(device, timeout_s=0.3)

    with lock(*first):
        if shared:
            with pytest.raises(EngineError, match="stayed busy"), lock(*second):
                pass
        else:
            with lock(*second):
                pass
