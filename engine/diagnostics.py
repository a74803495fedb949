"""Explain where ONNX Runtime will really run, why, and how to fix it.

`onnxruntime.get_available_providers()` lists what was compiled in, not what can load: an
onnxruntime-gpu whose CUDA libraries are missing prints one warning and quietly runs on the CPU.
This module looks at the environment in layers (installed packages, the ONNX Runtime build, the
NVIDIA driver and CUDA libraries, a live session in a subprocess with ONNX Runtime's native log
captured, and the in-process remedies re-probed) and turns what it saw into one verdict, findings
with a root cause, evidence and a copyable fix.

It needs only the standard library and whichever onnxruntime is installed, and imports no other
engine module, because broken environments are exactly where it is needed: it also runs as a
plain script (`python engine/diagnostics.py --json report.json`). Everything that loads native
code (onnxruntime, torch) happens in child processes, so a crash there becomes evidence.
"""

# ruff: noqa: E402  (the sys.path repair below must run before the other imports)
from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # Run as a plain script, Python puts engine/ first on sys.path, where modules such as
    # A module in engine/ named like a standard one would shadow it: drop that folder first.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import argparse
import ast
import concurrent.futures
import ctypes
import dataclasses
import datetime
import functools
import glob
import importlib.metadata
import importlib.util
import json
import platform
import re
import shutil
import signal
import site
import struct
import subprocess
import tempfile
from typing import Any

__all__ = [
    "DiagnosticsReport",
    "Finding",
    "main",
    "run_diagnostics",
    "shorten_paths",
    "tensorrt_status",
]

CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"

SHORT_NAMES = {CPU_EP: "CPU", CUDA_EP: "CUDA", TRT_EP: "TensorRT"}
_ALIASES = {"cpu": CPU_EP, "cuda": CUDA_EP, "tensorrt": TRT_EP, "trt": TRT_EP}

SEVERITIES = ("error", "warning", "info", "ok")

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
_MARKER = "@@VISIONBENCH-DIAGNOSTICS@@"


# --------------------------------------------------------------------------- report objects


@dataclasses.dataclass
class Finding:
    """One thing the diagnostics concluded, with the evidence that shows it and a fix."""

    id: str
    severity: str  # "error" | "warning" | "info" | "ok"
    title: str
    root_cause: str
    evidence: str
    fix: str
    caused_by: str = ""  # id of the finding this one is a consequence of, if any


@dataclasses.dataclass
class DiagnosticsReport:
    """The verdict, findings and everything the checks saw."""

    verdict: str
    verdict_provider: str  # "CUDA" | "TensorRT" | "CPU" | "none"
    findings: list[Finding]
    providers: dict
    checks: dict

    @property
    def finding_ids(self) -> list[str]:
        return [f.id for f in self.findings]

    def finding(self, finding_id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == finding_id), None)

    def _fix_or_pointer(self, f: Finding) -> str:
        root = self.finding(f.caused_by) if f.caused_by else None
        if root is not None and root.fix == f.fix:
            return f"the fix of {root.id}, above"
        return f.fix

    def to_dict(self) -> dict:
        return {
            "schema": 1,
            "verdict": self.verdict,
            "verdict_provider": self.verdict_provider,
            "findings": [dataclasses.asdict(f) for f in self.findings],
            "providers": self.providers,
            "checks": self.checks,
        }

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False, default=str)

    def to_text(self) -> str:
        lines = ["ONNX Runtime provider diagnostics", "=" * 33, "", self.verdict, "", "Findings"]
        for f in self.findings:
            tail = f"  (consequence of {f.caused_by})" if f.caused_by else ""
            lines.append(f"  [{f.severity.upper()}] {f.id}: {f.title}{tail}")
            lines += _indent("why:      ", f.root_cause)
            lines += _indent("evidence: ", f.evidence)
            lines += _indent("fix:      ", self._fix_or_pointer(f))
        lines += ["", "Providers"]
        lines.append(f"  requested: {', '.join(self.providers.get('requested', [])) or '-'}")
        lines.append(f"  available: {', '.join(self.providers.get('available', [])) or '-'}")
        lines.append(f"  used:      {', '.join(self.providers.get('used', [])) or '-'}")
        remedies = self.checks.get("remedies", {})
        if remedies:
            lines += ["", "In-process remedies (re-probed in fresh processes)"]
            for r in remedies.values():
                detail = f" ({r['detail']})" if r.get("detail") else ""
                lines.append(f"  {r['label']}: {r['outcome']}{detail}")
        lines += ["", "Environment"] + [f"  {line}" for line in _environment_lines(self.checks)]
        return "\n".join(lines) + "\n"

    def to_markdown(self) -> str:
        out = ["## ONNX Runtime provider diagnostics", "", f"**{self.verdict}**", ""]
        out += ["| | id | finding | fix |", "|---|---|---|---|"]
        for f in self.findings:
            fix = self._fix_or_pointer(f)
            if fix == f.fix:
                fix = "<br>".join(f"`{line}`" for line in fix.splitlines() if line.strip())
            out.append(f"| {f.severity} | `{f.id}` | {_md_cell(f.title)} | {fix} |")
        out.append("")
        for f in self.findings:
            out += [f"### `{f.id}` ({f.severity})", "", _md_cell(f.root_cause), ""]
            if f.evidence:
                out += ["```", f.evidence, "```", ""]
        out += [
            "### Providers",
            "",
            f"- requested: `{self.providers.get('requested')}`",
            f"- available: `{self.providers.get('available')}`",
            f"- used: `{self.providers.get('used')}`",
            "",
        ]
        remedies = self.checks.get("remedies", {})
        if remedies:
            out += ["### In-process remedies", ""]
            for r in remedies.values():
                detail = f" ({r['detail']})" if r.get("detail") else ""
                out.append(f"- {r['label']}: **{r['outcome']}**{detail}")
            out.append("")
        out += ["### Environment", ""] + [f"- {line}" for line in _environment_lines(self.checks)]
        out += [
            "",
            "<details><summary>Raw checks (JSON)</summary>",
            "",
            "```json",
            json.dumps(self.checks, indent=2, default=str),
            "```",
            "",
            "</details>",
            "",
        ]
        return "\n".join(out)


def _indent(label: str, text: str) -> list[str]:
    pad = " " * (6 + len(label))
    rows = (text or "-").splitlines() or ["-"]
    return [f"      {label}{rows[0]}"] + [f"{pad}{row}" for row in rows[1:]]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _environment_lines(checks: dict) -> list[str]:
    lines = []
    py = checks.get("python", {})
    lines.append(f"python {py.get('version')} ({py.get('executable')}) on {py.get('platform')}")
    pk = checks.get("packages", {})
    for d in pk.get("onnxruntime", []):
        lines.append(f"{d['name']} {d['version']} in {d['location']}")
    if not pk.get("onnxruntime"):
        lines.append("onnxruntime: not installed")
    build = checks.get("ort_build", {})
    if build.get("module_found"):
        cuda = build.get("cuda_version") or "none (CPU build)"
        lines.append(
            f"imported onnxruntime: {build.get('package_name')} {build.get('version')}"
            f", built for CUDA {cuda}, from {build.get('module_dir')}"
        )
    torch = pk.get("torch") or {}
    if torch.get("version"):
        cudnn = torch.get("cudnn_version") or "unknown"
        lines.append(f"torch {torch['version']} (CUDA {torch.get('cuda')}, cuDNN {cudnn})")
    else:
        lines.append("torch: not installed")
    nv = pk.get("nvidia", [])
    if nv:
        lines.append("NVIDIA packages: " + ", ".join(f"{d['name']} {d['version']}" for d in nv))
    drv = checks.get("system", {}).get("driver", {})
    if drv.get("libcuda", {}).get("loaded"):
        lines.append(
            f"NVIDIA driver {drv.get('driver_version') or '?'}"
            f" (supports CUDA {drv.get('cuda_driver_version') or '?'})"
        )
    else:
        lines.append(f"NVIDIA driver: not loadable ({drv.get('libcuda', {}).get('error')})")
    gpus = drv.get("gpus") or []
    for g in gpus:
        lines.append(f"GPU {g.get('index')}: {g.get('name')} (compute capability {g.get('cc')})")
    if not gpus:
        lines.append("GPU: none found")
    libs = checks.get("system", {}).get("libraries", {})
    if libs:
        lines.append(f"libraries the CUDA EP needs (CUDA {libs.get('cuda_major')}):")
        for name, lib in libs.get("libs", {}).items():
            lines.append(f"  {name:9} {lib['soname']:20} {_lib_summary(lib)}")
    trt = checks.get("tensorrt") or {}
    if trt:
        state = "available" if trt.get("ok") else f"not usable: {trt.get('reason')}"
        lines.append(f"TensorRT: {state}")
    return lines


