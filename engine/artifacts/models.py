"""Model sources: torchvision classifiers by name, local weights, or a user's ONNX file.

Nothing is ever downloaded: random weights are seeded and labelled so, pretrained ones
are used only when they already sit in the local torch cache, and a local file is
loaded with ``weights_only=True`` so a pickle cannot run code.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from engine.artifacts.external_data import (
    check_external_data,  # noqa: F401 - re-exported
    model_digest,
)
from engine.artifacts.graph_batch import BakedBatch, find_baked_batch, ort_probe
from engine.artifacts.onnx_source import (
    OnnxInfo,
    inspect_onnx,
    layout_note,
    layout_shape,
    pixels_note,
    to_layout,
)
from engine.artifacts.settled import settled_random_model
from engine.artifacts.weights import weights_digest
from engine.core.config import MAX_BATCH, ModelSpec, weights_label
from engine.core.errors import BadInput
from engine.core.hashing import file_sha256  # noqa: F401 - callers import it from here too
from engine.core.limits import check_input_fits, check_side


def torchvision_version() -> str:
    """The installed torchvision's version: its model code can change between releases
    while the weights stay the same, so whatever is built from a torchvision model (an
    ONNX export, a compiled engine) is keyed by it too ("" where it is not installed)."""
    from importlib import metadata

    try:
        return metadata.version("torchvision")
    except metadata.PackageNotFoundError:
        return ""


@lru_cache(maxsize=1)
def classification_models() -> tuple[str, ...]:
    import torchvision

    return tuple(sorted(torchvision.models.list_models(module=torchvision.models)))


def check_model_name(name: str) -> None:
    names = classification_models()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "see torchvision's classifiers"
        raise BadInput(
            f"unknown model '{name}'",
            "only torchvision image-classification models (or an ONNX file) can be used",
            hint,
        )


def check_image_size(size: Any) -> int:
    """A whole number of pixels ≥ 1; whether the model takes it and whether it fits in
    memory are asked of the model and the device, not of a fixed range."""
    return check_side(size)


@lru_cache(maxsize=64)
def check_model_takes_size(name: str, size: int, width: int | None = None) -> None:
    """Refuse an image size the architecture cannot take (too small for its pooling,
    or not the one size a ViT was built for), before anything is built or exported.

    The check runs the model on the meta device: shapes only, no memory, no weights.
    """
    import warnings

    import torch
    import torchvision

    with warnings.catch_warnings(), torch.device("meta"), torch.inference_mode():
        warnings.simplefilter("ignore")
        try:
            model = torchvision.models.get_model(name, weights=None).eval()
        except Exception:  # noqa: BLE001 - some builders need real tensors: no early check
            return
        try:
            model(torch.empty(1, 3, size, width or size))
        except (RuntimeError, AssertionError, ValueError) as exc:
            text = str(exc).strip()
            first = text.splitlines()[0][:200].rstrip("!. ") if text else type(exc).__name__
            raise BadInput(
                f"{name} cannot take {size}×{width or size} images",
                first,
                "use a larger --image-size, e.g. 224 (ViT models need exactly their own size)",
            ) from exc


def check_batches(batches: Any, fixed: int | None = None) -> list[int]:
    out = []
    for b in batches:
        if isinstance(b, bool) or not isinstance(b, int):
            raise BadInput(f"batch size {b!r} is not a whole number", fix="use e.g. 1,8,32")
        if b < 1 or b > MAX_BATCH:
            raise BadInput(
                f"batch size {b} is out of range",
                f"it must be between 1 and {MAX_BATCH}",
                "use e.g. 1,8,32",
            )
        if fixed is not None and b != fixed:
            raise BadInput(
                f"batch size {b} cannot run on this ONNX file",
                f"its batch dimension is fixed at {fixed}",
                f"measure batch {fixed} only, or export the model with a dynamic batch axis",
            )
        out.append(b)
    if not out:
        raise BadInput("no batch size given", fix="use e.g. --batch 1,8,32")
    return sorted(set(out))


def pretrained_file(name: str) -> Path:
    """The cached file of torchvision's pretrained weights for ``name``; BadInput naming
    the file and the folder when it is not there (nothing is downloaded)."""
    return _pretrained_file(name)


def _pretrained_file(name: str) -> Path:
    import torch
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except Exception as exc:  # noqa: BLE001 - torchvision raises several kinds here
        raise BadInput(f"torchvision has no pretrained weights for '{name}'", str(exc)) from exc
    fname = weights.url.rsplit("/", 1)[-1]
    path = Path(torch.hub.get_dir()) / "checkpoints" / fname
    if not path.is_file():
        raise BadInput(
            f"pretrained weights for '{name}' are not in the local torch cache",
            "this tool never downloads at run time",
            f"put {fname} into {Path(torch.hub.get_dir()) / 'checkpoints'} (or pass a local"
            " weights file), or use random weights",
        )
    return path


def check_weights_archive(path: str | os.PathLike[str]) -> None:
    """Refuse a weights file by its first bytes, before it is hashed or read whole.

    ``torch.save`` writes a zip archive (``PK\\x03\\x04``), or before PyTorch 1.6 a pickle
    (``\\x80`` and a protocol number). Anything else is not a save, whatever its size:
    a 20 GB file of other bytes was hashed for a minute before torch.load refused it.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise BadInput(f"weights file {p.name} cannot be read", exc.strerror or "") from exc
    if head == b"PK\x03\x04" or (
        head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    ):
        return
    raise BadInput(
        f"weights file {p.name} is not a PyTorch save",
        "it is neither a zip archive (torch.save) nor a pickle (older torch.save)",
        "pass a file written by torch.save(model.state_dict(), path)",
    )


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a state_dict or checkpoint file safely (``weights_only=True``)."""
    import pickle

    import torch

    p = Path(path)
    if not p.is_file():
        raise BadInput(f"weights file {p.name} does not exist", fix="check the path")
    check_weights_archive(p)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise BadInput(
            f"weights file {p.name} was refused",
            "it holds Python objects beyond tensors, which could run code when loaded",
            "save a plain state_dict with torch.save(model.state_dict(), path)",
        ) from exc
    except Exception as exc:  # noqa: BLE001 - torch raises several kinds for bad files
        raise BadInput(
            f"weights file {p.name} could not be read",
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            "pass a file written by torch.save",
        ) from exc
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise BadInput(
            f"weights file {p.name} holds no state_dict",
            fix="save one with torch.save(model.state_dict(), path)",
        )
    return {k.removeprefix("module."): v for k, v in obj.items()}


def build_torch_model(spec: ModelSpec):
    """The torchvision model of ``spec`` in eval mode, on the CPU, in FP32."""
    import torch
    import torchvision

    check_model_name(spec.name)
    if spec.weights == "random":
        model = settled_random_model(spec)  # settled once, then from the cache
    else:
        torch.manual_seed(spec.seed)
        model = torchvision.models.get_model(spec.name, weights=None)
        path = _pretrained_file(spec.name) if spec.weights == "pretrained" else spec.weights
        state = load_state_dict(path)
        classes = head_classes(model.state_dict(), state)
        if classes is not None:  # fine-tuned: the head's size comes from the weights
            torch.manual_seed(spec.seed)
            model = torchvision.models.get_model(spec.name, weights=None, num_classes=classes)
        check_shapes(model.state_dict(), state, Path(path).name, spec.name)
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            missing = ", ".join(result.missing_keys[:5])
            unexpected = ", ".join(result.unexpected_keys[:5])
            raise BadInput(
                f"weights file {Path(path).name} does not fit {spec.name}",
                f"missing keys: {missing or 'none'}; unexpected keys: {unexpected or 'none'}",
                "pass weights saved from the same architecture",
            )
    return model.eval()


def head_classes(expected: dict[str, Any], state: dict[str, Any]) -> int | None:
    """The class count of a fine-tuned head: when the only tensors whose shapes differ are
    the last layer's weight and bias, and differ only in their first dimension."""
    names = [k for k in expected if k.endswith(".weight")]
    if not names:
        return None
    last = names[-1].removesuffix(".weight")
    head = {f"{last}.weight", f"{last}.bias"}
    differ = {
        k for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    }
    w, mine = state.get(f"{last}.weight"), expected[f"{last}.weight"]
    if not differ or not differ <= head or w is None or w.ndim != mine.ndim:
        return None
    if tuple(w.shape[1:]) != tuple(mine.shape[1:]) or w.shape[0] < 1:
        return None
    return int(w.shape[0])


