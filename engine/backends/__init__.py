"""The backend registry: adding a backend is one module here plus one line below.

Everything the rest of the product needs from "the backends" is here too: the one
title of each, the labels of a configuration, and the options every registered
backend declares (from which the CLI and the sidebar draw their flags and controls).

May import ``engine.core``, ``engine.hardware``, ``engine.diagnostics`` and
``engine.artifacts``; never storage, running, reporting or the CLI.
"""

from __future__ import annotations

from typing import Any

from engine.backends.base import Availability, Backend, PrepareContext, Runner
from engine.core.config import RunnerSpec
from engine.core.errors import BadInput

_REGISTRY: dict[str, str] = {
    "torch": "engine.backends.torch_backend:TorchBackend",
    "ort": "engine.backends.ort:OrtBackend",
    "tensorrt": "engine.backends.tensorrt:TensorRTBackend",
    "torch_compile": "engine.backends.compiled:TorchCompileBackend",
}

# What speed-ups are measured against: eager PyTorch FP32 on the same device.
BASELINE = ("torch", "fp32")


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


def register(name: str, target: str) -> None:
    """Add (or replace) a backend: ``target`` is ``"module:Class"``. One line per backend."""
    _REGISTRY[name] = target


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def title(name: str) -> str:
    """The backend's one human name; an unknown name (an old stored row) as it is."""
    try:
        return get_backend(name).TITLE
    except (BadInput, ImportError, AttributeError):
        return name


def _backend_or_none(name: str) -> type[Backend] | None:
    try:
        return get_backend(name)
    except (BadInput, ImportError):
        return None


def precision_text(backend: str, precision: str, device: str, options: dict[str, Any]) -> str:
    """``precision`` plus what its math really is where the name alone does not say."""
    b = _backend_or_none(backend)
    note = b.precision_note(precision.lower(), device, dict(options or {})) if b else ""
    return f"{precision}, {note}" if note else precision


def option_words(backend: str, options: dict[str, Any]) -> list[str]:
    """Label words for a configuration's options; unknown names (old rows) as name=value."""
    opts = {k: v for k, v in dict(options or {}).items() if not k.endswith("_threads")}
    b = _backend_or_none(backend)
    if b is None:
        return [f"{k}={v}" for k, v in sorted(opts.items())]
    from engine.core.options import fields_of

    known = {f.name for f in fields_of(b.Options)}
    words = b.option_words({k: v for k, v in opts.items() if k in known})
    return words + [f"{k}={v}" for k, v in sorted(opts.items()) if k not in known]


def spec_label(spec: RunnerSpec) -> str:
    """E.g. ``ONNX Runtime FP32, TF32 allowed (ORT default) on cuda:0 + CUDA graph``."""
    words = option_words(spec.backend, spec.opts)
    text = precision_text(spec.backend, spec.precision.upper(), spec.device, spec.opts)
    base = f"{title(spec.backend)} {text} on {spec.device}"
    return base + (" + " + ", ".join(words) if words else "")


def declared_options() -> dict:
    """Option name → (field, backends declaring it), over every registered backend."""
    from engine.core.options import merged_fields

    classes = [(n, b.Options) for n in _REGISTRY if (b := _backend_or_none(n)) is not None]
    return merged_fields(classes)


__all__ = [
    "BASELINE",
    "Availability",
    "Backend",
    "PrepareContext",
    "Runner",
    "backend_names",
    "declared_options",
    "get_backend",
    "option_words",
    "precision_text",
    "register",
    "spec_label",
    "title",
    "unregister",
]
