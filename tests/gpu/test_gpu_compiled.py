"""Compiled engines on CUDA (issue 29): a packaged engine is built once, captured in a CUDA
graph where its mode says so, agrees with FP32, and a second runner loads it with nothing
compiled."""

from __future__ import annotations

import pytest

from engine.backends import PrepareContext, get_backend
from engine.core.config import RunnerSpec
from engine.core.parity import compare
from engine.running.sweep import reference_outputs

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
