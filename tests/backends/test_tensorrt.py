"""TensorRT backend tests (full TensorRT; TensorRT-RTX's real builds are in test_tensorrt_rtx.py).

Three kinds, clearly apart:
- the missing-TensorRT path, run for real (CLI exit codes, availability reasons), and our
  own pure logic (recipes, cache keys, profiles, progress, inspector JSON);
- what needs a loaded engine, which nothing on this CPU machine can give: the plan
  cache's reuse and its rebuild of a plan that will not load, TensorRT-RTX's runtime
  cache, and the engine inspector. Only these use the stand-in module of
  tests/fakes/tensorrt_standin.py, put into ``sys.modules`` by the test; it checks what
  *we* call and never stands in for a result;
- real TensorRT builds and runs, which skip with the reason where tensorrt does not import.
"""

from __future__ import annotations

import dataclasses
import importlib.abc
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from engine.backends import PrepareContext, get_backend
from engine.backends.tensorrt import (
    BatchProfile,
    BuildProgress,
    BuildSettings,
    PlanKey,
    TensorRTBackend,
    build_recipe,
    check_batch,
    inspect_engine,
    install_command,
    layers_from_json,
    load_plan,
    obtain_engine,
    parse_build_progress,
    profile_for,
    qdq_zero_point_problems,
    store_plan,
    tensorrt_availability,
    timing_cache_file,
    trt_major,
)
from engine.backends.tensorrt.flavour import version_problem
from engine.backends.tensorrt.runner import RuntimeCache
from engine.core.commands import pip_command
from engine.core.config import RunnerSpec
from engine.core.errors import BadInput, EngineError, Unavailable
from tests.fakes.tensorrt_standin import make_fake_tensorrt

ROOT = Path(__file__).resolve().parents[2]


def _real_trt():
    try:
        import tensorrt

        return tensorrt
    except (ImportError, OSError) as exc:
        return exc


REAL = _real_trt()
HAVE_TRT = not isinstance(REAL, BaseException)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VISIONBENCH_DATA", str(tmp_path / "data"))


