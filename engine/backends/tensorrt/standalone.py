"""Build a TensorRT plan without running it: ``python -m engine trt-build`` and the Engines page.

TensorRT-RTX builds on a machine without a GPU or driver, for named compute capabilities
(default: every one the library targets), so a plan can be made here and run on a
GeForce/RTX machine. Full TensorRT needs a GPU to build. The plan goes into the same
cache as a sweep's, under the key a sweep of the same batches looks up (the profile covers
the parity check's batch, as a sweep's does; a second build is a cache hit), and, if
asked, to a file. What is
known without a GPU is reported as such: build time, plan size, the cache key, the
layers from the builder's log, and the library's own verdict on loading it here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.backends.base import PrepareContext
from engine.backends.tensorrt.build import BuildSettings
from engine.backends.tensorrt.cache import BatchProfile, options_profile, plan_record
from engine.backends.tensorrt.flavour import (
    Flavour,
    rtx_targets,
    tensorrt_availability,
    trt_major,
    unsupported_message,
    visible_cc,
)
from engine.backends.tensorrt.inspector import EngineLayer, layers_from_build_log
from engine.backends.tensorrt.load import fetch_plan, plan_key, plan_lock
from engine.backends.tensorrt.options import TensorRTOptions
from engine.backends.tensorrt.progress import _make_logger
from engine.backends.tensorrt.recipe import BuildRecipe, build_recipe
from engine.backends.tensorrt.targets import BF16_WHY, before_bf16, check_targets
from engine.core.commands import engine_command
from engine.core.config import size_text
from engine.core.errors import BadInput, EngineError, Unavailable
from engine.core.safeio import write_bytes

# ONNX TensorProto element types of the float precisions a strongly typed build keeps.
_ONNX_FLOAT = {1: "fp32", 10: "fp16", 16: "bf16"}
# The options that reach the builder or its profile (the others pick flavour and targets).
_BUILDER = ("workspace_mb", "opt_level", "opt_batch", "max_batch")


@dataclass
class StandaloneBuild:
    """The facts of one plan built without running it."""

    trt: str  # "TensorRT-RTX 1.7.1.116"
    flavour: str
    precision: str
    onnx: str
    profile: str
    image_size: str  # "224" or "40x56": the size the profile gives the input
    targets: tuple[str, ...]
    key: str
    source: str  # "built" | "rebuilt" | "cache"
    build_s: float | None
    plan_bytes: int
    gpu: str  # the GPU here, or "none"
    loadable: str  # what the library says about loading the plan on this machine
    out: str = ""
    layers: list[EngineLayer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The TensorRT options it was built with, every one (bench's flags give the same plan)
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def builder_words(self) -> str:
        """The builder's settings, as the options name them ("workspace MiB=4096, ...")."""
        from engine.core.options import fields_of

        shown = [f for f in fields_of(TensorRTOptions) if f.name in _BUILDER]
        given = [(f.label, self.options.get(f.name)) for f in shown]
        return ", ".join(f"{label}={value}" for label, value in given if value is not None)

    def lines(self) -> list[str]:
        """What the CLI prints and the page shows, one fact a line."""
        took = f"{self.build_s:.2f} s" if self.build_s is not None else "0 s (cache hit)"
        return [
            f"flavour: {self.trt}",
            f"model: {self.onnx} ({self.precision}, image size {self.image_size}, {self.profile})",
            f"targets: compute capability {', '.join(self.targets) or 'of this GPU'}",
            *([f"builder: {self.builder_words()}"] if self.options else []),
            f"build: {self.source}, {took}",
            f"plan: {self.plan_bytes / 2**20:.1f} MiB ({self.plan_bytes} bytes)",
            f"cache key: {self.key}",
            f"layers: {len(self.layers)} engine layers" if self.layers else "layers: not known",
            f"GPU here: {self.gpu}; {self.loadable}",
            *([f"written to {self.out}"] if self.out else []),
            *self.notes,
        ]


