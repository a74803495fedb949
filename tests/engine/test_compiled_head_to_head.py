"""benchmarks/compiled_engines.py's head-to-head: each configuration prepared in its own
process and timed in turn; a process that dies is recorded with its exit, not a crash of the
whole run (two compiled runtimes in one process ended one on an H100 on 2026-12-07)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def script():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import compiled_engines

        yield compiled_engines
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def _args(**kw) -> argparse.Namespace:
    base = dict(model_name="squeezenet1_1", image_size=32, batch=2, device="cpu", warmup=1)
    return argparse.Namespace(**{**base, "iters": 5, "rounds": 3, **kw})


def test_two_processes_take_turns_and_a_verdict_is_given(script, tmp_path):
    winner = {"backend": "torch", "precision": "fp32", "options": {}}
    peer = {"backend": "ort", "precision": "fp32", "options": {}}
    h2h = script._head_to_head(_args(), winner, peer, tmp_path)
    assert "error" not in h2h, h2h
    assert [len(v) for v in h2h["rounds_p50_ms"].values()] == [3, 3]
    assert all(p > 0 for v in h2h["rounds_p50_ms"].values() for p in v)
    assert len(h2h["ratio_winner_over_peer"]) == 3
    assert h2h["verdict"] in ("not slower beyond noise", "SLOWER than the peer beyond noise")
    # each process judged its own outputs against FP32 on the CPU before it was timed
    assert [h2h["prepare"][k]["parity"] for k in ("winner", "peer")] == ["ok", "ok"]


def test_a_process_that_dies_is_recorded_and_not_judged(script, tmp_path):
    winner = {"backend": "torch", "precision": "fp32", "options": {}}
    dead = {"backend": "no_such_backend", "precision": "fp32", "options": {}}
    h2h = script._head_to_head(_args(rounds=2), winner, dead, tmp_path)
    assert h2h["error"] == "exit 1" and "unknown backend" in h2h["stderr_tail"]
    assert "winner" in h2h["prepare"] and "rounds_p50_ms" not in h2h
    assert script._failed(h2h) == "not judged: a process ended (exit 1)"
