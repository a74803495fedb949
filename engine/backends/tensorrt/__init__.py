"""TensorRT: build an engine from the cached ONNX, cache it, run it, and show its layers.

Two flavours behind one backend: full TensorRT and TensorRT for RTX (:mod:`.flavour`).
The package's parts, each importing only those before it:
:mod:`.flavour` (what is installed, the GPU gate) → :mod:`.cache` (plans, timing and
runtime caches on disk) → :mod:`.recipe` (which ONNX, which flags) → :mod:`.progress`
(build progress, log) → :mod:`.build` (ONNX → plan) → :mod:`.load` (plan cache → engine)
→ :mod:`.inspector` (layers) → :mod:`.runner` (execution) → :mod:`.options` (the
declared options) → :mod:`.backend` (the Backend class) → :mod:`.standalone` (build a plan without running it: ``trt-build``).

TensorRT is imported lazily: without it, :meth:`TensorRTBackend.availability` says why
and which package to install, and nothing else in the product breaks.
"""

from __future__ import annotations

from engine.backends.tensorrt.backend import (
    BF16_MIN_CC,
    OPTIONS,
    TensorRTBackend,
    resolve_flavour,
)
from engine.backends.tensorrt.build import BuildSettings, build_plan, parser_errors
from engine.backends.tensorrt.cache import (
    BatchProfile,
    PlanKey,
    check_batch,
    load_plan,
    profile_for,
    runtime_cache_file,
    store_plan,
    timing_cache_file,
)
from engine.backends.tensorrt.flavour import (
    SUPPORTED_MAJORS,
    Flavour,
    import_tensorrt,
    install_command,
    missing_reason,
    tensorrt_availability,
    trt_major,
    try_import_tensorrt,
)
from engine.backends.tensorrt.inspector import (
    EngineLayer,
    format_precision,
    inspect_engine,
    layers_from_build_log,
    layers_from_json,
)
from engine.backends.tensorrt.load import LoadedEngine, obtain_engine
from engine.backends.tensorrt.options import TensorRTOptions
from engine.backends.tensorrt.progress import BuildProgress, parse_build_progress
from engine.backends.tensorrt.recipe import (
    BuildRecipe,
    build_recipe,
    int8_onnx,
    onnx_for,
    qdq_zero_point_problems,
)
from engine.backends.tensorrt.runner import TensorRTRunner

__all__ = [
    "BF16_MIN_CC",
    "OPTIONS",
    "SUPPORTED_MAJORS",
    "BatchProfile",
    "BuildProgress",
    "BuildRecipe",
    "BuildSettings",
    "EngineLayer",
    "Flavour",
    "LoadedEngine",
    "PlanKey",
    "TensorRTBackend",
    "TensorRTOptions",
    "TensorRTRunner",
    "build_plan",
    "build_recipe",
    "check_batch",
    "format_precision",
    "import_tensorrt",
    "inspect_engine",
    "install_command",
    "int8_onnx",
    "layers_from_build_log",
    "layers_from_json",
    "load_plan",
    "missing_reason",
    "obtain_engine",
    "onnx_for",
    "parse_build_progress",
    "parser_errors",
    "profile_for",
    "qdq_zero_point_problems",
    "resolve_flavour",
    "runtime_cache_file",
    "store_plan",
    "tensorrt_availability",
    "timing_cache_file",
    "trt_major",
    "try_import_tensorrt",
]
