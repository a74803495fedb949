"""Seeded random weights, settled once and cached (``<cache>/weights/<key>/``).

Settling (engine/artifacts/weights.py) runs the model forward on 24 synthetic images at the
asked size, on one thread so that one seed names one model: ResNet50 at 224 px took 3.3 s
of every run on a 2-core CPU, ResNet18 at 1024 px 50 s. The seeded torchvision
initialisation is cheap and deterministic, so the cache keeps only the tensors settling
changed (batch-norm statistics, revived or rescaled layers, the head) and the digest of the
whole settled model. A hit is used only when the file's hash matches its record, it is read
as tensors only (``weights_only``: nothing in it is executed), every tensor fits the model,
and the model it gives has the recorded digest; anything else is settled afresh. Writing
the cache is best effort: a run never fails because the cache could not be written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

from engine.artifacts import weights
from engine.artifacts.export import building, cached_artifact, finish_artifact
from engine.core.config import ModelSpec
from engine.core.paths import cache_dir

FILE = "settled.pt"


def settled_key(spec: ModelSpec) -> str:
    """Everything that changes the settled tensors of a seeded torchvision model."""
    import torch
    import torchvision

    record = {
        "model": spec.name,
        "seed": spec.seed,
        "image_size": spec.image_size,  # settling uses square images of the height
        "recipe": weights.RECIPE_VERSION,
        "versions": [torch.__version__, torchvision.__version__],  # initialisers, model code
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _fresh(spec: ModelSpec) -> Any:
    import torch
    import torchvision

    torch.manual_seed(spec.seed)
    return torchvision.models.get_model(spec.name, weights=None)


def _settle(model: Any, spec: ModelSpec) -> None:
    """On one thread, whatever the process runs with: the passes' sums depend on how many
    threads share them (a bench --threads 1 worker, a build after one, a 16-core machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        weights.make_healthy(model, spec.seed, spec.image_size)
    finally:
        torch.set_num_threads(threads)


def _apply(model: Any, path: Path, digest: str, seed: int) -> bool:
    """Load the cached changes into ``model``; True when it then has the recorded digest."""
    import torch

    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning: refused anyway
            warnings.simplefilter("ignore")
            delta = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged or foreign file: settle afresh
        return False
    state = model.state_dict()
    if not isinstance(delta, dict) or not delta:
        return False
    for name, t in delta.items():
        mine = state.get(name) if isinstance(name, str) else None
        if not isinstance(t, torch.Tensor) or mine is None:
            return False
        if t.shape != mine.shape or t.dtype != mine.dtype:
            return False
    with torch.no_grad():
        for name, t in delta.items():
            state[name].copy_(t)
    return weights.weights_digest(model, seed) == digest


def _store(folder: Path, model: Any, before: dict[str, Any], spec: ModelSpec) -> None:
    import torch

    after = model.state_dict()
    delta = {
        k: v.detach().clone()
        for k, v in after.items()
        if k not in before or v.shape != before[k].shape or not torch.equal(v, before[k])
    }
    if not delta:
        return
    digest = weights.weights_digest(model, spec.seed)
    tmp = folder / f"settled.{os.getpid()}.tmp"
    try:
        with building(folder):
            torch.save(delta, tmp)
            record = {"model": spec.name, "image_size": spec.image_size, "seed": spec.seed}
            finish_artifact(folder, tmp, FILE, {**record, "digest": digest})
    except Exception:  # noqa: BLE001 - a full or read-only cache (torch.save says so with a
        # RuntimeError): the run goes on without it, and a full disk is said where it matters
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def settled_random_model(spec: ModelSpec) -> Any:
    """The seeded, settled torchvision model of ``spec`` (random weights), from the cache
    when an earlier run settled it, else settled now and cached."""
    import torch

    folder = cache_dir() / "weights" / settled_key(spec)[:32]
    model = _fresh(spec)
    hit = cached_artifact(folder, FILE)
    if hit is not None:
        try:
            digest = json.loads((folder / "meta.json").read_text()).get("digest")
        except (OSError, ValueError, AttributeError):
            digest = None
        if isinstance(digest, str) and _apply(model, hit, digest, spec.seed):
            return model
        shutil.rmtree(folder, ignore_errors=True)  # not what it claims: settle afresh
        model = _fresh(spec)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        _settle(model, spec)
    _store(folder, model, before, spec)
    return model
