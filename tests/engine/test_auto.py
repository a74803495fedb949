"""Auto mode: candidates per device, the ladder as data, and a real CPU run end to end."""

from __future__ import annotations

import json

import pytest

from engine.core.config import BenchSettings, ModelSpec, ResultRow, RunnerSpec, SweepConfig
from engine.core.errors import BadInput
from engine.running.auto import AutoOutcome, candidates, format_ladder, ladders_from_rows, run_auto


def test_cpu_candidates_start_with_the_pytorch_baseline():
    specs = candidates("cpu")
    assert (specs[0].backend, specs[0].precision) == ("torch", "fp32")
    assert {(s.backend, s.precision) for s in specs} == {
        ("torch", "fp32"),
        ("ort", "fp32"),
        ("ort", "int8"),
    }
    assert all(s.device == "cpu" for s in specs)


def test_cuda_ladder_adds_one_setting_at_a_time():
    specs = candidates("cuda:1")
    assert specs[0] == RunnerSpec("torch", "cuda:1", "fp32")
    torch_steps = [s for s in specs if s.backend == "torch"]
    # each PyTorch FP16 step keeps the options of the one before it
    fp16 = [set(k for k, v in s.options if v) for s in torch_steps if s.precision == "fp16"]
    assert all(a <= b for a, b in zip(fp16, fp16[1:], strict=False))
    assert "cuda_graph" in fp16[-1]
    ort = [s for s in specs if s.backend == "ort"]
    assert ort[-1].opts.get("cuda_graph") and ort[-1].opts.get("prefer_nhwc")
    assert not any(s.backend == "torch_compile" for s in specs)
    assert candidates("cuda", include_compile=True)[-1].backend == "torch_compile"
    assert {s.backend for s in candidates("cuda", ["ort"])} == {"ort"}


def _row(batch: int, backend: str, p50: float | None, parity: bool | None, status="ok", **opts):
    return ResultRow(
        model="m",
        backend=backend,
        device="cuda",
        precision="fp16",
        batch=batch,
        status=status,
        options=opts,
        p50_ms=p50,
        throughput_ips=batch * 1000 / p50 if p50 else None,
        parity_ok=parity,
        max_rel_err=0.9 if parity is False else 0.01,
    )


def test_ladder_picks_the_fastest_row_whose_outputs_agree():
    rows = [
        _row(8, "torch", 10.0, True),
        _row(8, "torch", 4.0, True, channels_last=True),
        _row(8, "ort", 1.0, False),  # fastest, but computes something else
        _row(8, "ort", None, None, status="failed"),
        _row(1, "torch", 2.0, True),
    ]
    ladders = ladders_from_rows(rows)
    steps = ladders[8]
    assert [s.step for s in steps] == [0, 1, 2, 3]
    assert [s.best for s in steps] == [False, True, False, False]
    assert steps[1].speedup == pytest.approx(10.0 / 4.0)
    assert steps[0].speedup == pytest.approx(1.0)
    assert "disagree" in steps[2].reason
    assert steps[3].speedup is None
    assert ladders[1][0].best  # a batch with only the baseline picks the baseline
    assert "channels-last" in steps[1].label


@pytest.fixture(scope="module")
def cpu_auto(tmp_path_factory):
    from engine.storage.store import Store

    db = tmp_path_factory.mktemp("auto") / "auto.sqlite"
    config = SweepConfig(
        model=ModelSpec("mobilenet_v3_small", image_size=64),
        runners=[RunnerSpec("torch", "cpu", "fp32"), RunnerSpec("ort", "cpu", "fp32")],
        batches=[2],
        bench=BenchSettings(warmup=1, iters=3, max_time_s=2.0, threads=1),
        parity=False,  # auto mode turns it back on
    )
    store = Store(db)
    outcome = run_auto(config, store=store)
    yield outcome, store
    store.close()