def _lib_summary(lib: dict) -> str:
    if lib.get("loader_path"):
        return f"on the loader path: {lib['loader_path']}"
    if lib.get("pip_path"):
        return f"only in {os.path.dirname(lib['pip_path'])} (not on the loader path)"
    others = lib.get("other_versions") or []
    if others:
        return "missing; other versions: " + ", ".join(others)
    return "missing"


# --------------------------------------------------------------------------- path shortening


def _shortening_rules() -> list[tuple[re.Pattern, str]]:
    rules = [
        # Whole site-packages paths first: in venvs, user sites and system installs alike.
        (
            re.compile(r"(?:[A-Za-z]:)?[^\s'\"=:;,()\[\]<>]*[/\\](?:site|dist)-packages"),
            "<site-packages>",
        ),
    ]
    prefixes = []
    if sys.prefix != sys.base_prefix:
        prefixes.append((sys.prefix, "<env>"))
    # A system interpreter's prefix (/usr) is no machine-specific path, and replacing it would
    # hide where system libraries such as /usr/lib/x86_64-linux-gnu/libcuda.so.1 live.
    if os.path.normpath(sys.base_prefix) not in ("/usr", "/usr/local", "/"):
        prefixes.append((sys.base_prefix, "<python>"))
    home = os.path.expanduser("~")
    if home and home not in ("/", "~"):
        prefixes.append((home, "~"))
    tmp = tempfile.gettempdir()
    if tmp and tmp != "/":
        prefixes.append((tmp, "<tmp>"))
    for prefix, label in prefixes:
        prefix = prefix.rstrip("/\\")
        if len(prefix) > 1:
            rules.append((re.compile(re.escape(prefix) + r"(?=[/\\]|\b|$)"), label))
    return rules


def shorten_paths(value: Any) -> Any:
    """Replace machine paths (home folder, site-packages, the interpreter prefix, the temp dir)
    with placeholders, in a string or recursively in lists and dicts."""
    rules = _shortening_rules()

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            for pattern, label in rules:
                v = pattern.sub(label, v)
            return v
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        return v

    return walk(value)


# --------------------------------------------------------------------------- packages


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name or "").lower()


def _distributions() -> list[importlib.metadata.Distribution]:
    seen, out = set(), []
    for dist in importlib.metadata.distributions():
        try:
            key = (_norm(dist.metadata["Name"]), str(dist.locate_file("")))
        except Exception:  # a broken dist-info folder must not break the report
            continue
        if key not in seen:
            seen.add(key)
            out.append(dist)
    return out


def _dist_row(dist: importlib.metadata.Distribution) -> dict:
    return {
        "name": _norm(dist.metadata["Name"]),
        "version": dist.version,
        "location": os.path.normpath(str(dist.locate_file(""))),
    }


def _provides_ort_module(dist: importlib.metadata.Distribution) -> bool:
    files = dist.files
    if files is None:
        return _norm(dist.metadata["Name"]) in _ORT_RUNTIME_NAMES
    return any(str(f).replace("\\", "/") == "onnxruntime/__init__.py" for f in files)


def _read_constants(path: str) -> dict:
    """Top-level `NAME = literal` assignments of a Python file, without importing it."""
    try:
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
    except (OSError, SyntaxError, ValueError):
        return {}
    out = {}
    for node in tree.body:
        target = value = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        if isinstance(target, ast.Name):
            try:
                out[target.id] = ast.literal_eval(value)
            except ValueError:
                pass
    return out


def _package_dir(name: str) -> str | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.normpath(list(spec.submodule_search_locations)[0])


def check_packages() -> dict:
    """Every onnxruntime distribution, torch and its CUDA build, NVIDIA library packages."""
    dists = _distributions()
    ort = [_dist_row(d) for d in dists if _provides_ort_module(d)]
    nvidia = sorted(
        (_dist_row(d) for d in dists if _norm(d.metadata["Name"]).startswith(("nvidia-", "cuda-"))),
        key=lambda r: r["name"],
    )
    tensorrt = [_dist_row(d) for d in dists if _norm(d.metadata["Name"]).startswith("tensorrt")]
    torch: dict = {"version": None}
    torch_dir = _package_dir("torch")
    torch_dist = next((d for d in dists if _norm(d.metadata["Name"]) == "torch"), None)
    if torch_dir or torch_dist:
        consts = _read_constants(os.path.join(torch_dir, "version.py")) if torch_dir else {}
        torch = {
            "version": consts.get("__version__") or (torch_dist.version if torch_dist else None),
            "cuda": consts.get("cuda"),
            "module_dir": torch_dir,
            "cudnn_version": None,  # only known after importing torch (the torch-first probe)
        }
    return {"onnxruntime": ort, "torch": torch, "nvidia": nvidia, "tensorrt": tensorrt}


def check_ort_build() -> dict:
    """What the onnxruntime that `import onnxruntime` would pick says about itself, from files."""
    mod_dir = _package_dir("onnxruntime")
    if mod_dir is None:
        return {"module_found": False}
    capi = os.path.join(mod_dir, "capi")
    consts = _read_constants(os.path.join(capi, "build_and_package_info.py"))
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


def _major(version: str | None) -> int | None:
    m = re.match(r"\s*(\d+)", str(version or ""))
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------- libraries


def _elf_dynamic(path: str) -> dict | None:
    """NEEDED and RUNPATH entries of a 64-bit little-endian ELF file (what `readelf -d` shows)."""
    try:
        with open(path, "rb") as fh:
            hdr = fh.read(64)
            if hdr[:4] != b"\x7fELF" or hdr[4] != 2 or hdr[5] != 1:
                return None
            shoff = struct.unpack_from("<Q", hdr, 0x28)[0]
            shentsize, shnum = struct.unpack_from("<HH", hdr, 0x3A)
            fh.seek(shoff)
            raw = fh.read(shentsize * shnum)
            sections = [struct.unpack_from("<IIQQQQIIQQ", raw, i * shentsize) for i in range(shnum)]
            dynamic = next((s for s in sections if s[1] == 6), None)  # SHT_DYNAMIC
            if dynamic is None:
                return None
            strtab = sections[dynamic[6]]
            fh.seek(strtab[4])
            strings = fh.read(strtab[5])
            fh.seek(dynamic[4])
            dyn = fh.read(dynamic[5])
    except (OSError, struct.error, IndexError):
        return None

    def cstr(offset: int) -> str:
        return strings[offset : strings.index(b"\0", offset)].decode("utf-8", "replace")

    needed, runpath = [], []
    for i in range(0, len(dyn) - 15, 16):
        tag, val = struct.unpack_from("<qQ", dyn, i)
        if tag == 0:
            break
        if tag == 1:
            needed.append(cstr(val))
        elif tag in (15, 29):  # DT_RPATH, DT_RUNPATH
            runpath += cstr(val).split(":")
    return {"needed": needed, "runpath": runpath}


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
            if _soname_major(name) not in (None, _soname_major(soname)):
                others.add(p)
    for name, p in cache.items():
        if name.startswith(base + ".") and _soname_major(name) not in (None, _soname_major(soname)):
            others.add(p)
    return {
        "soname": soname,
        "found": bool(loader_path or pip_path),
        "loader_path": loader_path,
        "pip_path": pip_path,
        "other_versions": sorted(others),
    }


