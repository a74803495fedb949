"""A plan from our cache or a fresh build, and the engine deserialised from it.

A plan is deserialised only from our own cache after its hash check; one that fails to
load is rebuilt with a note. TensorRT-RTX is asked first whether a plan can run on this
GPU (``Runtime.get_engine_validity``), and its load-time refusal of a compute capability
("Error Code 6 … compute capability 9.0 …") becomes the same Unavailable answer as the
check before the build, not a build failure: rebuilding cannot help.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.backends.base import PrepareContext
from engine.backends.tensorrt.build import BuildSettings, build_plan
from engine.backends.tensorrt.cache import (
    BatchProfile,
    PlanKey,
    discard_plan,
    load_plan,
    store_plan,
    timing_cache_file,
)
from engine.backends.tensorrt.flavour import refusal_in, rtx_refusal
from engine.backends.tensorrt.progress import BuildProgress, _logged, _make_logger
from engine.backends.tensorrt.recipe import BuildRecipe
from engine.core.errors import EngineError


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


@dataclass
class PlanResult:
    """A serialised plan from the cache or a build, with what is known without a GPU."""

    key: PlanKey
    plan: bytes
    source: str  # "cache" | "built" | "rebuilt"
    build_s: float | None
    notes: list[str] = field(default_factory=list)
    layer_log: str = ""
    network_layers: int | None = None


def plan_key(
    trt: Any,
    onnx_sha256: str,
    recipe: BuildRecipe,
    profile: BatchProfile,
    settings: BuildSettings,
    gpu_name: str,
    compute_capability: str,
    image_hw: tuple[int, int],
) -> PlanKey:
    return PlanKey(
        trt_version=str(trt.__version__),
        gpu_name=gpu_name,
        compute_capability=compute_capability,
        onnx_sha256=onnx_sha256,
        precision=recipe.precision,
        build_path=recipe.build_path,
        min_batch=profile.min_batch,
        opt_batch=profile.opt_batch,
        max_batch=profile.max_batch,
        workspace_mb=settings.workspace_mb,
        opt_level=settings.opt_level,
        flavour=recipe.flavour,
        targets=",".join(settings.targets),
        image_hw=f"{image_hw[0]}x{image_hw[1]}",
    )


def rtx_validity(trt: Any, runtime: Any, plan: bytes, cc: str) -> None:
    """Raise the compute-capability refusal where TensorRT-RTX says the plan cannot run here."""
    check = getattr(runtime, "get_engine_validity", None)
    diagnostics = getattr(trt, "EngineInvalidityDiagnostics", None)
    if check is None or diagnostics is None:
        return
    try:
        _, flags = check(plan)
    except Exception:  # noqa: BLE001 - no verdict; deserialising will say what is wrong
        return
    if int(flags) & int(diagnostics.UNSUPPORTED_CC):
        raise rtx_refusal(
            cc, "TensorRT-RTX's engine validity check: unsupported compute capability"
        )


def deserialize(trt: Any, plan: bytes, flavour: str = "full", cc: str = "") -> tuple[Any, Any, str]:
    """(runtime, engine or None, why it failed); the RTX compute-capability refusal raises."""
    logger = _make_logger(trt)
    runtime = trt.Runtime(logger)
    if flavour == "rtx":
        rtx_validity(trt, runtime, plan, cc)
    try:
        engine = runtime.deserialize_cuda_engine(plan)
    except Exception as exc:  # noqa: BLE001 - the bindings raise several kinds for bad plans
        engine, why = None, f"{type(exc).__name__}: {exc}"
    else:
        why = "" if engine is not None else _logged(logger) or "TensorRT returned no engine"
    if engine is None:
        refusal = refusal_in(" ".join([*getattr(logger, "messages", []), why]))
        if refusal is not None:
            raise refusal
    return runtime, engine, why


def fetch_plan(
    trt: Any,
    key: PlanKey,
    onnx_path: Path,
    recipe: BuildRecipe,
    profile: BatchProfile,
    settings: BuildSettings,
    image_hw: tuple[int, int],
    ctx: PrepareContext,
    shown: str = "",
) -> PlanResult:
    """The hash-checked cached plan for ``key``, or a fresh build stored under it
    (``shown``: what the user gave, for messages; ``onnx_path`` may be a copy of it).

    The caller holds the plan's file lock.
    """
    plan, note = load_plan(key)
    notes = list(recipe.notes)
    if note:
        notes.append(note)
        ctx.say(note)
    if plan is not None:
        return PlanResult(key, plan, "cache", None, notes)
    ctx.say(
        f"building a {recipe.flavour_title} {recipe.precision} engine ({recipe.typing},"
        f" {profile.label})"
        + ("" if recipe.flavour == "rtx" else "; this takes minutes the first time")
    )
    # TensorRT-RTX times no kernels at build time (it warns and ignores a timing cache).
    timing = None
    if recipe.flavour != "rtx":
        timing = timing_cache_file(key.trt_version, key.gpu_name, key.compute_capability)
    # Progress goes to the live callback only; ctx.notes keeps what is worth keeping.
    plan, facts = build_plan(
        trt, onnx_path, recipe, profile, settings, image_hw, timing, BuildProgress(ctx.progress),
        shown,
    )  # fmt: skip
    notes.extend(facts["notes"])
    record = {"onnx": onnx_path.name, "build_s": facts["build_s"], "layer_log": facts["layer_log"]}
    store_plan(key, plan, record)
    source = "rebuilt" if note else "built"
    return PlanResult(
        key, plan, source, facts["build_s"], notes, facts["layer_log"], facts["network_layers"]
    )


def plan_lock(key: PlanKey, progress: Callable[[str], None] | None = None) -> Any:
    """Two processes asking for the same plan build it once; the second waits, saying so,
    and loads it. The compiled engines' build lock (``<cache>/locks/<key>.lock``), so
    `cache prune` tells a live build from a killed one as it does for them."""
    from engine.artifacts.cache import build_lock

    return build_lock(key.folder, "TensorRT plan", progress)


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
    shown: str = "",
) -> LoadedEngine:
    """The engine from our plan cache, or built (and cached) when missing or unusable."""
    from engine.artifacts.external_data import model_digest

    key = plan_key(
        trt,
        model_digest(onnx_path),
        recipe,
        profile,
        settings,
        gpu_name,
        compute_capability,
        image_hw,
    )
    args = (trt, key, onnx_path, recipe, profile, settings, image_hw, ctx, shown)
    with plan_lock(key, ctx.say):
        got = fetch_plan(*args)
        runtime, engine, why = deserialize(trt, got.plan, recipe.flavour, compute_capability)
        if engine is None and got.source == "cache":
            msg = (
                f"the cached TensorRT plan {key.name} could not be deserialised ({why}); rebuilding"
            )
            ctx.say(msg)
            discard_plan(key)
            got = fetch_plan(*args)
            got.notes.insert(0, msg)
            got.source = "rebuilt"
            runtime, engine, why = deserialize(trt, got.plan, recipe.flavour, compute_capability)
        if engine is None:
            discard_plan(key)
            raise EngineError(
                "TensorRT built a plan it cannot load", why, "report this with the build log"
            )
        if got.source == "cache":
            ctx.say(f"reused the cached TensorRT plan {key.name}")
        return LoadedEngine(engine, runtime, key, got.source, got.build_s, got.notes, len(got.plan))