def tiny_onnx(path: Path, batch: str | int = "batch") -> Path:
    """A real 3-node ONNX classifier (Conv → Relu → GlobalAveragePool → Flatten)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], name="/conv1/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="/relu/Relu"),
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
    model.ir_version = 9  # what the installed ONNX Runtime reads (newer onnx writes newer)
    onnx.save(model, str(path))
    return path


# --------------------------------------------------------------------------- stand-in (loaded engines only)


@pytest.fixture
def no_rtx(monkeypatch):
    """TensorRT-RTX hidden (import fails as when not installed), to show the missing path."""
    monkeypatch.setitem(sys.modules, "tensorrt_rtx_bindings", None)


@pytest.fixture
def fake_trt(monkeypatch, no_rtx):
    def install(**kw):
        fake = make_fake_tensorrt(**kw)
        monkeypatch.setitem(sys.modules, "tensorrt", fake)
        return fake

    return install


def _obtain(trt, onnx_path, precision="fp32", profile=None, settings=None):
    said: list[str] = []
    ctx = PrepareContext(batches=(1, 8), progress=said.append)
    recipe = build_recipe(trt_major(trt.__version__), precision, trt)
    loaded = obtain_engine(
        trt,
        onnx_path,
        recipe,
        profile or BatchProfile(1, 8, 8),
        settings or BuildSettings(),
        "Fake GPU",
        "8.9",
        (32, 32),
        ctx,
    )
    return loaded, said


# --------------------------------------------------------------------------- missing TensorRT, real


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "VISIONBENCH_CACHE": str(tmp_path / "cache"),
        "VISIONBENCH_DATA": str(tmp_path / "data"),
    }
    # A tiny ONNX file keeps the subprocess quick: no torchvision model is built.
    model = tiny_onnx(tmp_path / "tiny.onnx")
    cmd = [sys.executable, "-m", "engine", "bench", "--onnx", str(model)]
    cmd += ["--batch", "1", "--iters", "1", "--warmup", "0", "--no-parity", "--quiet", *args]
    cmd += ["--db", str(tmp_path / "r.sqlite")]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(HAVE_TRT, reason="tensorrt imports here; the missing path cannot be shown")
def test_cli_without_tensorrt_exits_3_with_the_install_command(tmp_path):
    # The full flavour by name: TensorRT-RTX may be installed here and would be taken.
    proc = _cli(
        "--backend", "tensorrt", "--device", "cuda", "--trt-flavour", "full", tmp_path=tmp_path
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    err = proc.stderr
    if "no NVIDIA GPU" in err:  # no CUDA at all: that one line comes first (issue 27.9)
        assert err.count("\n") == 1 and "error: nothing requested could run" in err
        return
    assert install_command() in err and "error: nothing requested could run" in err
    assert "No module named 'tensorrt'" in err
    if "no NVIDIA GPU" in err:  # TensorRT's own absence is named before the GPU's
        assert err.index("No module named 'tensorrt'") < err.index("no NVIDIA GPU")


def test_cli_tensorrt_on_cpu_is_a_usage_error(tmp_path):
    proc = _cli("--backend", "tensorrt", "--device", "cpu", tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "TensorRT runs only on NVIDIA GPUs" in proc.stderr
    assert "--device cuda" in proc.stderr


@pytest.mark.skipif(HAVE_TRT, reason="tensorrt imports here; the missing path cannot be shown")
def test_availability_without_tensorrt_gives_reason_and_fix(no_rtx):
    import torch

    avail = get_backend("tensorrt").availability("cuda")
    assert not avail.ok
    assert "tensorrt" in avail.reason.lower()
    assert "No module named 'tensorrt'" in avail.reason
    if torch.version.cuda:
        major = torch.version.cuda.split(".")[0]
        assert f"pip install tensorrt-cu{major}" in avail.fix
    _, own = tensorrt_availability("full")
    assert not own.ok and own.fix == install_command()


@pytest.mark.skipif(HAVE_TRT, reason="tensorrt imports here; the missing path cannot be shown")
def test_prepare_without_tensorrt_raises_unavailable(no_rtx):
    spec = RunnerSpec("tensorrt", "cuda", "fp16")
    with pytest.raises(Unavailable) as info:
        TensorRTBackend.prepare(spec, None, PrepareContext(batches=(1, 8)))
    assert info.value.exit_code == 3
    assert install_command() in info.value.user_message()


def test_library_that_does_not_load_is_reported(monkeypatch):
    """An OSError from a missing libnvinfer (not only ImportError) becomes a reason."""

    class Broken(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tensorrt":
                raise OSError("libnvinfer.so.10: cannot open shared object file")
            return None

    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    trt, avail = tensorrt_availability("full")
    assert trt is None and not avail.ok
    assert "libnvinfer.so.10: cannot open shared object file" in avail.reason
    assert avail.fix.startswith(f"{pip_command()} install tensorrt-cu")


def test_old_tensorrt_is_refused_with_an_upgrade():
    why = version_problem("8.6.1")
    assert why is not None and not why.ok
    assert "8.6.1" in why.reason and "--upgrade" in why.fix
    assert version_problem("10.8.0") is None and version_problem("11.3.0") is None


def test_check_rejects_bad_options():
    for opts in ({"workspace_mb": 0}, {"opt_level": 9}, {"max_batch": "big"}):
        spec = RunnerSpec("tensorrt", "cuda", "fp16", tuple(opts.items()))
        with pytest.raises(BadInput):
            TensorRTBackend.check(spec)
    # Other backends' switches, which the CLI gives every runner, are not refused.
    TensorRTBackend.check(RunnerSpec("tensorrt", "cuda", "fp16", (("cuda_graph", True),)))


# --------------------------------------------------------------------------- version branching


def test_10x_uses_builder_flags_on_the_fp32_onnx():
    for precision, flags in (("fp16", ("FP16",)), ("bf16", ("BF16",)), ("fp32", ())):
        recipe = build_recipe(10, precision)
        assert recipe.onnx_variant == "fp32" and recipe.build_path == "10.x-flags"
        assert recipe.builder_flags == flags and recipe.network_flags == ()
    assert build_recipe(10, "fp32").clear_flags == ("TF32",)  # fp32 means FP32 math
    assert build_recipe(10, "int8").onnx_variant == "int8"
    assert build_recipe(10, "int8").builder_flags == ("INT8",)


def test_11x_and_rtx_are_strongly_typed_from_the_precision_onnx():
    for precision in ("fp32", "fp16", "bf16", "int8"):
        for recipe in (build_recipe(11, precision), build_recipe(0, precision, flavour="rtx")):
            assert recipe.onnx_variant == precision and recipe.builder_flags == ()
            assert "strongly typed" in recipe.typing and recipe.network_flags == ()
        assert build_recipe(11, precision).build_path == "11.x-strong"
        assert build_recipe(0, precision, flavour="rtx").build_path == "rtx-strong"


def test_newer_major_takes_the_11x_path_with_a_note():
    recipe = build_recipe(12, "fp16")
    assert recipe.onnx_variant == "fp16" and recipe.notes


# --------------------------------------------------------------------------- profiles and shapes


def test_profile_min_1_opt_chosen_max_largest():
    assert profile_for([1, 8, 32]) == BatchProfile(1, 32, 32)
    assert profile_for([1, 8, 32], opt_batch=8) == BatchProfile(1, 8, 32)
    assert profile_for([1], extra=(8,)) == BatchProfile(1, 1, 8)  # parity's batch fits
    assert profile_for([1, 4], max_batch=64) == BatchProfile(1, 4, 64)
    assert profile_for([4], fixed_batch=4) == BatchProfile(4, 4, 4)
    with pytest.raises(BadInput, match="max_batch=4"):
        profile_for([1, 8], max_batch=4)
    with pytest.raises(BadInput, match="opt_batch"):
        profile_for([1, 8], opt_batch=16)


def test_backend_profile_covers_the_sweep_and_parity():
    spec = RunnerSpec("tensorrt", "cuda", "fp16")
    art = types.SimpleNamespace(fixed_batch=None)
    prof = TensorRTBackend.plan_profile(spec, art, PrepareContext(batches=(1, 2)))
    from engine.core.parity import PARITY_BATCH

    assert prof.min_batch == 1 and prof.opt_batch == 2
    assert prof.max_batch == max(2, PARITY_BATCH)


def test_batch_outside_profile_suggests_a_larger_maximum():
    prof = BatchProfile(1, 8, 32)
    check_batch(32, prof)
    with pytest.raises(BadInput) as info:
        check_batch(64, prof)
    assert "max_batch=64" in info.value.fix and "rebuild" in info.value.fix
    assert prof.shapes((3, 64, 64)) == ((1, 3, 64, 64), (8, 3, 64, 64), (32, 3, 64, 64))


# --------------------------------------------------------------------------- caches


def _key(**kw) -> PlanKey:
    base = dict(
        trt_version="10.8.0",
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
        onnx_sha256="a" * 64,
        precision="fp16",
        build_path="10.x-flags",
        min_batch=1,
        opt_batch=8,
        max_batch=32,
        workspace_mb=4096,
        opt_level=3,
    )
    return PlanKey(**{**base, **kw})


def test_every_key_field_changes_the_plan_key():
    base = _key()
    changed = {
        "trt_version": "11.3.0",
        "gpu_name": "Tesla T4",
        "compute_capability": "7.5",
        "onnx_sha256": "b" * 64,
        "precision": "fp32",
        "build_path": "11.x-strong",
        "min_batch": 2,
        "opt_batch": 16,
        "max_batch": 64,
        "workspace_mb": 1024,
        "opt_level": 5,
        "schema": 99,
        "flavour": "rtx",
        "targets": "8.6,8.9",
        "image_hw": "40x56",
    }
    assert set(changed) == {f.name for f in dataclasses.fields(PlanKey)}
    digests = {base.digest()}
    for name, value in changed.items():
        other = dataclasses.replace(base, **{name: value})
        assert other.digest() != base.digest(), name
        digests.add(other.digest())
    assert len(digests) == len(changed) + 1
    # The key shown to users names the flavour and the targets.
    rtx = _key(flavour="rtx", targets="8.6,12.0", gpu_name="", compute_capability="")
    assert rtx.name.startswith("plan-rtx-sm86-120-") and rtx.folder.name == rtx.name


def test_timing_cache_is_per_trt_version_and_gpu():
    a = timing_cache_file("10.8.0", "NVIDIA H100", "9.0")
    assert a == timing_cache_file("10.8.0", "NVIDIA H100", "9.0")
    assert a != timing_cache_file("10.9.0", "NVIDIA H100", "9.0")
    assert a != timing_cache_file("10.8.0", "Tesla T4", "7.5")
    assert a.parent.parent.name == "tensorrt"


def test_plan_cache_round_trip_and_corruption():
    key = _key()
    assert load_plan(key) == (None, "")  # a plain miss is silent
    store_plan(key, b"PLAN-bytes")
    assert load_plan(key) == (b"PLAN-bytes", "")
    plan_file = key.folder / "plan.engine"
    plan_file.write_bytes(b"PLAN-b")  # truncated
    data, note = load_plan(key)
    assert data is None and "SHA-256" in note and "rebuilding" in note
    assert not key.folder.exists()
    store_plan(key, b"PLAN-bytes")
    (key.folder / "meta.json").write_text("{not json")
    data, note = load_plan(key)
    assert data is None and "could not be read" in note


def test_obtain_engine_builds_then_reuses_then_rebuilds_a_bad_plan(fake_trt, tmp_path):
    trt = fake_trt()
    onnx_path = tiny_onnx(tmp_path / "m.onnx")
    first, said = _obtain(trt, onnx_path)
    assert first.source == "built" and first.build_s is not None
    assert any(parse_build_progress(m) is not None for m in said)
    second, _ = _obtain(trt, onnx_path)
    assert second.source == "cache" and len(trt.calls["builds"]) == 1
    # A plan with a valid hash that TensorRT will not load (another version, say).
    store_plan(first.key, b"BAD plan from another TensorRT")
    third, said3 = _obtain(trt, onnx_path)
    assert third.source == "rebuilt" and len(trt.calls["builds"]) == 2
    assert any("could not be deserialised" in n for n in third.notes)
    assert any("could not be deserialised" in m for m in said3)


def test_rtx_runtime_cache_misses_then_hits_and_is_per_gpu(fake_trt):
    """Needs a loaded engine (its runtime config makes the cache): the stand-in's engine."""
    trt = fake_trt(gpu="GPU-A")
    key = _key(flavour="rtx", targets="8.9", gpu_name="RTX 4090", compute_capability="8.9")
    engine = trt.Runtime(None).deserialize_cuda_engine(b"PLAN")
    first = RuntimeCache(engine, key)
    assert first.state == "miss" and "compiled now" in first.note
    first.save()
    assert first.path.is_file() and first.path.parent.parent.name == "tensorrt"
    second = RuntimeCache(engine, key)
    assert second.state == "hit" and trt.calls["runtime_cache_in"][-1].startswith(b"KERNELS/")
    assert second.config.cache is second.cache  # set on the config the context is made from
    # Another GPU has another file; a blob the library rejects is reported, not trusted.
    other = dataclasses.replace(key, gpu_name="RTX 3060", compute_capability="8.6")
    assert RuntimeCache(engine, other).path != first.path
    first.path.write_bytes(b"KERNELS/GPU-B/compiled")
    assert RuntimeCache(engine, key).state == "stale"