def _soname_major(name: str) -> str | None:
    m = re.search(r"\.so\.(\d+)", name)
    return m.group(1) if m else None


def check_libraries(build: dict, cuda_major: int | None) -> dict:
    """For each library the CUDA EP needs: found or not, where, which major."""
    if not sys.platform.startswith("linux"):
        return {"skipped": f"library search is implemented for Linux only ({sys.platform})"}
    wanted: dict[str, str] = dict(_CUDA_EP_LIBS.get(cuda_major or 0, {}))
    source = f"table for CUDA {cuda_major}" if wanted else "none"
    runpath: list[str] = []
    origin = ""
    if build.get("module_found"):
        lib = os.path.join(build["module_dir"], "capi", "libonnxruntime_providers_cuda.so")
        elf = _elf_dynamic(lib) if os.path.isfile(lib) else None
        if elf:
            source = "NEEDED entries of libonnxruntime_providers_cuda.so (+ cuDNN, cuFFT)"
            runpath, origin = elf["runpath"], os.path.dirname(lib)
            for so in elf["needed"]:
                for key in ("cudart", "cublasLt", "cublas", "curand", "cufft", "cudnn"):
                    if so.startswith(f"lib{key}.so."):
                        wanted[key] = so
    if not wanted:
        return {"cuda_major": cuda_major, "source": source, "libs": {}}
    libs = {k: locate_library(v, runpath, origin) for k, v in wanted.items()}
    return {
        "cuda_major": cuda_major,
        "source": source,
        "ld_library_path": os.environ.get("LD_LIBRARY_PATH", ""),
        "pip_lib_dirs": _pip_lib_dirs(),
        "libs": libs,
    }


# --------------------------------------------------------------------------- driver


def _loaded_path(fragment: str) -> str | None:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if fragment in line and "/" in line:
                    return line[line.index("/") :].strip()
    except OSError:
        pass
    return None


def check_driver() -> dict:
    """Does the NVIDIA driver library load; driver version; GPUs with name and compute capability.

    Uses NVML for the GPUs (it does not initialise CUDA in this process) and the driver API
    only for cuDriverGetVersion, which needs no cuInit.
    """
    info: dict[str, Any] = {
        "libcuda": {"loaded": False, "path": None, "error": None},
        "cuda_driver_version": None,
        "driver_version": None,
        "nvml": {"loaded": False, "error": None},
        "gpus": [],
        "kernel_module": None,
        "device_nodes": sorted(glob.glob("/dev/nvidia[0-9]*")),
    }
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as fh:
            info["kernel_module"] = fh.readline().strip()
    except OSError:
        pass
    windows = sys.platform.startswith("win")
    try:
        cuda = ctypes.CDLL("nvcuda.dll" if windows else "libcuda.so.1")
        info["libcuda"].update(loaded=True, path=_loaded_path("libcuda.so") or "libcuda.so.1")
        version = ctypes.c_int(0)
        if cuda.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value:
            info["cuda_driver_version"] = f"{version.value // 1000}.{(version.value % 1000) // 10}"
    except (OSError, AttributeError) as exc:
        info["libcuda"]["error"] = str(exc)
    try:
        nvml = ctypes.CDLL("nvml.dll" if windows else "libnvidia-ml.so.1")
        rc = nvml.nvmlInit_v2()
        if rc != 0:
            info["nvml"]["error"] = f"nvmlInit_v2 returned {rc}"
        else:
            info["nvml"]["loaded"] = True
            buf = ctypes.create_string_buffer(96)
            if nvml.nvmlSystemGetDriverVersion(buf, 96) == 0:
                info["driver_version"] = buf.value.decode()
            count = ctypes.c_uint(0)
            nvml.nvmlDeviceGetCount_v2(ctypes.byref(count))
            for i in range(count.value):
                handle = ctypes.c_void_p()
                if nvml.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(handle)) != 0:
                    continue
                name = ctypes.create_string_buffer(96)
                nvml.nvmlDeviceGetName(handle, name, 96)
                cc_major, cc_minor = ctypes.c_int(0), ctypes.c_int(0)
                nvml.nvmlDeviceGetCudaComputeCapability(
                    handle, ctypes.byref(cc_major), ctypes.byref(cc_minor)
                )
                info["gpus"].append(
                    {
                        "index": i,
                        "name": name.value.decode(errors="replace"),
                        "cc": f"{cc_major.value}.{cc_minor.value}",
                    }
                )
            nvml.nvmlShutdown()
    except (OSError, AttributeError) as exc:
        info["nvml"]["error"] = str(exc)
    return info


def _driver_state(driver: dict) -> tuple[bool, str, str]:
    """(usable, root cause sentence, evidence) for the NVIDIA driver."""
    lib = driver.get("libcuda", {})
    evidence = []
    if lib.get("loaded"):
        evidence.append(f"libcuda loaded from {lib.get('path')}")
    else:
        evidence.append(f"loading libcuda.so.1: {lib.get('error')}")
    if driver.get("nvml", {}).get("loaded"):
        evidence.append(f"NVML sees {len(driver.get('gpus', []))} GPU(s)")
    else:
        evidence.append(f"NVML: {driver.get('nvml', {}).get('error')}")
    evidence.append(f"/proc/driver/nvidia/version: {driver.get('kernel_module') or 'absent'}")
    evidence.append(f"/dev/nvidia* device nodes: {len(driver.get('device_nodes', []))}")
    ev = "\n".join(evidence)
    if not lib.get("loaded"):
        if driver.get("kernel_module") or driver.get("device_nodes"):
            why = (
                "the NVIDIA kernel driver is present but its user-space library libcuda.so.1 "
                "cannot be loaded (a container started without GPU access?)"
            )
        else:
            why = "this machine has no NVIDIA driver: libcuda.so.1 cannot be loaded"
        return False, why, ev
    if driver.get("nvml", {}).get("loaded") and not driver.get("gpus"):
        return False, "the NVIDIA driver loads but sees no GPU", ev
    return True, "", ev


# --------------------------------------------------------------------------- TensorRT


def _cuda_major_in_use(build: dict | None = None, packages: dict | None = None) -> int | None:
    build = build if build is not None else check_ort_build()
    major = _major(build.get("cuda_version"))
    if major:
        return major
    torch_dir = _package_dir("torch") if packages is None else packages["torch"].get("module_dir")
    if packages is not None:
        return _major(packages["torch"].get("cuda"))
    if torch_dir:
        return _major(_read_constants(os.path.join(torch_dir, "version.py")).get("cuda"))
    return None


