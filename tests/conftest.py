"""Shared fixtures: a private cache and data folder per test session, small real models."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = "resnet18"
SMALL_SIZE = 64


@pytest.fixture(scope="session", autouse=True)
def _private_dirs(tmp_path_factory: pytest.TempPathFactory):
    """Keep every test's artifacts and results out of the user's real folders. Inductor's
    folder is one per test process (as a user sets TORCHINDUCTOR_CACHE_DIR, which the product
    honours), so a test with its own cache folder does not probe the CPU again (below)."""
    base = tmp_path_factory.mktemp("visionbench")
    names = ("VISIONBENCH_CACHE", "VISIONBENCH_DATA", "TORCHINDUCTOR_CACHE_DIR")
    old = {k: os.environ.get(k) for k in names}
    os.environ["VISIONBENCH_CACHE"] = str(base / "cache")
    os.environ["VISIONBENCH_DATA"] = str(base / "data")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(base / "inductor")
    yield base
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


PROBE = "from torch._inductor.cpu_vec_isa import pick_vec_isa; pick_vec_isa()"


def seed_isa_probes(folder: Path) -> Path:
    """Copy Inductor's CPU instruction-set probes into the Inductor folder ``folder``.

    Before it compiles or loads anything on the CPU, Inductor compiles and loads ten tiny C++
    probes into its folder (about 10 s on 2 cores; once per folder). They are not the model's
    code, and a test that gives a process a fresh folder to show what it compiled would pay
    them every time: this copies them from the test process's own Inductor folder, made there
    once. Returns ``folder``."""
    shared = Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    if not _probes(shared):
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(shared)}
        subprocess.run([sys.executable, "-c", PROBE], env=env, check=True, capture_output=True)
    folder.mkdir(parents=True, exist_ok=True)
    for cpp in _probes(shared):
        (folder / cpp.parent.name).mkdir(parents=True, exist_ok=True)
        for f in cpp.parent.glob(f"{cpp.stem}.*"):
            shutil.copy2(f, folder / cpp.parent.name / f.name)
    return folder


def _probes(folder: Path) -> list[Path]:
    """The probes' sources in an Inductor folder: small C++ files with a loaded library."""
    return [
        cpp
        for cpp in folder.glob("*/*.cpp")
        if cpp.stat().st_size <= 4096 and cpp.with_suffix(".so.load_ok").is_file()
    ]


@pytest.fixture(scope="session")
def small_spec():
    from engine.core.config import ModelSpec

    return ModelSpec(name=SMALL, image_size=SMALL_SIZE)


@pytest.fixture(scope="session")
def small_artifacts(small_spec):
    from engine.artifacts.models import load_artifacts

    return load_artifacts(small_spec)


