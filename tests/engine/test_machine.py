"""Busy check (our own process tree excluded), NVML sampler without a GPU, thread counts,
until-stable mode, and the fields a bench --json document carries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from engine.backends.base import Runner
from engine.core.config import BenchSettings, RunnerSpec
from engine.hardware.gpu import ClockSampler, _nvml
from engine.hardware.machine import busy_check, cpu_others, own_tree, read_procs
from engine.running.measure import time_point
from tests.conftest import ROOT

BUSY = "import time\nend = time.time() + 30\nwhile time.time() < end: pass"


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture
def outside_busy():
    """A busy process outside our tree: started by a shell that exits (so it is re-parented)
    in its own session, i.e. another process group."""
    sh = subprocess.run(
        ["sh", "-c", f'{sys.executable} -c "{BUSY}" >/dev/null 2>&1 & echo $!'],
        capture_output=True,
        text=True,
        start_new_session=True,
        check=True,
    )
    pid = int(sh.stdout.strip())
    yield pid
    _kill(pid)


@pytest.fixture
def own_busy():
    child = subprocess.Popen([sys.executable, "-c", BUSY])
    yield child.pid
    _kill(child.pid)
    child.wait()


def test_busy_check_counts_others_and_not_our_own_children(outside_busy, own_busy):
    time.sleep(0.2)  # both are spinning
    procs = read_procs()
    assert outside_busy in procs and own_busy in procs
    mine = own_tree(procs)
    assert own_busy in mine and os.getpid() in mine and outside_busy not in mine
    assert os.getpgid(outside_busy) != os.getpgid(0)
    share, cores, top = cpu_others(window_s=1.0)
    by_pid = {d["pid"]: d for d in cpu_others(window_s=1.0)[2] + top}
    assert outside_busy in by_pid and by_pid[outside_busy]["cores"] > 0.05
    assert own_busy not in by_pid
    assert share > 0 and cores >= by_pid[outside_busy]["cores"] - 1e-9


def test_busy_report_is_stored_as_plain_data():
    report = busy_check(window_s=0.2)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["window_s"] == 0.2 and "notes" in data
    assert all(isinstance(n, str) and n.startswith("machine busy") for n in report.notes)


@pytest.mark.skipif(_nvml() is not None, reason="NVML works here: a GPU machine")
def test_nvml_sampler_skips_cleanly_without_a_gpu():
    for index in (0, None):
        with ClockSampler(index) as s:
            time.sleep(0.05)
        assert s._thread is None and s.summary() == {}


def test_sampler_summary_flags_throttling_and_power_cap():
    s = ClockSampler(None)
    s.limit_w = 700.0
    s.samples = [(1980, 2619, 650.0, 0x0), (1545, 2619, 693.0, 0x4), (1755, 2619, 690.0, 0x4)]
    out = s.summary()
    assert out["sm_clock_mhz_min"] == 1545 and out["sm_clock_mhz_max"] == 1980
    assert out["power_w_max"] == 693.0 and out["power_limit_w"] == 700.0
    assert out["power_capped"] is True and out["throttled"] is False
    assert out["clock_event_reasons"] == {"sw_power_cap": pytest.approx(2 / 3)}
    s.samples.append((1200, 2619, 500.0, 0x40))
    assert s.summary()["throttled"] is True


def test_thread_counts_read_what_onnx_runtime_reports(small_artifacts):
    from engine.backends import PrepareContext, get_backend

    ctx = PrepareContext(batches=(1,))
    spec = RunnerSpec("ort", "cpu", "fp32", (("intra_threads", 1),))
    with get_backend("ort").prepare(spec, small_artifacts, ctx) as runner:
        counts = runner.thread_counts()
    assert counts["ort"] == 1 and counts["torch"] >= 1 and set(counts) == {"ort", "torch"}


def test_an_onnx_file_on_onnx_runtime_never_loads_pytorch(tmp_path):
    """Its sweep imported PyTorch only to record PyTorch's thread count (the fingerprint, and
    every ONNX Runtime row's): about 1.2 s of a 2.9 s CLI run, and of each worker in the
    suite. In a fresh process it is not loaded now; the rows name ONNX Runtime's pool alone,
    and the fingerprint still holds PyTorch's CUDA build (read from its files)."""
    from engine.storage.store import Store

    db = tmp_path / "r.sqlite"
    onnx_file = ROOT / "tests" / "data" / "onnx" / "legacy_fixed_48.onnx"
    code = (
        "import sys; from engine.cli.main import main;"
        f"code = main(['bench', '--onnx', {str(onnx_file)!r}, '--backend', 'ort',"
        " '--precision', 'fp32,int8', '--batch', '1', '--iters', '2', '--warmup', '0',"
        f" '--min-iters', '1', '--inline', '--quiet', '--db', {str(db)!r}]);"
        "print(code, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split()[-2:] == ["0", "False"], out.stdout + out.stderr
    store = Store(str(db))
    (run,) = store.runs()
    assert "torch_threads" not in run["environment"]
    import torch

    assert run["environment"]["cuda"] == torch.version.cuda
    assert [set(r.machine.threads) for r in store.rows(run["id"])] == [{"ort"}] * 2
    store.close()


class _Jumpy(Runner):
    """A real Runner whose run time alternates 1 ms / 8 ms: never stable."""

    def __init__(self) -> None:
        self.spec = RunnerSpec("torch", "cpu", "fp32")
        self.provider, self.info, self.i = "sleep", {}, 0

    def to_device(self, x):
        return x

    def run(self, x_dev):
        self.i += 1
        time.sleep(0.008 if self.i % 2 else 0.001)
        return x_dev

    def to_host(self, y_dev):
        return np.asarray(y_dev)


def test_until_stable_repeats_within_its_time_budget_and_says_so():
    settings = BenchSettings(warmup=0, iters=20, until_stable=True, stable_budget_s=2.0)
    t0 = time.monotonic()
    timing = time_point(_Jumpy(), np.zeros((1, 3, 4, 4), np.float32), settings)
    assert timing.stable is False and timing.rounds >= 2 and timing.iters == 20
    assert timing.stability_note.startswith(f"still unstable after {timing.rounds} rounds; ")
    assert time.monotonic() - t0 <= 2.0 + 1.5  # rounds start only while one still fits
    once = time_point(_Jumpy(), np.zeros((1, 3, 4, 4), np.float32), BenchSettings(iters=20))
    assert once.rounds == 1


def test_bench_json_carries_samples_compute_and_machine_state(tmp_path):
    out = tmp_path / "run.json"
    cmd = [sys.executable, "-m", "engine", "bench", "--model", "resnet18", "--image-size", "32",
           "--backend", "torch", "--batch", "1", "--iters", "12", "--warmup", "1", "--no-parity",
           "--until-stable", "--stable-budget", "5", "--db", str(tmp_path / "r.sqlite"),
           "--json", str(out), "--quiet"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    row = doc["rows"][0]
    assert len(row["samples_ms"]) == row["iters"] >= 3
    for key in ("cv", "tail_ratio", "stability_note", "rounds", "gflop", "tflops"):
        assert key in row and row[key] is not None
    # resnet18: 1.82 GMAC = 3.64 GFLOP at 224, about (32/224)² of that at 32
    assert row["gflop"] == pytest.approx(3.64 * (32 / 224) ** 2, rel=0.05)
    assert row["machine_state"]["torch_threads"] >= 1 and row["peak_pct"] is None
    assert "busy_check" in doc["run"]["environment"]
    assert "--until-stable" in doc["run"]["reproduce"]
    assert "TFLOP/s" in done.stdout and "% peak" in done.stdout


def test_dashboard_toggle_sets_until_stable_in_the_reproduce_command(tmp_path, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    root = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("VISIONBENCH_DATA", str(tmp_path))
    monkeypatch.chdir(root)
    at = AppTest.from_file(str(root / "dashboard.py"), default_timeout=300)
    at.run()
    assert "--until-stable" not in "\n".join(c.value for c in at.code)
    at.toggle(key="_vb_until_stable").set_value(True)
    at.run()
    assert not at.exception, at.exception
    assert "--until-stable --stable-budget 60" in "\n".join(c.value for c in at.code)


def test_nvml_reads_the_gpu_cuda_sees(monkeypatch):
    """NVML ignores CUDA_VISIBLE_DEVICES: CUDA's device 0 may be NVML's device 1 (seen on a
    two-GPU H200 host, where clocks and the busy check were read off the other GPU)."""
    from engine.hardware.gpu import nvml_target

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert nvml_target(0) == 0 and nvml_target(1) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert nvml_target(0) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 2")
    assert nvml_target(0) == 3 and nvml_target(1) == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-37c22c9a-0483-f2c7-0ac2-434cd0e65e30")
    assert nvml_target(0) == "GPU-37c22c9a-0483-f2c7-0ac2-434cd0e65e30"
