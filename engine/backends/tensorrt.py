"""TensorRT: build an engine from the cached ONNX, cache it, run it, and show its layers.

TensorRT 10.x and 11.x build differently. 10.x is weakly typed: the FP32 ONNX is parsed
and builder flags (FP16, BF16, INT8) let TensorRT pick lower-precision kernels. 11.x
removed those flags and the implicit INT8 calibrator: every network is strongly typed, so
the ONNX file's own types decide (the FP16 or BF16 export, the Q/DQ int8 model). The
installed major version picks the path (:func:`build_recipe`). Plans and the timing cache
are cached on disk by :mod:`engine.trt_cache`; a plan is deserialised only from our own
cache after its hash check, and one that fails to load is rebuilt with a note. The runner
calls ``execute_async_v3`` on torch CUDA tensors and a torch CUDA stream (no pycuda).

``tensorrt`` is imported lazily: without it, :meth:`TensorRTBackend.availability` says why
and which package to install, and nothing else in the product breaks.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.backends.base import Availability, Backend, PrepareContext, Runner
from engine.config import RunnerSpec
from engine.errors import BadInput, EngineError, Unavailable
from engine.trt_cache import (
    DEFAULT_OPT_LEVEL,
    DEFAULT_WORKSPACE_MB,
    MAX_OPT_LEVEL,
    BatchProfile,
    PlanKey,
    check_batch,
    discard_plan,
    load_plan,
    profile_for,
    read_timing_cache,
    store_plan,
    timing_cache_file,
    write_timing_cache,
)

PROVIDER = "tensorrt"
SUPPORTED_MAJORS = (10, 11)
# Ampere (8.0) is the first architecture with BF16 tensor cores; TensorRT refuses BF16 below.
BF16_MIN_CC = (8, 0)
# RunnerSpec options this backend reads; the CLI gives every runner the same option set,
# so other backends' switches (cuda_graph, channels_last, ...) are ignored, not refused.
OPTIONS = ("workspace_mb", "opt_level", "opt_batch", "max_batch")


# --------------------------------------------------------------------------- import, version


def import_tensorrt() -> Any:
    """``import tensorrt``; ImportError or OSError (a library that does not load) propagate."""
    import tensorrt

    return tensorrt


def try_import_tensorrt() -> tuple[Any, str]:
    """(module, "") or (None, why it does not import)."""
    try:
        return import_tensorrt(), ""
    except (ImportError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return None, f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def trt_major(version: str) -> int:
    """The major number of a TensorRT version string such as ``10.14.1.48``."""
    match = re.match(r"\s*(\d+)", str(version))
    if not match:
        raise Unavailable(f"the TensorRT version '{version}' cannot be read")
    return int(match.group(1))


def install_command() -> str:
    """``pip install tensorrt-cuNN`` for the CUDA major torch was built for."""
    major = None
    try:
        import torch

        if torch.version.cuda:
            major = int(str(torch.version.cuda).split(".")[0])
    except ImportError:
        pass
    return f"pip install tensorrt-cu{major or 12}"


def _disk_facts() -> dict[str, Any]:
    """What engine.diagnostics found on disk (module folder, libnvinfer); {} if unavailable.

    Reused so the library search lives in one place; it reads files only and never
    imports tensorrt, so it is safe to call when the import is what fails.
    """
    try:
        from engine.diagnostics import tensorrt_status

        return tensorrt_status()
    except Exception:  # noqa: BLE001 - diagnostics is best effort; the import error still explains
        return {}


def missing_reason(import_error: str, facts: dict[str, Any] | None = None) -> str:
    """Why TensorRT cannot be used, from the import error and the on-disk facts."""
    facts = facts if facts is not None else {}
    if not facts:
        return f"the tensorrt Python package does not import ({import_error})"
    if not facts.get("importable") and not facts.get("libnvinfer_found"):
        return (
            "TensorRT is not installed: there is no tensorrt Python package and no libnvinfer"
            f" library ({import_error})"
        )
    if not facts.get("importable"):
        return f"libnvinfer is present but the tensorrt Python package is not ({import_error})"
    lib = "" if facts.get("libnvinfer_found") else "; libnvinfer was not found on disk"
    version = f" {facts['version']}" if facts.get("version") else ""
    return f"the tensorrt{version} package is installed but does not load ({import_error}){lib}"


def tensorrt_availability() -> tuple[Any, Availability]:
    """(module or None, availability of TensorRT itself, GPU aside)."""
    trt, error = try_import_tensorrt()
    if trt is None:
        return None, Availability(False, missing_reason(error, _disk_facts()), install_command())
    version = getattr(trt, "__version__", "?")
    try:
        major = trt_major(version)
    except Unavailable as exc:
        return None, Availability(False, exc.what, install_command())
    if major < min(SUPPORTED_MAJORS):
        return None, Availability(
            False,
            f"TensorRT {version} is older than 10.0, which this product needs (name-based I/O"
            " tensors, execute_async_v3, no implicit batch)",
            f"{install_command()} --upgrade",
        )
    return trt, Availability(True)


# --------------------------------------------------------------------------- build recipe


@dataclass(frozen=True)
class BuildRecipe:
    """How one precision is built with one TensorRT major version."""

    major: int
    precision: str
    onnx_variant: str  # which ONNX file is parsed: fp32, fp16, bf16 or int8 (Q/DQ)
    builder_flags: tuple[str, ...] = ()  # BuilderFlag members to set
    clear_flags: tuple[str, ...] = ()  # BuilderFlag members to clear where they exist
    network_flags: tuple[str, ...] = ()  # NetworkDefinitionCreationFlag members
    notes: tuple[str, ...] = ()

    @property
    def build_path(self) -> str:
        return "10.x-flags" if self.major < 11 else "11.x-strong"

    @property
    def typing(self) -> str:
        if self.major < 11:
            return "weakly typed: builder flags " + (
                "+".join(self.builder_flags) if self.builder_flags else "none (FP32)"
            )
        return f"strongly typed: the {self.onnx_variant} ONNX's own types"


def build_recipe(major: int, precision: str, trt: Any = None) -> BuildRecipe:
    """The ONNX variant and flags for ``precision`` on TensorRT ``major``.

    With ``trt`` given, flags this installation does not have make the precision
    Unavailable, named, instead of an AttributeError deep in the build.
    """
    if precision not in TensorRTBackend.PRECISIONS:
        raise BadInput(
            f"TensorRT cannot build precision '{precision}'",
            f"it builds {', '.join(TensorRTBackend.PRECISIONS)}",
        )
    if major < min(SUPPORTED_MAJORS):
        raise Unavailable(
            f"TensorRT {major}.x is not supported",
            "this product is written for TensorRT 10.x and 11.x",
            f"{install_command()} --upgrade",
        )
    notes: tuple[str, ...] = ()
    if major > max(SUPPORTED_MAJORS):
        notes = (f"TensorRT {major}.x is newer than 11.x; built as on 11.x (strongly typed)",)
    # fp32 means FP32 math: TensorRT enables TF32 for FP32 layers by default on Ampere+.
    clear = ("TF32",) if precision == "fp32" else ()
    if major < 11:
        variant = "int8" if precision == "int8" else "fp32"
        flags = {"fp32": (), "fp16": ("FP16",), "bf16": ("BF16",), "int8": ("INT8",)}[precision]
        recipe = BuildRecipe(major, precision, variant, flags, clear, (), notes)
    else:
        # 11.x: strongly typed always (the STRONGLY_TYPED flag is deprecated and ignored,
        # EXPLICIT_BATCH is gone), so no network flags and no precision flags.
        recipe = BuildRecipe(major, precision, precision, (), clear, (), notes)
    if trt is not None:
        missing = [f for f in recipe.builder_flags if not hasattr(trt.BuilderFlag, f)]
        if missing:
            raise Unavailable(
                f"TensorRT {trt.__version__} cannot build {precision}",
                f"its builder has no {', '.join(missing)} flag",
                "install TensorRT 10.x or newer, or choose another precision",
            )
    return recipe


# --------------------------------------------------------------------------- int8 model check


def qdq_zero_point_problems(onnx_path: str | Path) -> dict[str, int]:
    """Q/DQ nodes TensorRT refuses: uint8 zero points, or zero points that are not 0.

    TensorRT's ONNX parser accepts only symmetric int8 quantisation (all zero points 0).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path), load_external_data=False)
    inits = {i.name: i for i in model.graph.initializer}
    counts = {"uint8": 0, "nonzero": 0}
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3:
            continue
        zp = inits.get(node.input[2])
        if zp is None:
            continue
        arr = numpy_helper.to_array(zp)
        if arr.dtype == np.uint8:
            counts["uint8"] += 1
        if np.any(arr != 0):
            counts["nonzero"] += 1
    return {k: v for k, v in counts.items() if v}


