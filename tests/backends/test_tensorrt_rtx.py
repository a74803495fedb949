"""TensorRT-RTX for real: plans built on a machine without a GPU or driver.

Every test here calls the real TensorRT-RTX library (the wheels of
requirements-trt-rtx.txt) on small real models: the project's ResNet18 FP16 export at
64 px and a 4-node ONNX at 32 px, and skips with the reason where the wheels are
missing. What needs a loaded engine (execution, runtime-cache hits, the engine
inspector) cannot happen without a driver; those use the stand-in of
tests/fakes/tensorrt_standin.py in test_tensorrt.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.backends.tensorrt import BatchProfile, BuildSettings, TensorRTBackend, build_recipe
from engine.backends.tensorrt.build import build_plan, make_config
from engine.backends.tensorrt.flavour import (
    check_rtx_gpu,
    refusal_in,
    rtx_targets,
    tensorrt_availability,
)
from engine.backends.tensorrt.load import deserialize
from engine.backends.tensorrt.progress import _make_logger, parse_build_progress
from engine.backends.tensorrt.standalone import build_standalone
from engine.core.config import RunnerSpec
from engine.core.errors import BadInput, Unavailable
from tests.conftest import engines_page, run_cli

rtx = pytest.importorskip(
    "tensorrt_rtx_bindings",
    reason="the TensorRT-RTX wheels are not installed (pip install -r requirements-trt-rtx.txt)",
)

ROOT = Path(__file__).resolve().parents[2]
# Measured by the author on an H200 (2026-11-30), the refusal this maps.
H200_REFUSAL = (
    "IRuntime::deserializeCudaEngine: Error Code 6: API Usage Error (The engine cannot run on"
    " this GPU, which has compute capability 9.0. Supported compute capabilities: None."
    " TensorRT-RTX does not support this compute capability, so the engine cannot be rebuilt"
    " for it.)"
)
HOPPER = "TensorRT-RTX does not run on compute capability 9.0; full TensorRT is needed"


def _gpu_cc() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return f"{major}.{minor}"


# On this project's CI machine there is no GPU: the build reports say so. On a GPU machine
# they name the GPU instead (and the GPU test at the end runs).
GPU_CC = _gpu_cc()
NO_GPU_WORDS = "no GPU to run on" if GPU_CC is None else "compute capability"


@pytest.fixture
def shared_cache():
    """The session's cache (conftest): the ResNet18 export is made once for every test file."""


@pytest.fixture(autouse=True)
def _tmp_cache(request, tmp_path, monkeypatch):
    # A private plan cache per test, so "built" and "cache" mean this test's builds.
    if "shared_cache" not in request.fixturenames:
        monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("VISIONBENCH_DATA", str(tmp_path / "data"))


