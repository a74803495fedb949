"""Synthetic images: smooth colour fields, normalised like ImageNet inputs.

Every backend's sample inputs and int8 calibration (when no image folder is given) come
from this one generator, so calibration sees the distribution that is measured.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)[:, None, None]
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)[:, None, None]


# What every surface says about the inputs measured.
PREPROCESSING = "generated images, ImageNet mean/std normalised (values ~N(0,1))"
PIXELS = (
    "generated images as uint8 pixels 0–255 (the file's input type: the same images before"
    " normalising, which its graph does)"
)


def normalisation(channels: int) -> tuple[np.ndarray, np.ndarray]:
    """ImageNet's mean and spread for three channels; for one, the mean and spread of the
    three."""
    return (MEAN, STD) if channels == 3 else (MEAN.mean(0), STD.mean(0))


def generated_images(
    n: int, h: int, w: int, seed: int = 7, channels: int = 3
) -> Iterator[np.ndarray]:
    """Smooth random images (not white noise), normalised like ImageNet inputs; a
    one-channel image is normalised with the mean and spread of the three."""
    rng = np.random.default_rng(seed)
    mean, std = normalisation(channels)
    for _ in range(n):
        coarse = rng.random((channels, max(h // 16, 2), max(w // 16, 2)), dtype=np.float32)
        img = np.kron(coarse, np.ones((16, 16), dtype=np.float32))[:, :h, :w]
        img = np.pad(img, ((0, 0), (0, h - img.shape[1]), (0, w - img.shape[2])), mode="edge")
        img = np.clip(img + 0.05 * rng.standard_normal(img.shape, dtype=np.float32), 0, 1)
        yield ((img - mean) / std)[None].astype(np.float32)


def to_pixels(images: np.ndarray) -> np.ndarray:
    """Normalised NCHW images (one channel or three) as the uint8 pixels they were made
    from, 0–255: what a file that normalises inside its graph takes."""
    mean, std = normalisation(images.shape[1])
    return np.rint((images * std + mean) * 255).clip(0, 255).astype(np.uint8)
