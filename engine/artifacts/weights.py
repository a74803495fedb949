"""Random weights that behave like a trained network's, so parity has something to judge.

torchvision's initialisers are made for training, not for running untrained: ViT's head
is all zeros (every logit is exactly 0), ConvNeXt's layer scales are 1e-6, and the
batch-norm statistics (mean 0, variance 1) do not fit the activations, so in
EfficientNet-B0 and MobileNetV3 the logits shrink to about 1e-14 and 1e-10. Such logits
carry no input-dependent signal at FP16 resolution, and a parity check on them says
nothing. This module gives, deterministically and on the CPU:

1. every parameter that starts all zero or near zero (biases aside) a seeded value of a
   normal scale, found generically rather than by a list of architectures;
2. settled batch-norm statistics: a few forward passes over seeded synthetic images with
   the batch-norm layers in train mode and cumulative averaging (``momentum=None``).

The recipe has a version (:data:`RECIPE_VERSION`); the weights hash names it and the
settled tensors, so export and engine caches follow any change here.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

# Bump when anything below changes the weights it produces: cache keys follow it.
# 2: a head without a bias (MaxViT) is scaled too; 3: residual branches end at
# BRANCH_GAMMA, and the layer before a head without a bias is centred
RECIPE_VERSION = 3
# A parameter whose every value is below this (in magnitude) is treated as dead.
DEAD_ABS = 1e-4
# A layer weight whose std is below this share of 1/sqrt(fan_in) shrinks the signal at
# every pass (MobileNetV3's classifier: N(0, 0.01²) on 960 and 1280 inputs, 0.31 and
# 0.36); PyTorch's own Linear default is 0.58, which stays as it is.
WEAK_RATIO = 0.4
# Synthetic images used to settle batch-norm statistics, in batches of SETTLE_BATCH.
SETTLE_IMAGES = 16
SETTLE_BATCH = 8
# ViT/Swin embeddings and tokens are trained from N(0, 0.02²): the same for dead ones.
TOKEN_STD = 0.02
# A layer scale of 1 lets each residual branch count fully; 0.1 keeps deep stacks of
# random branches (ConvNeXt-L has 36 blocks) from drowning the stem's signal.
LAYER_SCALE = 0.1
# A residual branch that ends in a batch norm (ResNet's bn3, RegNet's and MobileNet's
# projection) adds to its input at this scale, as trained networks' branches do (their
# last gammas are small; torchvision's ``zero_init_residual`` starts them at 0). At 1,
# every branch counts as much as the whole stream and the random network turns chaotic:
# ResNet50 at 64 px, FP16 rounding alone moved its centred logits by 0.34 of their
# spread (cosine 0.996), BF16 by 2.1 (cosine 0.87); at 0.2, 0.027 (cosine 0.99998) and
# 0.23 (0.9986), as ResNet18 does at 1 (CPU, torch 2.14.1, 2026-11-30).
BRANCH_GAMMA = 0.2
# The least centred logit spread the head is scaled to (trained ImageNet heads: units).
LOGIT_SPREAD = 1.0


def make_healthy(model: Any, seed: int, image_size: int) -> None:
    """Revive dead parameters and settle batch-norm statistics of ``model`` in place."""
    import torch

    with torch.no_grad():
        revive_dead_parameters(model, seed)
        scale_residual_branches(model)
        settle_norm_statistics(model, seed, image_size)
        model.eval()
        centre_head(model, seed, image_size)


def _is_dead(p: Any) -> bool:
    return p.numel() > 0 and bool(p.detach().abs().max() < DEAD_ABS)


def _is_weak(p: Any) -> bool:
    fan_in = p[0].numel()
    return fan_in > 1 and float(p.detach().std()) < WEAK_RATIO / math.sqrt(fan_in)


def revive_dead_parameters(model: Any, seed: int) -> list[str]:
    """Give each dead parameter a seeded value of a normal scale; the names revived.

    Biases stay zero (a zero bias is what trained networks start from and is harmless).
    Weights of layers (2-D and up), dead or (Linear ones) weak, get N(0, 1/fan_in), which keeps the output's scale
    equal to the input's; 1-D scales (layer scale, gamma) get :data:`LAYER_SCALE`;
    anything else (class tokens, embeddings) gets N(0, TOKEN_STD²).
    """
    import torch

    gen = torch.Generator().manual_seed(10_007 + seed)
    revived = []
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        leaf = name.rsplit(".", 1)[-1]
        if "bias" in leaf or not p.dtype.is_floating_point:
            continue
        layer_weight = leaf == "weight" and p.dim() >= 2
        # Only matrices (Linear) can be weak: a convolution's scale is undone by the
        # batch norm after it, and torchvision's fan-out init is meant for that.
        if not (_is_dead(p) or (layer_weight and p.dim() == 2 and _is_weak(p))):
            continue
        if layer_weight:
            fan_in = p[0].numel()
            value = torch.randn(p.shape, generator=gen) / math.sqrt(fan_in)
        elif "scale" in leaf or "gamma" in leaf or leaf == "weight":
            value = torch.full(p.shape, LAYER_SCALE)
        else:
            value = torch.randn(p.shape, generator=gen) * TOKEN_STD
        with torch.no_grad():
            p.copy_(value.to(p.dtype))
        revived.append(name)
    return revived


# What a branch's output may pass through on its way to the addition.
_PASS_THROUGH = ("StochasticDepth", "Dropout", "Identity", "stochastic_depth", "dropout")


def _source(node: Any, modules: dict[str, Any]) -> Any:
    """The node behind ``node``'s pass-through steps (stochastic depth, dropout)."""
    while node.args and hasattr(node.args[0], "op"):
        if node.op == "call_module":
            name = type(modules[node.target]).__name__
        else:
            name = getattr(node.target, "__name__", "")
        if name not in _PASS_THROUGH:
            break
        node = node.args[0]
    return node


