import numpy as np
import pytest

from engine.backends import PrepareContext, get_backend
from engine.backends.ort import OrtRunner, check_placement
from engine.core.config import RunnerSpec
from engine.core.errors import BadInput, ProviderFallback, Unavailable
from engine.core.parity import compare


def _infer(spec, art, batch=4):
    with get_backend(spec.backend).prepare(spec, art, PrepareContext(batches=(batch,))) as r:
        return r, r.infer(art.sample_input(batch))


def test_torch_and_ort_agree_on_cpu(small_artifacts):
    torch_runner, ref = _infer(RunnerSpec("torch", "cpu", "fp32"), small_artifacts)
    ort_runner, out = _infer(RunnerSpec("ort", "cpu", "fp32"), small_artifacts)
    assert torch_runner.provider == "torch-cpu"
    assert ort_runner.provider == "CPUExecutionProvider"
    assert ort_runner.info["node_placement"]["CPUExecutionProvider"]["Conv"] > 0
    assert compare(ref, out, "fp32").ok


def test_channels_last_and_bf16_on_cpu(small_artifacts):
    _, ref = _infer(RunnerSpec("torch", "cpu", "fp32"), small_artifacts)
    _, cl = _infer(RunnerSpec("torch", "cpu", "fp32", (("channels_last", True),)), small_artifacts)
    assert compare(ref, cl, "fp32").ok
    _, bf = _infer(RunnerSpec("torch", "cpu", "bf16"), small_artifacts)
    p = compare(ref, bf, "bf16")
    assert p.ok and p.max_rel_err > 1e-4  # it really ran in reduced precision


def test_int8_runs_on_cpu_and_roughly_agrees(small_artifacts):
    _, ref = _infer(RunnerSpec("torch", "cpu", "fp32"), small_artifacts, 8)
    runner, out = _infer(RunnerSpec("ort", "cpu", "int8"), small_artifacts, 8)
    placement = runner.info["node_placement"]["CPUExecutionProvider"]
    assert any(op in placement for op in ("QLinearConv", "ConvInteger", "QuantizeLinear"))
    p = compare(ref, out, "int8")
    assert p.ok, p


@pytest.mark.parametrize(
    "spec, error",
    [
        (RunnerSpec("torch", "cpu", "int8"), BadInput),
        (RunnerSpec("torch", "cpu", "tf32"), BadInput),
        (RunnerSpec("ort", "cpu", "fp16"), BadInput),
        (RunnerSpec("ort", "cuda", "int8"), BadInput),
        (RunnerSpec("torch", "tpu", "fp32"), BadInput),
        (RunnerSpec("ort", "cpu", "fp64"), BadInput),
    ],
)
def test_impossible_combinations(spec, error, small_artifacts):
    with pytest.raises(error):
        get_backend(spec.backend).prepare(spec, small_artifacts, PrepareContext())


def test_cuda_without_gpu_is_unavailable(small_artifacts):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for backend in ("torch", "ort"):
        avail = get_backend(backend).availability("cuda")
        assert not avail.ok and avail.reason and avail.fix
        with pytest.raises(Unavailable):
            get_backend(backend).prepare(
                RunnerSpec(backend, "cuda"), small_artifacts, PrepareContext()
            )


def test_silent_cuda_fallback_is_an_error(small_artifacts):
    """The study's failure, for real: onnxruntime-gpu asked for CUDA on a machine that cannot."""
    import onnxruntime as ort
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a working GPU")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("the CPU-only onnxruntime package cannot even ask for CUDA")
    path = str(small_artifacts.onnx_path("fp32"))
    with pytest.raises(ProviderFallback, match="uses only CPUExecutionProvider"):
        OrtRunner(RunnerSpec("ort", "cuda", "fp32"), path, PrepareContext(batches=(2,)))


def test_partial_fallback_of_compute_nodes_is_flagged(small_artifacts):
    runner = get_backend("ort").prepare(
        RunnerSpec("ort", "cpu", "fp32"), small_artifacts, PrepareContext(batches=(1,))
    )
    real_placement = runner.info["node_placement"]  # every node really ran on the CPU EP
    used = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(ProviderFallback, match=r"\d+× Conv"):
        check_placement("CUDAExecutionProvider", used, real_placement)
    check_placement("CPUExecutionProvider", ["CPUExecutionProvider"], real_placement)


def test_perturbed_runner_fails_parity(small_artifacts):
    _, ref = _infer(RunnerSpec("torch", "cpu", "fp32"), small_artifacts, 8)
    _, out = _infer(RunnerSpec("ort", "cpu", "fp32"), small_artifacts, 8)
    rng = np.random.default_rng(0)
    spread = (ref - ref.mean(0)).std()
    perturbed = out + rng.standard_normal(out.shape).astype(np.float32) * spread * 0.5
    assert compare(ref, out, "fp32").ok
    bad = compare(ref, perturbed, "fp32")
    assert not bad.ok and bad.max_rel_err > 0.5