def test_inspect_engine_asks_for_json_with_the_context(fake_trt):
    """Needs a loaded engine: the stand-in's engine hands our parser the inspector's JSON."""
    trt = fake_trt(inspector_json=INSPECTOR_JSON)
    engine = trt.Runtime(None).deserialize_cuda_engine(b"PLAN")
    layers = inspect_engine(engine, context=object(), trt=trt)
    assert trt.calls["inspected"] == [("JSON", True)]
    assert [layer.name for layer in layers] == [layer["Name"] for layer in INSPECTOR_JSON["Layers"]]


# --------------------------------------------------------------------------- progress


def test_build_progress_fraction_and_messages():
    said: list[str] = []
    now = [0.0]
    prog = BuildProgress(said.append, min_interval_s=1.0, clock=lambda: now[0])
    prog.phase_start("Building engine", None, 2)
    prog.phase_start("Tactics", "Building engine", 4)
    prog.step_complete("Tactics", 1)
    assert prog.fraction() == pytest.approx((0 + 2 / 4) / 2)
    now[0] = 5.0
    prog.step_complete("Tactics", 3)
    prog.phase_finish("Tactics")
    prog.step_complete("Building engine", 0)
    assert prog.fraction() == pytest.approx(0.5)
    prog.phase_finish("Building engine")
    assert prog.fraction() == 1.0
    fractions = [parse_build_progress(m) for m in said]
    assert all(f is not None for f in fractions) and fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert parse_build_progress("timing ort fp32 at batch 8") is None