def onnx_precision(onnx_path: Path) -> str:
    """The float type a strongly typed build of an ONNX file keeps (fp32, fp16, bf16): that
    of most of its float weights by element count, else of its first input; '' if another.

    The weights, not the input: an FP16 file with FP32 input and output (ONNX Runtime's
    ``convert_float_to_float16(keep_io_types=True)``, and the fp16 copy of a user's FP32 file)
    computes in FP16, and was refused as "a fp32 model, not fp16"."""
    import onnx

    from engine.artifacts.float_mix import float_mix

    model = onnx.load(str(onnx_path), load_external_data=False)
    if float_mix(model).precision == "fp16":  # FP16 weights, or mixed FP32/FP16
        return "fp16"
    counts = dict.fromkeys(_ONNX_FLOAT, 0)
    for init in model.graph.initializer:
        if init.data_type in counts:
            counts[init.data_type] += math.prod(init.dims)
    most = max(counts, key=lambda t: counts[t])
    if counts[most]:
        return _ONNX_FLOAT[most]
    inputs = {i.name for i in model.graph.initializer}
    first = next((i for i in model.graph.input if i.name not in inputs), None)
    elem = first.type.tensor_type.elem_type if first is not None else 0
    return _ONNX_FLOAT.get(elem, "")


def check_typed(onnx_path: Path, recipe: BuildRecipe) -> None:
    """A strongly typed build keeps the file's types: refuse an fp16 build of an FP32 file,
    and an int8 build of a file with no Q/DQ nodes (it was built as it was, labelled int8)."""
    if recipe.precision == "int8":
        _check_qdq(onnx_path)
        return
    if recipe.typing.startswith("weakly"):
        return
    found = onnx_precision(onnx_path)
    if found and found != recipe.precision:
        raise BadInput(
            f"{onnx_path.name} is a {found} model, not {recipe.precision}",
            f"{recipe.flavour_title} builds strongly typed networks: the ONNX file's own types"
            " decide the precision",
            f"export it as {recipe.precision} ({engine_command('export --precision')}"
            f" {recipe.precision}), or build --precision {found}",
        )


def has_qdq(onnx_path: Path) -> bool:
    """Whether the file is quantised already (QuantizeLinear/DequantizeLinear nodes)."""
    from engine.artifacts.quantize import qdq_count

    return qdq_count(onnx_path) > 0


def _check_qdq(onnx_path: Path) -> None:
    if not has_qdq(onnx_path):
        build = engine_command("trt-build --onnx FILE --precision int8")
        raise BadInput(
            f"{onnx_path.name} has no QuantizeLinear/DequantizeLinear nodes",
            "an int8 plan is built from a Q/DQ int8 ONNX file as it is; this one would run in"
            " its own precision under an int8 label",
            f"give a Q/DQ int8 file (symmetric: zero points of 0), or let {build} quantise it",
        )


def _chosen_targets(
    flavour: Flavour, text: str, cc: str | None, precision: str
) -> tuple[tuple[str, ...], list[str], bool]:
    """(targets, notes, whether they were not asked for): TensorRT-RTX's (:func:`_targets`);
    full TensorRT builds for the GPU here, which bf16 needs to be an Ampere or newer."""
    if flavour.name == "rtx":
        return _targets(flavour, text, cc, precision)
    _bf16_on_this_gpu(precision, cc)
    return (), [], False


def _targets(
    flavour: Flavour, text: str, cc: str | None, precision: str
) -> tuple[tuple[str, ...], list[str], bool]:
    """RTX build targets: as given, else this GPU's, else every one the library builds for
    (the last: True, the targets were not asked for; bf16: those of Ampere or newer)."""
    notes: list[str] = []
    given = check_targets(text, precision, flavour.module)
    if given:
        return given, notes, False
    supported, source = rtx_targets(flavour.module)
    if cc is not None and cc in supported:
        _bf16_on_this_gpu(precision, cc)
        return (cc,), notes, False
    if cc is not None:
        notes.append(f"{unsupported_message(cc)}: built for other GPUs only")
    notes.append(f"targets: every compute capability of the {source}")
    older = before_bf16(precision, supported)
    if older:  # TensorRT-RTX: "Cannot compile for target(s) sm75 ... HW-specific datatypes: b16"
        supported = tuple(t for t in supported if t not in older)
        notes.append(f"compute capability {', '.join(older)} left out: {BF16_WHY}")
    return supported, notes, True


