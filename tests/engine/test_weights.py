"""Random weights that behave like a trained network's (engine/artifacts/weights.py)."""

from __future__ import annotations

import pytest
import torch
import torchvision

from engine.artifacts import weights
from engine.artifacts.export import export_key
from engine.artifacts.models import load_artifacts
from engine.core.config import ModelSpec


def _spread(model: torch.nn.Module, size: int) -> tuple[float, int]:
    x = weights.synthetic_images(64, size, seed=4321)
    with torch.no_grad():
        y = model(x).double()
    centred = y - y.mean(dim=0, keepdim=True)
    return float(centred.std()), len(set(y.argmax(dim=1).tolist()))


def test_vanishing_logits_are_revived():
    # torchvision's own init: MobileNetV3's logits are about 1e-10 and one class wins.
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small().eval()
    std_before, _ = _spread(model, 64)
    assert std_before < 1e-3
    weights.make_healthy(model, seed=0, image_size=64)
    std, distinct = _spread(model, 64)
    assert std >= 0.1 and distinct >= 8


def test_zero_head_layer_scale_and_token_are_revived_biases_stay():
    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3)
            self.token = torch.nn.Parameter(torch.zeros(1, 8, 1, 1))
            self.layer_scale = torch.nn.Parameter(torch.full((8, 1, 1), 1e-6))
            self.head = torch.nn.Linear(8, 10)
            torch.nn.init.zeros_(self.head.weight)
            torch.nn.init.zeros_(self.head.bias)

        def forward(self, x):
            h = self.conv(x) * self.layer_scale + self.token
            return self.head(h.mean(dim=(2, 3)))

    model = Tiny().eval()
    assert _spread(model, 32)[0] == 0.0
    revived = weights.revive_dead_parameters(model, seed=0)
    assert revived == ["head.weight", "layer_scale", "token"]
    assert torch.all(model.layer_scale == weights.LAYER_SCALE)
    assert float(model.head.weight.detach().std()) == pytest.approx(8**-0.5, rel=0.5)
    assert torch.all(model.head.bias == 0)
    with torch.no_grad():
        weights.centre_head(model, seed=0, image_size=32)
    std, distinct = _spread(model, 32)
    assert std >= 0.1 and distinct >= 3


def test_batch_norm_statistics_are_settled_deterministically():
    def build():
        torch.manual_seed(0)
        model = torchvision.models.resnet18().eval()
        weights.make_healthy(model, seed=0, image_size=32)
        return model

    a, b = build(), build()
    assert torch.equal(a.bn1.running_mean, b.bn1.running_mean)
    assert not torch.all(a.bn1.running_var == 1)  # torchvision starts every variance at 1
    assert a.bn1.momentum == 0.1 and not a.bn1.training
    assert weights.weights_digest(a, 0) == weights.weights_digest(b, 0)


def test_one_seed_names_one_model_whatever_the_thread_count(tmp_path, monkeypatch):
    # Settling ran on the process's threads: a `--threads 1` worker, or a process after a
    # build with one thread, made other weights of the same seed (other last bits), so
    # `build --threads 1` built an engine `bench --auto --threads 1` never found.
    spec = ModelSpec(name="squeezenet1_1", image_size=32, seed=3)
    before = torch.get_num_threads()
    try:
        digests = set()
        for n in (1, 2, 3):
            monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / f"cache{n}"))  # settled anew
            torch.set_num_threads(n)
            digests.add(load_artifacts(spec).weights_hash)
            assert torch.get_num_threads() == n  # the process's own count is given back
    finally:
        torch.set_num_threads(before)
    assert len(digests) == 1, digests


def test_weights_hash_names_recipe_and_tensors(monkeypatch, small_spec):
    art = load_artifacts(small_spec)
    assert art.weights_hash.startswith(f"random-seed0-recipe{weights.RECIPE_VERSION}-")
    other = load_artifacts(ModelSpec(name="resnet18", image_size=64, seed=1))
    assert other.weights_hash != art.weights_hash
    assert export_key(other, "fp32") != export_key(art, "fp32")
    monkeypatch.setattr(weights, "RECIPE_VERSION", weights.RECIPE_VERSION + 1)
    bumped = weights.weights_digest(art.torch_module(), 0)
    assert bumped != art.weights_hash and bumped.endswith(art.weights_hash[-16:])


def test_weights_from_a_file_are_not_touched(tmp_path):
    torch.manual_seed(3)
    source = torchvision.models.mobilenet_v3_small()
    path = tmp_path / "w.pt"
    torch.save(source.state_dict(), path)
    art = load_artifacts(ModelSpec(name="mobilenet_v3_small", image_size=64, weights=str(path)))
    loaded = art.torch_module().state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key


def _fp16_error(model: torch.nn.Module, size: int) -> float:
    """How far FP16 rounding alone moves the centred logits (max, relative to spread)."""
    import copy

    from engine.core.parity import compare

    x = weights.synthetic_images(8, size, seed=99)
    with torch.no_grad():
        ref = model(x).double().numpy()
        half = copy.deepcopy(model).half()(x.half()).double().numpy()
    return compare(ref, half, "fp16").max_rel_err


