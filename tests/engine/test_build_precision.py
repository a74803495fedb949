"""``build --precision int8``: the refusal says truly where int8 is made, as commands to paste.

Driven through the real CLI as a user types it (``python -m engine build ...``). torch.compile
builds no int8 engine; TensorRT builds an int8 plan from a Q/DQ ONNX file (``trt-build --model``
does not quantise) or quantises in a ``bench`` sweep; ONNX Runtime's int8 is a quantised model
that a CPU sweep makes, with nothing to build. Every printed command starts the way
:func:`engine.core.commands.engine_command` says. Each refusal comes before a model is loaded.
"""

from __future__ import annotations

import pytest

from engine.core.commands import engine_command
from tests.conftest import run_cli

MODEL = ("--model", "resnet18", "--image-size", "32", "--batch", "1")
TENSORRT_PLAN = engine_command("build --backend tensorrt --onnx FILE --precision int8")
TENSORRT_SWEEP = engine_command("bench --backend tensorrt --precision int8 --device cuda")
ORT_SWEEP = engine_command("bench --backend ort --precision int8 --device cpu")


def _refusal(*args: str) -> str:
    res = run_cli("build", *MODEL, "--precision", "int8", *args, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


@pytest.mark.parametrize("backend", [(), ("--backend", "torch_compile")], ids=["default", "named"])
def test_int8_with_torch_compile_names_the_backends_that_make_int8(backend):
    line = _refusal(*backend)
    assert "torch.compile builds no int8 engine" in line, line
    assert "eager PyTorch" not in line, line  # the backend asked for is torch.compile
    assert f"TensorRT: {TENSORRT_PLAN} with a Q/DQ int8 ONNX file as FILE" in line, line
    assert f"or {TENSORRT_SWEEP}, which quantises the model and keeps its plan" in line, line
    assert f"ONNX Runtime: nothing to build, {ORT_SWEEP} quantises the model" in line, line


def test_int8_with_eager_torch_is_not_sent_to_torch_compile():
    """`build --backend torch --precision int8` said "use --backend torch_compile", which
    builds no int8 either."""
    line = _refusal("--backend", "torch")
    assert "torch_compile" not in line and TENSORRT_PLAN in line and ORT_SWEEP in line, line


def test_int8_with_onnx_runtime_says_there_is_nothing_to_build():
    line = _refusal("--backend", "ort")
    assert "the ONNX Runtime backend builds nothing ahead of time" in line, line
    assert f"Fix: nothing to build, {ORT_SWEEP} quantises the model" in line, line
    assert "torch_compile" not in line, line


def test_int8_with_tensorrt_from_a_model_says_how_to_get_a_plan():
    """The hand-over to trt-build: --model is not quantised there; a sweep does it."""
    line = _refusal("--backend", "tensorrt")
    assert "does not quantise" in line and "a Q/DQ int8 ONNX file with --onnx" in line, line
    assert engine_command("bench --model resnet18 --backend tensorrt --precision int8") in line


def test_a_sweep_of_torch_compile_at_int8_names_torch_compile():
    """A sweep's skipped row said "eager PyTorch cannot run int8" for torch.compile."""
    from engine.backends import get_backend
    from engine.core.config import RunnerSpec
    from engine.core.errors import BadInput

    with pytest.raises(BadInput) as exc:
        get_backend("torch_compile").check(RunnerSpec("torch_compile", "cpu", "int8"))
    message = exc.value.user_message()
    assert message.startswith("torch.compile cannot run int8") and "tensorrt" in message