def test_auto_on_cpu_measures_every_candidate_with_parity(cpu_auto):
    outcome, store = cpu_auto
    assert isinstance(outcome, AutoOutcome)
    measured = {(r.backend, r.precision) for r in outcome.rows if r.status == "ok"}
    assert measured == {("torch", "fp32"), ("ort", "fp32"), ("ort", "int8")}
    assert all(r.parity_ok is not None for r in outcome.rows if r.status == "ok")
    steps = outcome.ladders[2]
    assert steps[0].label == "PyTorch FP32" and steps[0].speedup == pytest.approx(1.0)
    best = outcome.best[2]
    ok = [s for s in steps if s.status == "ok" and s.parity_ok]
    assert best.p50_ms == min(s.p50_ms for s in ok)
    # the same ladder comes back from the stored rows alone
    again = ladders_from_rows(store.rows(outcome.run_id))
    assert [(s.label, s.best) for s in again[2]] == [(s.label, s.best) for s in steps]
    records = outcome.ladder_records()
    assert json.loads(json.dumps(records))[0]["batch"] == 2
    assert "*" in format_ladder(outcome)


def test_auto_refuses_backends_it_has_no_candidates_for():
    config = SweepConfig(
        model=ModelSpec("mobilenet_v3_small", image_size=64),
        runners=[RunnerSpec("tensorrt", "cpu", "fp16")],
        batches=[1],
    )
    with pytest.raises(BadInput):
        run_auto(config)


def test_fused_conv_relu_keeps_the_function_and_fuses_every_relu():
    """The last PyTorch step folds BN, then fuses conv + bias (+ residual) + ReLU."""
    import torch
    import torchvision

    from engine.backends.torch_backend import ConvReLU, fuse_batchnorm, fuse_conv_relu

    model = torchvision.models.resnet18(num_classes=10).eval()
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        fused, n = fuse_conv_relu(fuse_batchnorm(model))
        out = fused(x)
    # resnet18: the stem's ReLU, then two per basic block (one after an add) × 8 blocks
    assert n == 17
    assert sum(isinstance(m, ConvReLU) for m in fused.modules()) == n
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    # a model with nothing to fuse comes back as it was
    plain = torch.nn.Sequential(torch.nn.Linear(4, 4))
    assert fuse_conv_relu(plain)[1] == 0


def test_cudnn_only_settings_are_refused_on_the_cpu():
    from engine.backends import get_backend

    for opt in ("fuse_relu", "cudnn_benchmark"):
        with pytest.raises(BadInput):
            get_backend("torch").check(RunnerSpec("torch", "cpu", "fp32", ((opt, True),)))


def test_a_row_whose_parity_was_off_or_not_judged_never_wins():
    off = _row(8, "ort", 1.0, None)
    unjudged = _row(8, "ort", 0.5, None, fuse_relu=True)
    unjudged.parity_status = "not judged"
    unjudged.parity_reason = "the reference logits do not depend on the input"
    rows = [_row(8, "torch", 10.0, True), off, unjudged]
    steps = ladders_from_rows(rows)[8]
    assert [s.best for s in steps] == [True, False, False]
    text = format_ladder(AutoOutcome(run_id=None, ladders={8: steps}))
    lines = text.splitlines()
    above = lines.index(next(ln for ln in lines if " 0.500 ms" in ln)) - 1
    assert "cannot win: parity not judged: the reference logits do not" in lines[above]
    assert "cannot win: parity off" in text
    only_unjudged = ladders_from_rows([unjudged])[8]
    assert not only_unjudged[0].best
    assert "no winner" in format_ladder(AutoOutcome(run_id=None, ladders={8: only_unjudged}))


def test_a_step_whose_extra_options_changed_nothing_says_so():
    # On a model without batch norm the folding step runs what the step before it ran:
    # the sweep drops the inert option from the row, and the ladder names the twin.
    rows = [
        _row(8, "torch", 10.0, True),
        _row(8, "torch", 4.0, True, channels_last=True),
        _row(8, "torch", 4.1, True, channels_last=True),
    ]
    rows[2].reason = "had no effect, left out of the label: BN folding: no batch norm"
    steps = ladders_from_rows(rows)[8]
    assert steps[2].label == steps[1].label
    assert steps[2].reason.startswith("the same configuration as step 1: had no effect")
    assert steps[1].reason == ""
