"""Where the dynamic loader would find each library the CUDA execution provider needs.

The list comes from the DT_NEEDED entries of `libonnxruntime_providers_cuda.so` (plus cuDNN and
cuFFT, which it opens on first use), or from a table per CUDA major when that file cannot be
read. Each library is looked up the way `ld.so` does (LD_LIBRARY_PATH, RUNPATH, ld.so.cache,
default folders), in pip's NVIDIA package folders, and for other major versions.
"""

from __future__ import annotations

import functools
import glob
import os
import platform
import re
import shutil
import site
import subprocess
import sys

from engine.diagnostics.cuda_wheels import is_cuda_library, soname_major, soname_stem
from engine.diagnostics.elf import elf_dynamic

# What a CUDA build of ONNX Runtime loads, by CUDA major, when its ELF header cannot be read.
# cuDNN and cuFFT are loaded on first use, so they never show up as NEEDED entries.
_CUDA_EP_LIBS = {
    12: {
        "cudart": "libcudart.so.12",
        "cublas": "libcublas.so.12",
        "cublasLt": "libcublasLt.so.12",
        "curand": "libcurand.so.10",
        "cufft": "libcufft.so.11",
        "cudnn": "libcudnn.so.9",
    },
    13: {
        "cudart": "libcudart.so.13",
        "cublas": "libcublas.so.13",
        "cublasLt": "libcublasLt.so.13",
        "curand": "libcurand.so.10",
        "cufft": "libcufft.so.12",
        "cudnn": "libcudnn.so.9",
    },
}
_DEFAULT_LIB_DIRS = (
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    f"/lib/{platform.machine()}-linux-gnu",
    f"/usr/lib/{platform.machine()}-linux-gnu",
)

_LOADED_ON_FIRST_USE = ("cufft", "cudnn")


@functools.lru_cache(maxsize=1)
def _ldconfig_cache() -> dict[str, str]:
    exe = shutil.which("ldconfig") or next(
        (p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.path.exists(p)), None
    )
    if not exe:
        return {}
    try:
        out = subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    arch = {"x86_64": "x86-64", "aarch64": "AArch64"}.get(platform.machine(), "")
    cache: dict[str, str] = {}
    for line in out.splitlines()[1:]:
        m = re.match(r"\s*(\S+) \(([^)]*)\) => (\S+)", line)
        if m and (not arch or arch in m.group(2)):
            cache.setdefault(m.group(1), m.group(3))
    return cache


def _site_dirs() -> list[str]:
    candidates = list(sys.path)
    try:
        candidates += site.getsitepackages() + [site.getusersitepackages()]
    except AttributeError:
        pass
    out = []
    for p in candidates:
        p = os.path.abspath(p) if p else ""
        if p and os.path.isdir(p) and p not in out:
            out.append(p)
    return out


def _pip_lib_dirs() -> list[str]:
    """Folders where pip-installed NVIDIA libraries live; the dynamic loader does not look here."""
    out = []
    for sp in _site_dirs():
        for pattern in ("nvidia/*/lib", "nvidia/*/lib64", "tensorrt_libs", "torch/lib"):
            out += sorted(glob.glob(os.path.join(sp, pattern)))
    out += sorted(glob.glob("/usr/local/cuda*/lib64")) + sorted(glob.glob("/usr/local/cuda*/lib"))
    return [d for i, d in enumerate(out) if d not in out[:i]]


def _loader_dirs(runpath: list[str] | None = None, origin: str = "") -> list[str]:
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    for d in runpath or []:
        dirs.append(d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin))
    return dirs


def locate_library(soname: str, runpath: list[str] | None = None, origin: str = "") -> dict:
    """Where the dynamic loader would find `soname` (LD_LIBRARY_PATH, RUNPATH, ld.so.cache,
    default folders), where pip put it, and which other major versions exist."""
    base = soname.split(".so")[0] + ".so"
    cache = _ldconfig_cache()
    loader_path = None
    for d in _loader_dirs(runpath, origin):
        if os.path.isfile(os.path.join(d, soname)):
            loader_path = os.path.join(d, soname)
            break
    if loader_path is None and soname in cache:
        loader_path = cache[soname]
    if loader_path is None:
        loader_path = next(
            (
                os.path.join(d, soname)
                for d in _DEFAULT_LIB_DIRS
                if os.path.isfile(os.path.join(d, soname))
            ),
            None,
        )
    pip_dirs = _pip_lib_dirs()
    pip_path = next(
        (os.path.join(d, soname) for d in pip_dirs if os.path.isfile(os.path.join(d, soname))), None
    )
    others = set()
    all_dirs = _loader_dirs(runpath, origin) + list(_DEFAULT_LIB_DIRS) + pip_dirs
    for d in all_dirs:
        for p in glob.glob(os.path.join(d, base + ".*")):
            name = os.path.basename(p)
            if soname_major(name) not in (None, soname_major(soname)):
                others.add(p)
    for name, p in cache.items():
        if name.startswith(base + ".") and soname_major(name) not in (None, soname_major(soname)):
            others.add(p)
    return {
        "soname": soname,
        "found": bool(loader_path or pip_path),
        "loader_path": loader_path,
        "pip_path": pip_path,
        "other_versions": sorted(others),
    }


def check_libraries(build: dict, cuda_major: int | None) -> dict:
    """For each library the CUDA EP needs: found or not, where, which major."""
    if not sys.platform.startswith("linux"):
        return {"skipped": f"library search is implemented for Linux only ({sys.platform})"}
    table = _CUDA_EP_LIBS.get(cuda_major or 0, {})
    wanted: dict[str, str] = dict(table)
    source = f"table for CUDA {cuda_major}" if wanted else "none"
    runpath: list[str] = []
    origin = ""
    needed: list[str] | None = None
    if build.get("module_found"):
        lib = os.path.join(build["module_dir"], "capi", "libonnxruntime_providers_cuda.so")
        elf = elf_dynamic(lib) if os.path.isfile(lib) else None
        if elf:
            source = "NEEDED entries of libonnxruntime_providers_cuda.so (+ cuDNN, cuFFT)"
            runpath, origin, needed = elf["runpath"], os.path.dirname(lib), elf["needed"]
            wanted = {soname_stem(so): so for so in needed if is_cuda_library(so)}
            for key in _LOADED_ON_FIRST_USE:
                if key in table:
                    wanted.setdefault(key, table[key])
    if not wanted:
        return {"cuda_major": cuda_major, "source": source, "libs": {}}
    libs = {k: locate_library(v, runpath, origin) for k, v in wanted.items()}
    return {
        "cuda_major": cuda_major,
        "source": source,
        "needed": needed,
        "ld_library_path": os.environ.get("LD_LIBRARY_PATH", ""),
        "pip_lib_dirs": _pip_lib_dirs(),
        "libs": libs,
    }
