"""The backend registry: adding a backend is one module here plus one line below."""

from __future__ import annotations

from engine.backends.base import Availability, Backend, PrepareContext, Runner
from engine.errors import BadInput

_REGISTRY: dict[str, str] = {
    "torch": "engine.backends.torch_backend:TorchBackend",
    "ort": "engine.backends.ort:OrtBackend",
    "tensorrt": "engine.backends.tensorrt:TensorRTBackend",
    "torch_compile": "engine.backends.compiled:TorchCompileBackend",
}


def backend_names() -> list[str]:
    return list(_REGISTRY)


def get_backend(name: str) -> type[Backend]:
    import importlib

    target = _REGISTRY.get(name)
    if target is None:
        raise BadInput(
            f"unknown backend '{name}'",
            f"backends are {', '.join(_REGISTRY)}",
            "use --backend torch,ort",
        )
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["Availability", "Backend", "PrepareContext", "Runner", "backend_names", "get_backend"]
