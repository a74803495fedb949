"""Do two backends agree? Compared on the input-dependent part of the logits.

Random-weight classifiers give nearly the same logits for every input, so raw top-1
agreement is meaningless; centring the logits by their batch mean keeps only what
depends on the input. Errors are relative to the spread of the centred reference.
When that spread is zero, not finite, or below what the compared precision can resolve,
the answer is "not judged" with the reason: neither ok nor failed, and never a winner.
"""

from __future__ import annotations

import numpy as np

from engine.core.config import Parity

PARITY_BATCH = 8
PARITY_MIN_BATCH = 2  # the logits are centred over the batch

# precision → (max error relative to the centred spread, minimum mean cosine)
#
# Measured on the CPU (AMD EPYC, torch 2.14.1, 2026-11-30) over 12 classifiers with the
# engine's random weights (recipe 3) at 64 px (ViT-B/16 at 224), PARITY_BATCH inputs; FP16
# and BF16 emulated by casting the PyTorch model (benchmarks/parity_tolerances.py, results
# in benchmarks/results/parity_tolerances/):
# - FP32, ONNX Runtime against PyTorch: max rel err ≤ 8.8e-5, cosine 1.000000.
# - FP16: max rel err 0.006–0.22 (ShuffleNet V2 0.22, MNASNet 0.083), cosine ≥ 0.9985.
#   With recipe 2's weights it reached 0.40 (RegNetY-400MF): 0.25 would have failed two
#   healthy networks, so the bound is 0.5; the cosine bound stays at 0.99.
# - BF16 rounds 8× coarser than FP16: max rel err 0.05–0.48, cosine ≥ 0.992, except
#   ShuffleNet V2 (1.68, cosine 0.926: it has no residual additions for recipe 3 to scale,
#   and a BF16 run of that random network no longer tracks the reference: failed, as it
#   should be). The error bound scales to 2.0; the cosine (0.95) carries the verdict.
# - On the GPU (NVIDIA H200, torch 2.11, onnxruntime-gpu 1.31.1, 2026-11-30, weights
#   recipe 3) over the zoo's 11 architectures at 224 px, all 429 rows of auto mode judged
#   (benchmarks/results/zoo/): FP16 max rel err ≤ 0.098 (PyTorch 0.088, ONNX Runtime 0.098),
#   cosine ≥ 0.99967; BF16 ≤ 0.58, cosine ≥ 0.9887; TF32 (PyTorch TF32, ONNX Runtime as
#   shipped, judged at TF32) ≤ 0.039, cosine ≥ 0.99996.
#   With recipe 2's weights ResNet50 FP16 measured 0.64 / 0.987 there and failed: the
#   network, not the bound, was wrong (engine/artifacts/weights.py BRANCH_GAMMA). The bounds keep a
#   margin of 5× (FP16) and 3.4× (BF16) over the worst GPU row, and stay as they are.
# - TF32 cannot be emulated on the CPU. It rounds the products' inputs like FP16 but keeps
#   FP32 activations, so it is at least as close as FP16: FP16's error bound, a cosine
#   just below FP16's worst measured (0.996).
TOLERANCES: dict[str, tuple[float, float]] = {
    "fp32": (0.01, 0.9999),
    "tf32": (0.5, 0.995),
    "fp16": (0.5, 0.99),
    "bf16": (2.0, 0.95),
    # Random-weight ResNet50 quantised with generated calibration images measured cosine
    # 0.87 at 224 px (2026-11-25): int8 parity is a coarse check unless real weights and a
    # folder of real calibration images are used.
    "int8": (6.0, 0.80),
}


# precision → (relative rounding step, smallest normal number): what the compared
# precision can resolve at all. int8 is quantised to about 1/127 of each tensor's range.
RESOLUTION: dict[str, tuple[float, float]] = {
    "fp32": (2.0**-23, 1.2e-38),
    "tf32": (2.0**-10, 1.2e-38),
    "fp16": (2.0**-10, 6.1e-5),
    "bf16": (2.0**-7, 1.2e-38),
    "int8": (2.0**-7, 1.2e-38),
}
# The rounding of the logits alone may use at most this share of the allowed error;
# beyond it a "failed" would only say that the precision cannot hold the signal.
ROUNDING_SHARE = 0.25
NOT_JUDGED = "not judged"


def centred(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64).reshape(logits.shape[0], -1)
    return x - x.mean(axis=0, keepdims=True)


def why_not_judged(reference: np.ndarray, precision: str = "fp32") -> str:
    """Why the reference cannot judge ``precision`` ("" when it can).

    Parity compares the input-dependent part of the logits; when that part is zero, not
    finite, or smaller than what the compared precision can resolve at the logits'
    magnitude, agreement or disagreement says nothing about the backend.
    """
    ref = np.asarray(reference, dtype=np.float64)
    if not np.isfinite(ref).all():
        return "the reference logits are not finite"  # before centring: inf - inf warns
    spread = float(centred(ref).std())
    magnitude = float(np.abs(ref).max())
    if spread == 0.0:
        return "the reference logits do not depend on the input (the same for every image)"
    eps, tiny = RESOLUTION.get(precision, RESOLUTION["fp32"])
    max_err = TOLERANCES.get(precision, TOLERANCES["fp32"])[0]
    if spread < tiny:
        return (
            f"the input-dependent part of the logits ({spread:.2g}) is below the smallest"
            f" {precision} number ({tiny:.2g})"
        )
    if eps * magnitude > ROUNDING_SHARE * max_err * spread:
        return (
            f"the input-dependent part of the logits ({spread:.2g}) is too small for"
            f" {precision} at their magnitude ({magnitude:.2g}, resolution"
            f" {eps * magnitude:.2g})"
        )
    return ""


def compare(reference: np.ndarray, candidate: np.ndarray, precision: str = "fp32") -> Parity:
    if reference.shape != candidate.shape:
        raise ValueError(f"shape mismatch: {reference.shape} vs {candidate.shape}")
    if reference.shape[0] < PARITY_MIN_BATCH:
        raise ValueError("parity needs a batch of at least 2 to centre the logits")
    max_err, min_cos = TOLERANCES.get(precision, TOLERANCES["fp32"])
    tolerance = f"max rel err ≤ {max_err}, cosine ≥ {min_cos}"
    reason = why_not_judged(reference, precision)
    finite = bool(np.isfinite(candidate).all())
    with np.errstate(all="ignore"):  # non-finite logits are reported, not warned about
        ref, cand = centred(reference), centred(candidate)
        spread = float(ref.std()) if np.isfinite(ref).all() else 0.0
        err = np.abs(cand - ref) / (spread or 1e-12)
        norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
        cos = np.sum(ref * cand, axis=1) / np.maximum(norms, 1e-30)
    top1 = float(np.mean(ref.argmax(axis=1) == cand.argmax(axis=1)))
    measured = finite and not reason
    ok = finite and float(err.max()) <= max_err and float(cos.mean()) >= min_cos
    if reason:
        status, verdict = NOT_JUDGED, None
    else:
        status, verdict = ("ok" if ok else "failed"), ok
        reason = "" if ok or finite else "the outputs are not finite"
    return Parity(
        max_rel_err=float(err.max()) if measured else float("inf"),
        mean_rel_err=float(err.mean()) if measured else float("inf"),
        cosine=float(cos.mean()) if measured else 0.0,
        top1_agree=top1,
        ok=verdict,
        tolerance=tolerance,
        status=status,
        reason=reason,
    )
