"""A result row made of parts (point, timing, parity, compute, machine state), stored flat,
read back into parts.

Old records render through the new code: a store written by the code before the parts
(tests/data/store_schema4.sqlite, made 2026-12-07 with the commit before this change) and
the committed bench documents under benchmarks/results are read, listed, charted and
reported, and each row's flat record comes back exactly as it was stored.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from engine.cli import main as cli
from engine.core.config import (
    BenchSettings,
    Choice,
    MachineState,
    Parity,
    Point,
    ResultRow,
    Timing,
)
from engine.core.results import FLAT
from engine.reporting import charts
from engine.running.launch import InlineLauncher, Job
from engine.running.plan import make_plan
from engine.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]
OLD_STORE = ROOT / "tests" / "data" / "store_schema4.sqlite"
DOCUMENTS = [
    "benchmarks/results/h200/resnet50-stability.json",
    "benchmarks/results/sweep/h100.json",
    "benchmarks/results/sweep/cpu.json",
    "benchmarks/results/h100-bench-json/h100_cpu.json",
    "benchmarks/results/h100-bench-json/h100_torch_cuda.json",
]


def _stored_json(db: Path) -> list[dict]:
    con = sqlite3.connect(db)
    try:
        return [json.loads(r[0]) for r in con.execute("SELECT data_json FROM rows ORDER BY id")]
    finally:
        con.close()


def test_a_measured_row_is_its_parts_and_is_stored_flat(tmp_path, small_spec):
    bench = BenchSettings(warmup=0, iters=3)
    plan = make_plan(Choice(small_spec, ("ort",), batches=(1,), bench=bench))
    store = Store(tmp_path / "parts.sqlite")
    outcome = InlineLauncher().launch(Job(plan), store)
    row = outcome.rows[0]
    assert isinstance(row.point, Point) and isinstance(row.timing, Timing)
    assert isinstance(row.parity, Parity) and row.parity.status == "ok"
    assert row.p50_ms == row.timing.p50_ms and row.parity_status == row.parity.status
    assert row.gflop == row.compute.gflop and row.gflop > 0
    # Flat in SQLite, the keys and order rows always had; read back into the same parts.
    stored = _stored_json(store.path)[0]
    assert list(stored) == [k for k in FLAT if k != "image_width"]
    again = store.rows(outcome.run_id)[0]
    assert again == row and again.timing == row.timing
    # The flat record keeps what it always kept of parity (not its mean error or tolerance text).
    kept = ("max_rel_err", "cosine", "top1_agree", "ok", "status", "reason")
    assert all(getattr(again.parity, k) == getattr(row.parity, k) for k in kept)
    store.close()


def test_the_machine_state_is_its_own_part_with_thread_counts_declared(tmp_path, small_spec):
    bench = BenchSettings(warmup=0, iters=3)
    plan = make_plan(Choice(small_spec, ("ort",), batches=(1,), bench=bench, parity=False))
    store = Store(tmp_path / "machine.sqlite")
    outcome = InlineLauncher().launch(Job(plan), store)
    row = outcome.rows[0]
    assert isinstance(row.machine, MachineState)
    assert not hasattr(row.timing, "machine_state")  # the timing is latency, nothing else
    # Each library's CPU-thread pool, as its runner reported it (Runner.thread_counts).
    assert set(row.machine.threads) == {"torch", "ort"}
    assert all(isinstance(n, int) and n >= 1 for n in row.machine.threads.values())
    assert row.throttled is row.machine.throttled is None  # a CPU point: no NVML readings
    # Stored flat as rows always were: each pool as ``<name>_threads`` in machine_state.
    stored = _stored_json(store.path)[0]
    assert stored["machine_state"] == {f"{k}_threads": v for k, v in row.machine.threads.items()}
    again = store.rows(outcome.run_id)[0]
    assert again.machine == row.machine and again == row
    store.close()


def test_a_flat_machine_state_is_split_into_its_part_in_one_place():
    state = {"sm_clock_mhz_min": 1500, "torch_threads": 4, "odd_threads": "many"}
    row = ResultRow(model="m", backend="b", device="cuda", precision="fp16", batch=1,
                    machine_state=state, throttled=True)  # fmt: skip
    assert row.machine.threads == {"torch": 4}  # a whole number is a pool's count
    assert row.machine.readings == {"sm_clock_mhz_min": 1500, "odd_threads": "many"}
    assert row.machine.throttled is True and row.machine.power_capped is None
    assert row.to_dict()["machine_state"] == state  # and back, exactly as given
    row.machine_state = {"ort_threads": 2}  # the flat name writes through the part
    assert row.machine == MachineState(threads={"ort": 2}, throttled=True)


def test_a_point_that_was_not_timed_has_no_timing_part():
    row = ResultRow(model="m", backend="ort", device="cpu", precision="fp32", batch=1)
    row.status, row.reason = "skipped", "not here"
    assert row.timing is None and row.parity is None
    assert row.p50_ms is None and row.parity_status == "off" and row.rounds == 1
    old = {**row.to_dict(), "parity_ok": False}
    del old["parity_status"]  # a row from before "not judged" existed
    assert ResultRow.from_dict(old).parity.status == "failed"


def test_a_store_of_the_old_schema_renders_through_the_parts(tmp_path, capsys):
    db = tmp_path / "old.sqlite"
    shutil.copy(OLD_STORE, db)
    before = _stored_json(db)
    store = Store(db)
    rows = store.rows(1)
    assert len(rows) == 6 and all(r.timing is not None and r.parity for r in rows)
    assert [r.to_dict() for r in rows] == before  # every flat record exactly as stored
    # The machine part is read back: the old ``<name>_threads`` keys are its thread counts.
    machines = [r.machine for r in rows]
    assert all(isinstance(m, MachineState) for m in machines)
    assert [m.threads for m in machines] == [{"torch": 2}] * 2 + [{"torch": 2, "ort": 2}] * 4
    assert [m.readings for m in machines[2:]] == [{"ort_intra_op_setting": 0}] * 4
    frame = charts.results_frame(rows)
    assert len(charts.measured(frame)) == 6
    assert charts.latency_chart(frame, None).data and not charts.speedup_frame(frame).empty
    store.close()
    assert cli.main(["history", "--db", str(db)]) == 0
    assert "resnet18" in capsys.readouterr().out
    out = tmp_path / "old.html"
    assert cli.main(["report", "--run", "1", "--db", str(db), "--out", str(out)]) == 0
    assert "ONNX Runtime" in out.read_text()


@pytest.mark.parametrize("path", DOCUMENTS)
def test_committed_bench_documents_render_through_the_parts(path, tmp_path, capsys):
    doc = json.loads((ROOT / path).read_text())
    rows = [ResultRow.from_dict(r) for r in doc["rows"]]
    for row, given in zip(rows, doc["rows"], strict=True):  # every value it gave, unchanged
        assert {k: v for k, v in row.to_dict().items() if k in given} == given
    timed = [r for r in rows if r.status == "ok"]
    assert timed and all(r.timing is not None for r in timed)
    assert len(charts.measured(charts.results_frame(rows))) == len(timed)
    db = tmp_path / "docs.sqlite"
    assert cli.main(["import", str(ROOT / path), "--db", str(db)]) == 0
    out = tmp_path / "doc.html"
    assert cli.main(["report", "--run", "1", "--db", str(db), "--out", str(out)]) == 0
    assert out.stat().st_size > 1000
    capsys.readouterr()
