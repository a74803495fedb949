"""Parse an ONNX file and build a serialised TensorRT plan (no GPU needed for TensorRT-RTX).

One build: parse (errors name the failing node), a builder config with the workspace
limit, optimisation level, DETAILED profiling verbosity (the engine inspector's layer
names and tactics), the recipe's flags, an optimisation profile over the batch range,
TensorRT-RTX's target compute capabilities, and the timing cache. Returns the plan bytes
and the facts of the build; caching and loading are :mod:`.load`'s job.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.artifacts.onnx_source import filled_dims
from engine.backends.tensorrt.cache import (
    DEFAULT_OPT_LEVEL,
    DEFAULT_WORKSPACE_MB,
    BatchProfile,
    read_timing_cache,
    write_timing_cache,
)
from engine.backends.tensorrt.progress import BuildProgress, _logged, _make_logger, _make_monitor
from engine.backends.tensorrt.recipe import BuildRecipe
from engine.core.config import RunnerSpec
from engine.core.errors import BadInput, EngineError


@dataclass(frozen=True)
class BuildSettings:
    workspace_mb: int = DEFAULT_WORKSPACE_MB
    opt_level: int = DEFAULT_OPT_LEVEL
    targets: tuple[str, ...] = ()  # TensorRT-RTX compute capabilities, e.g. ("8.6", "8.9")

    @classmethod
    def from_spec(cls, spec: RunnerSpec, targets: tuple[str, ...] = ()) -> BuildSettings:
        return cls.from_options(spec.opts, targets)

    @classmethod
    def from_options(cls, opts: Mapping[str, Any], targets: tuple[str, ...] = ()) -> BuildSettings:
        """From a spec's options: a sweep's runner and ``trt-build`` read them alike, so
        the same options key the same plan."""
        return cls(
            int(opts.get("workspace_mb", DEFAULT_WORKSPACE_MB)),
            int(opts.get("opt_level", DEFAULT_OPT_LEVEL)),
            targets,
        )


def parser_errors(parser: Any) -> list[str]:
    """One line per ONNX parser error, naming the node where the parser says which."""
    out = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        desc = str(err.desc()).strip()
        node = err.node() if hasattr(err, "node") else -1
        # node_name / node_operator exist from TensorRT 10; older errors give the index only.
        name = err.node_name() if hasattr(err, "node_name") else ""
        op = err.node_operator() if hasattr(err, "node_operator") else ""
        if isinstance(node, int) and node >= 0:
            where = f"node {node}" + (f" '{name}'" if name else "") + (f" ({op})" if op else "")
            out.append(f"{where}: {desc}")
        else:
            out.append(desc)
    return out


def parse_onnx(
    trt: Any, builder: Any, logger: Any, onnx_path: Path, recipe: BuildRecipe, shown: str = ""
) -> tuple[Any, Any]:
    """(network, parser); BadInput naming the failing nodes where the parser refuses
    (``shown``: what the user gave, where ``onnx_path`` is a file made from it).

    The parser is returned to be kept alive with the network: it owns the weights.
    """
    flags = 0
    for name in recipe.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    # parse_from_file, not parse(bytes): it resolves external weights next to the file.
    if not parser.parse_from_file(str(onnx_path)):
        errors = parser_errors(parser) or [_logged(logger) or "no detail given"]
        raise BadInput(
            f"TensorRT's ONNX parser rejected {shown or onnx_path.name}",
            "; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""),
            "check these operators against TensorRT's ONNX support, or use another backend",
        )
    return network, parser


def set_targets(trt: Any, config: Any, targets: tuple[str, ...]) -> None:
    """TensorRT-RTX: build for these compute capabilities (names like '8.6' → SM86)."""
    config.num_compute_capabilities = len(targets)
    for i, cc in enumerate(targets):
        member = getattr(trt.ComputeCapability, "SM" + cc.replace(".", ""))
        if not config.set_compute_capability(member, i):
            raise BadInput(f"TensorRT-RTX refused the target compute capability {cc}")


def add_profile(
    builder: Any, network: Any, config: Any, profile: BatchProfile, image_hw: tuple[int, int]
) -> None:
    """An optimisation profile over the batch range, where the input's batch is dynamic."""
    inp = network.get_input(0)
    dims = tuple(int(d) for d in inp.shape)
    if any(d < 0 for d in dims):
        # each symbolic side its size, by the input's layout (NCHW, or NHWC from TensorFlow)
        tail = tuple(filled_dims(dims, 1, image_hw)[1:])
        opt_profile = builder.create_optimization_profile()
        lo, mid, hi = profile.shapes(tail)
        opt_profile.set_shape(inp.name, lo, mid, hi)
        config.add_optimization_profile(opt_profile)


