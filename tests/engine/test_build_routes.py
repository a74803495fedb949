"""Build routes a user meets: flags of ``build`` a backend's own build command does not take,
and int8 rows of an ONNX file that is quantised already.

Driven through the real CLI (``python -m engine ...``) and real ONNX Runtime sessions on a
tiny Q/DQ model made with ONNX Runtime's own quantiser.
"""

from __future__ import annotations

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