def int8_onnx(artifacts: Any, ctx: PrepareContext) -> Path:
    """The Q/DQ int8 model from engine.quantize, refused early if TensorRT cannot parse it."""
    import inspect

    from engine.quantize import quantize_int8

    kwargs: dict[str, Any] = {"progress": ctx.say}
    # A symmetric-int8 switch is what TensorRT needs; use it as soon as quantize offers one.
    if "symmetric" in inspect.signature(quantize_int8).parameters:
        kwargs["symmetric"] = True
    path = Path(quantize_int8(artifacts, ctx.calibration_dir, **kwargs))
    problems = qdq_zero_point_problems(path)
    if problems:
        found = ", ".join(f"{n} Q/DQ nodes with {k} zero points" for k, n in problems.items())
        raise BadInput(
            "the int8 model cannot be built by TensorRT",
            f"engine.quantize writes asymmetric activations ({found}); TensorRT accepts only"
            " symmetric int8 Q/DQ with zero points of 0",
            "use --backend ort for int8 on the CPU until the quantiser has a symmetric int8"
            " mode, or run fp16 with TensorRT",
        )
    return path


def onnx_for(recipe: BuildRecipe, artifacts: Any, ctx: PrepareContext) -> Path:
    if recipe.onnx_variant == "int8":
        return int8_onnx(artifacts, ctx)
    return Path(artifacts.onnx_path(recipe.onnx_variant, progress=ctx.say))


