"""Build routes a user meets: flags of ``build`` a backend's own build command does not take,
and int8 rows of an ONNX file that is quantised already.

Driven through the real CLI (``python -m engine ...``) and real ONNX Runtime sessions on a
tiny Q/DQ model made with ONNX Runtime's own quantiser.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.conftest import run_cli


def test_build_says_in_its_own_words_that_tensorrt_plans_take_no_threads(tmp_path):
    """`build --backend tensorrt --threads 2` ended in trt-build's argparse error
    "unrecognized arguments: --threads 2": build refuses its own flag for a backend whose
    engines take none, saying what the flag is for, before anything is exported."""
    env = {"VISIONBENCH_CACHE": str(tmp_path / "cache")}
    args = ("--model", "squeezenet1_1", "--image-size", "32", "--batch", "2")
    for threads in (("--threads", "2"), ("--threads=2",)):
        proc = run_cli("build", "--backend", "tensorrt", *args, *threads, env=env, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr == (
            "error: TensorRT takes no --threads: build's --threads sets the CPU threads a"
            " compiled CPU engine is compiled for (as bench --threads); TensorRT's engines take"
            " none. Fix: leave --threads out with --backend tensorrt\n"
        ), proc.stderr
        assert "unrecognized" not in proc.stderr
    assert not (tmp_path / "cache").exists()


def qdq_file(folder: Path) -> Path:
    """A tiny classifier quantised by ONNX Runtime's own quantiser (signed, symmetric
    activations and weights, FP32 biases: the Q/DQ form TensorRT builds)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["logits"], name="flatten"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    fp32 = folder / "tiny_fp32.onnx"
    onnx.save(model, str(fp32))
    images = [rng.standard_normal((1, 3, 32, 32)).astype(np.float32) for _ in range(4)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter({"input": x} for x in images)

        def get_next(self):
            return next(self._it, None)

    out = folder / "tiny_qdq.onnx"
    quantize_static(
        str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                       "QuantizeBias": False},
    )  # fmt: skip
    return out