def tensorrt_status() -> dict:
    """Whether TensorRT can be used here, and if not, why and what to install.

    Shared by the TensorRT backend and the diagnostics report. It looks at files only (the
    module's location, package metadata, libnvinfer on disk); it does not import tensorrt.
    """
    cuda_major = _cuda_major_in_use() or 13  # what current onnxruntime-gpu wheels are built for
    install = f"pip install tensorrt-cu{cuda_major}"
    module_dir = _package_dir("tensorrt")
    dists = [
        _dist_row(d) for d in _distributions() if _norm(d.metadata["Name"]).startswith("tensorrt")
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
        "libnvinfer_major": _soname_major(lib["soname"]) if lib and lib["found"] else None,
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


# --------------------------------------------------------------------------- live probe


def _pb_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb(field: int, value: int | str | bytes) -> bytes:
    if isinstance(value, int):
        return _pb_varint(field << 3) + _pb_varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _pb_varint(field << 3 | 2) + _pb_varint(len(data)) + data


def tiny_model_protobuf() -> bytes:
    """Y = X + X over float[1, 4], as ModelProto bytes written by hand (no onnx package needed).

    Field numbers are those of onnx.proto: ModelProto(ir_version=1, producer_name=2, graph=7,
    opset_import=8), GraphProto(node=1, name=2, input=11, output=12), NodeProto(input=1,
    output=2, name=3, op_type=4), ValueInfoProto(name=1, type=2), TypeProto(tensor_type=1),
    TypeProto.Tensor(elem_type=1, shape=2), TensorShapeProto(dim=1), Dimension(dim_value=1).
    """
    dims = b"".join(_pb(1, _pb(1, d)) for d in (1, 4))
    type_proto = _pb(1, _pb(1, 1) + _pb(2, dims))  # elem_type 1 = FLOAT

    def value_info(name: str) -> bytes:
        return _pb(1, name) + _pb(2, type_proto)

    node = _pb(1, "X") + _pb(1, "X") + _pb(2, "Y") + _pb(3, "add") + _pb(4, "Add")
    graph = (
        _pb(1, node) + _pb(2, "diagnostics") + _pb(11, value_info("X")) + _pb(12, value_info("Y"))
    )
    opset = _pb(1, "") + _pb(2, 13)
    return _pb(1, 7) + _pb(2, "visionbench-diagnostics") + _pb(7, graph) + _pb(8, opset)


def tiny_model_bytes() -> tuple[bytes, str]:
    """The probe model, built with onnx.helper when onnx is installed, else from raw protobuf."""
    try:
        from onnx import TensorProto, helper
    except Exception:  # onnx missing or broken: the hand-written bytes are the same model
        return tiny_model_protobuf(), "embedded protobuf"
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "X"], ["Y"], name="add")], "diagnostics", [x], [y]
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="visionbench-diagnostics"
    )
    model.ir_version = 7  # old enough for any onnxruntime this may meet
    return model.SerializeToString(), "onnx.helper"


# Runs in a fresh interpreter. fd 1 and fd 2 are redirected to a temp file around each stage, so
# ONNX Runtime's native log (written by C++ straight to the file descriptor) and its Python
# "EP Error ... Falling back" prints are captured per stage.
_PROBE_CHILD = r"""
import json, os, sys, tempfile, time, traceback
args = json.loads(sys.argv[1])
report = os.fdopen(os.dup(1), "w")
result = {"remedy": args["remedy"], "stages": {}, "sessions": {}}

def stage(name, fn):
    sys.stdout.flush(); sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    tmp = tempfile.TemporaryFile()
    os.dup2(tmp.fileno(), 1); os.dup2(tmp.fileno(), 2)
    start, value, error = time.perf_counter(), None, None
    try:
        value = fn()
    except BaseException as exc:
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    finally:
        sys.stdout.flush(); sys.stderr.flush()
        os.dup2(saved[0], 1); os.dup2(saved[1], 2); os.close(saved[0]); os.close(saved[1])
    tmp.seek(0)
    log = tmp.read().decode("utf-8", "replace")
    tmp.close()
    result["stages"][name] = {"ok": error is None, "error": error, "log": log,
                              "seconds": round(time.perf_counter() - start, 3)}
    return value

def finish():
    try:
        with open("/proc/self/maps") as fh:
            keys = ("libcuda.so", "libcudart", "libcublas", "libcudnn.so", "libcurand",
                    "libcufft.so", "libnvinfer.so", "libonnxruntime_providers")
            paths = {l[l.index("/"):].strip() for l in fh if "/" in l and any(k in l for k in keys)}
        result["loaded_libraries"] = sorted(paths)
    except OSError:
        result["loaded_libraries"] = None
    report.write(args["marker"] + json.dumps(result) + "\n")
    report.flush()
    os._exit(0)  # skip interpreter teardown: CUDA libraries can crash at exit

def import_torch():
    import torch
    info = {"version": torch.__version__, "cuda": torch.version.cuda, "cudnn_version": None}
    try:
        info["cudnn_version"] = torch.backends.cudnn.version()
    except Exception as exc:
        info["cudnn_error"] = str(exc)
    info["cuda_available"] = torch.cuda.is_available()
    return info

if args["remedy"] == "torch_first":
    result["torch"] = stage("import torch", import_torch)
    if result["torch"] is None:
        finish()

def import_ort():
    import onnxruntime as ort
    info = {"version": getattr(ort, "__version__", None), "file": ort.__file__,
            "available_providers": ort.get_available_providers(),
            "device": ort.get_device(), "has_preload_dlls": hasattr(ort, "preload_dlls")}
    try:
        from onnxruntime.capi import build_and_package_info as b
        info.update(package_name=getattr(b, "package_name", None),
                    cuda_version=getattr(b, "cuda_version", None),
                    cudnn_version=getattr(b, "cudnn_version", None))
    except Exception as exc:
        info["build_info_error"] = str(exc)
    return info

result["ort"] = stage("import onnxruntime", import_ort)
if result["ort"] is None:
    finish()
import onnxruntime as ort

if args["remedy"] == "preload_dlls":
    if not hasattr(ort, "preload_dlls"):
        result["preload_unavailable"] = True
        finish()
    stage("onnxruntime.preload_dlls()", ort.preload_dlls)

with open(args["model"], "rb") as fh:
    model = fh.read()

for requested in args["providers"]:
    chain = [requested]
    if requested == "TensorrtExecutionProvider":
        chain.append("CUDAExecutionProvider")
    if "CPUExecutionProvider" not in chain:
        chain.append("CPUExecutionProvider")

    def run_session(chain=chain):
        import numpy as np
        sess = ort.InferenceSession(model, providers=chain)
        x = np.arange(4, dtype=np.float32).reshape(1, 4)
        y = sess.run(None, {"X": x})[0]
        return {"used": sess.get_providers(), "output_ok": bool((y == 2 * x).all())}

    out = stage("session " + requested, run_session) or {}
    out.update(chain=chain, stage="session " + requested)
    result["sessions"][requested] = out
finish()
"""


