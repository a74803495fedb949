"""Do two backends agree? Compared on the input-dependent part of the logits.

Random-weight classifiers give nearly the same logits for every input, so raw top-1
agreement is meaningless; centring the logits by their batch mean keeps only what
depends on the input. Errors are relative to the spread of the centred reference.
"""

from __future__ import annotations

import numpy as np

from engine.config import Parity

PARITY_BATCH = 8

# precision → (max error relative to the centred spread, minimum mean cosine)
TOLERANCES: dict[str, tuple[float, float]] = {
    "fp32": (0.01, 0.9999),
    "tf32": (0.15, 0.995),
    "fp16": (0.25, 0.99),
    "bf16": (0.6, 0.95),
    # Random-weight ResNet50 quantised with generated calibration images measured cosine
    # 0.87 at 224 px (2026-11-25): int8 parity is a coarse check unless real weights and a
    # folder of real calibration images are used.
    "int8": (6.0, 0.80),
}


def centred(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64).reshape(logits.shape[0], -1)
    return x - x.mean(axis=0, keepdims=True)


def compare(reference: np.ndarray, candidate: np.ndarray, precision: str = "fp32") -> Parity:
    if reference.shape != candidate.shape:
        raise ValueError(f"shape mismatch: {reference.shape} vs {candidate.shape}")
    if reference.shape[0] < 2:
        raise ValueError("parity needs a batch of at least 2 to centre the logits")
    ref, cand = centred(reference), centred(candidate)
    spread = float(ref.std()) or 1e-12
    err = np.abs(cand - ref) / spread
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cos = np.sum(ref * cand, axis=1) / np.maximum(norms, 1e-30)
    top1 = float(np.mean(ref.argmax(axis=1) == cand.argmax(axis=1)))
    max_err, min_cos = TOLERANCES.get(precision, TOLERANCES["fp32"])
    finite = bool(np.isfinite(cand).all())
    ok = finite and float(err.max()) <= max_err and float(cos.mean()) >= min_cos
    return Parity(
        max_rel_err=float(err.max()) if finite else float("inf"),
        mean_rel_err=float(err.mean()) if finite else float("inf"),
        cosine=float(cos.mean()) if finite else 0.0,
        top1_agree=top1,
        ok=ok,
        tolerance=f"max rel err ≤ {max_err}, cosine ≥ {min_cos}",
    )
