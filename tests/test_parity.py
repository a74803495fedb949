import numpy as np
import pytest

from engine.parity import centred, compare


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
