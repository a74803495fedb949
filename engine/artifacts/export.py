"""PyTorch → ONNX export with a dynamic batch axis, checked, shape-inferred and cached.

Artifacts live under the cache folder keyed by everything that changes the file (model,
weights hash, image size, opset, precision, torch, torchvision and onnx versions), so a second
request reuses the file and says so. A cached file whose hash no longer matches its
record, whose record names another entry, or whose record is not a file, is treated as
corrupt and exported again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from engine.artifacts.source import ModelSource
from engine.core.config import MAX_BATCH
from engine.core.errors import BadInput, EngineError
from engine.core.paths import cache_dir
from engine.core.safeio import cache_full, create_new, disk_full, disk_full_anywhere, os_problem

OPSET = 18
# Above this a converted copy keeps its tensors in a data file beside it (protobuf's limit
# on one file is 2 GB).
INLINE_LIMIT = 1_800_000_000
EXPORT_PRECISIONS = ("fp32", "fp16", "bf16")
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@dataclass
class ExportResult:
    path: Path
    reused: bool
    seconds: float
    key: str

    @property
    def message(self) -> str:
        if self.reused:
            return f"reused the cached ONNX export ({self.path.name}, key {self.key[:12]})"
        return f"exported to ONNX in {self.seconds:.1f} s (key {self.key[:12]})"


def export_key(art: ModelSource, precision: str) -> str:
    import onnx
    import torch

    record = {
        "model": art.spec.name,
        "weights": art.weights_hash,
        "image_hw": list(art.image_hw),  # height and width: the file's sides are fixed
        "opset": OPSET,
        "precision": precision,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        # torchvision's model code can change between releases with the same weights;
        # every TensorRT plan is keyed by this file's hash, so this covers plans too
        "torchvision": art.code_version,
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _sha(path: Path) -> str:
    from engine.core.hashing import file_sha256

    return file_sha256(path)


def _clear_meta(meta: Path) -> None:
    """Remove a meta.json that is not a regular file: a folder, FIFO or link there wedged
    the entry for good (reading skipped it, writing it failed or blocked)."""
    if meta.is_symlink() or (meta.exists() and not meta.is_file()):
        if meta.is_dir() and not meta.is_symlink():
            shutil.rmtree(meta, ignore_errors=True)
        else:
            meta.unlink(missing_ok=True)


def cached_artifact(folder: Path, name: str) -> Path | None:
    """The artifact in ``folder`` if it is complete, was built for this key, and its
    content hash matches its record; anything else is removed so it is built again.

    The record names the entry (the key's folder) it was written for: a model copied in
    from another entry, with a record that matches its own bytes, is still refused,
    with or without a parity check later.
    """
    path, meta = folder / name, folder / "meta.json"
    if meta.is_symlink() or (meta.exists() and not meta.is_file()):
        shutil.rmtree(folder, ignore_errors=True)  # wedged: rebuild
        return None
    if not (path.is_file() and meta.is_file()):
        return None
    try:
        record = json.loads(meta.read_text())
        if (
            isinstance(record, dict)
            and record.get("entry") == folder.name
            and record.get("sha256") == _sha(path)
        ):
            return path
    except (OSError, ValueError):
        pass
    shutil.rmtree(folder, ignore_errors=True)  # corrupt, half-written or not this key's
    return None


@contextlib.contextmanager
def building(folder: Path):
    """Mark ``folder`` as being written by this process for as long as the block runs.

    ``cache prune`` keeps an entry holding a fresh ``*.tmp`` file; an export writes its
    own only at the end of minutes of tracing, so the marker is made with the folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"build.{os.getpid()}.{threading.get_ident()}.tmp"
    with contextlib.suppress(FileExistsError):
        os.close(create_new(marker))
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


USE_PREFIX = "use."  # use.<pid>.tmp: engine/artifacts/cache.py keeps the entry while <pid> lives


def in_use(folder: Path, path: Path) -> Path:
    """Mark the entry ``folder`` as used by this process and return ``path``.

    ``cache prune`` keeps an entry whose user is alive: between a build (or a cache hit)
    and ONNX Runtime opening the file, a prune beside a sweep removed it, and the sweep
    failed with "File doesn't exist" and advice about the model's operators (issue 25's
    held-out attack: ``prune --older-than 0`` beside an int8 sweep). Markers of processes
    that are gone are cleared here.
    """
    for old in folder.glob(f"{USE_PREFIX}*.tmp"):
        pid = old.name[len(USE_PREFIX) : -len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            old.unlink(missing_ok=True)
    marker = folder / f"{USE_PREFIX}{os.getpid()}.tmp"
    with contextlib.suppress(OSError):
        os.close(create_new(marker))
    with contextlib.suppress(OSError):
        os.utime(marker, follow_symlinks=False)  # a use now, not only at the first
    return path


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's, or not a pid we can ask about: assume in use
    return True


def finish_artifact(folder: Path, tmp: Path, name: str, record: dict) -> Path:
    """Move a freshly written file into place with its hash record (atomic rename)."""
    final = folder / name
    try:
        os.replace(tmp, final)
        record = {**record, "entry": folder.name, "sha256": _sha(final), "created": time.time()}
        _clear_meta(folder / "meta.json")
        (folder / "meta.json").write_text(json.dumps(record, indent=1))
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if disk_full(exc):
            raise cache_full(f"cannot store {name} in the cache", cache_dir()) from exc
        raise os_problem(exc, folder / "meta.json") from exc
    return final


def export_onnx(art: ModelSource, precision: str = "fp32", progress=None) -> ExportResult:
    if precision not in EXPORT_PRECISIONS:
        raise BadInput(
            f"cannot export precision '{precision}'",
            f"export supports {', '.join(EXPORT_PRECISIONS)}",
        )
    key = export_key(art, precision)
    folder = cache_dir() / "onnx" / key[:32]
    hit = cached_artifact(folder, "model.onnx")
    if hit:
        return ExportResult(in_use(folder, hit), True, 0.0, key)
    if progress:
        progress(f"exporting {art.spec.name} ({precision}) to ONNX")
    tmp = folder / f"model.{os.getpid()}.tmp.onnx"
    with building(folder):
        t0 = time.perf_counter()
        _export(art, precision, tmp)
        seconds = time.perf_counter() - t0
        record = {"model": art.spec.name, "precision": precision, "image_size": art.spec.image_size}
        path = finish_artifact(folder, tmp, "model.onnx", {**record, "export_s": seconds})
        in_use(folder, path)  # before the build's own marker goes
    return ExportResult(path, False, seconds, key)


def _export(art: ModelSource, precision: str, out: Path) -> None:
    import onnx
    import torch

    module = art.torch_module()
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    # Export from a copy so the cached FP32 module the torch backend uses stays FP32.
    import copy

    model = copy.deepcopy(module).to(dtype) if precision != "fp32" else module
    x = torch.randn(*art.input_shape(2), dtype=dtype)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), torch.inference_mode(False):
            torch.onnx.export(
                model,
                (x,),
                str(out),
                dynamo=True,
                dynamic_shapes=({0: batch},),
                opset_version=OPSET,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                external_data=False,
                verbose=False,
            )
        onnx.checker.check_model(str(out))
        onnx.shape_inference.infer_shapes_path(str(out))
    except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds
        out.unlink(missing_ok=True)
        if disk_full_anywhere(exc):  # not the model's fault: no opset or size would help
            raise cache_full(
                f"exporting {art.spec.name} ({precision}) to ONNX failed", cache_dir()
            ) from exc
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise EngineError(
            f"exporting {art.spec.name} ({precision}) to ONNX failed",
            first,
            "try another opset or image size, or export the ONNX yourself and pass --onnx",
        ) from exc


def convert_precision(src: Path, precision: str, progress=None) -> Path:
    """FP16 copy of a user's FP32 ONNX file (inputs and outputs stay FP32), or FP32 copy of
    a user's FP16 one (engine/artifacts/widen.py)."""
    if precision not in ("fp16", "fp32"):
        raise BadInput(
            f"a user ONNX file can be run in fp32 or fp16, not {precision}",
            fix="export from PyTorch by model name for other precisions",
        )
    from engine.artifacts.external_data import model_digest
    from engine.artifacts.widen import WIDEN_RECIPE

    # The widening's recipe is in the key: a copy cached by an earlier one, which missed
    # places an FP16 tensor can sit, was handed back for ever otherwise.
    recipe = f":{WIDEN_RECIPE}" if precision == "fp32" else ""
    key = hashlib.sha256(f"{model_digest(src)}:{precision}{recipe}".encode()).hexdigest()
    folder = cache_dir() / "onnx-user" / key[:32]
    hit = cached_artifact(folder, "model.onnx")
    if hit:
        return in_use(folder, hit)
    if progress:
        progress(f"converting {src.name} to {precision}")
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from engine.artifacts.widen import widen_to_fp32

    tmp = folder / f"model.{os.getpid()}.tmp.onnx"
    with building(folder):
        model = onnx.load(str(src))
        if precision == "fp32":
            model = widen_to_fp32(model)
        else:
            model = convert_float_to_float16(model, keep_io_types=True)
        if _tensor_bytes(model) > INLINE_LIMIT:
            # Widening doubles the weights: an FP16 file of 1.2 GB has a copy past protobuf's
            # 2 GB limit, which onnx.save refuses. Its tensors go to a file beside it, named
            # by this process so a builder beside it writes its own.
            onnx.save(model, str(tmp), save_as_external_data=True,
                      all_tensors_to_one_file=True, location=f"model.{os.getpid()}.data")  # fmt: skip
        else:
            onnx.save(model, str(tmp))
        record = {"source": src.name, "precision": precision}
        return in_use(folder, finish_artifact(folder, tmp, "model.onnx", record))


def _tensor_bytes(model) -> int:
    """The bytes of ``model``'s tensors, from their shapes (``ByteSize`` would serialise a
    model that may be past the limit it is asked about)."""
    from engine.artifacts.external_data import all_tensors
    from engine.core.limits import tensor_bytes

    return sum(tensor_bytes(t) or 0 for t in all_tensors(model))
