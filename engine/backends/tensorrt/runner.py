"""Runs a deserialised engine on torch CUDA tensors and a torch CUDA stream (no pycuda).

TensorRT-RTX compiles kernels just in time when an execution context is made; its
runtime cache keeps them on disk per GPU (:func:`.cache.runtime_cache_file`), loaded
before the context is created and written back when the runner closes.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from engine.backends.base import Runner
from engine.backends.tensorrt.cache import (
    BatchProfile,
    PlanKey,
    check_batch,
    read_runtime_cache,
    runtime_cache_file,
    write_runtime_cache,
)
from engine.backends.tensorrt.flavour import Flavour, import_tensorrt
from engine.backends.tensorrt.inspector import EngineLayer, inspect_engine
from engine.backends.tensorrt.load import LoadedEngine
from engine.backends.tensorrt.recipe import BuildRecipe
from engine.core.config import RunnerSpec
from engine.core.errors import BadInput, EngineError


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


class RuntimeCache:
    """TensorRT-RTX's runtime cache for one GPU: loaded from disk, saved back on close."""

    def __init__(self, engine: Any, key: PlanKey) -> None:
        self.path = runtime_cache_file(key.trt_version, key.gpu_name, key.compute_capability)
        self.config = engine.create_runtime_config()
        self.cache = self.config.create_runtime_cache()
        blob = read_runtime_cache(self.path)
        if not blob:
            self.state = "miss"
        elif self.cache.deserialize(blob):
            self.state = "hit"
        else:
            # Another driver or TensorRT-RTX version: the kernels are compiled anew.
            self.state = "stale"
        self.config.set_runtime_cache(self.cache)

    @property
    def note(self) -> str:
        return {
            "hit": f"reused the TensorRT-RTX runtime cache {self.path.parent.name}",
            "miss": "no TensorRT-RTX runtime cache for this GPU yet; kernels are compiled now",
            "stale": "the stored TensorRT-RTX runtime cache did not fit this GPU or driver;"
            " kernels are compiled anew",
        }[self.state]

    def save(self) -> None:
        data = bytes(self.cache.serialize())
        if data:
            write_runtime_cache(self.path, data, {"state_at_load": self.state})


class TensorRTRunner(Runner):
    """Runs a deserialised engine on torch CUDA tensors with ``execute_async_v3``."""

    def __init__(
        self,
        spec: RunnerSpec,
        loaded: LoadedEngine,
        profile: BatchProfile,
        index: int,
        recipe: BuildRecipe,
        flavour: Flavour | None = None,
    ) -> None:
        import torch

        if flavour is None:
            trt = import_tensorrt()
            flavour = Flavour("full", trt, str(trt.__version__))
        self.spec = spec
        self.torch = torch
        self.trt = flavour.module
        self.flavour = flavour
        self.device = torch.device("cuda", index)
        self.index = index
        self.loaded = loaded
        self.engine = loaded.engine
        self.profile = profile
        self.runtime_cache = (
            RuntimeCache(self.engine, loaded.key) if flavour.name == "rtx" else None
        )
        self.context = self._create_context()
        self._find_io()
        # A dedicated stream: TensorRT warns that the legacy default stream adds syncs.
        self.stream = torch.cuda.Stream(self.device)
        self._shape: tuple[int, ...] | None = None
        self._out: dict[str, Any] = {}
        self.provider = flavour.provider
        self.info = self._facts(recipe)

    def _create_context(self) -> Any:
        if self.runtime_cache is not None:
            context = self.engine.create_execution_context(self.runtime_cache.config)
        else:
            context = self.engine.create_execution_context()
        if context is None:
            raise EngineError(
                "TensorRT could not create an execution context",
                "usually too little free GPU memory for the engine's activations",
                "close other GPU work, or rebuild with a smaller max_batch",
            )
        return context

    def _find_io(self) -> None:
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            if self.engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT:
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

    def _facts(self, recipe: BuildRecipe) -> dict[str, Any]:
        loaded, key = self.loaded, self.loaded.key
        notes = list(loaded.notes)
        if self.runtime_cache is not None:
            notes.append(self.runtime_cache.note)
        return {
            "flavour": self.flavour.name,
            "trt": self.flavour.label,
            "trt_version": key.trt_version,
            "build_path": key.build_path,
            "typing": recipe.typing,
            "onnx_variant": recipe.onnx_variant,
            "plan": loaded.source,
            "plan_key": key.name,
            "plan_bytes": loaded.plan_bytes,
            "build_s": loaded.build_s,
            "profile": asdict(self.profile),
            "workspace_mb": key.workspace_mb,
            "opt_level": key.opt_level,
            "gpu": key.gpu_name,
            "compute_capability": key.compute_capability,
            "targets": key.targets,
            "runtime_cache": self.runtime_cache.state if self.runtime_cache else None,
            "input_dtype": str(self.input_dtype).replace("torch.", ""),
            "notes": notes,
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
        from engine.hardware.gpu import nvml_used_mb

        return nvml_used_mb(self.index)

    def inspect(self) -> list[EngineLayer]:
        """The engine's layers; binds the opt batch first so formats are concrete."""
        if self._shape is None:
            self._bind(self._opt_shape())
        return inspect_engine(self.engine, self.context, self.trt)

    def _opt_shape(self) -> tuple[int, ...]:
        """The input shape the engine was tuned for: its declared shape, or the profile's
        opt shape where a dimension is symbolic (a file of any size was built at the size
        the sweep ran, not at 224, and a 1-channel one with its one channel)."""
        dims = tuple(int(d) for d in self.engine.get_tensor_shape(self.input_name))
        if all(d > 0 for d in dims):
            return dims
        return tuple(int(d) for d in self.engine.get_tensor_profile_shape(self.input_name, 0)[1])

    def close(self) -> None:
        if self.runtime_cache is not None and self.engine is not None:
            try:
                self.runtime_cache.save()
            except OSError:  # a full or read-only disk costs only the next JIT compile
                pass
        self._out.clear()
        self.context = None
        self.engine = None
        self.loaded = None  # type: ignore[assignment]
