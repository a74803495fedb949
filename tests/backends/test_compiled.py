"""torch.compile as a backend: registry, checks, on-disk cache, per-batch compiling.

The compile itself runs on the CPU with Inductor's default mode on a small model (it
needs a C++ compiler; the test says so when there is none). Max-autotune on CUDA is
measured by benchmarks/gpu_sweep.py on a GPU machine.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.backends import PrepareContext, backend_names, get_backend
from engine.core.config import ModelSpec, RunnerSpec
from engine.core.errors import BadInput
from tests.conftest import seed_isa_probes


def test_registered_and_per_batch():
    assert "torch_compile" in backend_names()
    backend = get_backend("torch_compile")
    assert backend.per_batch(RunnerSpec("torch_compile", "cuda", "fp16")) is True
    assert backend.availability("cpu").ok


@pytest.mark.parametrize(
    "spec",
    [
        RunnerSpec("torch_compile", "cpu", "int8"),
        RunnerSpec("torch_compile", "cuda", "fp16", (("cuda_graph", True),)),
        RunnerSpec("torch_compile", "cuda", "fp16", (("compile_mode", "fastest-please"),)),
        RunnerSpec("torch_compile", "cpu", "tf32"),
    ],
)
def test_impossible_settings_are_bad_input(spec):
    with pytest.raises(BadInput):
        get_backend("torch_compile").check(spec)


def test_cache_goes_under_the_product_cache(monkeypatch, tmp_path):
    from engine.backends.compiled import inductor_cache_dir

    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    folder = inductor_cache_dir()
    assert Path(folder) == tmp_path / "inductor"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == folder
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert inductor_cache_dir() == str(tmp_path / "mine")  # the user's choice wins


@pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("c++") is None,
    reason="Inductor on the CPU needs a C++ compiler and none is on PATH",
)
def test_compiles_on_cpu_matches_eager_and_reports_progress(monkeypatch, tmp_path):
    from engine.artifacts.models import load_artifacts
    from engine.core.parity import compare

    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path))
    seed_isa_probes(tmp_path / "inductor")  # the product's folder, as after a first run
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    # resnet18 has few distinct layers, so Inductor's CPU compile stays short
    art = load_artifacts(ModelSpec("resnet18", image_size=32))
    x = art.sample_input(2)
    said: list[str] = []
    ctx = PrepareContext(batches=(2,), progress=said.append)
    eager_spec = RunnerSpec("torch", "cpu", "fp32")
    with get_backend("torch").prepare(eager_spec, art, PrepareContext()) as eager:
        ref = eager.infer(x)
    spec = RunnerSpec("torch_compile", "cpu", "fp32", (("compile_mode", "default"),))
    with get_backend("torch_compile").prepare(spec, art, ctx) as runner:
        out = runner.infer(x)
        assert runner.provider == "torch-inductor-cpu"
        assert "[2, 3, 32, 32]" in runner.info["compile_s"]
        again = runner.infer(x)  # same shape: no second compile
    assert len([m for m in said if m.startswith("compiling")]) == 1
    assert any(m.startswith("compiled for input") for m in said)
    assert compare(ref, out, "fp32").ok
    np.testing.assert_allclose(out, again, rtol=1e-5, atol=1e-5)
    assert any((tmp_path / "inductor").iterdir())  # artifacts landed on disk


def test_sweep_builds_per_batch_runners_for_their_batch_alone(small_artifacts):
    """A per-batch backend is prepared once per batch size, with only that batch."""
    from engine.core.config import BenchSettings, SweepConfig
    from engine.running.sweep import run_sweep

    seen: list[tuple[tuple[int, ...], bool]] = []

    def factory(spec, art, ctx):
        # a real eager runner stands in for the compiled one, so no compile is needed
        seen.append((ctx.batches, bool(spec.opts.get("cuda_graph"))))
        return get_backend("torch").prepare(RunnerSpec("torch", "cpu", "fp32"), art, ctx)

    config = SweepConfig(
        model=small_artifacts.spec,
        runners=[RunnerSpec("torch_compile", "cpu", "fp32")],
        batches=[1, 4],
        bench=BenchSettings(warmup=0, iters=2),
    )
    outcome = run_sweep(config, runner_factory=factory, artifacts=small_artifacts)
    assert [r.status for r in outcome.rows] == ["ok", "ok"]
    # Parity judges at batch 4, one of the sweep's own, with the runner batch 4 is then timed
    # with: one build per shape (a compile is minutes per shape on a GPU), none for batch 8.
    assert [b for b, _ in seen] == [(4,), (1,)]
    assert [r.parity_status for r in outcome.rows] == ["ok", "ok"]


def test_modes_that_differ_only_by_cuda_graphs_share_one_package(small_artifacts):
    """A package holds no CUDA graph (the runner captures its own), so max-autotune and
    max-autotune-no-cudagraphs compile the same file, as do reduce-overhead and default:
    keyed by the mode asked for, trying both waited for a second identical build."""
    backend = get_backend("torch_compile")

    def key(device: str, mode: str):
        spec = RunnerSpec("torch_compile", device, "fp32", (("compile_mode", mode),))
        return backend.engine_key(spec, small_artifacts, 4)

    for device in ("cpu", "cuda") if _has_cuda() else ("cpu",):
        assert key(device, "max-autotune") == key(device, "max-autotune-no-cudagraphs")
        assert key(device, "reduce-overhead") == key(device, "default")
        assert key(device, "max-autotune") != key(device, "default")
    assert key("cpu", "reduce-overhead").compiled_mode == "default"


def test_each_graph_mode_compiles_as_its_graphless_mode_in_inductor():
    """The pairs above must be what Inductor says: the same options, CUDA graphs apart."""
    import torch._inductor

    from engine.backends.compiled import MODES
    from engine.backends.compiled_engine import GRAPH_MODES, package_mode

    def graphless(mode: str) -> dict:
        options = dict(torch._inductor.list_mode_options(mode))
        options.pop("triton.cudagraphs", None)
        return options

    for mode in MODES:
        assert graphless(mode) == graphless(package_mode(mode)), mode
        assert "triton.cudagraphs" not in torch._inductor.list_mode_options(package_mode(mode))
    for mode in GRAPH_MODES:  # the runner captures a graph in exactly these
        assert torch._inductor.list_mode_options(mode).get("triton.cudagraphs"), mode


def test_what_a_key_means_is_said_and_an_old_or_hostile_record_says_nothing():
    from engine.backends import cache_detail
    from engine.backends.compiled_engine import KIND
    from tests.backends.engine_keys import key_of

    gpu = key_of(compiled_mode="max-autotune-no-cudagraphs", device_name="NVIDIA H200")
    assert cache_detail(KIND, {"key": gpu.to_dict()}) == (
        "mode max-autotune-no-cudagraphs; max-autotune loads it too and captures a CUDA graph"
        " at run time"
    )
    cpu = cache_detail(KIND, {"key": key_of().to_dict()})
    assert cpu == "mode default; reduce-overhead loads it too (no CUDA graph on the CPU)"
    old = {**key_of().to_dict(), "schema": 2, "compile_mode": "max-autotune"}
    old.pop("compiled_mode")
    for meta in ({"key": old}, {"key": {"compiled_mode": ["x"]}}, {"key": "x"}, {}):
        assert cache_detail(KIND, meta) == "", meta
    assert cache_detail("onnx", {"key": gpu.to_dict()}) == ""


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_a_torchvision_models_engine_key_names_the_torchvision_version(small_artifacts):
    """torchvision's model code can change between releases with the same weights: an
    engine compiled from the old code was loaded under the new one."""
    from importlib import metadata

    spec = RunnerSpec("torch_compile", "cpu", "fp32", (("packaged", True),))
    key = get_backend("torch_compile").engine_key(spec, small_artifacts, 4)
    assert key.torchvision_version == metadata.version("torchvision")


def test_the_load_note_names_inductors_cpu_probes_apart_from_the_load():
    """A first load in an Inductor folder spends seconds compiling Inductor's CPU probes
    (about 8 s of a CPU load's 8.2 s on 2 cores): the note says so, apart from the load."""
    from engine.backends.compiled import _before_load, _isa_probes_s

    assert _before_load(0.1, 0.2) == ""
    note = _before_load(1.2, 7.9)
    assert note == (
        " (after 1.2 s importing Inductor and 7.9 s of Inductor's CPU instruction-set probes)"
    )
    assert "probes" in _before_load(0.0, 0.6) and "importing" not in _before_load(0.0, 0.6)
    assert 0 <= _isa_probes_s() < 60  # answered from this process's folder or its cache


_UNPROBED = """
import logging, os
from pathlib import Path
from torch._inductor import config
from torch._inductor.cpu_vec_isa import pick_vec_isa, valid_vec_isa_list
from engine.backends.compiled import _cpu_isa_unprobed

shown = []
class Keep(logging.Handler):
    def emit(self, record):
        shown.append(record.args[0])
log = logging.getLogger("torch.export.pt2_archive._package")
log.addHandler(Keep())
warn = lambda key: log.warning("Device information mismatch for %s: %s vs %s.", key, "a", "b")
with _cpu_isa_unprobed():
    isa = str(pick_vec_isa())
    warn("AOTI_CPU_ISA")
    warn("GPU")
warn("AOTI_CPU_ISA")
after = (config.cpp.vec_isa_ok, valid_vec_isa_list.cache_info().currsize)
config.cpp.vec_isa_ok = True  # as TORCHINDUCTOR_VEC_ISA_OK=1 sets it: the user's word stands
with _cpu_isa_unprobed():
    users = config.cpp.vec_isa_ok
built = sorted(p.name for p in Path(os.environ["TORCHINDUCTOR_CACHE_DIR"]).rglob("*.so"))
print(repr((isa, shown, after, users, built)))
"""


def test_a_cuda_package_load_skips_inductors_cpu_probes_for_that_load_only(tmp_path):
    """torch 2.11 spent 43 s of every fresh process's CUDA package load on Inductor's CPU
    probes (H100 machine, 2026-12-07). For that load nothing is probed or compiled, torch's
    warning that the answer differs from the package's is the only one not shown, and
    afterwards Inductor probes as usual (a later CPU compile), the user's own setting kept."""
    import ast
    import subprocess
    import sys

    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    env.pop("TORCHINDUCTOR_VEC_ISA_OK", None)
    done = subprocess.run(
        [sys.executable, "-c", _UNPROBED], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    isa, shown, after, users, built = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert isa == "INVALID_VEC_ISA" and built == []  # nothing probed for the load
    assert shown == ["GPU", "AOTI_CPU_ISA"]  # only the caused warning, only during the load
    assert after == (None, 0) and users is True
