"""Provider diagnostics in real, bare environments built for each scenario.

Each scenario is its own virtual environment holding only what it needs, so the project's
onnxruntime-gpu cannot leak in, and the report is made by running the engine/diagnostics folder
there as a plain script (it needs nothing but the standard library and whatever onnxruntime exists):

(a) the CPU-only onnxruntime package, (b) onnxruntime-gpu on a machine without a GPU, (c) both
installed together, then the printed fix applied, (d) no onnxruntime at all.

Wheels are installed without an index from a cache folder (``$XDG_CACHE_HOME`` or
``~/.cache``, then ``visionbench-test-envs/wheels``) that a person fills once; tests never
download. Without the wheels there, these tests skip and print the command that fetches them.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from engine.diagnostics import check_driver

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "engine" / "diagnostics"  # a folder with __main__.py
ORT_VERSION = "1.31.1"  # onnxruntime-gpu 1.31.1 is a CUDA 13.0 build
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "visionbench-test-envs"
WHEELS = CACHE / "wheels"
HAS_DRIVER = check_driver()["libcuda"]["loaded"]

# Nothing from the caller's environment may reach the scenario interpreters.
CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LD_LIBRARY_PATH")
}
CLEAN_ENV["PYTHONNOUSERSITE"] = "1"


def _pip(python: Path | None, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    target = ["--python", str(python)] if python else []
    return subprocess.run(
        [sys.executable, "-m", "pip", *target, "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=CLEAN_ENV,
    )


def wheels_or_skip(folder: Path) -> Path:
    """``folder`` when it holds the wheels; else a skip that says how to put them there.

    Tests never reach the network: the wheels come from a folder filled beforehand
    (``pip download``, once, by a person), or these scenarios are skipped with that command.
    """
    names = (f"onnxruntime-{ORT_VERSION}-*.whl", f"onnxruntime_gpu-{ORT_VERSION}-*.whl")
    if not all(glob.glob(str(folder / n)) for n in names):
        pytest.skip(
            f"the onnxruntime {ORT_VERSION} wheels are not in {folder} (tests never download);"
            f" to run these scenarios: pip download --only-binary :all: --dest {folder}"
            f" onnxruntime=={ORT_VERSION} onnxruntime-gpu=={ORT_VERSION}"
        )
    return folder


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """onnxruntime, onnxruntime-gpu and their dependencies as wheels on disk."""
    if _pip(None, "--version", timeout=60).returncode != 0:
        pytest.skip("pip is not available in the test interpreter, so no environment can be built")
    return wheels_or_skip(WHEELS)


def test_missing_wheels_skip_without_downloading(tmp_path):
    with pytest.raises(pytest.skip.Exception, match="tests never download"):
        wheels_or_skip(tmp_path)
    assert not any(tmp_path.iterdir())


class Scenario:
    """A bare virtual environment and the diagnostics it produces."""

    def __init__(self, folder: Path, wheels: Path) -> None:
        self.folder, self.wheels = folder, wheels
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(folder)],
            check=True,
            env=CLEAN_ENV,
            timeout=300,
        )
        self.python = folder / "bin" / "python"

    def install(self, *requirements: str) -> None:
        proc = _pip(
            self.python,
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(self.wheels),
            *requirements,
        )
        assert proc.returncode == 0, proc.stderr

    def run_fix(self, fix: str) -> None:
        """Run a report's fix command, as printed, with this environment's pip."""
        command = fix.split("#", 1)[0].strip()
        for part in command.split("&&"):
            argv = shlex.split(part)
            assert argv[:1] == ["pip"], f"unexpected fix command: {fix}"
            if argv[1] == "install":
                self.install(*argv[2:])
            else:
                proc = _pip(self.python, *argv[1:])
                assert proc.returncode == 0, proc.stderr

    def diagnose(self, *args: str) -> tuple[dict, str]:
        out = self.folder / "report.json"
        proc = subprocess.run(
            [str(self.python), str(SCRIPT), "--json", str(out), *args],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=300,
            env=CLEAN_ENV,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(out.read_text()), proc.stdout

    def distributions(self, report: dict) -> list[str]:
        return sorted(d["name"] for d in report["checks"]["packages"]["onnxruntime"])


def ids(report: dict) -> list[str]:
    return [f["id"] for f in report["findings"]]


def finding(report: dict, finding_id: str) -> dict:
    return next(f for f in report["findings"] if f["id"] == finding_id)


@pytest.fixture(scope="session")
def envs(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path):
    base = tmp_path_factory.mktemp("diagnostics-envs")

    def make(name: str, *install_steps: str) -> Scenario:
        env = Scenario(base / name, wheelhouse)
        for requirement in install_steps:
            env.install(requirement)
        return env

    return make


@pytest.fixture(scope="session")
def cpu_only_env(envs) -> Scenario:
    return envs("cpu-only", f"onnxruntime=={ORT_VERSION}")


def test_a_cpu_only_package(cpu_only_env):
    report, text = cpu_only_env.diagnose("--provider", "cuda")
    assert cpu_only_env.distributions(report) == ["onnxruntime"]
    assert report["verdict_provider"] == "CPU"
    assert "CPU-only build" in report["verdict"]
    assert ids(report)[0] == "ort-cpu-only-package"
    assert "ort-package-conflict" not in ids(report)
    assert "CUDAExecutionProvider" not in report["providers"]["available"]
    assert report["providers"]["used"] == ["CPUExecutionProvider"]
    assert "pip install onnxruntime-gpu" in finding(report, "ort-cpu-only-package")["fix"]
    # no onnx in this environment: the probe model came from the embedded protobuf bytes
    assert report["checks"]["probe"]["model_builder"] == "embedded protobuf"
    assert report["verdict"] in text
    if not HAS_DRIVER:  # by default, a machine without a GPU checks the CPU: no red verdict
        default, _ = cpu_only_env.diagnose()
        assert ids(default) == ["ok-cpu"] and default["verdict"] == "ONNX Runtime will run on: CPU"


@pytest.mark.skipif(
    HAS_DRIVER, reason="scenario (b) is onnxruntime-gpu on a machine with no driver"
)
def test_b_gpu_package_without_gpu(envs):
    env = envs("gpu-no-gpu", f"onnxruntime-gpu=={ORT_VERSION}")
    report, _ = env.diagnose("--provider", "cuda")
    assert env.distributions(report) == ["onnxruntime-gpu"]
    assert report["checks"]["ort_build"]["cuda_version"] == "13.0"
    # compiled in, but not loadable: the trap this whole module exists for
    assert "CUDAExecutionProvider" in report["providers"]["available"]
    assert report["providers"]["used"] == ["CPUExecutionProvider"]
    assert report["verdict_provider"] == "CPU"
    assert ids(report)[0] == "cuda-driver-missing"
    failed = finding(report, "ort-cuda-ep-load-failed")
    assert "libcublasLt.so.13: cannot open shared object file" in failed["evidence"]
    assert failed["caused_by"] == "cuda-driver-missing"
    assert finding(report, "cpu-fallback")["caused_by"] == "cuda-driver-missing"
    # no NVIDIA wheels here: the libraries are missing too, but only as a consequence
    assert finding(report, "cuda-libs-missing")["severity"] == "info"
    assert report["checks"]["remedies"]["preload_dlls"]["outcome"] == "does not fix it"
    assert report["checks"]["remedies"]["torch_first"]["outcome"].startswith("not run")


def test_c_both_packages_then_the_printed_fix(envs):
    # The usual accident: onnxruntime-gpu first, then something pulls in onnxruntime, whose
    # files overwrite the GPU build's in the shared onnxruntime/ folder.
    env = envs("conflict", f"onnxruntime-gpu=={ORT_VERSION}", f"onnxruntime=={ORT_VERSION}")
    before, _ = env.diagnose("--provider", "cuda")
    assert env.distributions(before) == ["onnxruntime", "onnxruntime-gpu"]
    assert ids(before)[0] == "ort-package-conflict"
    conflict = finding(before, "ort-package-conflict")
    assert conflict["severity"] == "error"
    assert before["verdict_provider"] == "CPU"
    assert "installed into the same folder" in before["verdict"]
    assert conflict["fix"].startswith("pip uninstall -y onnxruntime")

    env.run_fix(conflict["fix"])
    after, _ = env.diagnose("--provider", "cuda")
    assert "ort-package-conflict" not in ids(after)
    assert after["verdict"] != before["verdict"]
    # the fix installs what requirements.txt installs; onnxruntime-gpu runs on the CPU too
    assert env.distributions(after) == ["onnxruntime-gpu"]
    if not HAS_DRIVER:
        assert ids(after)[0] == "cuda-driver-missing"
        default, _ = env.diagnose()
        assert default["providers"]["requested"] == ["CPUExecutionProvider"]
        assert ids(default) == ["ok-cpu"] and default["verdict_provider"] == "CPU"


def test_d_no_onnxruntime(envs):
    env = envs("no-ort")
    report, text = env.diagnose()
    assert report["checks"]["packages"]["onnxruntime"] == []
    assert report["verdict_provider"] == "none"
    assert (
        report["verdict"]
        == "ONNX Runtime will run on: nothing, because onnxruntime is not installed"
    )
    assert ids(report)[0] == "ort-missing"
    assert finding(report, "ort-missing")["fix"].startswith("pip install onnxruntime")
    assert "ort-missing" in text
