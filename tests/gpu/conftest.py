"""GPU tests: every one is marked `gpu` and skips, with its reason, where CUDA is missing.

Each module sets `pytestmark = pytest.mark.gpu`. They run on an NVIDIA GPU through `bash scripts/test-gpu.sh` (which makes a missing GPU an
error rather than a skip). Models are small and real: resnet18 at 64×64 with random
weights, and hand-built ONNX graphs where a test needs a particular operator.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU with a working CUDA driver (scripts/test-gpu.sh)")
    return torch


@pytest.fixture(scope="session")
def ort_cuda(cuda):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("needs onnxruntime-gpu with its CUDA execution provider")
    return ort


@pytest.fixture(scope="session")
def art(cuda, small_artifacts):
    return small_artifacts