def make_config(trt: Any, builder: Any, recipe: BuildRecipe, settings: BuildSettings) -> Any:
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mb * 2**20)
    config.builder_optimization_level = settings.opt_level
    # DETAILED keeps layer names, types, formats and tactics for the engine inspector.
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    for name in recipe.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    for name in recipe.clear_flags:
        if hasattr(trt.BuilderFlag, name):
            config.clear_flag(getattr(trt.BuilderFlag, name))
    if settings.targets:
        set_targets(trt, config, settings.targets)
    return config


def attach_timing_cache(config: Any, timing_file: Path | None, notes: list[str]) -> Any:
    """The timing cache set on ``config`` (the stored one where it fits), or None."""
    if timing_file is None:
        return None
    blob = read_timing_cache(timing_file)
    timing = config.create_timing_cache(blob)
    if timing is None or not config.set_timing_cache(timing, False):
        notes.append("the stored timing cache did not fit this TensorRT/GPU; started a new one")
        timing = config.create_timing_cache(b"")
        config.set_timing_cache(timing, False)
    elif blob:
        notes.append(f"reused the timing cache ({len(blob) // 1024} KiB)")
    return timing


def build_plan(
    trt: Any,
    onnx_path: Path,
    recipe: BuildRecipe,
    profile: BatchProfile,
    settings: BuildSettings,
    image_hw: tuple[int, int],
    timing_file: Path | None,
    progress: BuildProgress | None = None,
    shown: str = "",
) -> tuple[bytes, dict[str, Any]]:
    """Parse ``onnx_path`` and build a serialised plan; returns (plan, build facts).
    Errors call the model ``shown`` where given: the int8 file is the cache's ``model.onnx``."""
    logger = _make_logger(trt)
    builder = trt.Builder(logger)
    network, _parser = parse_onnx(trt, builder, logger, onnx_path, recipe, shown)
    config = make_config(trt, builder, recipe, settings)
    add_profile(builder, network, config, profile, image_hw)
    notes: list[str] = []
    timing = attach_timing_cache(config, timing_file, notes)
    monitor = _make_monitor(trt, progress) if progress is not None else None
    if monitor is not None:
        config.progress_monitor = monitor
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    build_s = time.perf_counter() - t0
    if plan is None:
        raise EngineError(
            f"TensorRT could not build {shown or onnx_path.name} ({recipe.precision})",
            _logged(logger) or "the builder returned no plan",
            "build fp16, or leave out compute capabilities whose kernels the log names"
            " (option rtx_cc, e.g. 8.6,8.9)"
            if recipe.flavour == "rtx"
            else "raise the tensorrt option workspace_mb, or try another precision",
        )
    if timing is not None and timing_file is not None:
        write_timing_cache(
            timing_file,
            bytes(config.get_timing_cache().serialize()),
            {"trt_version": trt.__version__},
        )
    facts = {
        "build_s": build_s,
        "progress_monitor": monitor is not None,
        "network_layers": getattr(network, "num_layers", None),
        "layer_log": "".join(getattr(logger, "verbose", [])[-1:]),
        "notes": notes,
    }
    return bytes(plan), facts
