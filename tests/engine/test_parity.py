import numpy as np
import pytest

from engine.core.parity import centred, compare


def test_centring_removes_the_input_independent_part():
    rng = np.random.default_rng(0)
    bias = rng.standard_normal(1000) * 100  # what a random-weight net says for every input
    signal = rng.standard_normal((8, 1000))
    ref = bias + signal
    assert len(set(ref.argmax(1))) < 3
    assert len(set(centred(ref).argmax(1))) > 4
    assert compare(ref, ref + 1e-6, "fp32").ok
    shuffled = bias + signal[::-1]  # same degenerate top-1, different input-dependent part
    p = compare(ref, shuffled, "fp32")
    assert not p.ok and p.top1_agree < 0.5


def test_nan_output_fails():
    ref = np.random.default_rng(1).standard_normal((4, 10))
    bad = ref.copy()
    bad[0, 0] = np.nan
    assert not compare(ref, bad, "fp16").ok


def test_needs_two_inputs_and_matching_shapes():
    with pytest.raises(ValueError):
        compare(np.zeros((1, 10)), np.zeros((1, 10)))
    with pytest.raises(ValueError):
        compare(np.zeros((2, 10)), np.zeros((2, 11)))


def test_constant_logits_are_not_judged_never_ok_or_failed():
    # torchvision's ViT-B/16 head is all zeros: every input gives the same logits.
    ref = np.zeros((8, 1000))
    for cand in (ref, ref + 1.0, np.full_like(ref, np.nan)):
        p = compare(ref, cand, "fp32")
        assert (p.status, p.ok) == ("not judged", None)
        assert "do not depend on the input" in p.reason


def test_a_signal_below_the_precision_is_not_judged_there_but_judged_in_fp32():
    rng = np.random.default_rng(2)
    # EfficientNet-B0 with torchvision's init: logits about 1e-14, below FP16's range.
    tiny = rng.standard_normal((8, 100)) * 1e-14
    assert compare(tiny, tiny, "fp16").status == "not judged"
    assert "smallest fp16 number" in compare(tiny, tiny, "fp16").reason
    assert compare(tiny, tiny, "fp32").status == "ok"
    # a spread of 0.01 on logits of magnitude 100 is below FP16's and BF16's resolution
    big = 100.0 + rng.standard_normal((8, 100)) * 1e-2
    for precision in ("fp16", "bf16"):
        p = compare(big, big + rng.standard_normal(big.shape) * 0.1, precision)
        assert p.status == "not judged" and "too small for" in p.reason, precision
    assert compare(big, big, "fp32").status == "ok"
    assert compare(big, big + rng.standard_normal(big.shape), "fp32").status == "failed"


def test_non_finite_reference_is_not_judged_and_non_finite_candidate_fails():
    ref = np.random.default_rng(3).standard_normal((4, 10))
    bad = ref.copy()
    bad[1, 2] = np.inf
    assert compare(bad, ref, "fp32").status == "not judged"
    p = compare(ref, bad, "fp32")
    assert (p.status, p.ok, p.reason) == ("failed", False, "the outputs are not finite")
