"""Provider diagnostics in the project's own environment (onnxruntime-gpu; CPU-only CI machine).

No mocks: the report comes from the real onnxruntime, the real dynamic loader and the real
driver (or its absence). Expectations that depend on the machine read the machine first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import diagnostics as diag
from engine.core.commands import pip_command

ROOT = Path(__file__).resolve().parents[2]

ort = pytest.importorskip("onnxruntime")
GPU_BUILD = "CUDAExecutionProvider" in ort.get_available_providers()
HAS_DRIVER = diag.check_driver()["libcuda"]["loaded"]


@pytest.fixture(scope="module")
def report() -> diag.DiagnosticsReport:
    return diag.run_diagnostics(("CUDAExecutionProvider",))


def test_tiny_model_both_ways_runs_in_onnxruntime():
    np = pytest.importorskip("numpy")
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    for data in (diag.tiny_model_protobuf(), diag.tiny_model_bytes()[0]):
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        assert (sess.run(None, {"X": x})[0] == 2 * x).all()


def test_hand_written_protobuf_is_the_onnx_helper_model():
    onnx = pytest.importorskip("onnx")
    model = onnx.load_from_string(diag.tiny_model_protobuf())
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Add"]
    assert model.ir_version == 7 and model.opset_import[0].version == 13


def test_shorten_paths_hides_machine_paths():
    home = os.path.expanduser("~")
    site = os.path.join(sys.prefix, "lib", "python3.11", "site-packages", "onnxruntime", "capi")
    text = diag.shorten_paths(
        {"a": [f"{home}/x/y.txt", f"error in {site}/libfoo.so: missing"], "b": sys.executable}
    )
    assert text["a"][0] == "~/x/y.txt"
    assert text["a"][1] == "error in <site-packages>/onnxruntime/capi/libfoo.so: missing"
    assert home not in json.dumps(text) and sys.prefix not in json.dumps(text)


def test_load_errors_parse_onnxruntime_log_lines():
    line = (
        "\x1b[1;31m2026-01-01 00:00:00.1 [E:onnxruntime:Default, provider_bridge_ort.cc:2458 "
        "operator()] /src/provider_bridge_ort.cc:2043 onnxruntime::Provider& Get() "
        "[ONNXRuntimeError] : 1 : FAIL : Failed to load library /x/libonnxruntime_providers_cuda.so"
        " with error: libcublasLt.so.13: cannot open shared object file: No such file or directory"
    )
    (err,) = diag.load_errors(line)
    assert err["library"] == "libonnxruntime_providers_cuda.so"
    assert err["missing"] == "libcublasLt.so.13"
    assert diag.clean_log_line(line).startswith("Failed to load library /x/")


def test_report_has_verdict_findings_providers_and_checks(report):
    assert report.verdict.startswith("ONNX Runtime will run on: ")
    assert report.verdict_provider in {"CUDA", "TensorRT", "CPU", "none"}
    assert report.providers["requested"] == ["CUDAExecutionProvider"]
    assert report.providers["available"] == ort.get_available_providers()
    assert report.providers["used"], "the live probe must report the providers actually used"
    for f in report.findings:
        assert f.severity in diag.SEVERITIES
        assert f.id and f.title and f.root_cause
        assert f.fix or f.severity == "ok", f"{f.id} has no fix"
    for key in ("packages", "ort_build", "system", "tensorrt", "probe", "remedies"):
        assert key in report.checks
    names = {d["name"] for d in report.checks["packages"]["onnxruntime"]}
    assert names & {"onnxruntime", "onnxruntime-gpu"}


@pytest.mark.skipif(
    not GPU_BUILD or HAS_DRIVER,
    reason="needs onnxruntime-gpu on a machine without an NVIDIA driver",
)
def test_gpu_package_without_driver_explains_the_cpu_fallback(report):
    # The measured facts: the CUDA EP fails on libcublasLt.so.13 (or, with the libraries
    # preloaded, on libcuda.so.1), the session silently uses only the CPU EP, and the root
    # cause is the missing driver, not the libraries.
    assert report.verdict_provider == "CPU"
    assert report.verdict.startswith("ONNX Runtime will run on: CPU, because ")
    assert "NVIDIA driver" in report.verdict
    ids = report.finding_ids
    assert ids[0] == "cuda-driver-missing"
    assert report.finding("cuda-driver-missing").severity == "error"
    assert "cpu-fallback" in ids and "ort-cuda-ep-load-failed" in ids
    for secondary in ("cpu-fallback", "ort-cuda-ep-load-failed"):
        assert report.finding(secondary).caused_by == "cuda-driver-missing"
    assert report.providers["used"] == ["CPUExecutionProvider"]
    evidence = report.finding("ort-cuda-ep-load-failed").evidence
    assert "cannot open shared object file" in evidence
    assert "libcublasLt.so.13" in evidence or "libcuda.so.1" in evidence
    for f in report.findings:  # library findings are consequences of the missing driver
        if f.id.startswith(("cuda-libs", "cudnn", "cuda-major")):
            assert f.severity == "info" and f.caused_by == "cuda-driver-missing"


@pytest.mark.skipif(
    not GPU_BUILD or HAS_DRIVER,
    reason="needs onnxruntime-gpu on a machine without an NVIDIA driver",
)
def test_remedies_are_reprobed_and_do_not_fix_a_missing_driver(report):
    remedies = report.checks["remedies"]
    assert remedies["preload_dlls"]["outcome"] == "does not fix it"
    if report.checks["packages"]["torch"].get("version"):
        assert remedies["torch_first"]["outcome"] == "does not fix it"
        # importing torch loads the CUDA libraries, which exposes the real missing piece
        assert "libcuda.so.1" in remedies["torch_first"]["detail"]


def test_serialisations_agree_and_carry_no_machine_paths(report, tmp_path):
    data = json.loads(report.to_json())
    assert data["verdict"] == report.verdict
    assert [f["id"] for f in data["findings"]] == report.finding_ids
    assert set(data["findings"][0]) >= {"id", "severity", "title", "root_cause", "evidence", "fix"}
    assert set(data["providers"]) >= {"requested", "available", "used"}
    text, md = report.to_text(), report.to_markdown()
    assert report.verdict in text and report.verdict in md
    for fid in report.finding_ids:
        assert fid in text and f"`{fid}`" in md
    home = os.path.expanduser("~")
    for blob in (report.to_json(), text, md):
        assert f"{home}/" not in blob
        assert f"{ROOT}" not in blob
        assert f"{sys.prefix}/" not in blob


def test_tensorrt_status_says_why_and_what_to_install():
    status = diag.tensorrt_status()
    assert set(status) >= {"importable", "version", "libnvinfer_found", "reason", "install", "ok"}
    assert status["install"].startswith(f"{pip_command()} install tensorrt-cu")
    if not status["ok"]:
        assert status["reason"]


def test_cli_subcommand_writes_json_and_markdown(tmp_path):
    out_json, out_md = tmp_path / "d.json", tmp_path / "d.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "diagnose",
            "--json",
            str(out_json),
            "--markdown",
            str(out_md),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[3].startswith("ONNX Runtime will run on: ")
    data = json.loads(out_json.read_text())
    assert data["verdict"] in proc.stdout
    assert out_md.read_text().startswith("## ONNX Runtime provider diagnostics")


def test_cli_as_plain_script_without_probe():
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "engine" / "diagnostics"),
            "--no-probe",
            "--provider",
            "cuda",
            "trt",
        ],
        cwd=ROOT / "engine",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "static checks only" in proc.stdout
    assert "requested: CUDAExecutionProvider, TensorrtExecutionProvider" in proc.stdout