def test_onnx_runtimes_int8_row_of_a_qdq_file_runs_the_files_own_quantisation(tmp_path):
    """`bench --onnx QDQ_FILE --precision int8` quantised the quantised file again: ONNX
    Runtime then refused the result ("two nodes with same node name"), and named it
    "model.onnx". The file's own quantisation runs, with a note saying so."""
    import json

    qdq = qdq_file(tmp_path)
    env = {"VISIONBENCH_CACHE": str(tmp_path / "cache"), "VISIONBENCH_DATA": str(tmp_path)}
    doc = tmp_path / "run.json"
    proc = run_cli("bench", "--onnx", str(qdq), "--backend", "ort", "--precision", "int8",
                   "--device", "cpu", "--batch", "1", "--iters", "3", "--warmup", "0",
                   "--inline", "--json", str(doc), env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    said = (
        "tiny_qdq.onnx is quantised already (11 QuantizeLinear/DequantizeLinear nodes): its"
        " int8 rows run the file's own quantisation, as it is (not quantised again)"
    )
    assert said in proc.stdout + proc.stderr
    (row,) = json.loads(doc.read_text())["rows"]
    assert (row["precision"], row["status"], row["parity_status"]) == ("int8", "ok", "ok")
    assert not (tmp_path / "cache" / "int8").exists()  # nothing quantised


def test_a_qdq_files_floating_point_rows_say_they_run_its_quantisation(tmp_path):
    """A Q/DQ file's fp32 row ran the file's int8 rounding, labelled FP32, and was judged
    against the same file: the run says so from the start (a plain file says nothing)."""
    import json

    from engine.artifacts.models import load_artifacts
    from engine.core.config import ModelSpec

    qdq = qdq_file(tmp_path)
    (said,) = [n for n in load_artifacts(ModelSpec(onnx_path=str(qdq))).notes if "Q/DQ" in n]
    assert said.startswith("tiny_qdq.onnx is quantised already (11 QuantizeLinear")
    assert "its fp32 and fp16 rows run that quantisation" in said
    assert "not with an unquantised model" in said
    plain = load_artifacts(ModelSpec(onnx_path=str(tmp_path / "tiny_fp32.onnx")))
    assert not [n for n in plain.notes if "quantised" in n]
    env = {"VISIONBENCH_CACHE": str(tmp_path / "cache"), "VISIONBENCH_DATA": str(tmp_path)}
    doc = tmp_path / "run.json"
    proc = run_cli("bench", "--onnx", str(qdq), "--backend", "ort", "--precision", "fp32",
                   "--device", "cpu", "--batch", "1", "--iters", "3", "--warmup", "0",
                   "--inline", "--json", str(doc), env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert said in proc.stdout + proc.stderr
    assert said in json.loads(doc.read_text())["run"]["notes"]  # kept with the run


def test_a_native_crash_while_building_is_one_line_not_a_bare_exit_139(tmp_path):
    """`build` loads what it builds; on an H100 that load died with a segmentation fault and
    the user got exit 139 and nothing else. The build runs in a child process: a real
    SIGSEGV there (the test hook's, before the first engine) is one line and exit 1, and
    the child's own bad-input messages and exit codes pass through unchanged."""
    from engine.running.worker import CRASH_HOOK_ENV

    env = {"VISIONBENCH_CACHE": str(tmp_path / "cache"), CRASH_HOOK_ENV: "segv@0"}
    args = ("--model", "squeezenet1_1", "--image-size", "32", "--batch", "2")
    proc = run_cli("build", *args, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[-1].startswith("error: the build process was killed by SIGSEGV: a native crash")
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    proc = run_cli("build", *args, "--precision", "int4", env=env, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: torch.compile builds no int4")
    # A child that dies of SIGINT itself (seen once, with a stop under a loaded machine): a
    # stop's 130, where it was exit status 254 from passing the child's -2 on.
    proc = run_cli("build", *args, env={**env, CRASH_HOOK_ENV: "int@0"}, timeout=120)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr


def test_a_build_stopped_mid_compile_is_a_stop_and_caches_nothing(tmp_path):
    """The build runs in a child process now; a stop still ends it as a stop: Ctrl-C (the
    terminal's SIGINT to the group) exits 130 with "interrupted", SIGTERM to the command
    alone (the child does not get it) is passed on and exits 143, each one line, no
    traceback, and the engine being compiled is not cached, nor is its private folder left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT, default_sigint

    args = ("--model", "squeezenet1_1", "--image-size", "32", "--batch", "2")
    for sig, group, code, last in (
        (signal.SIGINT, True, 130, "interrupted"),
        (signal.SIGTERM, False, 143, "terminated by SIGTERM"),
    ):
        cache = tmp_path / f"cache{code}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "build", *args], cwd=ROOT,
            start_new_session=True, preexec_fn=default_sigint,  # as a terminal starts it
            env={**os.environ, "VISIONBENCH_CACHE": str(cache)}, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while not list(cache.glob("compiled/*/pre.*")) and time.monotonic() < deadline:
            time.sleep(0.2)  # until the compile has begun (its private folder exists)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == code, err
        assert err.strip().splitlines()[-1] == last and "Traceback" not in err, err
        assert not list(cache.rglob("model.pt2")) and not list(cache.rglob("pre.*"))


def test_a_page_left_mid_build_stops_the_build_child(tmp_path, monkeypatch):
    """The Engines page builds through a child and relays its lines; a user who left the page
    (Streamlit stops the script at its next call) left the child compiling to its end. The
    child is now stopped as a SIGTERM stops a build: gone when the page moves on, nothing
    cached, no private folder left. The stop comes while the compile is silent: the page's
    clock, called about once a second between lines, is where Streamlit raises it (it came
    only at the build's next line, minutes later in a long compile)."""
    from engine.core.config import ModelSpec
    from engine.running.build import build_argv, build_in_child

    class Left(BaseException):  # as Streamlit's StopException: not an Exception
        pass

    said: list[str] = []
    ticks: list[float] = []

    def waiting(seconds: float) -> None:
        ticks.append(seconds)
        if said and said[-1].startswith("compiling"):  # no line since: the compile is silent
            raise Left

    cache = tmp_path / "cache"
    monkeypatch.setenv("VISIONBENCH_CACHE", str(cache))
    argv = build_argv(ModelSpec(name="squeezenet1_1", image_size=32), "torch_compile", "cpu", [2])
    with pytest.raises(Left):
        build_in_child(argv, said.append, waiting)
    assert said[-1].startswith("compiling") and ticks == sorted(ticks) and ticks[-1] > 0
    running = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            running += [cmdline] if str(cache).encode() in cmdline.read_bytes() else []
    assert running == []
    assert not list(cache.rglob("model.pt2")) and not list(cache.rglob("pre.*"))
