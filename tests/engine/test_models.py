from pathlib import Path

import pytest
import torch

from engine.artifacts.models import (
    check_batches,
    check_image_size,
    inspect_onnx,
    load_artifacts,
    load_state_dict,
)
from engine.core.config import ModelSpec
from engine.core.errors import BadInput


def test_random_weights_are_seeded_and_labelled(small_spec):
    a = load_artifacts(small_spec).torch_module()
    b = load_artifacts(small_spec).torch_module()
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), ka
    assert load_artifacts(small_spec).weights_label == "random weights"
    other = load_artifacts(ModelSpec(name="resnet18", image_size=64, seed=1)).torch_module()
    assert not torch.equal(a.conv1.weight, other.conv1.weight)


def test_local_weights_file_round_trip(tmp_path, small_artifacts):
    path = tmp_path / "w.pt"
    torch.save({"state_dict": small_artifacts.torch_module().state_dict()}, path)
    art = load_artifacts(ModelSpec(name="resnet18", image_size=64, weights=str(path), seed=5))
    assert torch.equal(art.torch_module().fc.weight, small_artifacts.torch_module().fc.weight)
    assert "w.pt" in art.weights_label


def test_weights_for_another_architecture_list_keys(tmp_path):
    import torchvision

    path = tmp_path / "mobilenet.pt"
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), path)
    with pytest.raises(BadInput, match="does not fit resnet18.*missing keys"):
        load_artifacts(ModelSpec(name="resnet18", image_size=64, weights=str(path)))


def test_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(BadInput, match="refused"):
        load_state_dict(path)
    assert not marker.exists()


def test_pretrained_weights_never_download(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(BadInput, match="not in the local torch cache"):
        load_artifacts(ModelSpec(name="resnet18", weights="pretrained"))
    assert not any(tmp_path.rglob("*.pth"))


def test_unknown_model_suggests_close_names():
    with pytest.raises(BadInput, match="did you mean.*resnet50"):
        load_artifacts(ModelSpec(name="resnet5O"))


@pytest.mark.parametrize("bad", [0, -1, 5000, 2.5, "8", True])
def test_bad_batches(bad):
    with pytest.raises(BadInput):
        check_batches([bad])


def test_fixed_batch_is_enforced():
    assert check_batches([4, 4], fixed=4) == [4]
    with pytest.raises(BadInput, match="fixed at 4"):
        check_batches([1], fixed=4)


@pytest.mark.parametrize("size", [0, -3, 64.0, True])
def test_bad_image_size(size):
    with pytest.raises(BadInput):
        check_image_size(size)


def test_inspect_exported_onnx(small_artifacts):
    info = inspect_onnx(small_artifacts.onnx_path("fp32"))
    assert info.fixed_batch is None
    assert info.op_histogram.get("Conv", 0) == 20
    assert info.height == info.width == 64


def test_not_onnx_bytes(tmp_path):
    path = tmp_path / "x.onnx"
    path.write_bytes(b"definitely not a protobuf \x00\xff" * 10)
    with pytest.raises(BadInput, match="not a readable ONNX model"):
        inspect_onnx(path)


def test_image_sizes_are_limited_by_memory_not_by_a_range():
    from engine.core.limits import check_input_fits, estimated_bytes

    check_input_fits(1, 28, 28, channels=1)  # the 32–1024 range refused a 28×28 classifier
    need = estimated_bytes(8, 512, 512)
    check_input_fits(8, 512, 512, free=need)
    with pytest.raises(BadInput, match=r"input plus activations.*cuda:0 has"):
        check_input_fits(8, 512, 512, free=need - 1, where="cuda:0")


def test_a_28_pixel_torchvision_model_loads():
    art = load_artifacts(ModelSpec(name="mobilenet_v3_small", image_size=28))
    assert art.sample_input(1).shape == (1, 3, 28, 28)
