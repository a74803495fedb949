"""A user's ONNX file as a model source: what it takes, what it returns, at which size.

Most files users bring were exported by someone else: dynamic or fixed height and width,
one or three channels, several outputs, weights in ``model.onnx.data`` beside the model.
Everything the engine needs is read here from the graph alone (no ONNX Runtime session,
no external data loaded), so a file that cannot be measured is refused with one line
before anything is created or timed.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from engine.artifacts.float_mix import FloatMix, float_mix
from engine.core.errors import BadInput
from engine.core.limits import check_declared_input, check_declared_output

# The size a symbolic height and width take when the user gives none: what ImageNet
# classifiers are trained at, said in a note whenever it is chosen.
DEFAULT_SIDE = 224
CHANNELS = (1, 3)


@dataclass
class OnnxInfo:
    """What the engine needs to know about a user's ONNX file."""

    input_name: str
    output_name: str
    fixed_batch: int | None
    height: int | None
    width: int | None
    opset: int
    node_count: int
    op_histogram: dict[str, int] = field(default_factory=dict)
    channels: int = 3
    layout: str = "NCHW"  # or "NHWC", channels last (height, width and channels above are so)
    pixels: bool = False  # it takes uint8 pixels, 0–255 (its graph normalises them)
    # Reshapes with a constant leading number, when the batch is dynamic: suspects of a
    # batch fixed inside the graph, probed before measuring (engine/artifacts/graph_batch.py)
    batch_suspects: list[tuple[str, int]] = field(default_factory=list)
    # "fp16": a file with FP16 math, FP16 weights or mixed (engine/artifacts/widen.py: its
    # fp32 rows run an FP32 copy, its fp16 rows the file as it is)
    weights: str = "fp32"
    floats: FloatMix = field(default_factory=FloatMix)  # what it holds and computes in


def _load(p: Path) -> Any:
    import onnx

    if not p.is_file():
        raise BadInput(f"ONNX file {p.name} does not exist", fix="check the path")
    if p.stat().st_size == 0:
        raise BadInput(f"ONNX file {p.name} is empty", fix="export the model again")
    try:
        return onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several kinds
        raise BadInput(
            f"{p.name} is not a readable ONNX model",
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else 'parse error'}",
            "pass a file written by torch.onnx.export or another ONNX exporter",
        ) from exc


FLOATS = (1, 10)  # onnx.TensorProto.FLOAT, FLOAT16


def _input_dims(graph: Any, file: str) -> tuple[str, list[int | None], str, bool]:
    """The input's name, its dims as batch, channels, height, width (None where symbolic)
    whatever its layout, the layout (NCHW or NHWC), and whether it takes uint8 pixels."""
    import onnx

    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise BadInput(
            f"{file} has {len(inputs)} inputs",
            "an image classifier with exactly one image input is needed",
            "export the model with the image as its only input",
        )
    inp = inputs[0]
    tt = inp.type.tensor_type
    if tt.elem_type not in (*FLOATS, onnx.TensorProto.UINT8):
        raise BadInput(
            f"the input '{inp.name}' of {file} is not a float tensor",
            "an image classifier takes float images (or uint8 pixels, where the graph"
            " normalises them itself)",
            "export the model with a float32, float16 or uint8 image input",
        )
    dims = [declared_dim(d) for d in tt.shape.dim]
    layout = "NHWC" if channels_last(dims) else "NCHW"
    logical = [dims[i] for i in (0, *image_axes(dims))] if len(dims) == 4 else dims
    if len(dims) != 4 or (logical[1] not in (None, *CHANNELS)):
        raise BadInput(
            f"the input '{inp.name}' of {file} has shape {dims}",
            "an image classifier takes batch × channels (1 or 3) × height × width"
            " (or batch × height × width × channels, as TensorFlow exports it)",
            "export the model with one image input of that shape",
        )
    check_declared_input(logical, inp.name, file)
    return inp.name, logical, layout, tt.elem_type not in FLOATS


def declared_dim(dim: Any) -> int | None:
    """A dimension's size, or None where it is symbolic: a name, nothing, or -1 (older
    paddle2onnx and other exporters write -1 for a dynamic axis, and ONNX Runtime reads it
    so). Any other number stays, and one below 1 is refused as no size."""
    return dim.dim_value if dim.HasField("dim_value") and dim.dim_value != -1 else None