def tiny_onnx(path: Path, batch: str | int = "batch", bad: bool = False) -> Path:
    """A real 4-node classifier; ``bad`` swaps a node for an operator no parser knows."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w"
    )
    relu = ("NoSuchOp", "/relu/NoSuchOp") if bad else ("Relu", "/relu/Relu")
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], name="/conv1/Conv", pads=[1, 1, 1, 1]),
        helper.make_node(relu[0], ["c"], ["r"], name=relu[1]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="/pool/GlobalAveragePool"),
        helper.make_node("Flatten", ["p"], ["logits"], name="/flatten/Flatten"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 4])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def _build(path: Path, **kw):
    kw.setdefault("targets", "8.6")
    return build_standalone(
        path, kw.pop("precision", "fp32"), kw.pop("batches", [1, 4]), (32, 32), "rtx", **kw
    )


# --------------------------------------------------------------------------- builds


def test_flavour_is_detected_and_named():
    flavour, ok = tensorrt_availability("rtx")
    assert ok.ok and flavour.name == "rtx" and flavour.version == rtx.__version__
    assert flavour.label == f"TensorRT-RTX {rtx.__version__}"
    assert flavour.provider == f"tensorrt-rtx {rtx.__version__}"


@pytest.mark.skipif(GPU_CC is not None, reason="a GPU is visible")
def test_without_a_gpu_the_backend_says_plans_can_still_be_built():
    avail = TensorRTBackend.availability("cuda")
    assert not avail.ok and "python -m engine trt-build" in avail.fix
    assert f"TensorRT-RTX {rtx.__version__}" in avail.fix


def test_parse_error_names_the_failing_node(tmp_path):
    with pytest.raises(BadInput) as info:
        _build(tiny_onnx(tmp_path / "bad.onnx", bad=True))
    assert "node 1 '/relu/NoSuchOp' (NoSuchOp)" in info.value.why
    assert info.value.exit_code == 2


def test_profile_spans_the_batch_range_and_settings_reach_the_builder(tmp_path):
    path = tiny_onnx(tmp_path / "m.onnx")
    recipe = build_recipe(0, "fp32", rtx, "rtx")
    settings = BuildSettings(workspace_mb=512, opt_level=5, targets=("8.6", "12.0"))
    builder = rtx.Builder(_make_logger(rtx))
    config = make_config(rtx, builder, recipe, settings)
    assert config.get_memory_pool_limit(rtx.MemoryPoolType.WORKSPACE) == 512 * 2**20
    assert config.builder_optimization_level == 5
    assert config.profiling_verbosity == rtx.ProfilingVerbosity.DETAILED
    assert config.num_compute_capabilities == 2
    assert config.get_compute_capability(1) == rtx.ComputeCapability.SM120
    said: list[str] = []
    from engine.backends.tensorrt.progress import BuildProgress

    plan, facts = build_plan(
        rtx,
        path,
        recipe,
        BatchProfile(1, 4, 8),
        settings,
        (32, 32),
        None,
        BuildProgress(said.append),
    )
    assert len(plan) > 0 and facts["build_s"] > 0 and facts["network_layers"] >= 4
    # The builder's own listing of the plan's I/O: the profile as it was built.
    assert (
        "MinShape: [1,3,32,32], OptShape: [4,3,32,32], MaxShape: [8,3,32,32]" in facts["layer_log"]
    )
    assert any(parse_build_progress(m) == 1.0 for m in said)


def test_a_channels_last_file_s_profile_puts_the_sides_where_its_input_has_them():
    """tf2onnx's NHWC input [N, H, W, 3] with symbolic sides: the profile once filled them
    as channels first and built a plan for 3×48 images of 3 channels."""
    path = Path(__file__).resolve().parent.parent / "data" / "onnx" / "tf2onnx_nhwc_dynamic_hw.onnx"
    recipe = build_recipe(0, "fp32", rtx, "rtx")
    from engine.backends.tensorrt.progress import BuildProgress

    plan, facts = build_plan(
        rtx, path, recipe, BatchProfile(1, 2, 4), BuildSettings(targets=("8.6",)), (48, 64),
        None, BuildProgress(lambda _: None),
    )  # fmt: skip
    assert len(plan) > 0
    assert (
        "MinShape: [1,48,64,3], OptShape: [2,48,64,3], MaxShape: [4,48,64,3]" in facts["layer_log"]
    )


def test_a_file_of_uint8_pixels_builds_a_plan_that_takes_them():
    path = Path(__file__).resolve().parent.parent / "data" / "onnx" / "legacy_uint8_32.onnx"
    got = build_standalone(path, "fp32", [1, 4], (32, 32), "rtx", targets="8.6")
    assert got.plan_bytes > 0 and got.image_size == "32"


def test_build_without_progress_monitor_still_builds(tmp_path, monkeypatch):
    monkeypatch.delattr(rtx, "IProgressMonitor")
    said: list[str] = []
    got = _build(tiny_onnx(tmp_path / "m.onnx"), progress=said.append)
    assert got.plan_bytes > 0 and not any(parse_build_progress(m) is not None for m in said)


def test_plan_cache_misses_then_hits_and_keys_name_flavour_and_targets(tmp_path):
    path = tiny_onnx(tmp_path / "m.onnx")
    first = _build(path)
    assert first.source == "built" and first.build_s > 0 and first.plan_bytes > 0
    assert first.key.startswith("plan-rtx-sm86-") and first.targets == ("8.6",)
    assert first.trt == f"TensorRT-RTX {rtx.__version__}"
    assert (first.gpu == "none") == (GPU_CC is None)
    if GPU_CC is None:
        assert "no GPU to run on" in first.loadable
    # Layers from the builder's log: the ONNX nodes each fused layer replaced.
    nodes = {n for layer in first.layers for n in layer.onnx_nodes}
    assert "/conv1/Conv" in nodes and any(layer.tactic for layer in first.layers)
    again = _build(path)
    assert again.source == "cache" and again.build_s is None and again.key == first.key
    assert [layer.name for layer in again.layers] == [layer.name for layer in first.layers]
    other = _build(path, targets="8.6,8.9")
    assert other.source == "built" and other.key != first.key
    assert other.key.startswith("plan-rtx-sm86-89-")
    wider = _build(path, batches=[1, 8])
    assert wider.source == "built" and wider.key != first.key
    renamed = _build(tiny_onnx(tmp_path / "n.onnx", batch="n"))  # another file: another key
    assert renamed.source == "built" and renamed.key != first.key


def test_corrupt_cached_plan_is_rebuilt_with_a_note(tmp_path):
    path = tiny_onnx(tmp_path / "m.onnx")
    first = _build(path)
    plan_file = Path(os.environ["VISIONBENCH_CACHE"]) / "tensorrt" / first.key / "plan.engine"
    plan_file.write_bytes(plan_file.read_bytes()[:1000])
    again = _build(path)
    assert again.source == "rebuilt" and again.plan_bytes == first.plan_bytes
    assert any("discarded" in n and "SHA-256" in n for n in again.notes)


def test_fixed_batch_onnx_pins_the_profile(tmp_path):
    got = _build(tiny_onnx(tmp_path / "m.onnx", batch=2), batches=[2], fixed_batch=2)
    assert got.profile == BatchProfile(2, 2, 2).label


def test_resnet18_fp16_export_builds_for_every_target_and_types_decide(
    tmp_path, shared_cache, small_artifacts
):
    art = small_artifacts
    fp16 = art.onnx_path("fp16")
    got = build_standalone(
        fp16, "fp16", [1, 8, 32], art.image_hw, "rtx", out=str(tmp_path / "r.plan")
    )
    supported, _ = rtx_targets(rtx)
    assert got.targets == supported and "7.5" in supported and "9.0" not in supported
    assert got.plan_bytes > 10 * 2**20  # ResNet18's 11.7 M weights in FP16
    assert Path(got.out).stat().st_size == got.plan_bytes
    assert {layer.precision for layer in got.layers} >= {"fp16"}
    # Strongly typed: an fp16 build of the FP32 file would be an FP32 plan; refused.
    with pytest.raises(BadInput, match="fp32 model, not fp16"):
        build_standalone(tiny_onnx(tmp_path / "m.onnx"), "fp16", [1], (32, 32), "rtx")


@pytest.mark.skipif(
    GPU_CC is not None, reason="a GPU is visible: the no-driver path cannot be shown"
)
def test_plan_does_not_load_without_a_driver_and_says_why(tmp_path):
    got = _build(tiny_onnx(tmp_path / "m.onnx"), out=str(tmp_path / "m.plan"))
    plan = Path(got.out).read_bytes()
    runtime, engine, why = deserialize(rtx, plan, "rtx", "")
    assert engine is None and why  # cudaError 35 here: no driver, not a refusal


# --------------------------------------------------------------------------- GPUs it cannot run on


def test_hopper_is_refused_before_and_after_a_build():
    with pytest.raises(Unavailable) as before:
        check_rtx_gpu("9.0", rtx)
    assert before.value.what == HOPPER and before.value.exit_code == 3
    assert "ComputeCapability enum" in before.value.why
    check_rtx_gpu("8.9", rtx)  # an RTX 4090 passes
    after = refusal_in(H200_REFUSAL)
    assert after is not None and after.what == HOPPER
    assert refusal_in("IRuntime::deserializeCudaEngine: Error Code 1: Cuda Runtime") is None
    table, source = rtx_targets(None)
    assert "9.0" not in table and "support matrix" in source


@pytest.mark.gpu
def test_on_a_gpu_rtx_cannot_run_every_front_end_names_the_compute_capability(tmp_path):
    """On an H100/H200 (9.0): the check before a build, the library's verdict on a built plan,
    the runtime's own load-time refusal and the CLI all give the one answer."""
    from engine.backends.tensorrt.flavour import unsupported_message

    if GPU_CC is None:
        pytest.skip("no NVIDIA GPU is visible")
    if GPU_CC in rtx_targets(rtx)[0]:
        pytest.skip(f"TensorRT-RTX supports this GPU (compute capability {GPU_CC})")
    answer = unsupported_message(GPU_CC)
    with pytest.raises(Unavailable) as before:
        TensorRTBackend.check(RunnerSpec("tensorrt", "cuda", "fp16", (("trt_flavour", "rtx"),)))
    assert before.value.what == answer
    model = tiny_onnx(tmp_path / "m.onnx")
    got = build_standalone(model, "fp32", [1], (32, 32), "rtx", "8.6", str(tmp_path / "m.plan"))
    plan = Path(got.out).read_bytes()
    with pytest.raises(Unavailable) as validity:
        deserialize(rtx, plan, "rtx", GPU_CC)
    assert validity.value.what == answer
    logger = _make_logger(rtx)
    assert rtx.Runtime(logger).deserialize_cuda_engine(plan) is None
    refused = refusal_in(" ".join(logger.messages))
    assert refused is not None and refused.what == answer, logger.messages
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "bench", "--onnx", str(model), "--backend", "tensorrt",
         "--device", "cuda", "--trt-flavour", "rtx", "--batch", "1", "--no-parity", "--quiet",
         "--db", str(tmp_path / "r.sqlite")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 3 and answer in proc.stderr, proc.stderr


