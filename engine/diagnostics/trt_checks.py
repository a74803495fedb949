"""Is TensorRT usable here (full TensorRT and TensorRT for RTX), read from files only.

Shared by the TensorRT backend and the diagnostics report. It looks at the modules' locations,
package metadata and libnvinfer on disk; it never imports tensorrt.
"""

from __future__ import annotations

import os
import sys

from engine.core.commands import pip_command
from engine.diagnostics.cuda_wheels import DEFAULT_CUDA_MAJOR, soname_major
from engine.diagnostics.libraries import locate_library
from engine.diagnostics.packages import (
    cuda_major_in_use,
    dist_row,
    distributions,
    norm,
    package_dir,
)
from engine.diagnostics.trt_rtx import MODULE as RTX_MODULE


def tensorrt_status() -> dict:
    """Whether TensorRT can be used here, and if not, why and what to install.

    Shared by the TensorRT backend and the diagnostics report. It looks at files only (the
    module's location, package metadata, libnvinfer on disk); it does not import tensorrt.
    """
    cuda_major = cuda_major_in_use() or DEFAULT_CUDA_MAJOR
    install = f"{pip_command()} install tensorrt-cu{cuda_major}"
    module_dir = package_dir("tensorrt")
    dists = [
        dist_row(d)
        for d in distributions()
        if norm(d.metadata["Name"]).startswith("tensorrt")
        and not norm(d.metadata["Name"]).startswith("tensorrt-rtx")
    ]
    version = next(
        (d["version"] for d in dists if d["name"] in (f"tensorrt-cu{cuda_major}", "tensorrt")), None
    ) or (dists[0]["version"] if dists else None)
    lib = locate_library("libnvinfer.so.10") if sys.platform.startswith("linux") else None
    if lib and not lib["found"] and lib["other_versions"]:
        other = os.path.basename(lib["other_versions"][-1])
        lib = locate_library(other)
    status = {
        "importable": module_dir is not None,
        "module_dir": module_dir,
        "version": version,
        "distributions": dists,
        "libnvinfer": lib,
        "libnvinfer_found": bool(lib and lib["found"]),
        "libnvinfer_major": soname_major(lib["soname"]) if lib and lib["found"] else None,
        "cuda_major": cuda_major,
        "install": install,
        "ok": False,
        "reason": "",
    }
    if module_dir is None and not status["libnvinfer_found"]:
        status["reason"] = (
            f"TensorRT is not installed (no tensorrt module, no libnvinfer); {install}"
        )
    elif module_dir is None:
        status["reason"] = "libnvinfer is present but the tensorrt Python module is not"
    elif not status["libnvinfer_found"]:
        status["reason"] = "the tensorrt module is installed but libnvinfer.so was not found"
    else:
        status["ok"] = True
        where = lib["loader_path"] or lib["pip_path"]
        status["reason"] = f"TensorRT {version} with {os.path.basename(where)}"
        if not lib["loader_path"]:
            status["reason"] += (
                " (pip-installed: ONNX Runtime's TensorRT EP finds it only after"
                " `import tensorrt` or with its folder on LD_LIBRARY_PATH)"
            )
    return status


def tensorrt_rtx_status() -> dict:
    """Whether TensorRT for RTX is installed: its module, version and distributions."""
    module_dir = package_dir(RTX_MODULE)
    dists = [
        dist_row(d) for d in distributions() if norm(d.metadata["Name"]).startswith("tensorrt-rtx")
    ]
    version = next((d["version"] for d in dists if d["name"].endswith("bindings")), None)
    return {
        "installed": module_dir is not None,
        "module": RTX_MODULE,
        "module_dir": module_dir,
        "version": version or (dists[0]["version"] if dists else None),
        "distributions": dists,
    }