def _ancestors(node: Any) -> set[Any]:
    seen, todo = set(), [node]
    while todo:
        for parent in todo.pop().all_input_nodes:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def _branch_norm(add: Any, modules: dict[str, Any]) -> Any:
    """The batch norm ending the residual branch of ``add`` (``skip + branch``), if any:
    the branch is the operand computed from the other one."""
    import torch

    a, b = add.args[:2]
    if not (hasattr(a, "op") and hasattr(b, "op")):
        return None
    for branch, skip in ((a, b), (b, a)):
        end = _source(branch, modules)
        norm = modules.get(end.target) if end.op == "call_module" else None
        if isinstance(norm, torch.nn.modules.batchnorm._BatchNorm) and skip in _ancestors(end):
            return norm if norm.affine else None
    return None


def scale_residual_branches(model: Any) -> int:
    """Set the last batch-norm scale of each residual branch to :data:`BRANCH_GAMMA`.

    A residual branch is an addition ``x + bn(f(x))`` (through stochastic depth or dropout
    at most): ResNet/ResNeXt identity blocks, RegNet, MobileNet/EfficientNet/MNASNet
    inverted residuals. Where neither operand is computed from the other (a downsampling
    block and its projected shortcut) the stream restarts and stays as it is. Models
    torch.fx cannot trace are left alone. Returns how many were scaled.
    """
    import operator

    import torch

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - untraceable models keep torchvision's scales
        return 0
    modules = dict(model.named_modules())
    adds = (operator.add, operator.iadd, torch.add)
    norms = {
        id(n): n
        for node in graph.nodes
        if node.op == "call_function" and node.target in adds and len(node.args) >= 2
        if (n := _branch_norm(node, modules)) is not None
    }
    with torch.no_grad():
        for norm in norms.values():
            norm.weight.fill_(BRANCH_GAMMA)
    return len(norms)


