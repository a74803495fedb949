"""Compiled engines on CUDA (issue 29): a packaged engine is built once, captured in a CUDA
graph where its mode says so, agrees with FP32, and a second runner loads it with nothing
compiled."""

from __future__ import annotations

import pytest

from engine.backends import PrepareContext, get_backend
from engine.core.config import RunnerSpec
from engine.core.parity import compare
from engine.running.reference import reference_outputs

pytestmark = pytest.mark.gpu


def _runner(art, batch: int, **options):
    spec = RunnerSpec("torch_compile", "cuda", "fp16").with_options(packaged=True, **options)
    ctx = PrepareContext(batches=(batch,))
    return get_backend("torch_compile").prepare(spec, art, ctx), ctx


def test_a_packaged_engine_is_built_once_graphed_and_agrees(cuda, art, tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path))
    x = art.sample_input(4, seed=99)
    reference = reference_outputs(art, x)
    first, ctx = _runner(art, 4, compile_mode="reduce-overhead")
    with first:
        y = first.infer(x)
        assert first.info["engine"] == "built now" and first.use_graph
        assert first._graphs, "reduce-overhead on CUDA replays a captured graph"
        assert first.provider == "torch-aoti-cuda"
    assert compare(reference, y, "fp16").status == "ok"
    second, ctx = _runner(art, 4, compile_mode="reduce-overhead")
    with second:
        assert compare(reference, second.infer(x), "fp16").status == "ok"
        assert second.info["engine"] == "loaded from the cache"
    assert any("nothing compiled" in n for n in ctx.notes)


def test_the_mode_without_graphs_loads_the_package_and_captures_nothing(
    cuda, art, tmp_path, monkeypatch
):
    # A package carries no CUDA graph of its own: reduce-overhead and default share one, and
    # only the mode asked for decides whether the runner captures a graph.
    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path))
    x = art.sample_input(4, seed=7)
    reference = reference_outputs(art, x)
    graphed, _ = _runner(art, 4, compile_mode="reduce-overhead")
    with graphed:
        graphed.infer(x)
        assert graphed.info["engine"] == "built now"
    plain, ctx = _runner(art, 4, compile_mode="default")
    with plain:
        assert compare(reference, plain.infer(x), "fp16").status == "ok"
        assert plain.info["engine"] == "loaded from the cache"
        assert not plain.use_graph and not plain._graphs
    assert any("nothing compiled" in n for n in ctx.notes)


def test_a_cached_package_is_the_first_thing_a_fresh_worker_runs(cuda, tmp_path):
    # On an H100 on 2026-12-07 (torch 2.11) every process that loaded a CUDA package without
    # ONNX Runtime's module imported first died (SIGSEGV), and every load spent about 43 s on
    # Inductor's CPU probes: the product imports the module first and skips the probes.
    import json
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "VISIONBENCH_CACHE": str(tmp_path / "cache"),
        "VISIONBENCH_DATA": str(tmp_path / "data"),
    }
    common = ["--model", "resnet18", "--image-size", "64", "--batch", "4", "--device", "cuda"]
    common += ["--precision", "fp16", "--channels-last", "--packaged"]

    def engine(*argv: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-X", "faulthandler", "-m", "engine", *argv]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)

    built = engine("build", "--backend", "torch_compile", *common)
    assert built.returncode == 0, built.stderr[-3000:]
    out = tmp_path / "run.json"
    ran = engine("bench", "--backend", "torch_compile", *common, "--iters", "5", "--json", str(out))
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "loaded the cached compiled engine" in ran.stderr, ran.stderr[-3000:]
    assert "instruction-set probes" not in ran.stderr, ran.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["status"], r["provider"], r["parity_status"]) for r in rows] == [
        ("ok", "torch-aoti-cuda", "ok")
    ], rows
