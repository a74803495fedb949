"""benchmarks/compiled_engines.py's head-to-head: each configuration prepared in its own
process and timed in turn; a process that dies is recorded with its exit, not a crash of the
whole run (two compiled runtimes in one process ended one on an H100 on 2026-12-07)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tests.conftest import benchmarks_on_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def script():
    with benchmarks_on_path():  # compiled_engines imports zoo as it runs
        import compiled_engines

        yield compiled_engines


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


def test_each_child_says_its_steps_and_an_eager_prelude_runs_before_it_prepares(script, tmp_path):
    winner = {"backend": "torch", "precision": "fp32", "options": {}}
    peer = {"backend": "ort", "precision": "fp32", "options": {}}
    h2h = script._head_to_head(_args(rounds=1), winner, peer, tmp_path, prelude="eager")
    assert "error" not in h2h and h2h["prelude"] == "eager", h2h
    log = (tmp_path / "squeezenet1_1-winner-eager.log").read_text()
    steps = [ln.split(" serve: ", 1)[1] for ln in log.splitlines() if " serve: " in ln]
    # the reference first (as a sweep computes it), then the eager pass, then the runner
    assert steps[1].startswith("the FP32 reference") and steps[2].startswith("one eager")
    assert steps[3].startswith("preparing torch fp32") and steps[-1] == "ready"


def test_a_winner_that_dies_before_it_is_ready_is_benched_alone_and_tried_again(script, tmp_path):
    dead = {"backend": "no_such_backend", "precision": "fp32", "options": {}}
    args = _args(rounds=1)
    args.model_name = "squeezenet1_1"
    rec = {"model": "squeezenet1_1", "head_to_head": {}}
    rec["head_to_head"] = script._head_to_head(args, dead, dead, tmp_path)
    assert rec["head_to_head"]["died"] == "winner"
    script._winner_died(args, rec, dead, tmp_path, tmp_path / "rec.json")
    assert rec["head_to_head_first"]["error"] == "exit 1"
    assert rec["alone"]["exit"] == 2 and "--backend no_such_backend" in rec["alone"]["command"]
    assert rec["head_to_head"]["prelude"] == "eager" and rec["head_to_head"]["died"] == "winner"
    text = script._died_text(rec)
    assert "the winner's process ended (exit 1) at \"preparing no_such_backend" in text
    assert "exit 2" in text and "not judged: a process ended (exit 1)" in text


def test_the_load_profile_runs_the_winner_once_in_a_fresh_process(script, tmp_path):
    args = _args()
    args.model_name = "squeezenet1_1"
    winner = {"backend": "torch", "precision": "fp32", "options": {}}
    got = script._profiled(args, winner, tmp_path)
    assert got["exit"] == 0 and got["file"] == "squeezenet1_1-load-profile.txt"
    text = (tmp_path / got["file"]).read_text()
    assert "prepared and ran once in" in text and "cumulative" in text
    assert str(script.ROOT) not in text


def test_an_engine_carried_in_parts_to_another_machine_is_found_there(
    script, tmp_path, monkeypatch
):
    """A lease holds efficientnet_b1's cold build but not its head-to-head: the engine goes
    out in parts under a lease's 16 MiB a file, comes back into a fresh cache whole, and a
    record of another machine with that engine is resumed; a tar reaching outside its own
    folder is refused, and a record whose engine is not here is not resumed."""
    import io
    import os
    import tarfile

    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "first"))
    key = "aoti-tiny-b32-fp16-0123"
    folder = script.carry.engine_folder(key)
    folder.mkdir(parents=True)
    package = os.urandom(script.carry.PART_BYTES + 1000)  # two parts
    (folder / "model.pt2").write_bytes(package)
    (folder / "meta.json").write_text('{"key": {"model": "tiny"}}')
    built = f"built the compiled engine {key} in 618 s and cached it"
    rec = {"cold": {"exit": 0, "notes": [built]}, "warm": {"exit": 0}}
    assert script.carry.engine_key(rec) == key and script.carry.carried(rec)
    carry = tmp_path / "carry"
    packed = script.carry.pack(key, carry)
    parts = sorted(carry.iterdir())
    assert [p.name for p in parts] == [f"{key}.tar.00", f"{key}.tar.01"]
    assert packed == {"key": key, "bytes": sum(p.stat().st_size for p in parts), "parts": 2}
    assert max(p.stat().st_size for p in parts) < 16 * 2**20

    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "second"))  # the next machine
    assert not script.carry.carried(rec)
    assert script.carry.unpack(carry) == [key]
    assert (script.carry.engine_folder(key) / "model.pt2").read_bytes() == package
    assert script.carry.carried(rec) and not script.carry.carried({**rec, "warm": {"exit": 1}})

    evil = tmp_path / "evil"
    evil.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../outside")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (evil / "aoti-evil.tar.00").write_bytes(buf.getvalue())
    with pytest.raises(SystemExit, match="outside aoti-evil/"):
        script.carry.unpack(evil)
    assert not (tmp_path / "second" / "outside").exists()