def synthetic_images(n: int, size: int, seed: int) -> Any:
    """Smooth seeded colour fields with a little noise, ImageNet-normalised (N×3×H×W)."""
    import torch

    gen = torch.Generator().manual_seed(20_011 + seed)
    cells = max(size // 16, 2)
    coarse = torch.rand(n, 3, cells, cells, generator=gen)
    img = torch.nn.functional.interpolate(coarse, size=(size, size), mode="nearest")
    img = (img + 0.05 * torch.randn(img.shape, generator=gen)).clamp(0, 1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (img - mean) / std


def settle_norm_statistics(model: Any, seed: int, image_size: int) -> int:
    """Recompute every batch-norm layer's running statistics on synthetic images.

    Only the batch-norm layers run in train mode (dropout and stochastic depth stay in
    eval, so the passes are deterministic); ``momentum=None`` makes the statistics a
    plain average over the passes. Returns how many layers were settled.
    """
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    norms = [m for m in norms if m.track_running_stats]
    if not norms:
        return 0
    model.eval()
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    images = synthetic_images(SETTLE_IMAGES, image_size, seed)
    try:
        with torch.no_grad():
            for chunk in images.split(SETTLE_BATCH):
                model(chunk)
    finally:
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.eval()
    return len(norms)


def _layers(model: Any) -> list[Any]:
    import torch

    return [m for m in model.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]


def _head(model: Any) -> Any:
    """The layer that writes the logits: torchvision registers its classifier last."""
    layers = _layers(model)
    return layers[-1] if layers else None


def _run_seeing(model: Any, layer: Any, images: Any) -> tuple[Any, Any]:
    """The model's output on ``images`` and what ``layer`` wrote meanwhile (as float64)."""
    seen: list[Any] = []
    hook = layer.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    try:
        logits = model(images)
    finally:
        hook.remove()
    return logits, seen[-1].double()


def _centre_bias(layer: Any, out: Any) -> None:
    """Subtract from ``layer``'s bias the mean of its outputs ``out`` (per channel)."""
    layer.bias.sub_(out.mean(dim=[d for d in range(out.dim()) if d != 1]).to(layer.bias.dtype))


def _centre_before_head(model: Any, images: Any) -> None:
    """A head without a bias cannot be centred (MaxViT: Linear, Tanh, Linear without
    bias): centre the layer before it instead, so what the head sees is balanced."""
    layers = _layers(model)
    if len(layers) >= 2 and layers[-1].bias is None and layers[-2].bias is not None:
        _centre_bias(layers[-2], _run_seeing(model, layers[-2], images)[1])


def _centred_std(logits: Any) -> float:
    flat = logits.double().flatten(1)
    return float((flat - flat.mean(dim=0, keepdim=True)).std())


def centre_head(model: Any, seed: int, image_size: int) -> bool:
    """Balance the classifier over synthetic images: zero mean logit per class, and a
    centred spread of at least :data:`LOGIT_SPREAD`.

    A trained classifier spreads its predictions over the classes; a random head whose
    per-class offsets outweigh the input-dependent part predicts one class for every
    image (ViT-B/16: 2 distinct top-1 classes in 64 images). Networks without
    normalisation (VGG, SqueezeNet) shrink the signal to a centred spread near 0.01;
    scaling the last layer multiplies the logits (whatever follows it is ReLU and
    pooling), which changes no ratio that parity judges.
    """
    import torch

    head = _head(model)
    if head is None:
        return False
    images = synthetic_images(SETTLE_BATCH, image_size, seed + 1)
    with torch.no_grad():
        _centre_before_head(model, images)
        logits, out = _run_seeing(model, head, images)
        if head.bias is not None:  # MaxViT's last layer has none: scaled, not centred
            _centre_bias(head, out)
        if isinstance(logits, torch.Tensor) and logits.shape == out.shape:
            spread = _centred_std(out)  # the head writes the logits: no second pass
        else:
            spread = _centred_std(model(images))
        if 0 < spread < LOGIT_SPREAD:
            head.weight.mul_(LOGIT_SPREAD / spread)
            if head.bias is not None:
                head.bias.mul_(LOGIT_SPREAD / spread)
    return True


def weights_digest(model: Any, seed: int) -> str:
    """Names the seeded, settled weights: recipe version plus a hash of every tensor."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items(), key=lambda kv: kv[0]):
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return f"random-seed{seed}-recipe{RECIPE_VERSION}-{h.hexdigest()[:16]}"
