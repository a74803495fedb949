"""Diagnostics rules fed real files and recorded facts: the ELF reader, the library-to-package
mapping, the no-GPU default, causal links, and TensorRT-RTX's compute-capability finding.

The ELF reader runs on real shared libraries of this machine (compared with binutils' readelf
where it exists) and on a minimal ELF written here; the rules get facts recorded on machines
this one is not (an H200 with a CUDA-13 driver), combined with this machine's real libraries.
"""

from __future__ import annotations

import copy
import glob
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from engine import diagnostics as diag
from engine.core.commands import pip_command
from engine.diagnostics import cuda_wheels, rules_trt, trt_rtx
from engine.diagnostics.driver import nvidia_smi_gpus, parse_nvidia_smi
from engine.diagnostics.elf import elf_dynamic
from engine.diagnostics.libraries import check_libraries
from engine.diagnostics.probe import Probes
from engine.diagnostics.rules import analyse
from engine.diagnostics.run import static_checks

ort = pytest.importorskip("onnxruntime")
HAS_DRIVER = diag.check_driver()["libcuda"]["loaded"]
CUDA12_NEEDED = [
    "libcublasLt.so.12",
    "libcublas.so.12",
    "libcurand.so.10",
    "libcufft.so.11",
    "libcudart.so.12",
    "libnvrtc.so.12",
    "libcuda.so.1",
    "libstdc++.so.6",
    "libc.so.6",
]