def engines_page(model: str, size: int, batches: str, precisions: list[str] | None = None):
    """The dashboard (Streamlit's AppTest, run from the repository root) on its Engines page
    with this sidebar selection: a model, an image size, batches and precisions."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=600)
    at.run()
    at.selectbox(key="_vb_model").set_value(model)
    at.number_input(key="_vb_size").set_value(size)
    at.text_input(key="_vb_batches").set_value(batches)
    if precisions:
        at.multiselect(key="_vb_precisions").set_value(precisions)
    at.run()
    at.switch_page("pages/engines.py").run()
    return at


def run_cli(*args: str, timeout: float = 600, env: dict | None = None):
    """Run ``python -m engine ...`` as a user would; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def stored(db: Path) -> tuple[list, list]:
    """A store's runs (id, status, end reason) and rows (batch, status, p50), read with plain
    SQLite while a sweep writes it: empty before the store and its tables exist."""
    import sqlite3

    if not db.exists():
        return [], []
    con = sqlite3.connect(db)
    try:
        runs = con.execute("SELECT id, status, end_reason FROM runs").fetchall()
        rows = con.execute("SELECT batch, status, p50_ms FROM rows ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return [], []
    finally:
        con.close()
    return runs, rows


def wait_for_rows(proc: subprocess.Popen, db: Path, n: int, timeout_s: float = 300) -> list:
    """The rows of ``db`` once a sweep ``proc`` writes has stored ``n``; fails if it exits
    first or measures nothing in time."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _, rows = stored(db)
        if len(rows) >= n:
            return rows
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the sweep measured nothing in time")


@contextlib.contextmanager
def benchmarks_on_path():
    """The scripts of benchmarks/ importable (``import zoo``) inside the block, as they import
    each other when run."""
    folder = str(ROOT / "benchmarks")
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        sys.path.remove(folder)


def default_sigint() -> None:
    """``preexec_fn`` of a CLI started as a terminal starts it: a suite run in the background
    (`cmd &` in a script, as CI may) passes on an ignored SIGINT, which the CLI and its worker
    rightly keep ignoring, so a simulated Ctrl-C needs SIGINT at its default first."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# The longest files (a whole session of servers and sweeps, a real compile, browsers), longest
# first (seconds on the 2-core machine, 2026-12-07 17:38, --durations). Under scripts/test.sh
# pytest-xdist (3.8, --dist loadfile) hands out files by their number of tests, most first
# (its default reordering), so this order only breaks ties there (the one-test files, which
# run last), and is the order of a run in one process. Keeping it whole
# (--no-loadscope-reorder) was tried on 2026-12-07: 1092 s against 904 s for the suite on the
# same machine, the heaviest files together at the start slowing each other.
SLOW_FIRST = (
    "tests/backends/test_tensorrt_rtx.py",  # 158
    "tests/reliability/test_reliability_session.py",  # 105
    "tests/reliability/test_reliability_inputs.py",  # 93
    "tests/reliability/test_reliability_shared_store.py",  # 74
    "tests/engine/test_cli.py",  # 70
    "tests/backends/test_compiled_engine.py",  # 68, a build shared by its tests
    "tests/engine/test_any_model.py",  # 63
    "tests/reliability/test_reliability_worker.py",  # 62
    "tests/engine/test_fp16_heldout.py",  # 59
    "tests/pages/test_dashboard.py",  # 55
    "tests/reliability/test_reliability_paths.py",  # 54
    "tests/reliability/test_reliability_heldout.py",  # 52
    "tests/reliability/test_reliability_faults.py",  # 47
    "tests/pages/test_browser.py",  # 43
    "tests/engine/test_compiled_head_to_head.py",  # 41
    "tests/pages/test_engines_compiled.py",  # 36
    "tests/pages/test_browser_offline.py",  # 36
    "tests/reliability/test_reliability_exits.py",  # 31
    "tests/backends/test_compiled_engine_hostile.py",  # 31
    "tests/backends/test_compiled.py",  # 29
    "tests/pages/test_dashboard_onnx_files.py",  # 27
)


def pytest_collection_modifyitems(config, items):
    """The longest files first; with VISIONBENCH_REQUIRE_GPU=1 (scripts/test-gpu.sh) a
    missing GPU stops the run.

    Elsewhere every `gpu` test skips with its reason; on the GPU machine a log full of skips
    would read as a pass, so there the absence of a usable CUDA device is an error.
    """
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
    if os.environ.get("VISIONBENCH_REQUIRE_GPU") != "1":
        return
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    try:
        import torch

        ok = torch.cuda.is_available()
    except ImportError:
        ok = False
    if not ok:
        pytest.exit("VISIONBENCH_REQUIRE_GPU=1 but torch sees no CUDA device", returncode=3)


@contextlib.contextmanager
def installed_backend(tmp_path: Path, monkeypatch, dist: str, name: str, target: str):
    """A real installed distribution (a dist-info folder on the path, seen by this process
    and its children) declaring ``name = target`` in the ``visionbench.backends`` group."""
    from engine import backends

    info = tmp_path / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[visionbench.backends]\n{name} = {target}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{ROOT}")
    monkeypatch.setattr(backends, "_loaded_entry_points", False)
    try:
        yield
    finally:
        backends.unregister(name)
        backends._loaded_entry_points = False
