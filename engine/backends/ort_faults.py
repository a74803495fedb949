"""ONNX Runtime's failures read as one line: the model's fault (exit 2) told apart from a
device or memory fault, without C++ source locations, signatures or error codes."""

from __future__ import annotations

import os
import re

from engine.core.commands import engine_command, python_command
from engine.core.errors import BadInput

# ONNX Runtime's own words for "this model cannot be loaded here", as opposed to a device
# or memory fault while creating the session (which must stay what it is: oom, failed).
_MODEL_FAULTS = ("InvalidGraph", "InvalidArgument", "InvalidProtobuf", "NotImplemented")
_MODEL_FAULT_TEXT = (
    "load model",
    "not a registered",
    "no op registered",
    "ir version",
    "opset",
    # the model's data or shapes, found while initialising or running it
    "tensorprotodatasize",
    "raw data",
    "dimension mismatch",
    "invalid dimensions",
    "shape mismatch",
    "incompatible dimensions",
    "invalid rank",
)
_DEVICE_FAULT_TEXT = ("out of memory", "cuda", "cudnn", "cublas", "tensorrt")
# C++ source locations ("initializer.cc:51", "/onnxruntime_src/…/x.h:59") and signatures
# ("onnxruntime::Initializer::Initializer(const onnx::TensorProto&, …)"), and the error
# code prefix ORT repeats per layer: none of it tells a user what is wrong with the model.
_SOURCE = re.compile(r"\S*\.(?:cc|cpp|cu|h|hpp):\d+\s*")
_SIGNATURE = re.compile(r"\b(?:onnxruntime|onnx|std)::[\w:~<>]*\([^()]*(?:\([^()]*\)[^()]*)*\)\s*")
_CODE = re.compile(r"\[ONNXRuntimeError\] : \d+ : \w+ : ")


def one_line_reason(text: str) -> str:
    """ONNX Runtime's message as one line: no source locations, signatures or codes."""
    text = _CODE.sub("", " ".join(text.split()))
    text = _SIGNATURE.sub("", _SOURCE.sub("", text))
    return " ".join(text.split()).strip().rstrip(".")[:300]


def model_fault(exc: Exception, what: str = "ONNX Runtime cannot run the model") -> Exception:
    """A failure caused by the model file → one-line BadInput (exit 2); others unchanged."""
    text = " ".join(str(exc).split())
    lower = text.lower()
    by_text = any(t in lower for t in _MODEL_FAULT_TEXT) and not any(
        t in lower for t in _DEVICE_FAULT_TEXT
    )
    if "out of memory" in lower or not (type(exc).__name__ in _MODEL_FAULTS or by_text):
        return exc
    reason = text.split("failed:", 1)[-1] if "failed:" in text else text
    return BadInput(
        what,
        one_line_reason(reason),
        f"check the model's initializers and shapes ({python_command()} -m onnx.checker, or"
        " re-export it); use only standard ONNX operators and an IR version / opset this ONNX"
        f" Runtime supports ({engine_command('diagnose')} lists the versions)",
    )


def session_error(exc: Exception, model_path: str) -> Exception:
    """A session-creation failure caused by the model file → BadInput; others unchanged."""
    return model_fault(exc, f"ONNX Runtime cannot load {os.path.basename(model_path)}")
