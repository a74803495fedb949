"""Installed packages and the onnxruntime build, read from files without importing them.

`importlib.metadata` lists every distribution; the onnxruntime build's own constants come from
`onnxruntime/capi/build_and_package_info.py` parsed with `ast`, so a broken onnxruntime still
reports what it is.
"""

from __future__ import annotations

import glob
import importlib.metadata
import os
import re

from engine.core.modules import package_dir, read_constants  # noqa: F401 - callers import them here

_ORT_RUNTIME_NAMES = {
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
    "onnxruntime-rocm",
    "onnxruntime-migraphx",
    "onnxruntime-training",
    "onnxruntime-cann",
    "onnxruntime-vitisai",
    "ort-nightly",
    "ort-nightly-gpu",
}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name or "").lower()


def distributions() -> list[importlib.metadata.Distribution]:
    seen, out = set(), []
    for dist in importlib.metadata.distributions():
        try:
            key = (norm(dist.metadata["Name"]), str(dist.locate_file("")))
        except Exception:  # a broken dist-info folder must not break the report
            continue
        if key not in seen:
            seen.add(key)
            out.append(dist)
    return out


def dist_row(dist: importlib.metadata.Distribution) -> dict:
    return {
        "name": norm(dist.metadata["Name"]),
        "version": dist.version,
        "location": os.path.normpath(str(dist.locate_file(""))),
    }


def provides_ort_module(dist: importlib.metadata.Distribution) -> bool:
    files = dist.files
    if files is None:
        return norm(dist.metadata["Name"]) in _ORT_RUNTIME_NAMES
    return any(str(f).replace("\\", "/") == "onnxruntime/__init__.py" for f in files)


def check_packages() -> dict:
    """Every onnxruntime distribution, torch and its CUDA build, NVIDIA library packages."""
    dists = distributions()
    ort = [dist_row(d) for d in dists if provides_ort_module(d)]
    nvidia = sorted(
        (dist_row(d) for d in dists if norm(d.metadata["Name"]).startswith(("nvidia-", "cuda-"))),
        key=lambda r: r["name"],
    )
    tensorrt = [dist_row(d) for d in dists if norm(d.metadata["Name"]).startswith("tensorrt")]
    torch: dict = {"version": None}
    torch_dir = package_dir("torch")
    torch_dist = next((d for d in dists if norm(d.metadata["Name"]) == "torch"), None)
    if torch_dir or torch_dist:
        consts = read_constants(os.path.join(torch_dir, "version.py")) if torch_dir else {}
        torch = {
            "version": consts.get("__version__") or (torch_dist.version if torch_dist else None),
            "cuda": consts.get("cuda"),
            "module_dir": torch_dir,
            "cudnn_version": None,  # only known after importing torch (the torch-first probe)
        }
    return {"onnxruntime": ort, "torch": torch, "nvidia": nvidia, "tensorrt": tensorrt}


def check_ort_build() -> dict:
    """What the onnxruntime that `import onnxruntime` would pick says about itself, from files."""
    mod_dir = package_dir("onnxruntime")
    if mod_dir is None:
        return {"module_found": False}
    capi = os.path.join(mod_dir, "capi")
    consts = read_constants(os.path.join(capi, "build_and_package_info.py"))
    provider_libs = sorted(
        os.path.basename(p)
        for pattern in ("libonnxruntime_providers_*.so", "onnxruntime_providers_*.dll")
        for p in glob.glob(os.path.join(capi, pattern))
    )
    return {
        "module_found": True,
        "module_dir": mod_dir,
        "package_name": consts.get("package_name"),
        "version": consts.get("__version__"),
        "cuda_version": consts.get("cuda_version"),
        "cudnn_version": consts.get("cudnn_version"),
        "provider_libraries": provider_libs,
        # Filled in by the live probe, which really imports it:
        "import_ok": None,
        "available_providers": None,
        "device": None,
    }


def major(version: str | None) -> int | None:
    m = re.match(r"\s*(\d+)", str(version or ""))
    return int(m.group(1)) if m else None


def cuda_major_in_use(build: dict | None = None, packages: dict | None = None) -> int | None:
    """The CUDA major of the onnxruntime build, else of torch; None for CPU-only builds."""
    build = build if build is not None else check_ort_build()
    found = major(build.get("cuda_version"))
    if found:
        return found
    torch_dir = package_dir("torch") if packages is None else packages["torch"].get("module_dir")
    if packages is not None:
        return major(packages["torch"].get("cuda"))
    if torch_dir:
        return major(read_constants(os.path.join(torch_dir, "version.py")).get("cuda"))
    return None