def _run_probe(remedy: str, providers: list[str], model_path: str, timeout_s: float) -> dict:
    args = {"remedy": remedy, "providers": providers, "model": model_path, "marker": _MARKER}
    cmd = [sys.executable, "-c", _PROBE_CHILD, json.dumps(args)]
    env = dict(os.environ, PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1")
    base = {"remedy": remedy, "completed": False, "stages": {}, "sessions": {}}
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=max(timeout_s, 1.0),
            env=env,
            cwd=os.path.dirname(model_path),  # not the caller's folder: nothing there can shadow
        )
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-2000:]
        tail = tail.decode("utf-8", "replace") if isinstance(tail, bytes) else tail
        return {
            **base,
            "error": f"the probe did not finish within {timeout_s:.0f} s",
            "stderr": tail,
        }
    for line in proc.stdout.splitlines():
        if line.startswith(_MARKER):
            data = json.loads(line[len(_MARKER) :])
            data.update(completed=True, returncode=proc.returncode, stderr=proc.stderr[-4000:])
            return data
    rc = proc.returncode
    why = f"exit status {rc}"
    if rc < 0:
        try:
            why = f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            why = f"killed by signal {-rc}"
    return {
        **base,
        "error": f"the probe process crashed ({why})",
        "returncode": rc,
        "stderr": (proc.stderr or "")[-4000:],
        "stdout": (proc.stdout or "")[-2000:],
    }


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LOAD_FAIL = re.compile(r"Failed to load library (\S+) with error: (.+)")
_MISSING_SO = re.compile(r"([\w.+-]+\.so(?:\.\d+)*): cannot open shared object file")


def _probe_log(probe: dict, stage: str | None = None) -> str:
    stages = probe.get("stages", {})
    parts = [stages[stage]["log"]] if stage in stages else [s["log"] for s in stages.values()]
    return _ANSI.sub("", "".join(parts))


def load_errors(log: str) -> list[dict]:
    """`Failed to load library X with error: Y` lines of an ONNX Runtime log, as dicts."""
    out = []
    for m in _LOAD_FAIL.finditer(_ANSI.sub("", log)):
        error = m.group(2).strip()
        missing = _MISSING_SO.search(error)
        out.append(
            {
                "library": os.path.basename(m.group(1)),
                "error": error,
                "missing": missing.group(1) if missing else None,
                "line": f"Failed to load library {m.group(1)} with error: {error}",
            }
        )
    return out


_LOG_PREFIX = re.compile(
    r"^\d{4}-\d\d-\d\d [\d:.]+ \[[EWIV]:onnxruntime:[^\]]*\] "  # timestamp [E:onnxruntime:...]
    r"(?:\S+ .*?\[ONNXRuntimeError\] : \d+ : \w+ : )?"  # source location and error code
)


def clean_log_line(line: str) -> str:
    """An ONNX Runtime log line without colour codes, timestamp and source location."""
    return _LOG_PREFIX.sub("", _ANSI.sub("", line).strip())


def _interesting_lines(log: str) -> list[str]:
    keep = ("Failed to load", "Failed to create", "EP Error", "Falling back", "cannot open", "CUDA")
    out = []
    for line in _ANSI.sub("", log).splitlines():
        line = clean_log_line(line)
        if line and any(k in line for k in keep) and line not in out:
            out.append(line)
    return out


# --------------------------------------------------------------------------- analysis


@dataclasses.dataclass
class _Probes:
    plain: dict | None = None
    preload: dict | None = None
    torch_first: dict | None = None


def _used(probe: dict | None, provider: str) -> list[str] | None:
    if not probe:
        return None
    return probe.get("sessions", {}).get(provider, {}).get("used")


def _remedy_summary(label: str, probe: dict | None, provider: str, why_not: str) -> dict:
    if probe is None:
        return {"label": label, "outcome": why_not, "used": None, "detail": ""}
    if probe.get("preload_unavailable"):
        return {
            "label": label,
            "outcome": "not available",
            "used": None,
            "detail": "this onnxruntime has no preload_dlls()",
        }
    if not probe.get("completed"):
        return {
            "label": label,
            "outcome": "probe failed",
            "used": None,
            "detail": probe.get("error"),
        }
    for name, st in probe.get("stages", {}).items():
        if not st["ok"] and not name.startswith("session"):
            return {
                "label": label,
                "outcome": "does not fix it",
                "used": None,
                "detail": f"{name}: {st['error']}",
            }
    used = _used(probe, provider) or []
    fixed = bool(used) and used[0] == provider
    errs = load_errors(_probe_log(probe))
    detail = "; ".join(e["error"] for e in errs[:2]) if errs else f"session uses {used}"
    return {
        "label": label,
        "outcome": "fixes it" if fixed else "does not fix it",
        "used": used,
        "detail": "" if fixed else f"still fails: {detail}",
    }


_NVIDIA_WHEELS = {  # library -> pip package; the CUDA 13 wheels dropped the -cuNN suffix
    "cudart": "nvidia-cuda-runtime",
    "cublas": "nvidia-cublas",
    "cublasLt": "nvidia-cublas",
    "curand": "nvidia-curand",
    "cufft": "nvidia-cufft",
    "cudnn": "nvidia-cudnn",
}


def _nvidia_pip_install(libs: dict, cuda_major: int | None) -> str:
    """`pip install` of the NVIDIA wheels that ship these libraries, pinned to their major."""
    cuda = cuda_major or 13
    specs: list[str] = []
    for key, lib in libs.items():
        name, major = _NVIDIA_WHEELS[key], _soname_major(lib["soname"])
        if key == "cudnn":
            spec = f'"{name}-cu{cuda}~={major}.0"'
        elif cuda >= 13:
            spec = f'"{name}~={major}.0"'
        else:
            spec = f"{name}-cu{cuda}"
        if spec not in specs:
            specs.append(spec)
    return "pip install " + " ".join(specs)


_PRELOAD_FIX = (
    "# in Python, once, before the first InferenceSession:\n"
    "import onnxruntime; onnxruntime.preload_dlls()"
)


