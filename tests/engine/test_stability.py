"""Stability verdicts, "within noise" comparisons and auto mode's ties, from known samples.

The two recorded runs in tests/data/noise_same_config.json are the same configuration
measured twice on the shared 2-core machine (see the file for the command and versions).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.cli.history import format_comparison
from engine.cli.main import format_table
from engine.core.config import ResultRow
from engine.core.stability import (
    CV_LIMIT,
    MIN_JUDGED,
    SAMPLE_CAP,
    TAIL_LIMIT,
    compare_words,
    keep_samples,
    median_ci,
    row_ci,
    spread,
    within_noise,
)
from engine.reporting import report
from engine.running.auto import AutoOutcome, format_ladder, ladders_from_rows
from engine.storage import history

RECORDED = Path(__file__).parents[1] / "data" / "noise_same_config.json"


def _row(samples, **kw) -> ResultRow:
    a = np.asarray(samples)
    p10, p50, p90 = np.percentile(a, [10, 50, 90])
    base = dict(model="resnet18", backend="ort", device="cpu", precision="fp32", batch=2)
    base.update(kw)
    return ResultRow(
        **base,
        p10_ms=p10,
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=float(a.max()),
        iters=len(a),
        throughput_ips=2000 / p50,
        samples_ms=list(map(float, a)),
    )


def _normal(mean: float, sd: float, n: int = 200, seed: int = 0) -> list[float]:
    return list(np.random.default_rng(seed).normal(mean, sd, n))


def test_steady_samples_are_stable():
    s = spread(_normal(10.0, 0.2))
    assert s.stable is True and s.reason == ""
    assert s.cv == pytest.approx(0.02, abs=0.005)
    assert s.tail_ratio < TAIL_LIMIT


def test_a_slow_tail_is_unstable_and_says_why():
    samples = [10.0] * 80 + [20.0] * 20  # one in five iterations twice as slow
    s = spread(samples)
    assert s.stable is False
    assert "p90/p50 2.00" in s.reason and "CV" in s.reason
    assert s.cv > CV_LIMIT


def test_drift_between_halves_is_unstable():
    samples = [10.0] * 50 + [12.0] * 50  # e.g. a clock that dropped half-way
    s = spread(samples)
    assert s.stable is False and "halves' medians differ 20.0%" in s.reason


def test_too_few_samples_are_not_judged():
    s = spread([10.0, 30.0, 10.0])
    assert s.stable is None and "not judged" in s.reason
    assert MIN_JUDGED > 3


def test_samples_are_kept_in_order_up_to_the_cap():
    xs = [float(i) for i in range(5000)]
    kept = keep_samples(xs)
    assert len(kept) == SAMPLE_CAP and kept[0] == 0.0 and kept[-1] == 4999.0
    assert kept == sorted(kept)
    assert keep_samples([1.23456789]) == [1.2346]


def test_median_ci_uses_order_statistics():
    xs = list(range(1, 101))  # n = 100: ranks 50 ± 1.96·√100/2 → 40 and 60 (0-based)
    assert median_ci(xs) == (41.0, 61.0)
    assert median_ci(xs[:5]) is None


def test_rows_without_samples_get_an_estimated_ci():
    row = ResultRow("m", "ort", "cpu", "fp32", 1, p10_ms=9.0, p50_ms=10.0, p90_ms=11.0, iters=100)
    lo, hi = row_ci(row)
    assert lo < 10.0 < hi and hi - lo == pytest.approx(2 * 1.96 * 1.2533 * 2 / 2.563 / 10, rel=1e-3)


def test_recorded_runs_of_one_configuration_read_within_noise():
    data = json.loads(RECORDED.read_text())
    a, b = (ResultRow.from_dict(r) for r in data["rows"])
    assert a.p50_ms != b.p50_ms and len(a.samples_ms) >= MIN_JUDGED
    assert within_noise(a, b) is True
    assert compare_words(a, b) == "within noise"
    sp = history.speedups([a], [b])
    assert sp[0].noise == "within noise"


def test_a_real_difference_is_still_shown_as_a_speed_up():
    data = json.loads(RECORDED.read_text())
    a = ResultRow.from_dict(data["rows"][0])
    faster = ResultRow.from_dict({**data["rows"][0], "samples_ms": [x / 2 for x in a.samples_ms]})
    faster.p50_ms = a.p50_ms / 2
    assert compare_words(a, faster) == "B faster"
    assert history.speedups([a], [faster])[0].noise == "B faster"


def test_the_issue_case_two_noisy_dashboard_runs_are_not_a_speed_up(tmp_path):
    """9.0 vs 21.2 ms from two identical sweeps on a busy machine: noise, not 0.43x.

    A core taken by another process half the time makes the samples bimodal; with ~20
    iterations the median lands on either mode, and the CIs of both medians span both.
    """
    from engine.storage.store import Store

    noisy_a = [9.0 + i * 0.01 for i in range(10)] + [21.2 + i * 0.01 for i in range(9)]
    noisy_b = [9.0 + i * 0.01 for i in range(9)] + [21.2 + i * 0.01 for i in range(10)]
    store = Store(tmp_path / "r.sqlite")
    ids = []
    for samples in (noisy_a, noisy_b):
        rid = store.create_run({"model": {"name": "resnet18"}}, {"cpu": "x"}, "cmd", label="t")
        store.add_row(rid, _row(samples))
        store.finish_run(rid, "done")
        ids.append(rid)
    a, b = (history.load_run(store, i) for i in ids)
    assert a.rows[0].p50_ms == pytest.approx(9.09) and b.rows[0].p50_ms == pytest.approx(21.2)
    text = format_comparison(a, b)
    table_line = next(line for line in text.splitlines() if line.startswith("ort"))
    assert "within noise" in table_line and "0.43x" not in text
    md = report.markdown_report(store, ids, diagnostics=False)
    assert "| within noise |" in md and "0.43×" not in md
    store.close()


def _ladder_row(precision, samples, **options) -> ResultRow:
    r = _row(samples, backend="torch", device="cuda:0", precision=precision, options=options)
    r.parity_ok, r.parity_status = True, "ok"
    return r


def test_auto_treats_candidates_within_noise_as_ties_and_names_the_rule():
    rows = [
        _ladder_row("fp32", _normal(10.0, 1.0, seed=1)),
        _ladder_row("fp16", _normal(9.9, 1.0, seed=2)),  # within noise of fp32
        _ladder_row("fp16", _normal(10.05, 1.0, seed=3), channels_last=True),
    ]
    steps = ladders_from_rows(rows)[2]
    best = [s for s in steps if s.best]
    assert len(best) == 1 and best[0].precision == "fp32"
    assert "tie broken by the higher precision" in best[0].tie_note
    text = format_ladder(AutoOutcome(run_id=None, ladders={2: steps}))
    assert "chosen: 3 settings within noise" in text
    assert "noise" in text.splitlines()[2]  # the fp16 step is not shown as a speed-up


def test_auto_picks_a_clear_winner_outside_the_noise():
    rows = [
        _ladder_row("fp32", _normal(10.0, 0.2, seed=1)),
        _ladder_row("fp16", _normal(5.0, 0.2, seed=2)),
    ]
    best = [s for s in ladders_from_rows(rows)[2] if s.best]
    assert best[0].precision == "fp16" and best[0].tie_note == "fastest, outside the others' noise"


def test_cli_table_shows_verdict_compute_and_machine_state():
    r = _row([10.0] * 80 + [20.0] * 20, device="cuda:0")
    r.stable, r.stability_note = False, "p90/p50 2.00 > 1.25"
    r.tflops, r.peak_pct, r.throttled = 12.5, 1.3, True
    r.machine_state = {"sm_clock_mhz_min": 1545, "sm_clock_mhz_max": 1980}
    text = format_table([r])
    for word in ("TFLOP/s", "% peak", "12.5", "1.3%", "NO: p90/p50", "throttled", "SM 1545-1980"):
        assert word in text


def test_thread_counts_are_read_from_the_machine_parts_threads_not_from_key_names():
    from engine.core.config import MachineState
    from engine.core.stability import machine_flags

    r = _row([10.0] * 20)
    r.machine = MachineState(readings={"busy_threads": 9}, threads={"onnx": 3})
    assert machine_flags(r) == "onnx 3 thr"  # a reading named *_threads is not a pool


def test_compare_names_the_thread_counts_the_rows_recorded(tmp_path):
    from engine.storage.history.compare import env_diff
    from engine.storage.history.queries import load_run
    from engine.storage.store import Store

    store = Store(tmp_path / "c.sqlite")
    for threads in ({"torch": 4, "ort": 4}, {"torch": 1, "ort": 4}):
        rid = store.create_run({"model": {"name": "resnet18"}}, {"cpu": "x"}, "cmd")
        row = _row([10.0] * 20)
        row.machine.threads = threads
        store.add_row(rid, row)
        store.finish_run(rid, "done")
    diff = env_diff(load_run(store, 1), load_run(store, 2))
    store.close()
    assert [(d.key, d.a, d.b, d.kind) for d in diff] == [
        ("CPU threads", "ort 4, torch 4", "ort 4, torch 1", "machine state")
    ]


def test_a_document_with_samples_and_machine_state_imports_and_bad_samples_do_not(tmp_path):
    from engine.core.errors import BadInput
    from engine.storage.documents import validate_document
    from engine.storage.store import Store

    row = _row(_normal(10.0, 0.2, n=50))
    row.machine_state = {"sm_clock_mhz_min": 1545, "clock_event_reasons": {"sw_power_cap": 0.5}}
    store = Store(tmp_path / "d.sqlite")
    rid = store.create_run({"model": {"name": "resnet18"}}, {"cpu": "x"}, "cmd", label="t")
    store.add_row(rid, row)
    store.finish_run(rid, "done")
    doc = store.document(rid)
    store.close()
    _, rows = validate_document(json.loads(json.dumps(doc)))
    assert rows[0].samples_ms == row.samples_ms
    assert rows[0].machine_state["clock_event_reasons"] == {"sw_power_cap": 0.5}
    doc["rows"][0]["samples_ms"] = [1.0, "x"]
    with pytest.raises(BadInput, match="samples_ms"):
        validate_document(doc)
    doc["rows"][0]["samples_ms"] = [1.0] * (SAMPLE_CAP + 1)
    with pytest.raises(BadInput, match="samples_ms"):
        validate_document(doc)