def channels_last(dims: Sequence[int | None]) -> bool:
    """Whether a 4-D image input is NHWC, as TensorFlow exports images (tf2onnx keeps
    Keras's layout): a last side of 1 or 3 behind a second side that is neither. A symbolic
    height before a last side of 1 or 3 is channels last too (it once ran as 224×3).
    ``dims`` as declared: None, 0 or a negative number where a side is symbolic."""
    d = [x if x is not None and x > 0 else None for x in dims]
    return len(d) == 4 and d[3] in CHANNELS and d[1] not in CHANNELS


def image_axes(dims: Sequence[int | None]) -> tuple[int, int, int]:
    """The axes of an image input's channels, height and width, by its layout."""
    return (3, 1, 2) if channels_last(dims) else (1, 2, 3)


def filled_dims(
    dims: Sequence[int | None], batch: int, hw: tuple[int, int], channels: int = 3
) -> list[int]:
    """An image input's dims in its own layout, each symbolic one given its size: the batch,
    the sides ``hw`` and ``channels``."""
    out = [d if d is not None and d > 0 else 0 for d in dims]
    if len(out) == 4:
        for axis, size in zip(image_axes(dims), (channels, *hw), strict=True):
            out[axis] = out[axis] or size
    out[0] = out[0] or batch
    return out


def layout_shape(layout: str, batch: int, channels: int, hw: tuple[int, int]) -> tuple[int, ...]:
    """The shape of ``batch`` images in ``layout`` (NCHW or NHWC)."""
    h, w = hw
    return (batch, h, w, channels) if layout == "NHWC" else (batch, channels, h, w)


def to_layout(images: np.ndarray, layout: str) -> np.ndarray:
    """NCHW images as ``layout`` wants them, contiguous (the same pixels, reordered)."""
    if layout != "NHWC":
        return images
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


def layout_note(name: str, file: str) -> str:
    """What a channels-last file is fed, said in its runs."""
    return (
        f"the input '{name}' of {file} is channels last (NHWC, as TensorFlow exports"
        " images): every row feeds it the same generated images as a channels-first file"
        " gets, transposed to batch × height × width × channels"
    )


def logits_output(outputs: list[Any], file: str) -> Any:
    """The one output that holds the logits: the only output, or the only 2-D one."""
    if not outputs:
        raise BadInput(f"{file} has no outputs")
    if len(outputs) == 1:
        return outputs[0]

    def rank(o: Any) -> int | None:
        tt = o.type.tensor_type
        return len(tt.shape.dim) if tt.HasField("shape") else None

    two_d = [o for o in outputs if rank(o) == 2]
    if len(two_d) != 1:
        names = ", ".join(f"'{o.name}' ({rank(o) or '?'}-D)" for o in outputs[:6])
        raise BadInput(
            f"{file} has {len(outputs)} outputs and {len(two_d)} of them are 2-D: {names}",
            "the logits are taken from the one batch × classes output, and which one it is"
            " is ambiguous here",
            "export the model with its logits as the only output (or the only 2-D one)",
        )
    return two_d[0]


def inspect_onnx(path: str | os.PathLike[str]) -> OnnxInfo:
    """Validate that ``path`` is an image classifier with one image input: float, or uint8
    pixels its graph normalises; NCHW, or NHWC as TensorFlow exports it."""
    from engine.artifacts.external_data import check_external_data
    from engine.artifacts.graph_batch import reshape_suspects

    p = Path(path)
    model = _load(p)
    check_external_data(model, p.parent)
    graph = model.graph
    input_name, dims, layout, pixels = _input_dims(graph, p.name)
    out = logits_output(list(graph.output), p.name)
    check_declared_output(out, p.name)
    hist: dict[str, int] = {}
    for node in graph.node:
        hist[node.op_type] = hist.get(node.op_type, 0) + 1
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    floats = float_mix(model)
    return OnnxInfo(
        input_name=input_name,
        output_name=out.name,
        fixed_batch=dims[0] or None,
        height=dims[2] or None,
        width=dims[3] or None,
        opset=opset,
        node_count=len(graph.node),
        op_histogram=dict(sorted(hist.items(), key=lambda kv: -kv[1])),
        channels=dims[1] or 3,
        layout=layout,
        pixels=pixels,
        batch_suspects=reshape_suspects(graph) if not dims[0] else [],
        weights=floats.precision,
        floats=floats,
    )