# --------------------------------------------------------------------------- inspector JSON


INSPECTOR_JSON = {
    "Layers": [
        {
            "Name": "/conv1/Conv + /relu/Relu",
            "LayerType": "CaskConvolution",
            "Inputs": [{"Name": "input", "Format/Datatype": "Row major linear FP16 format"}],
            "Outputs": [{"Name": "r", "Format/Datatype": "Channel major FP16 format"}],
            "TacticName": "sm90_xmma_fprop_implicit_gemm_f16f16",
            "Metadata": "[ONNX Layer: /conv1/Conv]\x1f[ONNX Layer: /relu/Relu]",
        },
        {
            "Name": "Reformatting CopyNode for Input Tensor 0 to /pool",
            "LayerType": "Reformat",
            "Outputs": [{"Format/Datatype": "Int8"}],
            "TacticValue": "0x0000000000000000",
        },
        {"Name": "/pool/GlobalAveragePool", "LayerType": "Reduce", "Inputs": []},
    ],
    "Bindings": ["input", "logits"],
}


def test_inspector_json_becomes_layer_rows():
    rows = layers_from_json(json.dumps(INSPECTOR_JSON))
    assert [r.onnx_nodes for r in rows] == [
        ["/conv1/Conv", "/relu/Relu"],
        [],
        ["/pool/GlobalAveragePool"],
    ]
    assert [r.precision for r in rows] == ["fp16", "int8", ""]
    assert rows[0].tactic.startswith("sm90") and rows[1].tactic == "0x0000000000000000"
    assert rows[0].layer_type == "CaskConvolution"
    # LAYER_NAMES_ONLY verbosity: plain names, nodes from the '+'-joined name.
    names_only = layers_from_json(json.dumps({"Layers": ["/a/Conv + /b/Relu"]}))
    assert names_only[0].onnx_nodes == ["/a/Conv", "/b/Relu"]