def test_backend_check_skips_rtx_on_hopper(monkeypatch):
    from engine.backends.tensorrt import backend

    # The one GPU fact this machine cannot give; everything else is the real library.
    monkeypatch.setattr(backend, "_visible_cc", lambda device: "9.0")
    spec = RunnerSpec("tensorrt", "cuda", "fp16", (("trt_flavour", "rtx"),))
    with pytest.raises(Unavailable) as info:
        TensorRTBackend.check(spec)
    assert info.value.what == HOPPER
    with pytest.raises(BadInput, match="cannot build for compute capability 9.0"):
        TensorRTBackend.check(spec.with_options(rtx_cc="9.0"))
    with pytest.raises(BadInput, match="flavour 'fast'"):
        TensorRTBackend.check(spec.with_options(trt_flavour="fast"))


@pytest.mark.parametrize("gpu", [None, "8.6"])
def test_backend_check_refuses_bf16_for_a_named_turing_target_in_trt_build_s_words(
    monkeypatch, gpu
):
    """bench on an RTX 3090 (8.6) with bf16 and --rtx-cc 7.5,8.6: the check passed it, and the
    builder refused it after the export, a failed row; now a skipped row before anything."""
    from engine.backends.tensorrt import backend

    monkeypatch.setattr(backend, "_visible_cc", lambda device: gpu)  # the GPU, or none
    spec = RunnerSpec("tensorrt", "cuda", "bf16", (("rtx_cc", "7.5,8.6"), ("trt_flavour", "rtx")))
    with pytest.raises(BadInput) as info:
        TensorRTBackend.check(spec)
    assert info.value.user_message() == (
        "bf16 cannot be built for compute capability 7.5: BF16 needs compute capability 8.0"
        " (Ampere) or newer. Fix: leave 7.5 out (--rtx-cc 8.6)"
    )  # trt-build's words (tests/backends/test_tensorrt_build_options.py)
    TensorRTBackend.check(spec.with_options(rtx_cc="8.0,8.6"))
    TensorRTBackend.check(RunnerSpec("tensorrt", "cuda", "fp16", spec.options))