def _bf16_on_this_gpu(precision: str, cc: str | None) -> None:
    """bf16 on a GPU older than Ampere: refused in bench's words, before a build."""
    if cc is not None and before_bf16(precision, (cc,)):
        raise BadInput(
            f"bf16 is not possible on {_gpu_name()} (compute capability {cc})",
            BF16_WHY,
            "use fp16 on this GPU",
        )


# TensorRT-RTX's refusal of a Turing kernel ("Cannot compile operation 'node_linear' for
# Turing (SM75): FP32 GEMM is not supported"): an FP32 or int8 ResNet's last layer.
_TURING = ("7.5", "for Turing (SM75)")


def _turing_reason(why: str) -> str:
    import re

    found = re.search(r"Cannot compile (operation '[^']*') for Turing \(SM75\): ([^.]*)", why)
    return f"{found.group(1)}: {found.group(2)}" if found else "its kernels failed to compile"


def _without_turing(exc: EngineError, chosen: tuple[str, ...], defaulted: bool) -> tuple[str, ...]:
    """The targets to build instead where every target was the default and only Turing's
    kernels failed (the user named none: leave it out, with a note); () to re-raise."""
    if not defaulted or _TURING[0] not in chosen or _TURING[1] not in exc.why:
        return ()
    return tuple(t for t in chosen if t != _TURING[0])


def _loadable(flavour: Flavour, plan: bytes, cc: str | None) -> str:
    """The library's own verdict on loading ``plan`` here, where it has one."""
    trt = flavour.module
    where = "; no GPU to run on: built, not run" if cc is None else ""
    try:
        validity, flags = trt.Runtime(_make_logger(trt)).get_engine_validity(plan)
        members = trt.EngineInvalidityDiagnostics.__members__.items()
    except (AttributeError, RuntimeError, TypeError):
        return "not loaded (building only)" + where
    names = [n for n, v in members if int(flags) & int(v)]
    found = f" ({', '.join(names)})" if names else ""
    return f"{flavour.title} says the plan is {validity.name} here{found}{where}"


def _write(out: str, plan: bytes) -> str:
    path = Path(out)
    if not path.parent.is_dir():
        raise BadInput(
            f"the folder of {path.name} does not exist",
            fix="create it, or give --out in an existing folder",
        )
    # A temporary file in a private folder, renamed into place: a link planted at a
    # guessable ".NAME.PID.tmp" beside the target once redirected the plan's bytes.
    return str(write_bytes(path, plan, "--out"))


def _flavour_for_build(choice: str, cc: str | None) -> Flavour:
    flavour, ok = tensorrt_availability(choice)
    ok.raise_if_missing("TensorRT" if choice == "auto" else f"TensorRT flavour '{choice}'")
    assert flavour is not None
    if flavour.name == "full" and cc is None:
        raise Unavailable(
            "full TensorRT cannot build without a GPU",
            "its builder times kernels on the GPU it builds for",
            "build on the GPU machine, or use --trt-flavour rtx (TensorRT-RTX builds without a GPU)",
        )
    return flavour