def write_minimal_elf(path: Path, needed: list[str], runpath: str = "") -> None:
    """A 64-bit little-endian ELF with only a .dynstr and a .dynamic section."""
    strings, offsets = b"\0", {}
    for name in needed + ([runpath] if runpath else []):
        offsets[name] = len(strings)
        strings += name.encode() + b"\0"
    dyn = b"".join(struct.pack("<qQ", 1, offsets[n]) for n in needed)  # DT_NEEDED
    if runpath:
        dyn += struct.pack("<qQ", 29, offsets[runpath])  # DT_RUNPATH
    dyn += struct.pack("<qQ", 0, 0)  # DT_NULL
    strtab_off = 64
    dyn_off = strtab_off + len(strings)
    shoff = dyn_off + len(dyn)
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header = struct.pack("<16sHHIQQQIHHHHHH", ident, 3, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, 0)
    shdr = "<IIQQQQIIQQ"
    sections = (
        struct.pack(shdr, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        + struct.pack(shdr, 0, 3, 0, 0, strtab_off, len(strings), 0, 0, 1, 0)  # SHT_STRTAB
        + struct.pack(shdr, 0, 6, 0, 0, dyn_off, len(dyn), 1, 0, 8, 16)  # SHT_DYNAMIC
    )
    path.write_bytes(header + strings + dyn + sections)


def readelf_needed(path: str) -> list[str]:
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def real_libraries() -> list[str]:
    capi = os.path.join(os.path.dirname(ort.__file__), "capi")
    found = sorted(glob.glob(os.path.join(capi, "libonnxruntime_providers_*.so")))
    found += glob.glob(os.path.join(capi, "onnxruntime_pybind11_state*.so"))
    return found


def test_elf_reader_on_real_shared_libraries():
    libs = real_libraries()
    assert libs, "onnxruntime ships shared libraries"
    for lib in libs:
        dyn = elf_dynamic(lib)
        assert dyn is not None and "libc.so.6" in dyn["needed"], lib
        if shutil.which("readelf"):
            assert dyn["needed"] == readelf_needed(lib), lib
    cuda_ep = [p for p in libs if p.endswith("libonnxruntime_providers_cuda.so")]
    if cuda_ep:  # the GPU build: the CUDA EP links cuBLAS and the CUDA runtime
        needed = elf_dynamic(cuda_ep[0])["needed"]
        assert any(n.startswith("libcublas.so.") for n in needed)
        assert any(n.startswith("libcudart.so.") for n in needed)
    assert elf_dynamic(__file__) is None  # not an ELF file


def test_elf_reader_on_a_minimal_elf(tmp_path):
    lib = tmp_path / "libminimal.so"
    write_minimal_elf(lib, ["libnvrtc.so.12", "libc.so.6"], runpath="$ORIGIN/../lib")
    assert elf_dynamic(str(lib)) == {
        "needed": ["libnvrtc.so.12", "libc.so.6"],
        "runpath": ["$ORIGIN/../lib"],
    }


def test_soname_to_package_table():
    install = cuda_wheels.pip_install(CUDA12_NEEDED + ["libcudnn.so.9"], 12)
    assert install == (
        f"{pip_command()} install nvidia-cublas-cu12 nvidia-curand-cu12 nvidia-cufft-cu12 "
        'nvidia-cuda-runtime-cu12 nvidia-cuda-nvrtc-cu12 "nvidia-cudnn-cu12~=9.0"'
    )
    cuda13 = ["libcudart.so.13", "libnvrtc.so.13", "libcufft.so.12", "libcudnn.so.9"]
    assert cuda_wheels.pip_install(cuda13, 13) == (
        f'{pip_command()} install "nvidia-cuda-runtime~=13.0" "nvidia-cuda-nvrtc~=13.0" '
        '"nvidia-cufft~=12.0" "nvidia-cudnn-cu13~=9.0"'
    )
    assert not cuda_wheels.is_cuda_library("libcuda.so.1")  # the driver's, not pip's
    assert cuda_wheels.pip_install(["libc.so.6"], 12) == ""


def fake_cuda12_build(tmp_path: Path) -> dict:
    capi = tmp_path / "onnxruntime" / "capi"
    capi.mkdir(parents=True)
    write_minimal_elf(capi / "libonnxruntime_providers_cuda.so", CUDA12_NEEDED)
    return {"module_found": True, "module_dir": str(tmp_path / "onnxruntime")}


def test_check_libraries_follows_the_needed_entries(tmp_path):
    libs = check_libraries(fake_cuda12_build(tmp_path), 12)
    assert libs["needed"] == CUDA12_NEEDED
    # every CUDA library it links, plus cuDNN (opened on first use); no driver or system libs
    assert set(libs["libs"]) == {
        "cublasLt",
        "cublas",
        "curand",
        "cufft",
        "cudart",
        "nvrtc",
        "cudnn",
    }
    assert libs["libs"]["nvrtc"]["soname"] == "libnvrtc.so.12"


# check_driver() on an NVIDIA H200 (2026-11-30, driver 580.159.04), and that machine's
# `nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader`.
H200_DRIVER = {
    "libcuda": {
        "loaded": True,
        "path": "/usr/local/nvidia/lib64/libcuda.so.580.159.04",
        "error": None,
    },
    "cuda_driver_version": "13.0",
    "driver_version": "580.159.04",
    "nvml": {"loaded": True, "error": None},
    "gpus": [{"index": 0, "name": "NVIDIA H200", "cc": "9.0"}],
    "gpu_source": "NVML",
    "kernel_module": "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04"
    "  Release Build  (nixbld@)",
    "device_nodes": ["/dev/nvidia0"],
}
H200_NVIDIA_SMI = "NVIDIA H200, 9.0\n"


def h200_checks(tmp_path: Path) -> dict:
    """This machine's real checks, with a CUDA 12.9 build of onnxruntime-gpu 1.22.0 (its CUDA
    EP written as an ELF with that build's NEEDED entries) and the driver facts of an H200."""
    checks = copy.deepcopy(static_checks())
    build = fake_cuda12_build(tmp_path)
    build.update(package_name="onnxruntime-gpu", version="1.22.0", cuda_version="12.9")
    checks["ort_build"] = build
    checks["system"]["libraries"] = check_libraries(build, 12)
    checks["system"]["driver"] = copy.deepcopy(H200_DRIVER)
    return checks


def test_cuda12_build_on_cuda13_machine_gets_a_complete_fix(tmp_path):
    checks = h200_checks(tmp_path)
    libs = checks["system"]["libraries"]["libs"]
    assert not libs["nvrtc"]["found"], "this test needs a machine without libnvrtc.so.12"
    findings, verdict, provider, _ = analyse(
        ["CUDAExecutionProvider"], checks, Probes(), probed=False
    )
    assert provider == "CPU"
    lib_findings = [f for f in findings if f.id in ("cuda-major-mismatch", "cuda-libs-missing")]
    assert lib_findings
    for f in lib_findings:  # each fix installs every missing library, nvrtc included
        for lib in libs.values():
            if not lib["found"]:
                assert cuda_wheels.requirement(lib["soname"], 12) in f.fix, (lib, f.fix)
        assert "nvidia-cuda-nvrtc-cu12" in f.fix


@pytest.mark.skipif(HAS_DRIVER, reason="the default depends on a machine without a GPU")
def test_without_a_gpu_the_default_check_is_the_cpu():
    report = diag.run_diagnostics()
    assert report.providers["requested"] == ["CPUExecutionProvider"]
    assert report.verdict_provider == "CPU"
    assert report.verdict == "ONNX Runtime will run on: CPU"
    assert not [f for f in report.findings if f.severity == "error"]
    assert "CUDA would need an NVIDIA driver" in report.note
    assert report.note in report.to_text()
    static = diag.run_diagnostics(probe=False)  # what History's reports ask for
    assert static.verdict_provider == "CPU" and static.finding_ids == ["ok-cpu"]
    assert static.verdict.startswith("ONNX Runtime will run on: CPU (static checks only")


@pytest.mark.skipif(HAS_DRIVER, reason="needs a machine without an NVIDIA driver")
def test_no_driver_fix_keeps_the_gpu_package_and_links_are_real():
    report = diag.run_diagnostics(("cuda", "tensorrt"), probe=False)
    fix = report.finding("cuda-driver-missing").fix
    assert "pip uninstall" not in fix and "--provider CPU" in fix
    trt = report.finding("tensorrt-missing")
    if not report.checks["tensorrt"]["ok"]:  # TensorRT absent: no driver makes no difference
        assert trt.caused_by == ""
        assert (
            "consequence of cuda-driver-missing"
            not in [ln for ln in report.to_text().splitlines() if "tensorrt-missing" in ln][0]
        )


def test_tensorrt_rtx_support_table():
    assert trt_rtx.supports("8.9", "1.7.1.116") and trt_rtx.supports("12.0")
    assert not trt_rtx.supports("9.0", "1.7.1.116")
    assert trt_rtx.supports("12.1", "1.7") and not trt_rtx.supports("12.1", "1.4.0")
    assert trt_rtx.unsupported_reason("8.6") is None
    assert trt_rtx.unsupported_reason("9.0") == (
        "TensorRT-RTX does not run on compute capability 9.0; full TensorRT is needed"
    )
    assert trt_rtx.support_row("1.7").source.startswith("https://docs.nvidia.com/")


RTX = {"installed": True, "version": "1.7.1.116", "module": "tensorrt_rtx_bindings"}


def test_tensorrt_rtx_finding_from_recorded_facts():
    gpus = parse_nvidia_smi(H200_NVIDIA_SMI)
    assert gpus == [{"index": 0, "name": "NVIDIA H200", "cc": "9.0"}]
    f = rules_trt.rtx_unsupported_finding(RTX, gpus, "nvidia-smi")
    assert f is not None and f.id == "tensorrt-rtx-unsupported-gpu"
    assert f.root_cause == (
        "TensorRT-RTX does not run on compute capability 9.0; full TensorRT is needed"
    )
    assert "NVIDIA H200, compute capability 9.0" in f.evidence
    assert "support matrix" in f.evidence and "pip install tensorrt-cu13" in f.fix
    rtx_card = parse_nvidia_smi("NVIDIA GeForce RTX 4090, 8.9\n")
    assert rules_trt.rtx_unsupported_finding(RTX, rtx_card) is None
    assert rules_trt.rtx_unsupported_finding({**RTX, "installed": False}, gpus) is None


def test_tensorrt_rtx_finding_in_the_h200_report(tmp_path):
    checks = h200_checks(tmp_path)
    checks["tensorrt_rtx"] = dict(RTX)
    findings, *_ = analyse(["CUDAExecutionProvider"], checks, Probes(), probed=False)
    assert "tensorrt-rtx-unsupported-gpu" in [f.id for f in findings]


def test_tensorrt_rtx_on_this_machine():
    rtx = diag.tensorrt_rtx_status()
    assert rtx["module"] == "tensorrt_rtx_bindings"
    if shutil.which("nvidia-smi") is None:
        assert nvidia_smi_gpus() == []
    report = diag.run_diagnostics(probe=False)
    assert report.checks["tensorrt_rtx"]["installed"] == rtx["installed"]
    if not report.checks["system"]["driver"]["gpus"]:  # no GPU: nothing to judge
        assert "tensorrt-rtx-unsupported-gpu" not in report.finding_ids