def check_shapes(expected: dict[str, Any], state: dict[str, Any], file: str, name: str) -> None:
    """One line naming the first tensors whose shapes differ, instead of torch's traceback."""
    bad = [
        f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if bad:
        raise BadInput(
            f"weights file {file} does not fit {name}",
            f"tensor shapes differ (file vs model): {'; '.join(bad[:3])}",
            "pass weights saved from the same architecture",
        )


@dataclass
class ModelArtifacts:
    """A loaded model source and the files derived from it (ONNX variants, int8)."""

    spec: ModelSpec
    weights_hash: str
    onnx_info: OnnxInfo | None = None
    _module: Any = None
    _onnx: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def is_onnx_source(self) -> bool:
        return self.spec.onnx_path is not None

    @property
    def fixed_batch(self) -> int | None:
        return self.onnx_info.fixed_batch if self.onnx_info else None

    @cached_property
    def baked_batch(self) -> BakedBatch | None:
        """The batch a dynamic-batch file is really fixed at inside its graph (probed once,
        only when a Reshape is suspect), or None."""
        info = self.onnx_info
        if info is None or not info.batch_suspects:
            return None
        runs = ort_probe(self.spec.onnx_path, info.output_name, self.sample_input)
        return find_baked_batch(info.batch_suspects, runs)

    @property
    def graph_batch(self) -> int | None:
        """The one batch this model runs at: declared on its input, or fixed in its graph."""
        return self.fixed_batch or (self.baked_batch.batch if self.baked_batch else None)

    def batch_refusal(self, batch: int) -> BadInput | None:
        """Why ``batch`` cannot run on this file although its input allows it, or None."""
        baked = self.baked_batch
        return baked.refusal(batch) if baked and batch != baked.batch else None

    @property
    def image_hw(self) -> tuple[int, int]:
        return self.spec.hw

    @property
    def channels(self) -> int:
        return self.onnx_info.channels if self.onnx_info else 3

    @property
    def weights_label(self) -> str:
        return (
            "weights inside the ONNX file"
            if self.is_onnx_source
            else weights_label(self.spec.weights)
        )

    @property
    def model_name(self) -> str:
        return Path(self.spec.onnx_path).stem if self.spec.onnx_path else self.spec.name

    @property
    def code_version(self) -> str:
        """The version of the library whose code makes this model: torchvision's, or ""
        for an ONNX file (its graph is its code, and its hash is in every key)."""
        return "" if self.is_onnx_source else torchvision_version()

    def torch_module(self):
        if self.is_onnx_source:
            raise BadInput(
                "PyTorch cannot run a model given as an ONNX file",
                "the PyTorch backend needs the torchvision model",
                "pick the ort or tensorrt backend for ONNX files",
            )
        if self._module is None:
            self._module = build_torch_model(self.spec)
        return self._module

    def onnx_path(self, precision: str = "fp32", progress=None) -> Path:
        """The ONNX file for ``precision`` (fp32, fp16, bf16), exported or from cache."""
        if precision in self._onnx:
            return self._onnx[precision]
        if self.is_onnx_source:
            from engine.artifacts.export import convert_precision

            src = Path(self.spec.onnx_path)
            own = self.onnx_info.weights if self.onnx_info else "fp32"
            # The file runs as it is at its own precision; the other is a converted copy.
            path = src if precision == own else convert_precision(src, precision, progress)
        else:
            from engine.artifacts.export import export_onnx

            result = export_onnx(self, precision=precision, progress=progress)
            self.notes.append(result.message)
            path = result.path
        self._onnx[precision] = path
        return path

    @property
    def layout(self) -> str:
        """NCHW, or NHWC for a file that takes its images channels last."""
        return self.onnx_info.layout if self.onnx_info else "NCHW"

    def input_shape(self, batch: int) -> tuple[int, ...]:
        """The shape of ``batch`` images as the model takes them (in its layout)."""
        return layout_shape(self.layout, batch, self.channels, self.image_hw)

    def sample_input(self, batch: int, seed: int = 1234):
        """Seeded image-like inputs (smooth colour fields, ImageNet-normalised), the same for
        every backend; int8 calibration uses the same generator, so it sees this distribution."""
        import numpy as np

        from engine.artifacts.images import generated_images

        h, w = self.image_hw
        check_input_fits(batch, h, w, self.channels)
        images = generated_images(batch, h, w, seed=seed + batch, channels=self.channels)
        return self.fed(np.concatenate(list(images)))

    def fed(self, images):
        """Normalised NCHW images as this model takes them: in its layout, and as uint8
        pixels for a file that takes those."""
        from engine.artifacts.images import to_pixels

        pixels = self.onnx_info is not None and self.onnx_info.pixels
        return to_layout(to_pixels(images) if pixels else images, self.layout)


def quantised_note(name: str, ops: dict[str, int]) -> str:
    """What a file quantised already (Q/DQ nodes) runs in its rows, or "" for another file."""
    count = ops.get("QuantizeLinear", 0) + ops.get("DequantizeLinear", 0)
    if not count:
        return ""
    return (
        f"{name} is quantised already ({count} QuantizeLinear/DequantizeLinear nodes): its"
        " fp32 and fp16 rows run that quantisation as floating-point math (each Q/DQ pair"
        " rounds to int8 steps), and the FP32 reference is the file itself on the CPU, so"
        " parity says the rows agree with this file, not with an unquantised model"
    )


def load_artifacts(spec: ModelSpec) -> ModelArtifacts:
    """Validate ``spec`` and return its artifacts; heavy work (export) stays lazy."""
    if spec.onnx_path:
        info = inspect_onnx(spec.onnx_path)
        # A spec built without onnx_spec (an API caller's ModelSpec(onnx_path=...) keeps the
        # default 224): the sides the file declares win, so what runs is what is reported.
        h, w = info.height or spec.hw[0], info.width or spec.hw[1]
        if (h, w) != spec.hw:
            spec = replace(spec, image_size=h, image_width=w)
        digest = model_digest(spec.onnx_path)  # with its data files: weights that live there
        art = ModelArtifacts(spec=spec, weights_hash=digest, onnx_info=info)
        from engine.artifacts.float_mix import precision_note

        if said := precision_note(Path(spec.onnx_path).name, info.floats):
            art.notes.append(said)
        if said := quantised_note(Path(spec.onnx_path).name, info.op_histogram):
            art.notes.append(said)
        if info.layout == "NHWC":
            art.notes.append(layout_note(info.input_name, Path(spec.onnx_path).name))
        if info.pixels:
            art.notes.append(pixels_note(info.input_name, Path(spec.onnx_path).name))
        if info.fixed_batch:
            art.notes.append(
                f"this ONNX file has a fixed batch size of {info.fixed_batch}, so only that"
                " batch can be measured"
            )
        return art
    check_model_name(spec.name)
    check_image_size(spec.image_size)
    check_image_size(spec.hw[1])
    check_model_takes_size(spec.name, *spec.hw)
    if spec.weights == "random":
        digest = ""  # named below from the settled tensors themselves
    elif spec.weights == "pretrained":
        digest = file_sha256(_pretrained_file(spec.name))
    else:
        if not Path(spec.weights).is_file():
            raise BadInput(f"weights file {Path(spec.weights).name} does not exist")
        check_weights_archive(spec.weights)
        digest = file_sha256(spec.weights)
    art = ModelArtifacts(spec=spec, weights_hash=digest)
    module = art.torch_module()  # fail early on bad weights or a wrong architecture
    if spec.weights == "random":
        art.weights_hash = weights_digest(module, spec.seed)
    return art