# --------------------------------------------------------------------------- build progress

_PROGRESS_RE = re.compile(r"^TensorRT build\s+(\d{1,3})%")


def parse_build_progress(message: str) -> float | None:
    """The build fraction (0..1) in a progress message, or None if it is not one.

    The dashboard uses this to draw a progress bar from the plain progress messages.
    """
    m = _PROGRESS_RE.match(message)
    return int(m.group(1)) / 100 if m else None


class BuildProgress:
    """Turns TensorRT's nested phases and steps into one fraction and throttled messages.

    TensorRT calls these from its own threads, hence the lock; ``say`` is called at most
    every ``min_interval_s`` (and on every new top-level phase) so a UI is not flooded.
    """

    def __init__(self, say: Any, min_interval_s: float = 0.5, clock: Any = time.monotonic):
        self.say = say
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.lock = threading.Lock()
        self.phases: dict[str, dict[str, Any]] = {}
        self.root: str | None = None
        self.last_emit = float("-inf")
        self.last_fraction = 0.0

    def _fraction(self, name: str, depth: int = 0) -> float:
        ph = self.phases.get(name)
        if not ph or depth > 16:
            return 0.0
        steps = max(int(ph["steps"]), 1)
        child = next(
            (n for n, p in self.phases.items() if p["parent"] == name and not p["finished"]),
            None,
        )
        inner = self._fraction(child, depth + 1) if child else 0.0
        return min(1.0, (ph["done"] + inner) / steps)

    def fraction(self) -> float:
        with self.lock:
            return self._fraction(self.root) if self.root else 0.0

    def _emit(self, phase: str, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self.last_emit < self.min_interval_s:
            return
        self.last_emit = now
        frac = self._fraction(self.root) if self.root else 0.0
        self.last_fraction = max(self.last_fraction, frac)  # never run backwards on screen
        if self.say:
            try:
                self.say(f"TensorRT build {int(self.last_fraction * 100):3d}% · {phase}")
            except Exception:  # noqa: BLE001 - a UI callback must never break a build
                pass

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        with self.lock:
            parent = parent_phase or None
            self.phases[phase_name] = {
                "parent": parent,
                "steps": num_steps,
                "done": 0,
                "finished": False,
            }
            if parent is None:
                self.root = phase_name
            self._emit(phase_name, force=parent is None)

    def step_complete(self, phase_name: str, step: int) -> bool:
        with self.lock:
            ph = self.phases.get(phase_name)
            if ph:
                ph["done"] = max(ph["done"], step + 1)
            self._emit(phase_name)
        return True  # False would cancel the build

    def phase_finish(self, phase_name: str) -> None:
        with self.lock:
            ph = self.phases.get(phase_name)
            if ph:
                ph["done"], ph["finished"] = ph["steps"], True
            self._emit(phase_name, force=ph is not None and ph["parent"] is None)


def _make_monitor(trt: Any, progress: BuildProgress) -> Any:
    """A trt.IProgressMonitor forwarding to ``progress`` (None where the version has none)."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class Monitor(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            progress.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            return progress.step_complete(phase_name, step)

        def phase_finish(self, phase_name):
            progress.phase_finish(phase_name)

    return Monitor()


_LOGGERS: dict[int, Any] = {}


def _make_logger(trt: Any) -> Any:
    """The process's trt.ILogger, which keeps warnings and errors so a failure can say why.

    One per module: TensorRT routes its global messages to the first logger it was given,
    so a fresh logger per builder would miss them.
    """
    logger = _LOGGERS.get(id(trt))
    if logger is None or not isinstance(logger, trt.ILogger):

        class Logger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.messages: list[str] = []

            def log(self, severity, msg):
                if int(severity) <= int(trt.ILogger.Severity.WARNING):
                    self.messages.append(str(msg))
                    del self.messages[:-50]

        logger = _LOGGERS[id(trt)] = Logger()
    logger.messages.clear()
    return logger


def _logged(logger: Any, n: int = 3) -> str:
    lines = [m.strip().splitlines()[0][:300] for m in getattr(logger, "messages", []) if m.strip()]
    return "; ".join(lines[-n:])


# --------------------------------------------------------------------------- build


@dataclass(frozen=True)
class BuildSettings:
    workspace_mb: int = DEFAULT_WORKSPACE_MB
    opt_level: int = DEFAULT_OPT_LEVEL

    @classmethod
    def from_spec(cls, spec: RunnerSpec) -> BuildSettings:
        opts = spec.opts
        return cls(
            int(opts.get("workspace_mb", DEFAULT_WORKSPACE_MB)),
            int(opts.get("opt_level", DEFAULT_OPT_LEVEL)),
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


def build_plan(
    trt: Any,
    onnx_path: Path,
    recipe: BuildRecipe,
    profile: BatchProfile,
    settings: BuildSettings,
    image_hw: tuple[int, int],
    timing_file: Path | None,
    progress: BuildProgress | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """Parse ``onnx_path`` and build a serialised plan; returns (plan, build facts)."""
    logger = _make_logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    for name in recipe.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    # parse_from_file, not parse(bytes): it resolves external weights next to the file.
    if not parser.parse_from_file(str(onnx_path)):
        errors = parser_errors(parser) or [_logged(logger) or "no detail given"]
        raise BadInput(
            f"TensorRT's ONNX parser rejected {onnx_path.name}",
            "; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""),
            "check these operators against TensorRT's ONNX support, or use another backend",
        )
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
    inp = network.get_input(0)
    dims = tuple(int(d) for d in inp.shape)
    if any(d < 0 for d in dims):
        h, w = image_hw
        tail = tuple(d if d >= 0 else (3, h, w)[i] for i, d in enumerate(dims[1:]))
        opt_profile = builder.create_optimization_profile()
        lo, mid, hi = profile.shapes(tail)
        opt_profile.set_shape(inp.name, lo, mid, hi)
        config.add_optimization_profile(opt_profile)
    notes: list[str] = []
    timing = None
    if timing_file is not None:
        blob = read_timing_cache(timing_file)
        timing = config.create_timing_cache(blob)
        if timing is None or not config.set_timing_cache(timing, False):
            notes.append("the stored timing cache did not fit this TensorRT/GPU; started a new one")
            timing = config.create_timing_cache(b"")
            config.set_timing_cache(timing, False)
        elif blob:
            notes.append(f"reused the timing cache ({len(blob) // 1024} KiB)")
    monitor = _make_monitor(trt, progress) if progress is not None else None
    if monitor is not None:
        config.progress_monitor = monitor
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    build_s = time.perf_counter() - t0
    if plan is None:
        raise EngineError(
            f"TensorRT could not build {onnx_path.name} ({recipe.precision})",
            _logged(logger) or "the builder returned no plan",
            "raise the tensorrt option workspace_mb, or try another precision",
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
        "notes": notes,
    }
    return bytes(plan), facts


# --------------------------------------------------------------------------- engine from cache


@dataclass
class LoadedEngine:
    """A deserialised engine and how it was obtained."""

    engine: Any
    runtime: Any
    key: PlanKey
    source: str  # "cache" | "built" | "rebuilt"
    build_s: float | None
    notes: list[str] = field(default_factory=list)
    plan_bytes: int = 0


def _deserialize(trt: Any, plan: bytes) -> tuple[Any, Any, str]:
    """(runtime, engine or None, why it failed)."""
    logger = _make_logger(trt)
    runtime = trt.Runtime(logger)
    try:
        engine = runtime.deserialize_cuda_engine(plan)
    except Exception as exc:  # noqa: BLE001 - the bindings raise several kinds for bad plans
        return runtime, None, f"{type(exc).__name__}: {exc}"
    if engine is None:
        return runtime, None, _logged(logger) or "TensorRT returned no engine"
    return runtime, engine, ""


def obtain_engine(
    trt: Any,
    onnx_path: Path,
    recipe: BuildRecipe,
    profile: BatchProfile,
    settings: BuildSettings,
    gpu_name: str,
    compute_capability: str,
    image_hw: tuple[int, int],
    ctx: PrepareContext,
) -> LoadedEngine:
    """The engine from our plan cache, or built (and cached) when missing or unusable."""
    from filelock import FileLock

    from engine.models import file_sha256

    key = PlanKey(
        trt_version=str(trt.__version__),
        gpu_name=gpu_name,
        compute_capability=compute_capability,
        onnx_sha256=file_sha256(onnx_path),
        precision=recipe.precision,
        build_path=recipe.build_path,
        min_batch=profile.min_batch,
        opt_batch=profile.opt_batch,
        max_batch=profile.max_batch,
        workspace_mb=settings.workspace_mb,
        opt_level=settings.opt_level,
    )
    notes = list(recipe.notes)
    # Two sweeps asking for the same plan build it once; the second waits and reuses it.
    with FileLock(str(key.folder) + ".lock", thread_local=False):
        plan, note = load_plan(key)
        if note:
            notes.append(note)
            ctx.say(note)
        source = "rebuilt" if note else "built"
        if plan is not None:
            runtime, engine, why = _deserialize(trt, plan)
            if engine is not None:
                ctx.say(f"reused the cached TensorRT plan {key.folder.name}")
                return LoadedEngine(engine, runtime, key, "cache", None, notes, len(plan))
            msg = (
                f"the cached TensorRT plan {key.folder.name} could not be deserialised ({why});"
                " rebuilding"
            )
            notes.append(msg)
            ctx.say(msg)
            discard_plan(key)
            source = "rebuilt"
        ctx.say(
            f"building a TensorRT {recipe.precision} engine ({recipe.typing}, {profile.label});"
            " this takes minutes the first time"
        )
        timing = timing_cache_file(key.trt_version, gpu_name, compute_capability)
        plan, facts = build_plan(
            trt,
            onnx_path,
            recipe,
            profile,
            settings,
            image_hw,
            timing,
            # Progress goes to the live callback only; ctx.notes keeps what is worth keeping.
            BuildProgress(ctx.progress),
        )
        notes.extend(facts["notes"])
        store_plan(key, plan, {"onnx": onnx_path.name, "build_s": facts["build_s"]})
        runtime, engine, why = _deserialize(trt, plan)
        if engine is None:
            discard_plan(key)
            raise EngineError(
                "TensorRT built a plan it cannot load", why, "report this with the build log"
            )
        return LoadedEngine(engine, runtime, key, source, facts["build_s"], notes, len(plan))


# --------------------------------------------------------------------------- inspection


@dataclass
class EngineLayer:
    """One TensorRT layer and the ONNX nodes it replaced."""

    name: str
    layer_type: str
    onnx_nodes: list[str]
    precision: str
    tactic: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_ONNX_LAYER_RE = re.compile(r"\[ONNX Layer: ([^\]]+)\]")
_FORMAT_PRECISIONS = (
    ("int8", "int8"),
    ("fp8", "fp8"),
    ("bf16", "bf16"),
    ("half", "fp16"),
    ("fp16", "fp16"),
    ("float", "fp32"),
    ("fp32", "fp32"),
    ("int32", "int32"),
    ("int64", "int64"),
    ("bool", "bool"),
)


def format_precision(fmt: str) -> str:
    """'Row major linear FP16 format' / 'Half' → 'fp16'; '' when TensorRT did not say."""
    low = fmt.lower()
    for token, name in _FORMAT_PRECISIONS:
        if token in low:
            return name
    return ""


def layers_from_json(text: str) -> list[EngineLayer]:
    """Engine-inspector JSON (``LayerInformationFormat.JSON``) → one row per layer.

    Fused layers name their ONNX nodes in ``Metadata`` (``[ONNX Layer: …]`` entries) and in
    the layer name (node names joined by ``+``); the metadata wins where present. With
    less than DETAILED verbosity layers are plain strings and only names are known.
    """
    data = json.loads(text)
    layers = data.get("Layers", []) if isinstance(data, dict) else []
    rows = []
    for layer in layers:
        if isinstance(layer, str):
            rows.append(EngineLayer(layer, "", _nodes_from_name(layer), "", ""))
            continue
        name = str(layer.get("Name", ""))
        nodes = _ONNX_LAYER_RE.findall(str(layer.get("Metadata", ""))) or _nodes_from_name(name)
        tensors = list(layer.get("Outputs") or []) + list(layer.get("Inputs") or [])
        precisions = [
            format_precision(str(t.get("Format/Datatype", "")))
            for t in tensors
            if isinstance(t, dict)
        ]
        precision = next((p for p in precisions if p), "")
        tactic = str(layer.get("TacticName") or layer.get("TacticValue") or "")
        rows.append(EngineLayer(name, str(layer.get("LayerType", "")), nodes, precision, tactic))
    return rows


def _nodes_from_name(name: str) -> list[str]:
    # "Reformatting CopyNode for ..." and similar are TensorRT's own, not ONNX nodes.
    if name.startswith(("Reformatting CopyNode", "(Unnamed Layer")):
        return []
    return [part.strip() for part in name.split(" + ") if part.strip()]


def inspect_engine(engine: Any, context: Any = None) -> list[EngineLayer]:
    """Layer table of a built engine; pass the execution context to resolve dynamic formats."""
    trt = import_tensorrt()
    inspector = engine.create_engine_inspector()
    if context is not None:
        inspector.execution_context = context
    return layers_from_json(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


# --------------------------------------------------------------------------- runner


def _torch_dtype(trt_dtype: Any) -> Any:
    import torch

    name = getattr(trt_dtype, "name", str(trt_dtype).rsplit(".", 1)[-1])
    table = {
        "FLOAT": torch.float32,
        "HALF": torch.float16,
        "BF16": torch.bfloat16,
        "INT8": torch.int8,
        "UINT8": torch.uint8,
        "INT32": torch.int32,
        "INT64": torch.int64,
        "BOOL": torch.bool,
    }
    if name not in table:
        raise EngineError(f"TensorRT tensor type {name} has no torch equivalent here")
    return table[name]


class TensorRTRunner(Runner):
    """Runs a deserialised engine on torch CUDA tensors with ``execute_async_v3``."""

    def __init__(
        self,
        spec: RunnerSpec,
        loaded: LoadedEngine,
        profile: BatchProfile,
        index: int,
        recipe: BuildRecipe,
    ) -> None:
        import torch

        trt = import_tensorrt()
        self.spec = spec
        self.torch = torch
        self.trt = trt
        self.device = torch.device("cuda", index)
        self.index = index
        self.loaded = loaded
        self.engine = loaded.engine
        self.profile = profile
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise EngineError(
                "TensorRT could not create an execution context",
                "usually too little free GPU memory for the engine's activations",
                "close other GPU work, or rebuild with a smaller max_batch",
            )
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs.append(name)
            else:
                self.outputs.append(name)
        if len(self.inputs) != 1 or not self.outputs:
            raise BadInput(
                f"the engine has {len(self.inputs)} inputs and {len(self.outputs)} outputs",
                "an image classifier with one input and a logits output is expected",
            )
        self.input_name = self.inputs[0]
        self.input_dtype = _torch_dtype(self.engine.get_tensor_dtype(self.input_name))
        self.output_dtypes = {
            n: _torch_dtype(self.engine.get_tensor_dtype(n)) for n in self.outputs
        }
        # A dedicated stream: TensorRT warns that the legacy default stream adds syncs.
        self.stream = torch.cuda.Stream(self.device)
        self._shape: tuple[int, ...] | None = None
        self._out: dict[str, Any] = {}
        self.provider = PROVIDER
        key = loaded.key
        self.info = {
            "trt_version": key.trt_version,
            "build_path": key.build_path,
            "typing": recipe.typing,
            "onnx_variant": recipe.onnx_variant,
            "plan": loaded.source,
            "plan_key": key.folder.name,
            "plan_bytes": loaded.plan_bytes,
            "build_s": loaded.build_s,
            "profile": asdict(profile),
            "workspace_mb": key.workspace_mb,
            "opt_level": key.opt_level,
            "gpu": key.gpu_name,
            "compute_capability": key.compute_capability,
            "input_dtype": str(self.input_dtype).replace("torch.", ""),
            "notes": list(loaded.notes),
        }

    def to_device(self, x: np.ndarray) -> Any:
        t = self.torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        return t.to(device=self.device, dtype=self.input_dtype).contiguous()

    def _bind(self, shape: tuple[int, ...]) -> None:
        check_batch(shape[0], self.profile)
        if not self.context.set_input_shape(self.input_name, shape):
            raise BadInput(
                f"TensorRT refused the input shape {list(shape)}",
                f"the engine was built for {self.profile.label}",
                "rebuild with a profile that covers this shape",
            )
        self._out = {
            name: self.torch.empty(
                tuple(self.context.get_tensor_shape(name)),
                dtype=self.output_dtypes[name],
                device=self.device,
            )
            for name in self.outputs
        }
        for name, buf in self._out.items():
            self.context.set_tensor_address(name, buf.data_ptr())
        self._shape = shape

    def run(self, x_dev: Any) -> Any:
        shape = tuple(x_dev.shape)
        if shape != self._shape:
            self._bind(shape)
        if x_dev.dtype != self.input_dtype or not x_dev.is_contiguous():
            x_dev = x_dev.to(dtype=self.input_dtype).contiguous()
        self.context.set_tensor_address(self.input_name, x_dev.data_ptr())
        current = self.torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)  # the input was written on the current stream
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise EngineError("TensorRT failed to enqueue the engine", f"input shape {list(shape)}")
        current.wait_stream(self.stream)  # readers of the output wait for TensorRT
        x_dev.record_stream(self.stream)
        return self._out[self.outputs[0]]

    def to_host(self, y_dev: Any) -> np.ndarray:
        return y_dev.detach().float().cpu().numpy()

    def synchronize(self) -> None:
        self.torch.cuda.synchronize(self.device)

    def peak_memory_mb(self) -> float | None:
        from engine.gpu import nvml_used_mb

        return nvml_used_mb(self.index)

    def inspect(self) -> list[EngineLayer]:
        """The engine's layers; binds the opt batch first so formats are concrete."""
        if self._shape is None:
            h, w = self._image_hw()
            self._bind((self.profile.opt_batch, 3, h, w))
        return inspect_engine(self.engine, self.context)

    def _image_hw(self) -> tuple[int, int]:
        dims = tuple(self.engine.get_tensor_shape(self.input_name))
        h = dims[2] if len(dims) == 4 and dims[2] > 0 else 224
        w = dims[3] if len(dims) == 4 and dims[3] > 0 else 224
        return h, w

    def close(self) -> None:
        self._out.clear()
        self.context = None
        self.engine = None
        self.loaded = None  # type: ignore[assignment]


# --------------------------------------------------------------------------- backend


def _gpu_facts(index: int) -> tuple[str, str, tuple[int, int]]:
    import torch

    cap = torch.cuda.get_device_capability(index)
    return torch.cuda.get_device_name(index), f"{cap[0]}.{cap[1]}", tuple(cap)


class TensorRTBackend(Backend):
    NAME = "tensorrt"
    TITLE = "TensorRT"
    PRECISIONS = ("fp32", "fp16", "bf16", "int8")
    DEVICES = ("cuda",)

    @classmethod
    def availability(cls, device: str = "cuda") -> Availability:
        from engine.devices import cuda_availability, parse_device

        kind, _ = parse_device(device)
        _, trt_ok = tensorrt_availability()
        if kind == "cpu":
            reason = "TensorRT runs only on NVIDIA GPUs"
            if not trt_ok.ok:
                reason += f"; also {trt_ok.reason}"
            return Availability(False, reason, "use --device cuda")
        gpu = cuda_availability(device)
        if not gpu.ok:
            # The generic CUDA fix offers --device cpu, which TensorRT can never use.
            gpu = Availability(False, gpu.reason, gpu.fix.split(", or use --device cpu")[0])
        # TensorRT's own absence is reported first: it is what the user asked for, and a
        # GPU machine without it would otherwise only learn about it on the next try.
        if not trt_ok.ok and not gpu.ok:
            return Availability(
                False, f"{trt_ok.reason}; and {gpu.reason}", f"{trt_ok.fix}; {gpu.fix}"
            )
        return trt_ok if not trt_ok.ok else gpu

    @classmethod
    def check(cls, spec: RunnerSpec) -> None:
        if spec.device.split(":", 1)[0] == "cpu":
            _, trt_ok = tensorrt_availability()
            also = "" if trt_ok.ok else f"; TensorRT is not installed here either ({trt_ok.fix})"
            raise BadInput(
                "TensorRT runs only on NVIDIA GPUs",
                f"device '{spec.device}' was requested",
                f"use --device cuda{also}",
            )
        super().check(spec)
        opts = spec.opts
        for name, lo, hi in (("workspace_mb", 64, 1 << 20), ("opt_level", 0, MAX_OPT_LEVEL)):
            if name in opts:
                value = opts[name]
                if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                    raise BadInput(
                        f"the TensorRT option {name}={value!r} is out of range",
                        f"it must be a whole number from {lo} to {hi}",
                    )
        for name in ("opt_batch", "max_batch"):
            value = opts.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise BadInput(f"the TensorRT option {name}={value!r} is not a whole number")

    @classmethod
    def plan_profile(cls, spec: RunnerSpec, artifacts: Any, ctx: PrepareContext) -> BatchProfile:
        """min 1, opt the chosen (default largest) batch, max the largest incl. parity's."""
        from engine.parity import PARITY_BATCH

        opts = spec.opts
        return profile_for(
            ctx.batches,
            opt_batch=opts.get("opt_batch"),
            max_batch=opts.get("max_batch"),
            fixed_batch=getattr(artifacts, "fixed_batch", None),
            extra=(PARITY_BATCH,),
        )

    @classmethod
    def prepare(cls, spec: RunnerSpec, artifacts: Any, ctx: PrepareContext) -> Runner:
        cls.check(spec)
        cls.availability(spec.device).raise_if_missing(f"TensorRT on {spec.device}")
        import torch

        from engine.devices import parse_device

        trt = import_tensorrt()
        _, index = parse_device(spec.device)
        gpu_name, cc, cap = _gpu_facts(index)
        recipe = build_recipe(trt_major(trt.__version__), spec.precision, trt)
        if spec.precision == "bf16" and cap < BF16_MIN_CC:
            raise BadInput(
                f"bf16 is not possible on {gpu_name} (compute capability {cc})",
                "BF16 needs compute capability 8.0 (Ampere) or newer",
                "use fp16 on this GPU",
            )
        profile = cls.plan_profile(spec, artifacts, ctx)
        onnx_path = onnx_for(recipe, artifacts, ctx)
        with torch.cuda.device(index):
            loaded = obtain_engine(
                trt,
                onnx_path,
                recipe,
                profile,
                BuildSettings.from_spec(spec),
                gpu_name,
                cc,
                artifacts.image_hw,
                ctx,
            )
            return TensorRTRunner(spec, loaded, profile, index, recipe)
