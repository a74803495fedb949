"""How one precision is built: which ONNX file is parsed and which builder flags are set.

TensorRT 10.x is weakly typed: the FP32 ONNX is parsed and builder flags (FP16, BF16,
INT8) let TensorRT pick lower-precision kernels. 11.x removed those flags and the
implicit INT8 calibrator, and TensorRT-RTX never had them: every network is strongly
typed, so the ONNX file's own types decide (the FP16 or BF16 export, the Q/DQ int8
model). The flavour and installed major version pick the path (:func:`build_recipe`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.backends.base import PrepareContext
from engine.backends.tensorrt.flavour import SUPPORTED_MAJORS, install_command
from engine.core.errors import BadInput, Unavailable

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
# Ampere (8.0) is the first architecture with BF16 tensor cores; TensorRT refuses BF16 below.
BF16_MIN_CC = (8, 0)
BF16_MIN_TEXT = "8.0"


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
    flavour: str = "full"

    @property
    def build_path(self) -> str:
        if self.flavour == "rtx":
            return "rtx-strong"
        return "10.x-flags" if self.major < 11 else "11.x-strong"

    @property
    def flavour_title(self) -> str:
        return "TensorRT-RTX" if self.flavour == "rtx" else "TensorRT"

    @property
    def typing(self) -> str:
        if self.major < 11 and self.flavour != "rtx":
            return "weakly typed: builder flags " + (
                "+".join(self.builder_flags) if self.builder_flags else "none (FP32)"
            )
        return f"strongly typed: the {self.onnx_variant} ONNX's own types"


def build_recipe(major: int, precision: str, trt: Any = None, flavour: str = "full") -> BuildRecipe:
    """The ONNX variant and flags for ``precision`` on TensorRT ``major`` (or TensorRT-RTX).

    With ``trt`` given, flags this installation does not have make the precision
    Unavailable, named, instead of an AttributeError deep in the build.
    """
    if precision not in PRECISIONS:
        raise BadInput(
            f"TensorRT cannot build precision '{precision}'",
            f"it builds {', '.join(PRECISIONS)}",
        )
    if flavour == "rtx":
        # Strongly typed by design; TF32 is cleared for fp32 where the flag exists.
        clear = ("TF32",) if precision == "fp32" else ()
        return BuildRecipe(major, precision, precision, (), clear, (), (), "rtx")
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
    """The Q/DQ int8 model from engine.artifacts.quantize, refused early if TensorRT cannot parse it."""
    from engine.artifacts.quantize import quantize_int8

    kwargs: dict[str, Any] = {"progress": ctx.say, "note": ctx.row_note}
    # A symmetric-int8 switch is what TensorRT needs; use it as soon as quantize offers one.
    if "symmetric" in inspect.signature(quantize_int8).parameters:
        kwargs["symmetric"] = True
    path = Path(quantize_int8(artifacts, ctx.calibration_dir, **kwargs))
    problems = qdq_zero_point_problems(path)
    given = artifacts.spec.onnx_path
    if problems and given and path.resolve() == Path(given).resolve():
        found = ", ".join(f"{n} Q/DQ nodes with {k} zero points" for k, n in problems.items())
        raise BadInput(
            f"{path.name} is quantised in a way TensorRT cannot build",
            f"it has {found}; TensorRT accepts only symmetric int8 Q/DQ with zero points of 0",
            "quantise it with signed, symmetric activations (zero points of 0), or give the"
            " FP32 model for bench to quantise",
        )
    if problems:
        found = ", ".join(f"{n} Q/DQ nodes with {k} zero points" for k, n in problems.items())
        raise BadInput(
            "the int8 model cannot be built by TensorRT",
            f"engine.artifacts.quantize writes asymmetric activations ({found}); TensorRT accepts only"
            " symmetric int8 Q/DQ with zero points of 0",
            "use --backend ort for int8 on the CPU until the quantiser has a symmetric int8"
            " mode, or run fp16 with TensorRT",
        )
    return path


def onnx_for(recipe: BuildRecipe, artifacts: Any, ctx: PrepareContext) -> Path:
    if recipe.onnx_variant == "int8":
        return int8_onnx(artifacts, ctx)
    return Path(artifacts.onnx_path(recipe.onnx_variant, progress=ctx.say))


def source_name(
    recipe: BuildRecipe, artifacts: Any, onnx_path: Path, calibration_dir: str | None = None
) -> str:
    """What the user gave, as reports and build errors name it: the model or their file,
    and for int8 the copy quantised from it (the cache calls every quantised model
    ``model.onnx``)."""
    from engine.artifacts.quantize import calibration_words

    label = artifacts.spec.label
    given = artifacts.spec.onnx_path
    if given and Path(given).resolve() == Path(onnx_path).resolve():
        return Path(given).name
    if recipe.onnx_variant == "int8":
        how = calibration_words(calibration_dir)
        return f"the int8 copy of {label}, quantised as bench quantises it (symmetric Q/DQ, {how})"
    return f"{label}, its {recipe.onnx_variant} ONNX export"