def _analyse(requested: list[str], checks: dict, probes: _Probes, probed: bool) -> tuple:
    findings: list[Finding] = []
    pk, build = checks["packages"], checks["ort_build"]
    driver_ok, driver_why, driver_ev = _driver_state(checks["system"]["driver"])
    libs = checks["system"].get("libraries", {}).get("libs", {})
    trt = checks["tensorrt"]
    cuda_wanted = any(p in (CUDA_EP, TRT_EP) for p in requested)
    first = requested[0]
    plain = probes.plain
    available = (plain or {}).get("ort", {}) or {}
    available = available.get("available_providers") or build.get("available_providers") or []
    used = _used(plain, first) or []
    providers = {
        "requested": list(requested),
        "available": available,
        "used": used,
        "used_by_request": {p: _used(plain, p) for p in requested},
        "used_with_remedy": {
            "preload_dlls": _used(probes.preload, first),
            "torch_first": _used(probes.torch_first, first),
        },
    }
    install_one = "onnxruntime-gpu" if driver_ok else "onnxruntime"

    def add(*args: Any, **kw: Any) -> Finding:
        f = Finding(*args, **kw)
        findings.append(f)
        return f

    def verdict(provider: str, because: str = "", suffix: str = "") -> tuple:
        text = f"ONNX Runtime will run on: {provider}"
        if provider == "none":
            text = "ONNX Runtime will run on: nothing"
        if because:
            text += f", because {because}"
        text += suffix
        if not probed and provider != "none":
            text += " (static checks only: the live probe was skipped)"
        return text, provider

    # --- layer 1: is there an onnxruntime at all, and only one?
    ort_dists = pk["onnxruntime"]
    by_location: dict[str, list[dict]] = {}
    for d in ort_dists:
        by_location.setdefault(d["location"], []).append(d)
    conflict = None
    for loc, ds in by_location.items():
        if len(ds) > 1:
            names = " ".join(d["name"] for d in ds)
            listed = " and ".join(f"{d['name']} {d['version']}" for d in ds)
            conflict = add(
                "ort-package-conflict",
                "error",
                f"{listed} are installed together",
                f"{listed} are installed into the same folder, where the files of the one "
                "installed last overwrote the other's",
                f"both in {loc}; they share the onnxruntime/ package folder\n"
                f"the import reports package_name={build.get('package_name')!r}, "
                f"built for CUDA {build.get('cuda_version')}, "
                f"get_available_providers() = {available or 'not probed'}",
                f"pip uninstall -y {names} && pip install {install_one}",
            )
            break
    if conflict is None and len(by_location) > 1:
        imported = build.get("module_dir", "")
        winner = next(
            (d for d in ort_dists if os.path.join(d["location"], "onnxruntime") == imported), None
        )
        others = [d for d in ort_dists if d is not winner]
        add(
            "ort-package-shadowed",
            "warning",
            "several onnxruntime packages are installed in different folders",
            "only the first on sys.path is imported; the others are shadowed and take over "
            "if the search path changes (another PYTHONPATH, another venv)",
            "\n".join(f"{d['name']} {d['version']} in {d['location']}" for d in ort_dists)
            + f"\nimported: {imported}",
            "# remove the shadowed copy from the environment that holds it, e.g.\n"
            + "\n".join(
                f"pip uninstall -y {d['name']}  # the one in {d['location']}" for d in others
            ),
        )

    if not build.get("module_found"):
        if conflict:
            return findings, *verdict("none", "the onnxruntime packages are broken"), providers
        add(
            "ort-missing",
            "error",
            "onnxruntime is not installed",
            "no onnxruntime package can be imported by this Python",
            f"importlib.util.find_spec('onnxruntime') is None for {checks['python']['executable']}",
            f"pip install {install_one}",
        )
        if not driver_ok:
            add(
                "cuda-driver-missing",
                "info",
                "no usable NVIDIA driver",
                driver_why,
                driver_ev,
                "nvidia-smi  # must list a GPU; without one, CPU is the only choice",
            )
        return findings, *verdict("none", "onnxruntime is not installed"), providers

    imp = (plain or {}).get("stages", {}).get("import onnxruntime")
    if (
        probed
        and plain is not None
        and (not plain.get("completed") and not imp or imp and not imp["ok"])
    ):
        error = (imp or {}).get("error") or plain.get("error") or "unknown error"
        add(
            "ort-import-failed",
            "error",
            "onnxruntime is installed but cannot be imported",
            "importing onnxruntime fails, so no session can be created at all",
            f"{error}\n{((imp or {}).get('log') or plain.get('stderr') or '').strip()[-1500:]}",
            f"pip install --force-reinstall {build.get('package_name') or install_one}",
            caused_by=conflict.id if conflict else "",
        )
        because = (
            "the onnxruntime packages are broken" if conflict else "onnxruntime cannot be imported"
        )
        return findings, *verdict("none", because), providers

    is_gpu_build = CUDA_EP in available if available else bool(build.get("cuda_version"))
    ep_lib = "libonnxruntime_providers_cuda.so"

    # --- layer 2: the package cannot do CUDA at all
    if cuda_wanted and not is_gpu_build:
        cpu_fix = f"pip uninstall -y {build.get('package_name') or 'onnxruntime'} && pip install onnxruntime-gpu"
        cpu_pkg = add(
            "ort-cpu-only-package",
            "error" if driver_ok else "info",
            f"the imported onnxruntime ({build.get('package_name')} {build.get('version')}) "
            "is the CPU-only build",
            "the installed onnxruntime package is the CPU-only build: it has no CUDA execution provider"
            + ("" if driver_ok else " (and this machine has no NVIDIA driver either)"),
            f"package_name={build.get('package_name')!r}, built for CUDA: {build.get('cuda_version')}\n"
            f"get_available_providers() = {available}",
            conflict.fix
            if conflict
            else cpu_fix + ("" if driver_ok else "  # needs an NVIDIA GPU"),
            caused_by=conflict.id if conflict else "",
        )
        no_driver = None
        if not driver_ok:
            no_driver = add(
                "cuda-driver-missing",
                "info",
                "no usable NVIDIA driver",
                driver_why,
                driver_ev,
                "nvidia-smi  # must list a GPU; on a machine without one, CPU is the only choice",
            )
        root = conflict or cpu_pkg
        if used:
            session_log = _probe_log(plain, f"session {first}")
            warning = [
                line.strip()
                for line in session_log.splitlines()
                if "not in available provider names" in line
            ]
            add(
                "cpu-fallback",
                "error" if driver_ok else "info",
                f"{_short(first)} was requested, the session runs on {used[0]}",
                "ONNX Runtime ignores execution providers it does not have and runs on the CPU",
                "\n".join(
                    [f"requested {plain['sessions'][first]['chain']} -> session uses {used}"]
                    + warning
                ),
                root.fix,
                caused_by=root.id,
            )
        _tensorrt_findings(add, requested, trt, plain, no_driver.id if no_driver else "")
        return findings, *verdict("CPU", root.root_cause), providers

    if not cuda_wanted:
        ok = used and used[0] == first
        add(
            "ok-cpu" if ok else "probe-failed",
            "ok" if ok else "error",
            f"sessions run on {used[0] if used else 'nothing'}",
            "only the CPU was requested" if ok else "the CPU session could not be created",
            _session_evidence(plain, first),
            "" if ok else f"pip install --force-reinstall {build.get('package_name')}",
        )
        return findings, *verdict("CPU" if ok else "none"), providers

    # --- layer 3: a CUDA build. What does the live session really use?
    plain_errors = load_errors(_probe_log(plain)) if plain else []
    cuda_used = CUDA_EP in (_used(plain, CUDA_EP) or _used(plain, first) or [])
    fixed_by = None
    for key, probe in (("preload_dlls", probes.preload), ("torch_first", probes.torch_first)):
        if CUDA_EP in (_used(probe, first) or []):
            fixed_by = fixed_by or key
    ep_log = "\n".join(_interesting_lines(_probe_log(plain))) if plain else ""
    # What ONNX Runtime says once the pip-installed libraries are loaded first: often the real
    # root cause (libcuda.so.1) hides behind the first missing library (libcublasLt.so.13).
    remedy_errors = {
        label: load_errors(_probe_log(probe))
        for label, probe in (
            ("after onnxruntime.preload_dlls()", probes.preload),
            ("after import torch", probes.torch_first),
        )
        if probe
    }
    for label, errs in remedy_errors.items():
        if errs:
            ep_log += f"\n{label}: " + "\n".join(e["line"] for e in errs)
    if plain and not plain.get("completed"):
        add(
            "probe-failed",
            "error",
            "the live probe did not finish",
            plain.get("error") or "the probe process failed",
            (plain.get("stderr") or "")[-1500:],
            'python -c "import onnxruntime as o; print(o.get_device(), o.get_available_providers())"',
        )
        return findings, *verdict("none", plain.get("error") or "the probe failed"), providers

    if cuda_used and probed:
        gpu = ", ".join(f"{g['name']} (sm {g['cc']})" for g in checks["system"]["driver"]["gpus"])
        add(
            "ok-cuda",
            "ok",
            "the CUDA execution provider loads and runs",
            "a live session asked for CUDA got it, and its output is correct",
            _session_evidence(plain, first) + (f"\nGPU: {gpu}" if gpu else ""),
            "",
        )
        _tensorrt_findings(add, requested, trt, plain, "")
        return findings, *verdict(_short(used[0])), providers

    # The CUDA EP did not load (or was not probed). Find the deepest layer that explains it.
    missing_from_log = {e["missing"] for e in plain_errors if e["missing"]}
    lib_missing = {k: v for k, v in libs.items() if not v["found"]}
    not_on_path = {k: v for k, v in libs.items() if v["found"] and not v["loader_path"]}
    cuda_major = checks["system"].get("libraries", {}).get("cuda_major")
    drv_cuda = _major(checks["system"]["driver"].get("cuda_driver_version"))
    root: Finding | None = conflict
    lib_severity = "error"
    caused = ""
    if not driver_ok:
        root = add(
            "cuda-driver-missing",
            "error",
            "no usable NVIDIA driver",
            driver_why + ", so the CUDA execution provider cannot start",
            "\n".join(
                [driver_ev]
                + [
                    f"{label}, ONNX Runtime reports: {e['line']}"
                    for label, errs in [("in the plain probe", plain_errors)]
                    + list(remedy_errors.items())
                    for e in errs
                    if e["missing"] == "libcuda.so.1"
                ][:1]
            ),
            "nvidia-smi  # must list your GPU; if it fails, install the NVIDIA driver"
            " (or start the container with --gpus all)\n"
            "# on a machine without an NVIDIA GPU, use the CPU package instead:\n"
            f"pip uninstall -y {build.get('package_name') or 'onnxruntime-gpu'} && pip install onnxruntime",
        )
        lib_severity, caused = "info", root.id
    elif drv_cuda and cuda_major and drv_cuda < cuda_major:
        root = add(
            "cuda-major-mismatch",
            "error",
            f"the driver supports CUDA {checks['system']['driver']['cuda_driver_version']}, "
            f"onnxruntime-gpu needs CUDA {cuda_major}",
            f"this onnxruntime-gpu was built for CUDA {build.get('cuda_version')} but the NVIDIA "
            f"driver only supports CUDA {checks['system']['driver']['cuda_driver_version']}",
            f"driver {checks['system']['driver'].get('driver_version')}, "
            f"cuDriverGetVersion = {checks['system']['driver']['cuda_driver_version']}",
            f"# upgrade the NVIDIA driver to one for CUDA {cuda_major}, or install an onnxruntime-gpu"
            f" built for CUDA {drv_cuda}\nnvidia-smi  # shows 'CUDA Version'",
        )
        lib_severity, caused = "info", root.id

    cudnn = lib_missing.pop("cudnn", None)
    if cudnn:
        f = add(
            "cudnn-missing",
            lib_severity,
            f"cuDNN ({cudnn['soname']}) is not installed",
            f"the CUDA execution provider needs {cudnn['soname']} and it is nowhere on this machine",
            _lib_evidence({"cudnn": cudnn}),
            _nvidia_pip_install({"cudnn": cudnn}, cuda_major)
            + "  # then call onnxruntime.preload_dlls()",
            caused_by=caused,
        )
        root = root or f
    wrong_major = {k: v for k, v in lib_missing.items() if v["other_versions"]}
    if wrong_major:
        f = add(
            "cuda-major-mismatch",
            lib_severity,
            f"CUDA libraries are present, but not the major version {cuda_major} this build needs",
            f"onnxruntime-gpu {build.get('version')} was built for CUDA {build.get('cuda_version')}; "
            "the CUDA libraries installed here are another major version, which cannot be used",
            _lib_evidence(wrong_major),
            _nvidia_pip_install(wrong_major, cuda_major)
            + "  # then call onnxruntime.preload_dlls() before the first session",
            caused_by=caused,
        )
        root = root or f
    plain_missing = {k: v for k, v in lib_missing.items() if k not in wrong_major}
    if plain_missing:
        names = ", ".join(v["soname"] for v in plain_missing.values())
        f = add(
            "cuda-libs-missing",
            lib_severity,
            f"CUDA libraries the CUDA EP needs are not installed: {names}",
            f"the CUDA execution provider needs {names}, which are neither on the loader path "
            "nor in any pip-installed NVIDIA package",
            _lib_evidence(plain_missing),
            _nvidia_pip_install(plain_missing, cuda_major)
            + "  # then call onnxruntime.preload_dlls() before the first session",
            caused_by=caused,
        )
        root = root or f
    if not_on_path and not plain_missing and not wrong_major:
        names = ", ".join(v["soname"] for v in not_on_path.values())
        sev = "warning" if fixed_by else lib_severity
        f = add(
            "cuda-libs-not-on-path",
            sev,
            "the CUDA libraries are pip-installed but not on the library search path",
            f"{names} sit in pip's NVIDIA package folders, where the dynamic loader does not look; "
            "the CUDA EP loads only if something loads them first (onnxruntime.preload_dlls() or "
            "`import torch`) or LD_LIBRARY_PATH includes them",
            _lib_evidence(not_on_path),
            _PRELOAD_FIX
            + "\n# or, for every process:\n"
            + "export LD_LIBRARY_PATH=\"$(python -c 'import sysconfig; "
            + f'print(sysconfig.get_paths()["purelib"])\')/nvidia/cu{cuda_major}/lib:'
            + "$(python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')"
            + '/nvidia/cudnn/lib:$LD_LIBRARY_PATH"',
            caused_by=caused,
        )
        root = root or f

    if plain_errors or (plain and not cuda_used):
        sev = "warning" if (root or fixed_by) else "error"
        ep = add(
            "ort-cuda-ep-load-failed",
            sev,
            "ONNX Runtime could not load its CUDA execution provider",
            f"{ep_lib} failed to load: "
            + (
                ", ".join(sorted(missing_from_log)) + " could not be found"
                if missing_from_log
                else "see the log lines"
            ),
            ep_log or "(no log lines captured)",
            (
                root.fix
                if root
                else 'LD_DEBUG=libs python -c "import onnxruntime"  # shows the search'
            ),
            caused_by=root.id if root else "",
        )
        root = root or ep

    if fixed_by:
        remedy = "onnxruntime.preload_dlls()" if fixed_by == "preload_dlls" else "`import torch`"
        add(
            "ok-cuda",
            "ok",
            f"the CUDA execution provider loads and runs once {remedy} comes first",
            f"with {remedy} before the first session, a live session gets CUDA",
            _session_evidence(
                probes.preload if fixed_by == "preload_dlls" else probes.torch_first, first
            ),
            _PRELOAD_FIX
            if fixed_by == "preload_dlls"
            else "import torch  # before import onnxruntime",
        )
        _tensorrt_findings(add, requested, trt, plain, "")
        used_fixed = _used(
            probes.preload if fixed_by == "preload_dlls" else probes.torch_first, first
        )
        text = f"ONNX Runtime will run on: {_short(used_fixed[0])}, once {remedy} runs before the first"
        text += f" session (without it: CPU, because {root.root_cause})" if root else " session"
        return findings, text, _short(used_fixed[0]), providers

    if root is None and not probed:
        text, prov = verdict("CUDA")
        _tensorrt_findings(add, requested, trt, plain, "")
        return findings, text, prov, providers

    if plain:
        add(
            "cpu-fallback",
            "error" if driver_ok else "warning",
            f"{_short(first)} was requested, the session silently runs on the CPU",
            "ONNX Runtime drops an execution provider that fails to load, prints one log line and "
            "runs every node on the CPU",
            _session_evidence(plain, first)
            + f"\nget_available_providers() = {available}, "
            + f"get_device() = {(plain.get('ort') or {}).get('device')!r}"
            + "\n"
            + "\n".join(
                f"{r['label']}: {r['outcome']}" + (f" ({r['detail']})" if r["detail"] else "")
                for r in checks.get("remedies", {}).values()
            ),
            root.fix if root else "",
            caused_by=root.id if root else "",
        )
    _tensorrt_findings(add, requested, trt, plain, caused)
    because = root.root_cause if root else "the CUDA execution provider did not load"
    return findings, *verdict("CPU", because), providers


