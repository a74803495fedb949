"""benchmarks/zoo.py's table (issue 30): at batch 32 the torch.compile peer is weighed against
auto mode's ladder, which holds the compiled engines only when the run asked for them
(`zoo.py --with-compile`); a ladder without them says so in the verdict."""

from __future__ import annotations

import argparse
import copy
import json

import pytest

from tests.conftest import ROOT, benchmarks_on_path

ZOO = ROOT / "benchmarks" / "results" / "zoo"


@pytest.fixture(scope="module")
def modules():
    with benchmarks_on_path():
        import zoo
        import zoo_table

        yield zoo, zoo_table


def test_a_committed_batch_32_ladder_without_compiled_engines_says_so(modules):
    _, table = modules
    rec = json.loads((ZOO / "resnet50.json").read_text())  # 2026-11-30: no engines, no peer
    row = table._table_row(rec, 32)
    assert row[9].endswith("(no torch.compile) (auto mode without compiled engines)"), row[9]
    assert "compiled engines" not in table._table_row(rec, 1)[9]  # only batch 32 meets the peer
    marked = copy.deepcopy(rec)  # as zoo.py --with-compile stamps its batch-32 sweep now
    marked["sweeps"] = [{"requested": 32, "batch": 32, "with_compile": True}]
    assert table._table_row(marked, 32)[9] == row[9].removesuffix(
        " (auto mode without compiled engines)"
    )


def test_with_compile_asks_for_engines_at_the_compile_batch_only(modules):
    zoo, _ = modules
    args = argparse.Namespace(with_compile=True, compile_batch=32)
    assert [zoo._with_compile(args, b) for b in (1, 32, 256)] == [False, True, False]
    args.with_compile = False
    assert not zoo._with_compile(args, 32)


def test_a_model_measured_without_compiled_engines_is_measured_anew_with_them(modules):
    """`--with-compile` over the committed zoo: a record of 2026-11-30 (written whole, no
    engines, no timed peer) is measured anew, all its batch sizes in one run; a record of a
    run with engines, or one not yet at batch 32, resumes; without the flag nothing changes."""
    zoo, _ = modules
    args = argparse.Namespace(with_compile=True, compile_batch=32)
    old = json.loads((ZOO / "resnet50.json").read_text())
    assert "sweeps" not in old and zoo._before_engines(old, args)

    def rec(*sweeps):
        return {"batches": [1, 32, 256], "sweeps": [
            {"requested": b, "batch": b, "with_compile": w} for b, w in sweeps]}  # fmt: skip

    assert zoo._before_engines(rec((1, False), (32, False)), args)
    assert not zoo._before_engines(rec((1, False), (32, True)), args)
    assert not zoo._before_engines(rec((1, False)), args)  # cut short before batch 32: resumed
    assert not zoo._before_engines({"batches": [1], "sweeps": []}, args)  # no batch 32 asked
    args.with_compile = False
    assert not zoo._before_engines(old, args)