# --------------------------------------------------------------------------- int8 model check


def _quantized(tmp_path: Path, symmetric: bool) -> Path:
    """A real Q/DQ model from ONNX Runtime's quantiser (asymmetric uint8 like engine.artifacts.quantize)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    src = tiny_onnx(tmp_path / "f.onnx")
    rng = np.random.default_rng(1)
    feeds = [{"input": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)} for _ in range(4)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    out = tmp_path / f"q{int(symmetric)}.onnx"
    quantize_static(
        str(src),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        extra_options={"ActivationSymmetric": True} if symmetric else {},
    )
    return out


def test_int8_zero_point_check_on_real_quantised_models(tmp_path):
    problems = qdq_zero_point_problems(_quantized(tmp_path, symmetric=False))
    assert problems.get("uint8", 0) > 0
    assert qdq_zero_point_problems(_quantized(tmp_path, symmetric=True)) == {}


# --------------------------------------------------------------------------- ORT TensorRT EP


def test_ort_trt_ep_is_refused_on_cpu():
    ort = get_backend("ort")
    with pytest.raises(BadInput, match="TensorRT EP"):
        ort.check(RunnerSpec("ort", "cpu", "fp32", (("trt_ep", True),)))
    with pytest.raises(BadInput, match="TensorRT EP"):
        ort.check(RunnerSpec("ort", "cuda", "tf32", (("trt_ep", True),)))


def test_ort_trt_ep_partial_fallback_to_cuda_is_an_error():
    from engine.backends.ort import TRT_EP, check_placement
    from engine.core.errors import ProviderFallback

    used = [TRT_EP, "CUDAExecutionProvider", "CPUExecutionProvider"]
    check_placement(TRT_EP, used, {TRT_EP: {"TRTKernel_graph": 1}})
    with pytest.raises(ProviderFallback, match="fell back to the CUDA EP"):
        check_placement(TRT_EP, used, {TRT_EP: {"x": 1}, "CUDAExecutionProvider": {"Conv": 2}})
    with pytest.raises(ProviderFallback, match="uses only"):
        check_placement(TRT_EP, used[1:], {})


@pytest.mark.gpu
@pytest.mark.skipif(HAVE_TRT, reason="tensorrt imports here; the EP would load")
def test_ort_trt_ep_without_tensorrt_is_caught_as_a_fallback(tmp_path):
    if not _cuda():
        pytest.skip("needs an NVIDIA GPU: the ORT TensorRT EP only exists on CUDA devices")
    import onnxruntime

    if "TensorrtExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has no TensorRT EP built in (onnxruntime-gpu has one)")
    from engine.backends.ort import OrtRunner
    from engine.core.errors import ProviderFallback

    spec = RunnerSpec("ort", "cuda", "fp32", (("trt_ep", True),))
    with pytest.raises(ProviderFallback) as info:
        OrtRunner(spec, str(tiny_onnx(tmp_path / "m.onnx")), PrepareContext(batches=(1,)))
    assert "TensorrtExecutionProvider" in info.value.what


# --------------------------------------------------------------------------- real TensorRT


def _need_real_tensorrt():
    if not HAVE_TRT:
        pytest.skip(f"tensorrt does not import here ({type(REAL).__name__}: {REAL})")
    if getattr(REAL, "IS_FAKE_TENSORRT", False):
        pytest.skip("the stand-in tensorrt module is installed, not the real one")
    if not _cuda():
        pytest.skip("tensorrt imports but no NVIDIA GPU is visible")


@pytest.fixture(scope="module")
def small_model():
    _need_real_tensorrt()  # before the model is built, so a skip costs nothing
    from engine.artifacts.models import load_artifacts
    from engine.core.config import ModelSpec

    return load_artifacts(ModelSpec("resnet18", image_size=64))


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_real_build_run_parity_cache_and_inspect(small_model, precision):
    _need_real_tensorrt()
    from engine.core.parity import compare
    from engine.running.reference import reference_outputs

    spec = RunnerSpec("tensorrt", "cuda", precision, (("workspace_mb", 1024),))
    ctx = PrepareContext(batches=(1, 8))
    x = small_model.sample_input(8)
    with TensorRTBackend.prepare(spec, small_model, ctx) as runner:
        assert runner.provider.startswith("tensorrt ") and runner.info["flavour"] == "full"
        assert runner.info["plan"] in ("built", "rebuilt") and runner.info["build_s"] > 0
        parity = compare(reference_outputs(small_model, x), runner.infer(x), precision)
        assert parity.ok, parity
        layers = runner.inspect()
        assert layers and any(layer.onnx_nodes for layer in layers)
        with pytest.raises(BadInput, match="max_batch"):
            runner.run(runner.to_device(small_model.sample_input(64)))
    with TensorRTBackend.prepare(spec, small_model, PrepareContext(batches=(1, 8))) as again:
        assert again.info["plan"] == "cache"


@pytest.mark.gpu
def test_real_truncated_plan_is_rebuilt_with_a_note(small_model):
    _need_real_tensorrt()
    spec = RunnerSpec("tensorrt", "cuda", "fp32", (("workspace_mb", 1024),))
    with TensorRTBackend.prepare(spec, small_model, PrepareContext(batches=(1,))) as runner:
        key = runner.loaded.key
    plan = key.folder / "plan.engine"
    plan.write_bytes(plan.read_bytes()[:1000])
    ctx = PrepareContext(batches=(1,))
    with TensorRTBackend.prepare(spec, small_model, ctx) as runner:
        assert runner.info["plan"] == "rebuilt"
    assert any("discarded" in n for n in ctx.notes)


def test_version_major_is_read():
    assert trt_major("10.14.1.48") == 10 and trt_major("11.3.0") == 11
    with pytest.raises(EngineError):
        trt_major("not a version")


def test_history_keeps_tensorrt_flavours_apart():
    from engine.core.config import ResultRow
    from engine.storage.history import best_points

    full = ResultRow("resnet18", "tensorrt", "cuda:0", "fp16", 8, provider="tensorrt 10.8.0")
    rtx = ResultRow("resnet18", "tensorrt", "cuda", "fp16", 8, provider="tensorrt-rtx 1.7.1.116")
    full.p50_ms, rtx.p50_ms = 2.0, 1.0
    points = best_points([full, rtx])
    assert points[("tensorrt", "fp16", "cuda", 8)] is full
    assert points[("tensorrt-rtx", "fp16", "cuda", 8)] is rtx
