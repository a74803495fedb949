"""Static int8 quantisation (QDQ) of the FP32 ONNX model for ONNX Runtime on the CPU.

Pre-processing (shape inference and graph clean-up), per-channel weights, and
calibration on generated images or a folder of the user's images; the result is
cached like the export, keyed by the FP32 file, the calibration source and settings.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engine.artifacts.export import building, cached_artifact, finish_artifact, in_use
from engine.artifacts.images import generated_images, normalisation
from engine.artifacts.source import ModelSource
from engine.core.errors import BadInput, EngineError, NotApplicable
from engine.core.paths import cache_dir
from engine.core.safeio import cache_full, disk_full_anywhere

CALIBRATION_IMAGES = 16
# TensorRT's Q/DQ placement: the inputs of the layers with weights. Its parser refuses the
# elementwise ones ONNX Runtime's quantiser also quantises ("Quantized constant ... is only
# allowed before DQ": a quantised scalar added to a tensor).
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def folder_images(folder: Path, n: int, h: int, w: int, channels: int = 3) -> Iterator[np.ndarray]:
    """The first ``n`` images of ``folder`` by name, NCHW, normalised as generated_images
    normalises (a one-channel model gets them grey, with the mean and spread of the three)."""
    from PIL import Image

    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not files:
        raise BadInput(
            f"the calibration folder {folder.name} holds no images",
            f"it needs files ending in {', '.join(sorted(IMAGE_SUFFIXES))}",
        )
    for path in files[:n]:
        try:
            with Image.open(path) as im:
                img = im.convert("RGB" if channels == 3 else "L").resize((w, h))
        except Exception as exc:  # noqa: BLE001 - PIL raises several kinds
            raise BadInput(f"calibration image {path.name} could not be read", str(exc)) from exc
        arr = np.asarray(img, dtype=np.float32).reshape(h, w, -1).transpose(2, 0, 1) / 255.0
        mean, std = normalisation(channels)
        yield ((arr - mean) / std)[None].astype(np.float32)


def _calibration_source(calibration_dir: str | None) -> str:
    if not calibration_dir:
        return "generated"
    folder = Path(calibration_dir)
    if not folder.is_dir():
        raise BadInput(f"calibration folder {folder.name} does not exist", fix="check the path")
    from engine.core.hashing import file_sha256

    # Content, not names and sizes: images replaced by others of the same names and sizes
    # must not reuse the int8 model calibrated on the old ones. Only the images calibration
    # reads are hashed (the first CALIBRATION_IMAGES, in name order).
    h = hashlib.sha256()
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    for p in files[:CALIBRATION_IMAGES]:
        h.update(p.name.encode())
        h.update(file_sha256(p).encode())
    return "folder:" + h.hexdigest()


def calibration_words(calibration_dir: str | None) -> str:
    """What the int8 model is calibrated on, in words (labels and notes)."""
    if not calibration_dir:
        return f"calibrated on {CALIBRATION_IMAGES} generated images"
    return (
        f"calibrated on the images of the folder {Path(calibration_dir).name}"
        f" (the first {CALIBRATION_IMAGES} by name)"
    )


def calibration_feeds(
    art: ModelSource, input_name: str, calibration_dir: str | None
) -> list[dict[str, np.ndarray]]:
    """The calibration batches: images from the folder, or generated ones, at the model's size."""
    h, w = art.image_hw
    if calibration_dir:
        found = folder_images(Path(calibration_dir), CALIBRATION_IMAGES, h, w, art.channels)
    else:
        found = generated_images(CALIBRATION_IMAGES, h, w, channels=art.channels)
    images = [art.fed(image) for image in found]
    batch = art.graph_batch or 1
    n = max(1, len(images) // batch)
    return [
        {input_name: np.concatenate([images[(i * batch + j) % len(images)] for j in range(batch)])}
        for i in range(n)
    ]


def _single_file(path: Path, folder: Path) -> Path:
    """The model for the quantiser's pre-processing as one file: ``path`` itself, or where
    its weights sit in data files beside it, a copy in ``folder`` with them inside (the
    pre-processing saves its work in a folder of its own, where the data files' relative
    paths no longer lead anywhere)."""
    import onnx

    from engine.artifacts.external_data import external_locations

    model = onnx.load(str(path), load_external_data=False)
    if not external_locations(model):
        return path
    onnx.load_external_data_for_model(model, str(path.parent))
    whole = folder / f"src.{os.getpid()}.onnx"
    onnx.save(model, str(whole))
    return whole


def qdq_count(path: str | Path) -> int:
    """How many QuantizeLinear/DequantizeLinear nodes the file holds: one quantised already."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def own_quantisation(name: str, count: int) -> str:
    """The note of an int8 row that runs a Q/DQ file as it is."""
    return (
        f"{name} is quantised already ({count} QuantizeLinear/DequantizeLinear nodes): its int8"
        " rows run the file's own quantisation, as it is (not quantised again)"
    )


def check_float32(path: Path) -> None:
    """int8 is calibrated from FP32 activations: a file of another precision is not
    applicable (a skipped row), not a failure. An input of uint8 pixels is cast to FP32 in
    the graph, as a float input would be fed."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    first = next((i for i in model.graph.input if i.name not in inits), None)
    taken = (onnx.TensorProto.FLOAT, onnx.TensorProto.UINT8)
    if first is not None and first.type.tensor_type.elem_type not in taken:
        found = onnx.TensorProto.DataType.Name(first.type.tensor_type.elem_type).lower()
        raise NotApplicable(
            f"int8 quantisation needs an FP32 model; {path.name} takes {found} input",
            "calibration observes FP32 activations",
            "give the FP32 export of the model for int8",
        )


def quantize_int8(
    art: ModelSource,
    calibration_dir: str | None = None,
    progress=None,
    symmetric: bool = False,
    note=None,
) -> Path:
    """The QDQ int8 model. ``symmetric`` gives signed activations with zero points of 0
    and FP32 biases, which TensorRT's parser requires; ONNX Runtime's CPU kernels prefer
    the asymmetric unsigned default with int32 biases. ``note`` is told what the int8 rows
    run where it is not simply the model quantised (an old file's converted copy)."""
    from engine.artifacts.external_data import model_digest
    from engine.artifacts.opset import TARGET_OPSET, file_opset, needs_copy

    fp32 = art.onnx_path("fp32", progress=progress)
    if _quantised_already(art, fp32, note):
        return Path(fp32)
    converts = needs_copy(fp32)
    source = _calibration_source(calibration_dir)
    record = {
        "fp32": model_digest(fp32),
        "calibration": source,
        "images": CALIBRATION_IMAGES,
        "format": "QDQ",
        "per_channel": True,
        "symmetric": symmetric,
    }
    if symmetric:  # TensorRT's parser takes int8 Q/DQ only: biases stay FP32 (it fuses them)
        record.update(bias="fp32", ops=list(WEIGHTED_OPS))
    if converts:  # quantised from a converted copy (engine/artifacts/opset.py)
        record["opset"] = f"{file_opset(fp32)}->{TARGET_OPSET}"
    key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
    folder = cache_dir() / "int8" / key[:32]
    hit = cached_artifact(folder, "model.onnx")
    if hit:
        art.notes.append("reused the cached int8 model")
        _tell(note, _said(folder))
        return in_use(folder, hit)
    if progress:
        progress("quantising to int8 (pre-processing, calibration)")
    import onnxruntime as ort
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from engine.artifacts.opset import converted_copy

    input_name = (
        ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    )
    feeds = calibration_feeds(art, input_name, calibration_dir)
    with building(folder):  # a prune meanwhile keeps this entry
        pre = folder / f"pre.{os.getpid()}.onnx"
        tmp = folder / f"model.{os.getpid()}.tmp.onnx"
        copy = folder / f"opset.{os.getpid()}.onnx"
        said = ""
        try:
            src = _single_file(fp32, folder)
            if converts:
                said = converted_copy(src, copy, feeds, art.spec.label)
                src = copy
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            _quantize_static(pre, tmp, feeds, symmetric)
        except NotApplicable:
            tmp.unlink(missing_ok=True)
            raise
        except Exception as exc:  # noqa: BLE001 - the quantiser raises many kinds
            tmp.unlink(missing_ok=True)
            if disk_full_anywhere(exc):
                raise cache_full("int8 quantisation failed", cache_dir()) from exc
            raise EngineError(
                "int8 quantisation failed", str(exc).splitlines()[0][:300] if str(exc) else ""
            ) from exc
        finally:
            pre.unlink(missing_ok=True)
            copy.unlink(missing_ok=True)
            (folder / f"src.{os.getpid()}.onnx").unlink(missing_ok=True)
        done = finish_artifact(
            folder, tmp, "model.onnx", {**record, **({"note": said} if said else {})}
        )
        _tell(note, said)
        return in_use(folder, done)


def _quantised_already(art: ModelSource, fp32: Path, note) -> bool:
    """True for a user's file with Q/DQ nodes, which its int8 rows run as it is, saying so
    (quantised again, it was another model, or none: duplicate node names); else the file
    must be FP32 to be quantised."""
    own = qdq_count(fp32) if art.spec.onnx_path else 0
    if own:
        _tell(note, own_quantisation(Path(art.spec.onnx_path).name, own))
        return True
    check_float32(fp32)
    return False


def _said(folder: Path) -> str:
    """The note a cached int8 model was stored with ("" for none)."""
    try:
        record = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return ""
    return str(record.get("note") or "") if isinstance(record, dict) else ""


def _tell(note, said: str) -> None:
    if note and said:
        note(said)


def _quantize_static(
    pre: Path, out: Path, feeds: list[dict[str, np.ndarray]], symmetric: bool
) -> None:
    """ONNX Runtime's static QDQ quantiser over the calibration feeds."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    quantize_static(
        str(pre),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=list(WEIGHTED_OPS) if symmetric else None,
        extra_options={
            "ActivationSymmetric": symmetric,
            "WeightSymmetric": True,
            # int32 bias Q/DQ, which TensorRT-RTX's parser rejects ("input has type Int32
            # but must have type FP8, FP4, Int4, Int8, or UInt8")
            "QuantizeBias": not symmetric,
        },
    )
