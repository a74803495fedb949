"""Size limits applied before anything is allocated: threads, image sides, batches, and
the memory a batch needs, both for --model runs and for the sizes an ONNX file declares.

Image sides have no fixed range: a 28×28 classifier is as real as a 1024×1024 one. What
limits a size is the memory of the device it runs on, estimated from the input.

An ONNX file declaring a 60000×60000 input, or a fixed batch of 4096 at 1024×1024 (48 GiB
of floats), used to end in a MemoryError after the run was created; the same limits the
command line applies now apply to the file, and to the free memory of this machine.
"""

from __future__ import annotations

import os
from typing import Any

from engine.core.config import MAX_BATCH
from engine.core.errors import BadInput
from engine.core.options import MAX_THREADS_PER_CORE

# Float32 values alive per input value while a classifier runs: its widest activations
# (ResNet50's 64 channels at half the input's side, several alive at once) reach ~20
# input-sized tensors; 32 leaves room for the runtime's own buffers.
ACTIVATIONS_PER_INPUT = 32


def check_threads(threads: int | None) -> int | None:
    """Refuse a thread count far beyond this machine's cores: 999 threads on 2 cores made
    the reference pass crawl for minutes instead of failing."""
    if threads is None:
        return None
    cores = os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise BadInput(f"--threads {threads!r} is not a whole number ≥ 1", fix="use e.g. 4")
    if threads > MAX_THREADS_PER_CORE * cores:
        raise BadInput(
            f"--threads {threads} is too many",
            f"this machine has {cores} CPU cores; more than {MAX_THREADS_PER_CORE} threads a"
            " core only make every step slower",
            f"use at most {MAX_THREADS_PER_CORE * cores}, e.g. {cores}",
        )
    return threads


def available_memory_bytes() -> int | None:
    """Memory the system can still give (MemAvailable), None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_side(side: Any) -> int:
    """An image side: a whole number of pixels ≥ 1 (whether it fits is asked of memory)."""
    if isinstance(side, bool) or not isinstance(side, int) or side < 1:
        raise BadInput(f"image size {side!r} is not a whole number ≥ 1", fix="use e.g. 224")
    return side


def estimated_bytes(batch: int, height: int, width: int, channels: int = 3) -> int:
    """Input plus activations of one forward pass, estimated from the input's size."""
    return batch * channels * height * width * 4 * (1 + ACTIVATIONS_PER_INPUT)


def check_input_fits(
    batch: int,
    height: int,
    width: int,
    channels: int = 3,
    free: int | None = None,
    where: str = "this machine",
) -> None:
    """Refuse a batch whose input plus activations would not fit the target device's free
    memory, before allocating anything (an ONNX file may declare 4096 × 3 × 1024 × 1024).
    ``free`` is the device's free memory; the host's when not given."""
    need = estimated_bytes(batch, height, width, channels)
    free = available_memory_bytes() if free is None else free
    if free is not None and need > free:
        gib = 1024**3
        raise BadInput(
            f"batch {batch} at {height}×{width} needs about {need / gib:.1f} GiB"
            " (input plus activations)",
            f"{where} has {free / gib:.1f} GiB of memory free",
            "use a smaller --batch or image size (or an ONNX file with a smaller fixed input)",
        )


def check_declared_input(dims: list[int | None], name: str, file: str) -> None:
    """The limits a --model run gets, applied to the sizes a file declares, before any
    buffer of that size exists."""
    if any(d is not None and d < 1 for d in dims):
        raise BadInput(
            f"the input '{name}' of {file} declares the shape {dims}",
            "a dimension below 1 is not a size",
            "export the model again with positive (or dynamic) dimensions",
        )
    batch, _, height, width = dims
    if batch is not None and batch > MAX_BATCH:
        raise BadInput(
            f"the input '{name}' of {file} has a fixed batch of {batch}",
            f"batches above {MAX_BATCH} are not measured",
            "export the model with a smaller or a dynamic batch axis",
        )
    if batch and height and width:
        check_input_fits(batch, height, width, dims[1] or 3)


def check_declared_output(output: Any, file: str) -> None:
    """Parity compares float scores per image: a scalar or an integer output cannot be."""
    import onnx

    tt = output.type.tensor_type
    if tt.elem_type not in (
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.BFLOAT16,
        onnx.TensorProto.DOUBLE,
    ):
        kind = onnx.TensorProto.DataType.Name(tt.elem_type) if tt.elem_type else "unknown"
        raise BadInput(
            f"the output '{output.name}' of {file} holds {kind} values",
            "an image classifier returns float scores per class, which parity compares",
            "export the model with its float logits as the first output",
        )
    if tt.HasField("shape") and len(tt.shape.dim) < 2:
        raise BadInput(
            f"the output '{output.name}' of {file} has {len(tt.shape.dim)} dimension(s)",
            "an image classifier returns batch × classes scores",
            "export the model with its logits (batch × classes) as the first output",
        )


def tensor_bytes(tensor: Any) -> int | None:
    from onnx.helper import tensor_dtype_to_np_dtype

    try:
        size = tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, TypeError, ValueError):
        return None
    for d in tensor.dims:
        size *= int(d)
    return size