def resolve_size(
    info: OnnxInfo, asked: tuple[int, int] | None, file: str
) -> tuple[tuple[int, int], str]:
    """The height and width an ONNX file runs at, and a note when the size was chosen.

    A declared side is the size: a different one asked for is refused (it would say one
    size and run another). A symbolic side takes the size asked for, or 224 with a note.
    """
    declared = (info.height, info.width)
    if asked is not None:
        for side, want, name in zip(declared, asked, ("height", "width"), strict=True):
            if side is not None and side != want:
                raise BadInput(
                    f"--image-size {asked[0]}x{asked[1]} does not fit {file}",
                    f"its input's {name} is fixed at {side} "
                    f"(declared {_side(info.height)}×{_side(info.width)})",
                    "leave --image-size out: the file's own size is used",
                )
        return asked, ""
    if None not in declared:
        return (info.height, info.width), ""
    hw = (info.height or DEFAULT_SIDE, info.width or DEFAULT_SIDE)
    note = (
        f"{file} takes any image {'size' if declared == (None, None) else 'side'};"
        f" {hw[0]}×{hw[1]} was chosen (give --image-size HxW for another)"
    )
    return hw, note


def _side(side: int | None) -> str:
    return str(side) if side is not None else "any"


def pixels_note(name: str, file: str) -> str:
    """What a file that takes uint8 pixels is fed, said in its runs."""
    return (
        f"the input '{name}' of {file} takes uint8 pixels: every row feeds it the generated"
        " images as 0–255 pixels (the same images, before the normalising its graph does),"
        " and int8 calibration too"
    )


def inspected(path: str | os.PathLike[str]) -> OnnxInfo:
    """:func:`inspect_onnx` of the file as it is now, its protobuf read once per version
    of the file in this process: what planning a run asks of it (its size, its batches, the
    words for its inputs; the dashboard's sidebar at every rerun). A run reads it afresh
    (load_artifacts), data files checked."""
    try:
        stat = os.stat(path)
    except OSError:  # gone: inspect_onnx says so, as bad input
        return inspect_onnx(path)
    return copy.deepcopy(_inspect_version(str(path), stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=8)
def _inspect_version(path: str, mtime_ns: int, size: int) -> OnnxInfo:
    return inspect_onnx(path)  # all three arguments key it: a new version is read again


def inputs_words(onnx_path: str | None) -> str:
    """What a run's inputs are, in the words every surface shows: generated images,
    normalised, or for a file that takes uint8 pixels the same images as pixels (a file
    that cannot be read is said to be so where it is read)."""
    from engine.artifacts.images import PIXELS, PREPROCESSING

    try:
        return PIXELS if onnx_path and inspected(onnx_path).pixels else PREPROCESSING
    except BadInput:
        return PREPROCESSING


def onnx_spec(path: str | os.PathLike[str], asked: tuple[int, int] | None, seed: int = 0):
    """The :class:`ModelSpec` of an ONNX file at the size it runs at, and the note (if any)
    that says the size was chosen: what the CLI and the dashboard both build."""
    from engine.core.config import ModelSpec

    p = Path(path)
    info = inspected(p)
    (h, w), note = resolve_size(info, asked, p.name)
    spec = ModelSpec(
        name=p.stem, image_size=h, image_width=w, onnx_path=str(p.resolve()), seed=seed
    )
    return spec, note


def file_batches(
    path: str | os.PathLike[str], asked: tuple[int, ...] | None, default: tuple[int, ...]
) -> tuple[int, ...]:
    """The batch sizes a run of an ONNX file measures: those asked (checked against the file
    where the run is planned); else the default, or the one batch the file's input fixes
    (``torch.onnx.export`` fixes it unless told otherwise), where the default would fail.
    The run's notes say the batch is fixed (engine/artifacts/models.py)."""
    if asked is not None:
        return asked
    fixed = inspected(path).fixed_batch
    return default if fixed is None else (fixed,)
