"""PyTorch on CUDA: each precision and option does what its label says, and still agrees.

Each test asserts the effect, not only that a run finished: math-mode flags read back from
torch, numeric differences between strict FP32 and TF32, dtypes and memory formats of the
device tensors, layers really fused, a CUDA graph really replayed.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.backends import PrepareContext, get_backend
from engine.core.config import RunnerSpec
from engine.core.parity import compare
from engine.running.reference import reference_outputs

pytestmark = pytest.mark.gpu


def _runner(art, precision="fp32", batches=(4,), **options):
    spec = RunnerSpec("torch", "cuda", precision).with_options(**options)
    return get_backend("torch").prepare(spec, art, PrepareContext(batches=tuple(batches)))


@pytest.fixture(scope="module")
def ref(art):
    x = art.sample_input(8, seed=99)
    return x, reference_outputs(art, x)


def test_strict_fp32_really_turns_tf32_off(cuda, art):
    with _runner(art, "fp32") as r:
        r.infer(art.sample_input(2))
        assert cuda.backends.cudnn.allow_tf32 is False
        assert cuda.backends.cuda.matmul.allow_tf32 is False
        assert r.provider == "torch-cuda"


def test_tf32_really_turns_tf32_on(cuda, art):
    with _runner(art, "tf32") as r:
        r.infer(art.sample_input(2))
        assert cuda.backends.cudnn.allow_tf32 is True
        assert cuda.backends.cuda.matmul.allow_tf32 is True


def test_tf32_changes_the_numbers_and_strict_fp32_is_closer_to_float64(cuda, art):
    """TF32 keeps 10 mantissa bits: on the same input its logits differ from strict FP32's."""
    x = art.sample_input(8, seed=5)
    with _runner(art, "fp32") as r:
        strict = r.infer(x)
    with _runner(art, "tf32") as r:
        loose = r.infer(x)
    model64 = art.torch_module().double().eval()
    with cuda.no_grad():
        exact = model64(cuda.from_numpy(x).double()).numpy()
    art.torch_module().float()
    err_strict = np.abs(strict - exact).max()
    err_tf32 = np.abs(loose - exact).max()
    assert not np.array_equal(strict, loose)
    assert err_strict < err_tf32


@pytest.mark.parametrize(
    "precision, dtype", [("fp16", "float16"), ("bf16", "bfloat16"), ("fp32", "float32")]
)
def test_precision_sets_the_device_dtype(cuda, art, precision, dtype):
    with _runner(art, precision) as r:
        x_dev = r.to_device(art.sample_input(2))
        assert x_dev.is_cuda and str(x_dev.dtype) == f"torch.{dtype}"
        assert next(r.model.parameters()).dtype == x_dev.dtype
        assert str(r.run(x_dev).dtype) == f"torch.{dtype}"


@pytest.mark.parametrize(
    "precision, options",
    [
        ("fp32", {}),
        ("tf32", {}),
        ("fp16", {}),
        ("bf16", {}),
        ("fp16", {"channels_last": True}),
        ("fp16", {"cudnn_benchmark": True}),
        ("fp16", {"fuse_bn": True}),
        ("fp16", {"cuda_graph": True}),
        ("fp16", {"fuse_relu": True}),
        ("fp16", {"channels_last": True, "fuse_relu": True, "cuda_graph": True}),
    ],
)
def test_every_precision_and_option_agrees_with_the_reference(art, ref, precision, options):
    x, reference = ref
    with _runner(art, precision, batches=(8,), **options) as r:
        parity = compare(reference, r.infer(x), precision)
    assert parity.ok, (precision, options, parity)


def test_channels_last_really_changes_the_memory_format(cuda, art):
    with _runner(art, "fp16", channels_last=True) as r:
        x_dev = r.to_device(art.sample_input(2))
        assert x_dev.is_contiguous(memory_format=cuda.channels_last)
        conv = next(m for m in r.model.modules() if isinstance(m, cuda.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=cuda.channels_last)
    with _runner(art, "fp16") as r:
        x_dev = r.to_device(art.sample_input(2))
        assert not x_dev.is_contiguous(memory_format=cuda.channels_last)


def test_cudnn_autotune_turns_benchmark_mode_on_and_off(cuda, art):
    with _runner(art, "fp16", cudnn_benchmark=True) as r:
        r.infer(art.sample_input(2))
        assert cuda.backends.cudnn.benchmark is True
    with _runner(art, "fp16") as r:
        r.infer(art.sample_input(2))
        assert cuda.backends.cudnn.benchmark is False


def test_batchnorm_folding_removes_every_batchnorm(cuda, art):
    assert any(isinstance(m, cuda.nn.BatchNorm2d) for m in art.torch_module().modules())
    with _runner(art, "fp16", fuse_bn=True) as r:
        assert not any(isinstance(m, cuda.nn.BatchNorm2d) for m in r.model.modules())
        assert r.info["fuse_bn"] is True


def test_fused_conv_relu_uses_cudnn_fused_layers(cuda, art):
    from engine.backends.torch_backend import ConvReLU

    with _runner(art, "fp16", fuse_relu=True) as r:
        fused = [m for m in r.model.modules() if isinstance(m, ConvReLU)]
        assert r.fused_convs == len(fused) > 0
        # resnet18: the stem, one per basic block (conv1+ReLU) and one residual add per block
        assert r.fused_convs >= 17


def test_cuda_graph_is_captured_once_and_replayed(cuda, art):
    with _runner(art, "fp16", cuda_graph=True) as r:
        a = art.sample_input(4, seed=1)
        b = art.sample_input(4, seed=2)
        x_dev = r.to_device(a)
        y1 = r.run(x_dev)
        out_a = y1.float().cpu().numpy().copy()
        assert len(r._graphs) == 1
        graph, static_x, static_y = r._graphs[(4, 3, 64, 64)]
        # New data through the captured input buffer: the replay must compute it.
        y2 = r.run(r.to_device(b))
        assert y2.data_ptr() == static_y.data_ptr()
        out_b = y2.float().cpu().numpy()
        assert len(r._graphs) == 1
        assert not np.allclose(out_a, out_b)
        with _runner(art, "fp16") as eager:
            np.testing.assert_allclose(out_b, eager.infer(b), rtol=0.05, atol=0.05)


def test_cuda_graph_captures_one_graph_per_batch_size(cuda, art):
    with _runner(art, "fp16", batches=(1, 2), cuda_graph=True) as r:
        r.infer(art.sample_input(1))
        r.infer(art.sample_input(2))
        assert sorted(k[0] for k in r._graphs) == [1, 2]


def test_peak_memory_is_read_on_cuda(cuda, art):
    with _runner(art, "fp16") as r:
        r.reset_peak_memory()
        r.infer(art.sample_input(8))
        peak = r.peak_memory_mb()
        assert peak is not None and peak > 0


def test_cpu_only_options_are_refused_on_the_cpu_but_run_on_cuda(cuda, art):
    from engine.core.errors import BadInput

    for opt in ("cuda_graph", "cudnn_benchmark", "fuse_relu"):
        spec = RunnerSpec("torch", "cpu", "fp32").with_options(**{opt: True})
        with pytest.raises(BadInput):
            get_backend("torch").prepare(spec, art, PrepareContext())
        with _runner(art, "fp16", **{opt: True}) as r:
            assert np.isfinite(r.infer(art.sample_input(2))).all()