def test_residual_branches_end_small_so_rounding_stays_small():
    # ResNet50 with every branch at full scale is chaotic: FP16 rounding moved its centred
    # logits by 0.34 of their spread. Identity blocks' bn3 end their branches at
    # BRANCH_GAMMA; the three downsampling blocks restart the stream and keep 1.
    torch.manual_seed(0)
    model = torchvision.models.resnet50().eval()
    assert weights.scale_residual_branches(model) == 16 - 4
    gammas = {
        n: float(m.bn3.weight[0].detach()) for n, m in model.named_modules() if hasattr(m, "bn3")
    }
    assert gammas["layer1.1"] == pytest.approx(weights.BRANCH_GAMMA) and gammas["layer1.0"] == 1.0
    torch.manual_seed(0)
    model = torchvision.models.resnet50().eval()
    weights.make_healthy(model, seed=0, image_size=32)
    assert _fp16_error(model, 32) < 0.1
    torch.manual_seed(0)
    inverted = torchvision.models.mobilenet_v2().eval()  # x + block(x), the block ends in BN
    assert weights.scale_residual_branches(inverted) == 10


def test_a_head_without_bias_is_balanced_through_the_layer_before():
    class TanhHead(torch.nn.Module):  # MaxViT's classifier: Linear, Tanh, Linear(bias=False)
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 16, 3)
            self.pre = torch.nn.Linear(16, 16)
            self.head = torch.nn.Linear(16, 50, bias=False)
            torch.nn.init.constant_(self.pre.bias, 3.0)  # tanh saturates: one class wins

        def forward(self, x):
            return self.head(torch.tanh(self.pre(self.conv(x).mean(dim=(2, 3)))))

    torch.manual_seed(0)
    model = TanhHead().eval()
    assert _spread(model, 32)[1] < 8
    with torch.no_grad():
        weights.centre_head(model, seed=0, image_size=32)
    assert _spread(model, 32)[1] >= 8


# -- settled once, then from the cache (engine/artifacts/settled.py) --------------------------


@pytest.fixture
def settles(tmp_path, monkeypatch):
    """A cache of this test's own, and how many times a model was settled in it."""
    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
    calls = []
    real = weights.make_healthy
    monkeypatch.setattr(weights, "make_healthy", lambda *a: (calls.append(a[1:]), real(*a)))
    return calls


SETTLED = ModelSpec(name="squeezenet1_1", image_size=32, seed=5)


def _entry():
    from engine.artifacts.cache import cache_entries

    (item,) = [i for i in cache_entries() if i.kind == "weights"]
    return item


def test_settled_weights_are_cached_and_a_second_load_settles_nothing(settles):
    first = load_artifacts(SETTLED)
    assert settles == [(5, 32)]
    item = _entry()
    assert item.meta["model"] == "squeezenet1_1" and item.meta["digest"] == first.weights_hash
    assert item.what == "squeezenet1_1 random weights, seed 5, settled at 32 px"
    again = load_artifacts(SETTLED)
    assert settles == [(5, 32)], "the cached weights were settled again"
    assert again.weights_hash == first.weights_hash
    a, b = first.torch_module().state_dict(), again.torch_module().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    load_artifacts(ModelSpec(name="squeezenet1_1", image_size=40, seed=5))
    assert settles[-1] == (5, 40)  # another size settles its own


def _rewrite(item, payload: bytes) -> None:
    """Replace the cached file and give its record the new file's hash, as a hand would."""
    import json

    from engine.core.hashing import file_sha256

    path = item.path / "settled.pt"
    path.write_bytes(payload)
    meta = json.loads((item.path / "meta.json").read_text())
    meta["sha256"] = file_sha256(path)
    (item.path / "meta.json").write_text(json.dumps(meta))


class _Run:
    """Unpickling this runs a command: what weights_only must refuse."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_damaged_altered_or_hostile_settled_file_is_settled_afresh_never_run(settles, tmp_path):
    import io
    import pickle

    digest = load_artifacts(SETTLED).weights_hash
    item = _entry()
    path = item.path / "settled.pt"
    path.write_bytes(path.read_bytes()[:-100] + b"x" * 100)  # flipped bytes: hash differs
    assert load_artifacts(SETTLED).weights_hash == digest and len(settles) == 2
    # Other values under a matching hash: the model they make has another digest.
    delta = torch.load(path, weights_only=True)
    delta = {k: v + 1 if v.is_floating_point() else v for k, v in delta.items()}
    buffer = io.BytesIO()
    torch.save(delta, buffer)
    _rewrite(_entry(), buffer.getvalue())
    assert load_artifacts(SETTLED).weights_hash == digest and len(settles) == 3
    # A pickle that runs a command, under a matching hash: read as tensors only, refused.
    marker = tmp_path / "ran"
    _rewrite(_entry(), pickle.dumps({"features.0.weight": _Run(str(marker))}))
    assert load_artifacts(SETTLED).weights_hash == digest and len(settles) == 4
    assert not marker.exists(), "a cached file ran a command"
    assert load_artifacts(SETTLED).weights_hash == digest and len(settles) == 4  # cached again