def test_sweep_skips_the_rtx_row_on_hopper_and_measures_the_rest(monkeypatch, tmp_path):
    from engine.backends.tensorrt import backend
    from engine.core.config import BenchSettings, ModelSpec, SweepConfig
    from engine.running.sweep import run_sweep

    monkeypatch.setattr(backend, "_visible_cc", lambda device: "9.0")
    model = ModelSpec(onnx_path=str(tiny_onnx(tmp_path / "m.onnx")))
    runners = [
        RunnerSpec("tensorrt", "cuda", "fp16", (("trt_flavour", "rtx"),)),
        RunnerSpec("ort", "cpu", "fp32"),
    ]
    config = SweepConfig(model, runners, [1], BenchSettings(warmup=0, iters=2), parity=False)
    out = run_sweep(config)
    by_backend = {row.backend: row for row in out.rows}
    assert by_backend["tensorrt"].status == "skipped"
    assert by_backend["tensorrt"].reason.startswith(HOPPER)
    assert by_backend["ort"].status == "ok" and by_backend["ort"].p50_ms > 0
    assert [e.exit_code for e in out.errors] == [3]


# --------------------------------------------------------------------------- trt-build command


def _trt_build(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "VISIONBENCH_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "engine", "trt-build", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_trt_build_prints_flavour_time_size_and_key(tmp_path):
    model = tiny_onnx(tmp_path / "m.onnx")
    out = tmp_path / "m.plan"
    args = ("--onnx", str(model), "--precision", "fp32", "--batch", "1,8", "--rtx-cc", "8.6")
    proc = _trt_build(*args, "--out", str(out), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"flavour: TensorRT-RTX {rtx.__version__}"
    assert any(line.startswith("build: built, ") and line.endswith(" s") for line in lines)
    assert any(line.startswith("cache key: plan-rtx-sm86-") for line in lines)
    assert f"({out.stat().st_size} bytes)" in proc.stdout
    assert NO_GPU_WORDS in proc.stdout
    again = _trt_build(*args, tmp_path=tmp_path)
    assert "build: cache" in again.stdout


def test_two_processes_asking_for_one_plan_build_it_once(tmp_path, monkeypatch):
    """Plans took a lock of their own beside the plan folders (``tensorrt/<key>.lock``):
    `cache list` showed it as an entry, `cache prune --all` removed it even while a build
    held it (the next process then locked a new file and built beside it), nothing said
    a process was waiting, and prune kept a killed build's leftovers for an hour. Plans
    now take the compiled engines' build lock."""
    from engine.artifacts.cache import build_lock, cache_entries, prune

    model = tiny_onnx(tmp_path / "m.onnx")
    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "elsewhere"))
    key = _build(model).key  # the key, from a build into another cache
    cache = tmp_path / "cache"
    monkeypatch.setenv("VISIONBENCH_CACHE", str(cache))
    env = {**os.environ, "VISIONBENCH_CACHE": str(cache)}
    args = ("--onnx", str(model), "--precision", "fp32", "--batch", "1,4", "--rtx-cc", "8.6")
    cmd = [sys.executable, "-m", "engine", "trt-build", *args]
    with build_lock(cache / "tensorrt" / key, "TensorRT plan"):  # a build in progress
        procs = [
            subprocess.Popen(cmd, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
            for _ in range(2)
        ]  # fmt: skip
        for proc in procs:
            said = ""
            while line := proc.stderr.readline():
                said += line
                if "waiting" in line:
                    break
            assert f"another process is building the TensorRT plan {key}; waiting" in said, said
    outs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outs
    builds = sorted(
        line for out, _ in outs for line in out.splitlines() if line.startswith("build:")
    )
    assert builds[0].startswith("build: built, ") and builds[1].startswith("build: cache"), builds
    assert all(f"cache key: {key}" in out for out, _ in outs)
    assert [i.key for i in cache_entries()] == [key]  # no lock file listed as an entry
    with build_lock(cache / "tensorrt" / key, "TensorRT plan"):
        with pytest.raises(BadInput, match="being written by a build"):
            prune(keys=[key])  # a live build's entry is kept
        assert prune(everything=True) == [] and (cache / "tensorrt" / key).is_dir()
    (cache / "tensorrt" / key / "plan.engine.99999.tmp").write_bytes(b"x")  # a killed build's
    assert [i.key for i in prune(everything=True)] == [key]  # its lock is free: at once


@pytest.mark.parametrize(
    "args",
    [("--batch", "0"), ("--precision", "fp8"), ("--rtx-cc", "9.0"), ("--flavour", "fast")],
)
def test_trt_build_bad_input_exits_2_in_one_line(tmp_path, args):
    model = tiny_onnx(tmp_path / "m.onnx")
    proc = _trt_build("--onnx", str(model), "--precision", "fp32", *args, tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_trt_build_without_the_flavour_exits_3(tmp_path):
    full, _ = tensorrt_availability("full")
    if full is not None:
        pytest.skip("full TensorRT is installed here")
    proc = _trt_build(
        "--onnx", str(tiny_onnx(tmp_path / "m.onnx")), "--flavour", "full", tmp_path=tmp_path
    )
    assert proc.returncode == 3 and "pip install tensorrt-cu" in proc.stderr


# --------------------------------------------------------------------------- Engines page


def test_the_build_module_builds_a_plan_through_the_backends_own_hook(
    tmp_path, shared_cache, small_artifacts
):
    """What the Engines page calls: no page reads a TensorRT option by name."""
    from engine.running.build import build_standalone, standalone_builders, standalone_note

    assert standalone_builders() == ["tensorrt"]
    # The selection's options, another backend's among them (ignored, as in a sweep).
    options = {"trt_flavour": "rtx", "rtx_cc": "8.6", "cuda_graph": True}
    note = standalone_note("tensorrt", ("fp32", "fp16"), options)
    assert note.startswith("one plan per precision: fp32 export; fp16 export, flavour rtx;")
    (built,) = build_standalone("tensorrt", small_artifacts, ("fp16",), (1, 4), options)
    assert built.headline["Flavour"] == f"TensorRT-RTX {rtx.__version__}"
    assert "targets: compute capability 8.6" in built.lines  # rtx_cc reached the builder
    assert any(line.startswith("cache key: plan-rtx-sm86-") for line in built.lines)
    assert built.layers and {layer.precision for layer in built.layers} >= {"fp16"}
    with pytest.raises(BadInput, match="flavour"):
        standalone_note("tensorrt", ("fp16",), {"trt_flavour": "fast"})


def test_engines_page_builds_a_plan_without_a_gpu(tmp_path, monkeypatch, shared_cache):
    monkeypatch.chdir(ROOT)
    at = engines_page("resnet18", 64, "1,4", ["fp16"])
    at.button(key="vb_standalone_tensorrt").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Flavour"] == f"TensorRT-RTX {rtx.__version__}"
    assert metrics["Plan size"].endswith("MB") or metrics["Plan size"].endswith("MiB")
    shown = "\n".join(str(t.value) for t in at.text)
    assert "cache key: plan-rtx-" in shown and NO_GPU_WORDS in shown
    assert len(at.dataframe[-2].value) > 5  # the plan's layers, from the builder's log


# --------------------------------------------------------------------------- users' files

DATA = ROOT / "tests" / "data" / "onnx"


def _trt_build_here(capsys, *args: str) -> tuple[int, str, str]:
    from engine.cli.main import main

    code = main(["trt-build", "--precision", "fp32", "--rtx-cc", "8.6", "--batch", "1,4", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("name", "size", "shown"),
    [
        ("legacy_gray_28.onnx", None, "28"),  # one channel, fixed 28×28
        ("dynamo_gray_dynamic_hw.onnx", "28", "28"),  # one channel, any size: plain N
        ("dynamo_dynamic_hw.onnx", "40x56", "40x56"),  # any size: HEIGHTxWIDTH
        ("legacy_fixed_40x56.onnx", "40x56", "40x56"),  # the declared size, given again
    ],
)
def test_trt_build_builds_users_files_at_the_size_that_runs(capsys, name, size, shown):
    extra = ["--image-size", size] if size else []
    code, out, err = _trt_build_here(capsys, "--onnx", str(DATA / name), *extra)
    assert code == 0, err
    # the parity check's batch too, as a sweep of batches 1,4 builds and looks it up
    assert f"model: {name} (fp32, image size {shown}, batch 1..8 (tuned for 4)" in out, out
    assert "was chosen" not in err


def test_trt_build_of_a_file_of_any_size_keys_the_plan_by_size_and_says_a_chosen_one(capsys):
    dyn = str(DATA / "dynamo_dynamic_hw.onnx")
    keys = []
    for extra in (["--image-size", "40x56"], [], ["--image-size", "224"]):
        code, out, err = _trt_build_here(capsys, "--onnx", dyn, *extra)
        assert code == 0, err
        keys.append(next(x for x in out.splitlines() if x.startswith("cache key: ")))
        if not extra:
            assert "224×224 was chosen (give --image-size HxW for another)" in err
    assert keys[0] != keys[1] and keys[1] == keys[2]  # 224 chosen = 224 given: one plan


def test_trt_build_refuses_a_size_a_fixed_file_does_not_have(capsys):
    code, out, err = _trt_build_here(
        capsys, "--onnx", str(DATA / "legacy_fixed_48.onnx"), "--image-size", "64"
    )
    assert code == 2 and not out and err.count("\n") == 1 and "fixed at 48" in err, err


def test_trt_build_pins_a_batch_fixed_inside_the_graph_with_a_note(capsys):
    code, out, err = _trt_build_here(capsys, "--onnx", str(DATA / "legacy_baked_batch_2.onnx"))
    assert code == 0, err
    assert "batch 2..2" in out
    assert "runs batch 2 only (fixed inside its graph (/Reshape))" in err, err


# --------------------------------------------------------------------------- int8 from a model


def _bench_plan_key(model, precision: str, batches: tuple[int, ...], rtx_cc: str, **options):
    """The plan key bench's TensorRT runner asks the cache for (TensorRTBackend._build's
    own steps: the ONNX file of the recipe, the sweep's profile, the spec's build settings),
    here with no GPU (an empty GPU name and capability, as a build without one keys it);
    ``options``: bench's other TensorRT options (``--workspace-mb 256``: workspace_mb=256)."""
    from engine.artifacts.external_data import model_digest
    from engine.artifacts.models import load_artifacts
    from engine.backends.base import PrepareContext
    from engine.backends.tensorrt.load import plan_key
    from engine.backends.tensorrt.recipe import onnx_for

    spec = RunnerSpec("tensorrt", "cuda", precision).with_options(
        rtx_cc=rtx_cc, trt_flavour="rtx", **options
    )
    art = load_artifacts(model)
    ctx = PrepareContext(batches=batches)
    recipe = build_recipe(0, precision, rtx, "rtx")
    path = onnx_for(recipe, art, ctx)
    profile = TensorRTBackend.plan_profile(spec, art, ctx)
    settings = BuildSettings.from_spec(spec, (rtx_cc,))
    return plan_key(rtx, model_digest(path), recipe, profile, settings, "", "", art.image_hw)


def test_trt_build_quantises_a_model_as_bench_does_into_the_plan_bench_finds(tmp_path):
    """`trt-build --model X --precision int8` refused and sent the user to a GPU sweep; it
    quantises the model as that sweep does (symmetric Q/DQ, the same calibration) and keys
    the plan as the sweep's runner looks it up, so bench then loads it from the cache."""
    from engine.backends.tensorrt.cache import load_plan
    from engine.core.config import ModelSpec

    args = ("--model", "resnet18", "--image-size", "32", "--precision", "int8")
    proc = _trt_build(*args, "--batch", "1,4", "--rtx-cc", "8.6", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert (
        "model: the int8 copy of resnet18 (random weights), quantised as bench quantises it ("
        in proc.stdout
    )
    assert "symmetric Q/DQ, calibrated on 16 generated images" in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr and "quantising to int8" in proc.stderr
    key = next(x.split(": ", 1)[1] for x in lines if x.startswith("cache key: "))
    bench = _bench_plan_key(ModelSpec(name="resnet18", image_size=32), "int8", (1, 4), "8.6")
    assert key == bench.name
    plan, note = load_plan(bench)
    assert plan is not None and not note  # the sweep's lookup is a hit
    int8_models = list((tmp_path / "cache" / "int8").iterdir())
    assert len(int8_models) == 1  # the sweep's quantised model is the one built: no second
    again = _trt_build(*args, "--batch", "1,4", "--rtx-cc", "8.6", tmp_path=tmp_path)
    assert "build: cache" in again.stdout, again.stdout + again.stderr


def test_build_hands_tensorrt_int8_over_with_the_default_model(tmp_path):
    """`build --backend tensorrt --precision int8` without --model stopped at trt-build's
    "one of the arguments --model --onnx is required"; build's own default (resnet50) and
    bench's name for the flavour option (--trt-flavour) reach trt-build."""
    env = {"VISIONBENCH_CACHE": str(tmp_path / "cache")}
    args = ("--precision", "int8", "--image-size", "32", "--batch", "1", "--rtx-cc", "8.6")
    proc = run_cli("build", "--backend", "tensorrt", *args, "--trt-flavour", "rtx", env=env)
    assert proc.returncode == 0, proc.stderr
    assert (
        "model: the int8 copy of resnet50 (random weights), quantised as bench quantises it"
        in proc.stdout
    )
    assert "Traceback" not in proc.stderr
    # The general form and trt-build itself make one plan: one key, the second a cache hit.
    key = next(x for x in proc.stdout.splitlines() if x.startswith("cache key: "))
    again = _trt_build("--model", "resnet50", *args, tmp_path=tmp_path)
    assert key in again.stdout and "build: cache" in again.stdout, again.stdout + again.stderr


def test_build_hands_the_model_flags_over_and_keys_the_plan_a_sweep_of_that_model_finds(tmp_path):
    """`build --backend tensorrt --seed N` (and --weights, --device cuda) stopped at
    trt-build's "unrecognized arguments": the plan of any model but seed 0's random weights
    could not be built ahead of a sweep. The flags now reach the model, and the plan is the
    one a sweep of that model looks up."""
    from engine.core.config import ModelSpec

    env = {"VISIONBENCH_CACHE": str(tmp_path / "cache")}
    args = ("--model", "resnet18", "--image-size", "32", "--batch", "1", "--rtx-cc", "8.6")
    proc = run_cli("build", "--backend", "tensorrt", "--precision", "fp16", *args, "--seed", "3",
                   "--weights", "random", "--device", "cuda", env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    key = next(x.split(": ", 1)[1] for x in proc.stdout.splitlines() if x.startswith("cache key"))
    seeded = ModelSpec(name="resnet18", image_size=32, seed=3)
    assert key == _bench_plan_key(seeded, "fp16", (1,), "8.6").name
    assert (
        key != _bench_plan_key(ModelSpec(name="resnet18", image_size=32), "fp16", (1,), "8.6").name
    )


@pytest.mark.skipif(GPU_CC is not None, reason="a GPU is visible: the targets are its own")
def test_default_targets_leave_out_turing_where_only_its_kernels_fail(tmp_path):
    """`trt-build --model X --precision int8` with no targets failed on the default's 7.5
    ("Cannot compile operation 'node_linear' for Turing (SM75): FP32 GEMM is not
    supported"): the user named no target, so 7.5 is left out with a note. A 7.5 the user
    names is built exactly: the failure stands, in one line."""
    args = ("--model", "resnet18", "--image-size", "32", "--precision", "int8", "--batch", "1")
    proc = _trt_build(*args, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    others = [t for t in rtx_targets(rtx)[0] if t != "7.5"]
    assert f"targets: compute capability {', '.join(others)}\n" in proc.stdout, proc.stdout
    assert (
        "compute capability 7.5 (Turing) left out: TensorRT-RTX cannot compile this int8"
        " model for it (operation 'node_linear': FP32 GEMM is not supported)" in proc.stdout
    )
    named = _trt_build(*args, "--rtx-cc", "7.5", tmp_path=tmp_path)
    assert named.returncode == 1 and "for Turing (SM75)" in named.stderr, named.stderr
    errors = [x for x in named.stderr.splitlines() if x.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in named.stderr, named.stderr


@pytest.mark.parametrize(
    ("device", "said"),
    [
        ("cpu", "trt-build builds TensorRT plans for NVIDIA GPUs, not for device 'cpu'"),
        ("cuda:1", "trt-build builds on the first GPU, not on cuda:1"),
    ],
)
def test_build_for_tensorrt_on_a_device_it_cannot_build_for_says_so_in_one_line(
    tmp_path, device, said
):
    proc = run_cli("build", "--backend", "tensorrt", "--device", device, "--image-size", "32")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"error: {said}"), proc.stderr


# --------------------------------------------------------------------------- build's routes


def test_build_builds_one_tensorrt_plan_per_precision_of_a_comma_list(tmp_path):
    """`build --backend tensorrt --precision fp16,int8` ended in trt-build's "precision
    'fp16,int8' is not one TensorRT builds. Fix: use fp16", while build takes a comma list
    for every other backend: one plan per precision, reported as build reports engines,
    the int8 one the plan a sweep of that model finds."""
    from engine.core.config import ModelSpec

    env = {"VISIONBENCH_CACHE": str(tmp_path / "cache")}
    args = ("--model", "squeezenet1_1", "--image-size", "32", "--batch", "2", "--rtx-cc", "8.6")
    proc = run_cli("build", "--backend", "tensorrt", *args, "--precision", "fp16,int8", "--json",
                   env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    import json

    doc = json.loads(proc.stdout)
    assert doc["model"] == "squeezenet1_1 (random weights)"
    engines = doc["engines"]
    assert [e["precision"] for e in engines] == ["fp16", "int8"]
    assert [e["configuration"] for e in engines] == [  # as bench names them: with --rtx-cc
        "TensorRT FP16 on cuda + RTX targets=8.6",
        "TensorRT INT8 on cuda + RTX targets=8.6",
    ]
    assert all(e["built"] and e["build_s"] > 0 for e in engines)
    model = ModelSpec(name="squeezenet1_1", image_size=32)
    assert [e["key"] for e in engines] == [
        _bench_plan_key(model, p, (2,), "8.6").name for p in ("fp16", "int8")
    ]
    text = run_cli("build", "--backend", "tensorrt", *args, "--precision", "fp16,int8", env=env)
    assert text.returncode == 0, text.stderr
    assert text.stdout.count("build: cache") == 2, text.stdout
    assert "2 engine(s) for squeezenet1_1 (random weights); list them with" in text.stdout


def test_build_refuses_only_a_precision_tensorrt_cannot_build_naming_it(tmp_path):
    env = {"VISIONBENCH_CACHE": str(tmp_path / "cache")}
    proc = run_cli("build", "--backend", "tensorrt", "--model", "squeezenet1_1", "--image-size",
                   "32", "--precision", "fp16,fp8", env=env)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: TensorRT builds no fp8 plan: it builds fp32, fp16,")
    assert "Fix: leave fp8 out (--precision fp16)" in proc.stderr
    assert not (tmp_path / "cache").exists()  # refused before anything was exported
    one = _trt_build("--model", "squeezenet1_1", "--precision", "fp16,int8", tmp_path=tmp_path)
    assert one.returncode == 2 and "trt-build builds one precision a run" in one.stderr
    assert "build --backend tensorrt --precision fp16,int8 (one plan each)" in one.stderr


@pytest.mark.skipif(GPU_CC is not None, reason="a GPU is visible: the targets are its own")
def test_a_failed_int8_build_names_the_model_and_its_int8_copy(tmp_path):
    """An int8 build that failed said "TensorRT could not build model.onnx (int8)": the
    cache's name of the quantised copy, which the user never gave."""
    args = ("--model", "resnet18", "--image-size", "32", "--precision", "int8", "--batch", "1")
    proc = _trt_build(*args, "--rtx-cc", "7.5", tmp_path=tmp_path)
    assert proc.returncode == 1, proc.stderr
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(
        "error: TensorRT could not build the int8 copy of resnet18 (random weights), quantised"
        " as bench quantises it (symmetric Q/DQ, calibrated on 16 generated images) (int8): "
    ), proc.stderr
    assert "model.onnx" not in proc.stderr


def test_a_sweeps_plan_errors_name_what_the_user_gave(tmp_path, small_artifacts):
    """The sweep's runner builds from the same copies: its parse and build errors name the
    model (or the user's file) and say which copy of it was built, not "model.onnx"."""
    from engine.artifacts.models import load_artifacts
    from engine.backends.base import PrepareContext
    from engine.backends.tensorrt.recipe import onnx_for, source_name
    from engine.core.config import ModelSpec

    ctx = PrepareContext(batches=(1,))
    int8 = build_recipe(0, "int8", rtx, "rtx")
    path = onnx_for(int8, small_artifacts, ctx)
    assert path.name == "model.onnx"
    label = small_artifacts.spec.label
    assert source_name(int8, small_artifacts, path) == (
        f"the int8 copy of {label}, quantised as bench quantises it (symmetric Q/DQ,"
        " calibrated on 16 generated images)"
    )
    fp16 = build_recipe(0, "fp16", rtx, "rtx")
    assert source_name(fp16, small_artifacts, onnx_for(fp16, small_artifacts, ctx)) == (
        f"{label}, its fp16 ONNX export"
    )
    bad = tiny_onnx(tmp_path / "mine.onnx", bad=True)
    art = load_artifacts(ModelSpec(onnx_path=str(bad), image_size=32))
    fp32 = build_recipe(0, "fp32", rtx, "rtx")
    shown = source_name(fp32, art, onnx_for(fp32, art, ctx))
    assert shown == "mine.onnx"
    with pytest.raises(BadInput, match="TensorRT's ONNX parser rejected the int8 copy of X"):
        build_plan(rtx, bad, fp32, BatchProfile(1, 1, 1), BuildSettings(targets=("8.6",)),
                   (32, 32), None, shown="the int8 copy of X")  # fmt: skip


def test_a_qdq_files_int8_plan_is_its_own_quantisation_in_bench_and_trt_build(tmp_path):
    """`bench --onnx QDQ_FILE --backend tensorrt --precision int8` quantised the quantised
    file again while trt-build built it as it is: their plans differed. bench's runner now
    builds the file as it is too, with a note, and finds trt-build's plan."""
    from engine.artifacts.models import load_artifacts
    from engine.backends.base import PrepareContext
    from engine.backends.tensorrt.recipe import onnx_for
    from engine.core.config import ModelSpec
    from tests.engine.test_build_routes import qdq_file

    qdq = qdq_file(tmp_path)
    args = ("--onnx", str(qdq), "--precision", "int8", "--batch", "1,4", "--rtx-cc", "8.6")
    proc = _trt_build(*args, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    key = next(x.split(": ", 1)[1] for x in proc.stdout.splitlines() if x.startswith("cache key"))
    model = ModelSpec(onnx_path=str(qdq), image_size=32)
    ctx = PrepareContext(batches=(1, 4))
    assert onnx_for(build_recipe(0, "int8", rtx, "rtx"), load_artifacts(model), ctx) == qdq
    assert ctx.row_notes == [
        "tiny_qdq.onnx is quantised already (11 QuantizeLinear/DequantizeLinear nodes): its"
        " int8 rows run the file's own quantisation, as it is (not quantised again)"
    ]
    assert _bench_plan_key(model, "int8", (1, 4), "8.6").name == key
    assert not (tmp_path / "cache" / "int8").exists()  # nothing quantised, by either
