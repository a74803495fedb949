"""The backend contract is complete: generic code asks the backends, it never names them.

An AST scan of every string constant and keyword argument outside ``engine/backends/`` finds
no registered backend name and no declared option name (the few library names that happen to
equal a backend's name are listed with why). A backend declared by another distribution,
through the ``visionbench.backends`` entry-point group, is measured by the worker child, the
launcher the CLI and the dashboard use, with nothing registered by hand.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from engine import backends
from engine.backends import auto_candidates, backend_names, declared_options, describe
from engine.core.config import BenchSettings, RunnerSpec, SweepConfig
from engine.core.errors import BadInput, Unavailable
from engine.running.auto import plan_auto
from engine.running.launch import Job, WorkerLauncher
from engine.storage.store import Store
from tests.conftest import installed_backend

ROOT = Path(__file__).resolve().parents[2]
# (file, string): why this string is not a backend or option named by generic code.
ALLOWED = {
    ("engine/artifacts/export.py", "torch"): "the torch library's version in an export's key",
    ("engine/cli/main.py", "torch"): "the import name of a package the CLI checks for",
    ("engine/hardware/env.py", "torch"): (
        "the torch library's files and module, read without importing it (loaded_torch)"
    ),
    ("engine/core/config.py", "cudnn_conv_algo_search"): (
        "runs stored before ONNX Runtime ran as shipped are read as what really ran"
    ),
}


def _scanned() -> list[Path]:
    # engine/diagnostics names installed packages (torch, tensorrt) as packages: it imports
    # nothing of the engine and runs where the engine cannot even import.
    skip = ("backends", "diagnostics")
    files = [p for p in (ROOT / "engine").rglob("*.py") if not set(skip) & set(p.parts)]
    return sorted([*files, *(ROOT / "pages").glob("*.py"), ROOT / "dashboard.py"])


def _named(path: Path, words: set[str]) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in words:
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.keyword) and node.arg in words:
            found.append((node.lineno, node.arg))
    return found


def test_nothing_outside_the_backends_names_a_backend_or_one_of_its_options():
    words = set(backend_names()) | set(declared_options())
    bad, seen = [], set()
    for path in _scanned():
        rel = path.relative_to(ROOT).as_posix()
        for line, word in _named(path, words):
            if (rel, word) in ALLOWED:
                seen.add((rel, word))
            else:
                bad.append(f"{rel}:{line} names '{word}': ask the backend instead")
    assert bad == []
    assert seen == set(ALLOWED), "an allowed name is gone: drop it from ALLOWED"


def test_the_scan_sees_a_name_in_a_string_and_in_a_keyword(tmp_path):
    src = tmp_path / "m.py"
    src.write_text('spec.with_options(cuda_graph=False)\nif b == "ort":\n    pass\n')
    assert _named(src, {"cuda_graph", "ort"}) == [(1, "cuda_graph"), (2, "ort")]


def test_each_backend_offers_its_own_ladder_reference_and_versions():
    cuda, _ = auto_candidates("cuda")
    assert cuda[0] == RunnerSpec("torch", "cuda", "fp32")  # the baseline first
    assert {s.backend for s in cuda} == {"torch", "ort"}  # compiles only when asked
    slow, _ = auto_candidates("cuda", ["torch_compile"], include_slow=True)
    assert [s.backend for s in slow] == ["torch_compile"]
    none, notes = auto_candidates("cuda", ["torch_compile"])
    assert none == [] and "compile for minutes" in notes[0]
    assert backends.reference_spec(False).backend == "torch"
    assert backends.reference_spec(True).backend == "ort"  # PyTorch cannot run an ONNX file
    versions = backends.backend_versions()
    assert versions["onnxruntime"] and versions["torch"]
    assert backends.environment("cpu")["onnxruntime"] == versions["onnxruntime"]


def test_a_second_backend_of_one_name_is_refused():
    with pytest.raises(BadInput, match="already registered"):
        backends.register("ort", "tests.examples.ort_graph_level:OrtLevelBackend")


def test_a_backend_that_does_not_import_is_unavailable_with_the_reason():
    backends.register("broken", "no_such_module_here:Backend")
    try:
        with pytest.raises(Unavailable, match="no_such_module_here"):
            backends.get_backend("broken")
        assert "broken" not in backends.declared_options()  # nothing else breaks
    finally:
        backends.unregister("broken")


@pytest.fixture
def distribution(tmp_path, monkeypatch):
    """A real installed distribution (a dist-info folder on the path) declaring the worked
    example of docs/extending.md as an entry point, seen by this process and its children."""
    with installed_backend(
        tmp_path, monkeypatch, "visionbench-ort-level", "ort_level",
        "tests.examples.ort_graph_level:OrtLevelBackend",
    ):  # fmt: skip
        yield


def test_an_entry_point_backend_runs_in_the_worker_with_its_own_label(
    distribution, tmp_path, small_spec
):
    assert "ort_level" in backend_names()
    spec = RunnerSpec("ort_level", "cpu", "fp32", (("graph_level", "basic"),))
    config = SweepConfig(small_spec, [spec], [1], BenchSettings(warmup=0, iters=2))
    store = Store(tmp_path / "x.sqlite")
    out = WorkerLauncher().launch(Job(config), store)
    assert [(r.backend, r.status, r.parity_status) for r in out.rows] == [("ort_level", "ok", "ok")]
    assert "--graph-level basic" in store.run(out.run_id)["command"]
    assert describe(out.rows[0], "series").endswith("(cpu) + graph level=basic")
    # Auto mode asks it for a ladder too (its default: each precision it can run here).
    auto = plan_auto(SweepConfig(small_spec, [RunnerSpec("ort_level", "cpu", "fp32")], [1]))
    assert {r.backend for r in auto.runners} == {"ort_level"} and auto.runners


def test_the_worker_child_sees_entry_points(distribution):
    import subprocess

    code = "from engine.backends import backend_names; print('ort_level' in backend_names())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