def _short(provider: str) -> str:
    return SHORT_NAMES.get(provider, provider.replace("ExecutionProvider", ""))


def _session_evidence(probe: dict | None, provider: str) -> str:
    if not probe:
        return "(not probed)"
    s = probe.get("sessions", {}).get(provider, {})
    if s.get("used") is None:
        st = probe.get("stages", {}).get(s.get("stage", ""), {})
        return f"session with {s.get('chain')} failed: {st.get('error')}"
    ok = "correct" if s.get("output_ok") else "WRONG"
    return f"InferenceSession(providers={s['chain']}).get_providers() = {s['used']}; output {ok}"


def _lib_evidence(libs: dict) -> str:
    return "\n".join(f"{v['soname']}: {_lib_summary(v)}" for v in libs.values())


def _tensorrt_findings(
    add: Any, requested: list[str], trt: dict, plain: dict | None, caused: str
) -> None:
    trt_used = TRT_EP in (_used(plain, TRT_EP) or [])
    if TRT_EP in requested and not trt_used:
        log = _probe_log(plain, f"session {TRT_EP}") if plain else ""
        lines = [e["line"] for e in load_errors(log)] or _interesting_lines(log)[:4]
        used = _used(plain, TRT_EP)
        add(
            "tensorrt-missing",
            "warning" if not caused else "info",
            "the TensorRT execution provider is not usable",
            trt["reason"] or "the TensorRT execution provider failed to load",
            "\n".join(lines + [f"ONNX Runtime fell back to {used}" if used else ""]).strip(),
            trt["install"]
            + "\n# pip puts libnvinfer in site-packages/tensorrt_libs: `import tensorrt` before"
            " creating the session (or add that folder to LD_LIBRARY_PATH)",
            caused_by=caused,
        )
    elif TRT_EP not in requested and not trt["ok"]:
        add(
            "tensorrt-missing",
            "info",
            "TensorRT is not available",
            trt["reason"],
            f"tensorrt module: {trt['module_dir'] or 'not found'}; libnvinfer: "
            f"{'found' if trt['libnvinfer_found'] else 'not found'}",
            trt["install"],
            caused_by=caused,
        )