def build_standalone(
    onnx_path: Path,
    precision: str,
    batches: list[int],
    image_hw: tuple[int, int],
    flavour_choice: str = "auto",
    targets: str = "",
    out: str = "",
    progress: Any = None,
    fixed_batch: int | None = None,
    shown: str = "",
    options: Mapping[str, Any] | None = None,
) -> StandaloneBuild:
    """Build (or take from the cache) a plan for ``onnx_path`` and report its facts
    (``shown``: what to call the model, where ``onnx_path`` is a copy of the user's file;
    ``options``: the TensorRT options as a spec holds them, read as a sweep's runner reads
    them, so the plan is the one a ``bench`` with the same options looks up)."""
    from engine.artifacts.external_data import model_digest

    cc = visible_cc("cuda")
    flavour = _flavour_for_build(flavour_choice, cc)
    trt = flavour.module
    major = trt_major(flavour.version) if flavour.name == "full" else 0
    recipe = build_recipe(major, precision, trt, flavour.name)
    check_typed(onnx_path, recipe)
    chosen, notes, defaulted = _chosen_targets(flavour, targets, cc, precision)
    opts = {k: v for k, v in (options or {}).items() if k in _BUILDER}
    profile = options_profile(opts, batches, fixed_batch)
    notes += _unused_by_fixed_batch(opts, fixed_batch)
    notes += _profile_note(profile, batches, opts, cc is not None)
    gpu = _gpu_name() if cc is not None else ""
    digest = model_digest(onnx_path)
    ctx = PrepareContext(batches=tuple(batches), progress=progress)

    def fetch(targets_now: tuple[str, ...]) -> tuple[Any, Any]:
        settings = BuildSettings.from_options(opts, targets_now)
        key = plan_key(trt, digest, recipe, profile, settings, gpu, cc or "", image_hw)
        with plan_lock(key, ctx.say):
            got = fetch_plan(
                trt, key, onnx_path, recipe, profile, settings, image_hw, ctx, shown
            )  # fmt: skip
            return key, got

    try:
        key, got = fetch(chosen)
    except EngineError as exc:
        left = _without_turing(exc, chosen, defaulted)
        if not left:
            raise
        notes.append(
            f"compute capability 7.5 (Turing) left out: {flavour.title} cannot compile this"
            f" {precision} model for it ({_turing_reason(exc.why)});"
            " name targets with --rtx-cc (option rtx_cc) to build exactly those"
        )
        chosen = left
        key, got = fetch(chosen)
    layers = layers_from_build_log(got.layer_log or plan_record(key).get("layer_log", ""))
    return StandaloneBuild(
        trt=flavour.label,
        flavour=flavour.name,
        precision=precision,
        onnx=shown or onnx_path.name,
        profile=profile.label,
        image_size=size_text(*image_hw),
        targets=chosen,
        key=key.name,
        source=got.source,
        build_s=got.build_s,
        plan_bytes=len(got.plan),
        gpu=f"{gpu} (compute capability {cc})" if cc else "none",
        loadable=_loadable(flavour, got.plan, cc),
        out=_write(out, got.plan) if out else "",
        layers=layers,
        notes=[*got.notes, *notes],
        options=asdict(TensorRTOptions(**opts, trt_flavour=flavour_choice, rtx_cc=targets or None)),
    )


def _unused_by_fixed_batch(opts: dict[str, Any], fixed_batch: int | None) -> list[str]:
    """A file's fixed batch pins the profile: its batch options, taken out of ``opts``
    (they reach neither the profile nor the plan, nor the record), are said once."""
    unused = [f"{k}={opts.pop(k)}" for k in ("opt_batch", "max_batch") if fixed_batch and k in opts]
    if not unused:
        return []
    return [
        f"the TensorRT option {' and '.join(unused)} not used: the file's batch is fixed at"
        f" {fixed_batch}, which is the whole profile"
    ]


def _profile_note(
    profile: BatchProfile, batches: list[int], opts: dict[str, Any], gpu: bool
) -> list[str]:
    """Where the profile reaches past the batches asked for the parity check's batch."""
    if profile.max_batch <= max(batches) or opts.get("max_batch") is not None:
        return []
    from engine.backends import declared_options
    from engine.core.options import cli_args

    asked = " ".join(
        ["--batch", ",".join(str(b) for b in batches), *cli_args(declared_options(), opts)]
    )
    # Keyed by this GPU (or by none): a sweep finds the plan on this machine only.
    found = f"; bench {asked} on this GPU finds this plan in the cache" if gpu else ""
    return [
        f"the profile reaches batch {profile.max_batch}, the batch of bench's parity"
        f" check, as a sweep's does{found}"
    ]


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)
