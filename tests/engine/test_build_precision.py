"""``build --precision int8``: the refusal says truly where int8 is made, as commands to paste.

Driven through the real CLI as a user types it (``python -m engine build ...``). torch.compile
builds no int8 engine; TensorRT builds an int8 plan from the model quantised as a sweep
quantises it, or from a Q/DQ ONNX file as it is; ONNX Runtime's int8 is a quantised model
that a CPU sweep makes, with nothing to build. Every printed command starts the way
:func:`engine.core.commands.engine_command` says. Each refusal comes before a model is loaded.
"""

from __future__ import annotations

import pytest

from engine.core.commands import engine_command
from tests.conftest import run_cli

MODEL = ("--model", "resnet18", "--image-size", "32", "--batch", "1")
TENSORRT_PLAN = engine_command("build --backend tensorrt --precision int8 --model NAME")
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
    assert f"TensorRT: {TENSORRT_PLAN} quantises the model as bench does" in line, line
    assert "(--onnx FILE instead: a Q/DQ int8 file is built as it is)" in line, line
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


def test_int8_with_tensorrt_from_a_model_builds_the_plan_a_sweep_would(tmp_path):
    """The hand-over to trt-build refused ("trt-build --model does not quantise") and sent
    the user to a GPU sweep; it quantises the model as that sweep does and builds the plan
    (exit 3 with the install command where no TensorRT is installed)."""
    env = {"VISIONBENCH_CACHE": str(tmp_path / "cache")}
    args = (*MODEL, "--precision", "int8", "--backend", "tensorrt", "--rtx-cc", "8.6")
    res = run_cli("build", *args, timeout=300, env=env)
    assert "does not quantise" not in res.stderr and "Traceback" not in res.stderr
    if res.returncode == 3:
        assert "pip install" in res.stderr, res.stderr
        return
    assert res.returncode == 0, res.stderr
    assert (
        "model: the int8 copy of resnet18 (random weights), quantised as bench quantises it"
        in res.stdout
    )


def test_a_sweep_of_torch_compile_at_int8_names_torch_compile():
    """A sweep's skipped row said "eager PyTorch cannot run int8" for torch.compile."""
    from engine.backends import get_backend
    from engine.core.config import RunnerSpec
    from engine.core.errors import BadInput

    with pytest.raises(BadInput) as exc:
        get_backend("torch_compile").check(RunnerSpec("torch_compile", "cpu", "int8"))
    message = exc.value.user_message()
    assert message.startswith("torch.compile cannot run int8") and "tensorrt" in message