# --------------------------------------------------------------------------- entry points


def _normalise(provider: str) -> str:
    return _ALIASES.get(provider.strip().lower(), provider.strip())


def run_diagnostics(
    requested: tuple[str, ...] = (CUDA_EP,),
    probe: bool = True,
    timeout_s: float = 60.0,
) -> DiagnosticsReport:
    """Check this environment and say where ONNX Runtime will run for `requested` providers."""
    requested_list = [_normalise(p) for p in requested] or [CUDA_EP]
    deadline = _Deadline(timeout_s)
    packages = check_packages()
    build = check_ort_build()
    cuda_major = _cuda_major_in_use(build, packages)
    checks: dict[str, Any] = {
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": {
            "version": platform.python_version(),
            "executable": sys.executable,
            "platform": f"{platform.system()} {platform.machine()}",
        },
        "packages": packages,
        "ort_build": build,
        "system": {"driver": check_driver(), "libraries": check_libraries(build, cuda_major)},
        "tensorrt": tensorrt_status(),
        "probe": {},
        "remedies": {},
    }
    probes = _Probes()
    if probe and build.get("module_found"):
        with tempfile.TemporaryDirectory(prefix="ort-diagnostics-") as tmp:
            model, builder = tiny_model_bytes()
            model_path = os.path.join(tmp, "probe.onnx")
            with open(model_path, "wb") as fh:
                fh.write(model)
            checks["probe"]["model_builder"] = builder
            probes.plain = _run_probe("none", requested_list, model_path, deadline.left())
            ort_info = probes.plain.get("ort") or {}
            if ort_info:
                build.update(
                    import_ok=True,
                    available_providers=ort_info.get("available_providers"),
                    device=ort_info.get("device"),
                    package_name=ort_info.get("package_name") or build.get("package_name"),
                    cuda_version=ort_info.get("cuda_version") or build.get("cuda_version"),
                )
            elif probes.plain.get("stages", {}).get("import onnxruntime"):
                build["import_ok"] = False
            first = requested_list[0]
            wants_gpu = first != CPU_EP
            gpu_build = CUDA_EP in (ort_info.get("available_providers") or [])
            plain_ok = (_used(probes.plain, first) or [None])[0] == first
            if wants_gpu and gpu_build and not plain_ok:
                jobs = {"preload": "preload_dlls"}
                if packages["torch"].get("version"):
                    jobs["torch_first"] = "torch_first"
                with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
                    futures = {
                        k: pool.submit(_run_probe, v, requested_list, model_path, deadline.left())
                        for k, v in jobs.items()
                    }
                    for k, fut in futures.items():
                        setattr(probes, k, fut.result())
            torch_info = (probes.torch_first or {}).get("torch") or {}
            if torch_info:
                packages["torch"].update(
                    cudnn_version=torch_info.get("cudnn_version"),
                    cuda_available=torch_info.get("cuda_available"),
                )
            reason_plain_ok = "not needed: the plain session already works"
            why_not = reason_plain_ok if plain_ok else "not run (no CUDA build of onnxruntime)"
            checks["remedies"] = {
                "preload_dlls": _remedy_summary(
                    "onnxruntime.preload_dlls() first", probes.preload, first, why_not
                ),
                "torch_first": _remedy_summary(
                    "import torch first",
                    probes.torch_first,
                    first,
                    why_not if (plain_ok or not gpu_build) else "not run (torch is not installed)",
                ),
            }
            checks["probe"].update(
                plain=probes.plain, preload_dlls=probes.preload, torch_first=probes.torch_first
            )
    findings, verdict, verdict_provider, providers = _analyse(
        requested_list, checks, probes, probed=probe
    )
    order = {s: i for i, s in enumerate(SEVERITIES)}
    roots = [f for f in findings if not f.caused_by and f.severity != "ok"]
    rest = sorted((f for f in findings if f not in roots), key=lambda f: order.get(f.severity, 9))
    findings = sorted(roots, key=lambda f: order.get(f.severity, 9)) + rest
    report = DiagnosticsReport(
        verdict=shorten_paths(verdict),
        verdict_provider=verdict_provider,
        findings=[Finding(**shorten_paths(dataclasses.asdict(f))) for f in findings],
        providers=shorten_paths(providers),
        checks=shorten_paths(checks),
    )
    return report


class _Deadline:
    def __init__(self, seconds: float) -> None:
        import time

        self._time = time.monotonic
        self._end = self._time() + seconds

    def left(self) -> float:
        return max(5.0, self._end - self._time())


def main(argv: list[str] | None = None) -> int:
    """`diagnose [--json FILE] [--markdown FILE] [--provider NAME ...] [--no-probe]`."""
    parser = argparse.ArgumentParser(
        prog="python -m engine diagnose",
        description="Explain where ONNX Runtime will run (CUDA or CPU), why, and how to fix it.",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--markdown", metavar="FILE", help="also write the report as Markdown")
    parser.add_argument(
        "--provider",
        metavar="NAME",
        action="extend",
        nargs="+",
        help="execution provider(s) to probe: CUDA, TensorRT, CPU or full names"
        " (default: CUDAExecutionProvider)",
    )
    parser.add_argument("--no-probe", action="store_true", help="skip the live ONNX Runtime probe")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for all probes")
    args = parser.parse_args(argv)
    report = run_diagnostics(
        tuple(args.provider or (CUDA_EP,)), probe=not args.no_probe, timeout_s=args.timeout
    )
    sys.stdout.write(report.to_text())
    for path, text in ((args.json, report.to_json()), (args.markdown, report.to_markdown())):
        if path:
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text + ("" if text.endswith("\n") else "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
