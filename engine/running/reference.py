"""The parity check's inputs and the FP32 reference outputs they are judged against.

A file whose graph fixes its batch runs at that batch only: its images go through a call
each (a batch of 1 cannot be judged alone, the logits being centred over the batch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from engine.artifacts.models import ModelArtifacts
from engine.backends import PrepareContext, get_backend, reference_spec
from engine.core.parity import PARITY_BATCH, PARITY_MIN_BATCH


def parity_batch(art: ModelArtifacts) -> int:
    """The batch parity runs at: the one a file fixes (on its input or inside its graph),
    else PARITY_BATCH."""
    return art.graph_batch or PARITY_BATCH


def parity_images(art: ModelArtifacts, pbatch: int) -> np.ndarray:
    """The parity check's seeded images: ``pbatch`` of them, or PARITY_BATCH where
    ``pbatch`` is a file's fixed batch of 1 (the logits are centred over the images, so one
    image cannot be judged: they run one call each, :func:`infer_in_calls`)."""
    return art.sample_input(pbatch if pbatch >= PARITY_MIN_BATCH else PARITY_BATCH, seed=99)


def infer_in_calls(art: ModelArtifacts, infer: Callable[[np.ndarray], Any], x: np.ndarray):
    """``infer(x)``, in calls of the batch the file fixes (on its input or inside its
    graph) where ``x`` holds more images than that, stacked."""
    per = art.graph_batch
    if not per or per >= x.shape[0]:
        return infer(x)
    return np.concatenate([infer(x[i : i + per]) for i in range(0, x.shape[0], per)])


def reference_outputs(art: ModelArtifacts, x: np.ndarray) -> np.ndarray:
    """FP32 on the CPU through the backend that offers the reference for this model source
    (PyTorch for torchvision models, ONNX Runtime for ONNX files)."""
    spec = reference_spec(art.is_onnx_source)
    ctx = PrepareContext(batches=(min(x.shape[0], art.graph_batch or x.shape[0]),))
    with get_backend(spec.backend).prepare(spec, art, ctx) as runner:
        return infer_in_calls(art, runner.infer, x)
