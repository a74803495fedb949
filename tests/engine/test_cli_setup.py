"""The CLI as a newcomer meets it: the wrong Python, the help text, runs where nothing ran.

Each test drives ``python -m engine`` in a child process, as the README's commands do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT, SMALL, SMALL_SIZE, run_cli


def test_a_python_without_the_requirements_gets_one_line_and_exit_3():
    # -S: no site-packages, like the system Python the README's commands met.
    proc = subprocess.run(
        [sys.executable, "-S", "-m", "engine", "bench", "--model", SMALL, "--batch", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("error: the package ") and "is not installed" in lines[0]
    assert (
        ".venv/bin/python -m engine" in lines[0] and "pip install -r requirements.txt" in lines[0]
    )


def test_every_bench_option_has_help_text():
    from engine.cli.main import bench_parser

    undocumented = [
        a.option_strings[0]
        for a in bench_parser()._actions
        if a.option_strings and a.option_strings[0] != "-h" and not a.help
    ]
    assert undocumented == []


def test_a_sweep_where_nothing_ran_is_not_stored_as_a_run(tmp_path):
    db = str(tmp_path / "results.sqlite")
    proc = run_cli(
        "bench", "--model", SMALL, "--image-size", str(SMALL_SIZE), "--backend", "tensorrt",
        "--device", "cuda", "--batch", "1", "--db", db, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "stored as run" not in proc.stderr
    if not os.path.exists(db):  # refused before a store was opened (no CUDA here at all)
        return
    listed = run_cli("history", "--db", db, "--no-reference", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []


def test_a_sweep_with_one_runnable_backend_keeps_the_skipped_rows(tmp_path):
    db = str(tmp_path / "results.sqlite")
    proc = run_cli(
        "bench", "--model", SMALL, "--image-size", str(SMALL_SIZE), "--backend", "tensorrt,ort",
        "--batch", "1", "--warmup", "0", "--iters", "2", "--no-parity", "--db", db, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(run_cli("history", "--db", db, "--no-reference", "--json").stdout)
    assert len(listed) == 1
    from engine.storage.store import Store

    store = Store(db)
    statuses = sorted((r.backend, r.status) for r in store.rows(listed[0]["id"]))
    store.close()
    assert statuses == [("ort", "ok"), ("tensorrt", "skipped")]


def test_an_onnx_file_is_stored_under_its_own_name(tmp_path, small_artifacts):
    onnx = tmp_path / "tiny.onnx"
    onnx.write_bytes(small_artifacts.onnx_path("fp32").read_bytes())
    db = str(tmp_path / "results.sqlite")
    proc = run_cli(
        "bench", "--onnx", str(onnx), "--backend", "ort", "--batch", "1", "--warmup", "0",
        "--iters", "2", "--no-parity", "--db", db, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(run_cli("history", "--db", db, "--no-reference", "--json").stdout)
    assert [r["model"] for r in listed] == ["tiny"]


def test_reproduce_commands_start_like_the_readme_in_its_environment(monkeypatch, small_spec):
    from engine.core.config import RunnerSpec, SweepConfig
    from engine.running.sweep import reproduce_command

    config = SweepConfig(small_spec, [RunnerSpec("ort")], [1])
    monkeypatch.setattr(sys, "prefix", str(ROOT / ".venv"))
    assert reproduce_command(config).startswith(".venv/bin/python -m engine bench ")
    monkeypatch.setattr(sys, "prefix", "/usr")
    assert reproduce_command(config).startswith("python -m engine bench ")


def test_the_readme_outputs_are_ignored_and_nothing_else():
    """The files the README's commands write at the root are ignored by git, only there."""
    import re
    import shutil
    from pathlib import Path

    import pytest

    root = Path(__file__).resolve().parents[2]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout, so git's ignore rules cannot be asked")
    readme = (root / "README.md").read_text()
    outputs = sorted(set(re.findall(r"(?:--json|--out) (\S+\.(?:json|html|onnx))", readme)))
    assert {"run.json", "report.json", "report.html", "resnet50.onnx"} <= set(outputs)
    names = [*outputs, "engine/run.json", "docs/report.html", "tests/data/onnx/x.onnx"]
    ask = subprocess.run(["git", "check-ignore", *names], cwd=root, capture_output=True, text=True)
    assert sorted(ask.stdout.split()) == sorted(o for o in outputs if "/" not in o)


def test_cuda_without_cuda_is_one_line_and_exit_3(tmp_path):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    args = ["bench", "--model", "resnet18", "--image-size", "32", "--device", "cuda"]
    res = run_cli(*args, "--db", str(tmp_path / "r.sqlite"))
    assert res.returncode == 3, res.stderr
    assert res.stderr.count("\n") == 1 and "no NVIDIA GPU" in res.stderr
    assert res.stderr.startswith("error: nothing requested could run: ")
    assert "skipped" not in res.stdout + res.stderr and not (tmp_path / "r.sqlite").exists()


def test_the_readme_says_what_run_sweep_shows_while_it_runs():
    """The charts do not stream by default; the README names the toggle as the page does."""
    import re

    readme = (ROOT / "README.md").read_text()
    page = (ROOT / "pages" / "benchmark.py").read_text()
    label = re.search(r'st\.toggle\(\s*"(Redraw the charts[^"]*)"', page).group(1)
    assert f"*{label}*" in readme
    assert "*Run sweep* to stream" not in readme


def test_printed_fixes_start_with_the_interpreter_the_readme_installs():
    import pytest

    from engine.core.errors import BadInput
    from engine.core.paths import python_command
    from engine.storage.history.queries import parse_run_id

    with pytest.raises(BadInput) as err:
        parse_run_id("latest")
    assert f"`{python_command()} -m engine history`" in err.value.user_message()
    page = (ROOT / "pages" / "history.py").read_text()
    assert '"`python -m engine bench`' not in page
