"""Which pip package ships a CUDA library, per CUDA major: the table behind every install fix.

Keys are soname stems (`libcublasLt.so.13` -> `cublasLt`). NVIDIA's CUDA 12 wheels carry a
`-cu12` suffix; most CUDA 13 wheels dropped it (`nvidia-cuda-runtime` 13.x ships
`libcudart.so.13`) and their versions follow the library's own major (`nvidia-cufft` 12.x ships
`libcufft.so.12`), so they are pinned to the soname's major. cuDNN and NCCL keep a `-cu13` suffix.
The CUDA 13 names are those pip installs with torch 2.14 (cu130) and onnxruntime-gpu 1.31.
Libraries of the driver (`libcuda.so.1`) and of the system (`libc.so.6`) have no entry.
"""

from __future__ import annotations

import re

from engine.core.commands import pip_command

PACKAGES: dict[int, dict[str, str]] = {
    12: {
        "cudart": "nvidia-cuda-runtime-cu12",
        "cublas": "nvidia-cublas-cu12",
        "cublasLt": "nvidia-cublas-cu12",
        "cufft": "nvidia-cufft-cu12",
        "curand": "nvidia-curand-cu12",
        "nvrtc": "nvidia-cuda-nvrtc-cu12",
        "cudnn": "nvidia-cudnn-cu12",
        "cusparse": "nvidia-cusparse-cu12",
        "cusolver": "nvidia-cusolver-cu12",
        "nvJitLink": "nvidia-nvjitlink-cu12",
        "cupti": "nvidia-cuda-cupti-cu12",
        "nccl": "nvidia-nccl-cu12",
    },
    13: {
        "cudart": "nvidia-cuda-runtime",
        "cublas": "nvidia-cublas",
        "cublasLt": "nvidia-cublas",
        "cufft": "nvidia-cufft",
        "curand": "nvidia-curand",
        "nvrtc": "nvidia-cuda-nvrtc",
        "cudnn": "nvidia-cudnn-cu13",
        "cusparse": "nvidia-cusparse",
        "cusolver": "nvidia-cusolver",
        "nvJitLink": "nvidia-nvjitlink",
        "cupti": "nvidia-cuda-cupti",
        "nccl": "nvidia-nccl-cu13",
    },
}
DEFAULT_CUDA_MAJOR = 13  # what current onnxruntime-gpu and torch wheels are built for


def soname_stem(soname: str) -> str:
    """`libcublasLt.so.13` -> `cublasLt`."""
    name = soname.split(".so")[0]
    return name[3:] if name.startswith("lib") else name


def soname_major(name: str) -> str | None:
    m = re.search(r"\.so\.(\d+)", name)
    return m.group(1) if m else None


def is_cuda_library(soname: str) -> bool:
    """Whether a pip package of some CUDA major ships this library."""
    return any(soname_stem(soname) in table for table in PACKAGES.values())


def package_for(soname: str, cuda_major: int | None) -> str | None:
    table = PACKAGES.get(cuda_major or DEFAULT_CUDA_MAJOR, PACKAGES[DEFAULT_CUDA_MAJOR])
    return table.get(soname_stem(soname))


def requirement(soname: str, cuda_major: int | None) -> str | None:
    """The pip requirement that provides `soname`, pinned where the name does not pin it."""
    name = package_for(soname, cuda_major)
    if name is None:
        return None
    major = soname_major(soname)
    if re.search(r"-cu\d+$", name) and soname_stem(soname) != "cudnn" or major is None:
        return name  # the -cu12 suffix pins the CUDA major; cuDNN also needs its own major
    return f'"{name}~={major}.0"'


def pip_install(sonames: list[str], cuda_major: int | None) -> str:
    """One `pip install` line for every library in `sonames` that a pip package ships."""
    specs: list[str] = []
    for so in sonames:
        spec = requirement(so, cuda_major)
        if spec and spec not in specs:
            specs.append(spec)
    return f"{pip_command()} install " + " ".join(specs) if specs else ""
