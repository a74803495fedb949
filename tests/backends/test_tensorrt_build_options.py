"""``trt-build`` and ``build --backend tensorrt`` take bench's TensorRT options.

They refused ``--workspace-mb 256`` ("unrecognized arguments"), so a plan built ahead was
always built with the default workspace and optimisation level, both in the plan's key: a
``bench ... --opt-level 5`` never found it and built again. Real TensorRT-RTX builds with no
GPU, skipped where its wheels are missing (as tests/backends/test_tensorrt_rtx.py).
"""

from __future__ import annotations

import json

import pytest

from engine.core.config import ModelSpec
from engine.core.errors import BadInput
from tests.conftest import run_cli

rtx = pytest.importorskip(
    "tensorrt_rtx_bindings",
    reason="the TensorRT-RTX wheels are not installed (pip install -r requirements-trt-rtx.txt)",
)

from tests.backends.test_tensorrt_rtx import _bench_plan_key  # noqa: E402

MODEL = ("--model", "squeezenet1_1", "--image-size", "32", "--batch", "1", "--rtx-cc", "8.6")
TUNED = ("--workspace-mb", "256", "--opt-level", "5")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VISIONBENCH_DATA", str(tmp_path / "data"))
    return tmp_path / "cache"


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    from engine.cli.main import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_plan_built_ahead_with_bench_options_is_the_one_that_bench_finds(cache, capsys):
    from engine.backends.tensorrt.cache import load_plan

    proc = run_cli("build", "--backend", "tensorrt", "--precision", "fp16", *MODEL, *TUNED,
                   "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (engine,) = json.loads(proc.stdout)["engines"]
    assert engine["built"] and engine["source"] == "built"
    assert engine["options"] == {
        "workspace_mb": 256, "opt_level": 5, "opt_batch": None, "max_batch": None,
        "trt_flavour": "auto", "rtx_cc": "8.6",
    }  # fmt: skip
    assert engine["configuration"] == (
        "TensorRT FP16 on cuda + workspace MiB=256, opt level=5, RTX targets=8.6"
    )
    model = ModelSpec(name="squeezenet1_1", image_size=32)
    bench = _bench_plan_key(model, "fp16", (1,), "8.6", workspace_mb=256, opt_level=5)
    assert engine["key"] == bench.name
    assert bench.name != _bench_plan_key(model, "fp16", (1,), "8.6").name  # the options count
    plan, note = load_plan(bench)  # bench's own lookup: a hit, nothing to build
    assert plan is not None and len(plan) == engine["plan_bytes"] and not note
    # trt-build with the same flags: the same plan, from the cache; its facts say the options
    code, out, err = _main(capsys, "trt-build", "--precision", "fp16", *MODEL, *TUNED)
    assert code == 0, err
    assert "builder: workspace MiB=256, opt level=5\n" in out and "build: cache" in out, out
    assert f"cache key: {bench.name}\n" in out
    # --opt-batch/--max-batch reach the profile as bench's runner builds it
    code, out, err = _main(capsys, "trt-build", "--precision", "fp16", *MODEL, *TUNED,
                           "--opt-batch", "4", "--max-batch", "16", "--json")  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["profile"] == "batch 1..16 (tuned for 4)" and doc["options"]["max_batch"] == 16
    wider = _bench_plan_key(model, "fp16", (1,), "8.6", workspace_mb=256, opt_level=5,
                            opt_batch=4, max_batch=16)  # fmt: skip
    assert doc["key"] == wider.name and doc["source"] == "built"


@pytest.mark.parametrize(
    "flag",
    [("--workspace-mb", "10"), ("--opt-level", "9"), ("--opt-batch", "0"),
     ("--trt-flavour", "fast"), ("--rtx-cc", "abc"), ("--rtx-cc", "9.0"),
     ("--rtx-cc", "8.6,4.2")],
)  # fmt: skip
def test_bad_options_are_refused_in_bench_s_words_before_anything_is_built(cache, capsys, flag):
    bench = _main(capsys, "bench", "--backend", "tensorrt", "--device", "cuda", *MODEL, *flag)
    built = _main(capsys, "trt-build", "--precision", "fp16", *MODEL, *flag)
    handed = _main(capsys, "build", "--backend", "tensorrt", *MODEL, *flag)
    for code, out, err in (bench, built, handed):
        assert code == 2 and not out and err.count("\n") == 1, err
    said = [err.replace("bench", "CMD").replace("trt-build", "CMD") for _, _, err in (bench, built)]
    assert said[0] == said[1] == handed[2].replace("trt-build", "CMD"), said
    assert not cache.exists()  # refused before anything was exported


def test_an_opt_batch_outside_the_profile_is_refused_before_the_export(cache, capsys):
    code, out, err = _main(capsys, "trt-build", "--precision", "fp16", *MODEL, "--opt-batch", "9")
    assert code == 2 and not out, err
    assert err.startswith("error: the TensorRT option opt_batch=9 is outside the profile 1..8")
    assert not cache.exists()


@pytest.mark.parametrize(
    ("named", "fix"),
    [
        ("7.5,8.6", "leave 7.5 out (--rtx-cc 8.6)"),
        ("7.5", "build fp16 for those GPUs, or name newer targets with --rtx-cc"),
    ],
)
def test_bf16_for_a_target_without_bf16_is_refused_before_the_export(cache, capsys, named, fix):
    """It was refused only after the bf16 export (seconds to minutes for a big model)."""
    from engine.running.build import standalone_note

    args = (*MODEL, "--precision", "bf16", "--rtx-cc", named)
    built = _main(capsys, "trt-build", *args)
    handed = _main(capsys, "build", "--backend", "tensorrt", *args)
    for code, out, err in (built, handed):
        assert code == 2 and not out, err
        assert err == (
            "error: bf16 cannot be built for compute capability 7.5: BF16 needs compute"
            f" capability 8.0 (Ampere) or newer. Fix: {fix}\n"
        )
    assert not cache.exists()  # nothing exported
    # the Engines page's note, said before its button is pressed: the same refusal
    options = {"trt_flavour": "rtx", "rtx_cc": named}
    with pytest.raises(BadInput) as page:
        standalone_note("tensorrt", ("fp16", "bf16"), options)
    assert f"error: {page.value.user_message()}\n" == built[2]
    assert standalone_note("tensorrt", ("fp16",), options)  # fp16 builds for 7.5
    with pytest.raises(BadInput, match="cannot build for compute capability 9.0"):
        standalone_note("tensorrt", ("fp16",), {"rtx_cc": "9.0"})  # the option's own check


def test_a_dynamic_batch_file_s_profile_options_are_refused_before_it_is_quantised(
    cache, capsys, tmp_path
):
    """The check before the export was left out for --onnx (a fixed-batch file sets its own
    profile): int8 of a dynamic-batch file was quantised and calibrated, then refused."""
    from tests.backends.test_tensorrt_rtx import tiny_onnx

    dynamic = tiny_onnx(tmp_path / "dynamic.onnx")
    args = ("--onnx", str(dynamic), "--batch", "1", "--rtx-cc", "8.6", "--precision", "int8",
            "--opt-batch", "64", "--max-batch", "8")  # fmt: skip
    for command in (("trt-build",), ("build", "--backend", "tensorrt")):
        code, out, err = _main(capsys, *command, *args)
        assert code == 2 and not out, err
        assert err == (
            "error: the TensorRT option opt_batch=64 is outside the profile 1..8."
            " Fix: choose opt_batch between 1 and 8\n"
        )
    assert not (cache / "int8").exists()  # nothing quantised
    # a file of one fixed batch pins the profile: those options do not reach it (as bench's)
    fixed = tiny_onnx(tmp_path / "fixed.onnx", batch=1)
    code, out, err = _main(capsys, "trt-build", *args[2:], "--onnx", str(fixed), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["profile"] == "batch 1..1 (tuned for 1)"
    # said once, and neither the builder's line nor the record names them as used
    assert doc["options"]["opt_batch"] is None and doc["options"]["max_batch"] is None
    assert (
        "the TensorRT option opt_batch=64 and max_batch=8 not used: the file's batch is fixed"
        " at 1, which is the whole profile"
    ) in doc["notes"]
    code, out, err = _main(capsys, "trt-build", *args[2:], "--onnx", str(fixed))
    (builder,) = [line for line in out.splitlines() if line.startswith("builder:")]
    assert code == 0 and "batch" not in builder and "max_batch=8 not used" in out, out
