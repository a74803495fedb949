"""FLOP counts (PyTorch and ONNX graph) and the table of dense peaks per exact product."""

from __future__ import annotations

import pytest
import torch
import torchvision

from engine.artifacts.flops import onnx_gflop, torch_gflop
from engine.core.config import ResultRow
from engine.hardware import peaks


def test_resnet50_at_224_is_about_8_2_gflop():
    # 4.1 GMAC per image, 2 FLOPs per multiply-add (torchvision's own figure: 4.09 GFLOPS as MACs)
    g = torch_gflop(torchvision.models.resnet50(), 224)
    assert g == pytest.approx(8.2, rel=0.05)


class _Small(torch.nn.Module):
    """conv 3→8 3×3 (pad 1) on 16×16, then a 8·16·16 → 10 linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8 * 16 * 16, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


EXPECTED_SMALL = 2 * (8 * 16 * 16 * 3 * 3 * 3 + 8 * 16 * 16 * 10) / 1e9


def test_torch_and_onnx_counts_agree_with_the_hand_count(tmp_path):
    model = _Small().eval()
    assert torch_gflop(model, 16) == pytest.approx(EXPECTED_SMALL)
    path = tmp_path / "small.onnx"
    torch.onnx.export(
        model,
        torch.randn(1, 3, 16, 16),
        str(path),
        input_names=["x"],
        dynamic_axes={"x": {0: "batch"}},
        dynamo=False,
    )
    assert onnx_gflop(str(path)) == pytest.approx(EXPECTED_SMALL)


def test_an_onnx_graph_without_static_shapes_is_not_counted(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", "k"])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["k", "m"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "g", [a, b], [y])
    path = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert onnx_gflop(str(path)) is None


@pytest.mark.parametrize(
    ("name", "precision", "value"),
    [
        ("NVIDIA H100 80GB HBM3", "fp16", 989.5),
        ("H100 SXM", "bf16", 989.5),
        ("NVIDIA H100 PCIe", "tf32", 378),
        ("NVIDIA H200", "fp32", 67),
        ("NVIDIA A100-SXM4-80GB", "int8", 624),
        ("NVIDIA A100 80GB PCIe", "fp16", 312),
        ("NVIDIA L4", "fp16", 121),
        ("Tesla T4", "fp16", 65),
        ("NVIDIA GeForce RTX 4090", "bf16", 165.2),
        ("nvidia  geforce rtx 3090", "tf32", 35.6),  # case and spacing aside
    ],
)
def test_peaks_by_exact_product_name(name, precision, value):
    found = peaks.peak(name, precision)
    assert found is not None and found[0] == pytest.approx(value)
    assert found[1].startswith("https://")


@pytest.mark.parametrize(
    ("name", "precision"),
    [("NVIDIA H100", "fp16"), ("H100", "fp16"), ("Tesla T4", "tf32"), ("Tesla T4", "bf16"),
     ("NVIDIA L4", "fp8"), ("AMD EPYC", "fp32"), (None, "fp32")],
)  # fmt: skip
def test_unknown_products_and_units_get_no_peak(name, precision):
    assert peaks.peak(name, precision) is None


def test_every_product_names_a_source_and_dense_figures():
    for p in peaks.PRODUCTS:
        assert p.source.startswith("https://"), p.name
        if p.tf32 and p.fp16:  # tensor rates double from TF32 to FP16 on every part listed
            assert p.fp16 == pytest.approx(2 * p.tf32, rel=0.02), p.name


def _measured(device: str, precision: str = "fp16") -> ResultRow:
    return ResultRow("resnet50", "torch", device, precision, 32, throughput_ips=20000.0)


def test_annotate_sets_percent_of_peak_on_a_known_gpu_only():
    gpu = _measured("cuda:0")
    peaks.annotate(gpu, 8.2, "NVIDIA H100 80GB HBM3")
    assert gpu.tflops == pytest.approx(8.2 * 20000 / 1000)
    assert gpu.peak_pct == pytest.approx(100 * gpu.tflops / 989.5)
    assert "nvidia" in gpu.peak_source
    unknown = _measured("cuda:0")
    peaks.annotate(unknown, 8.2, "Some Future GPU")
    assert unknown.tflops and unknown.peak_pct is None
    cpu = _measured("cpu", "fp32")
    peaks.annotate(cpu, 8.2, "NVIDIA H100 80GB HBM3")
    assert cpu.tflops and cpu.peak_pct is None and cpu.peak_tflops is None


def test_efficiency_chart_shows_percent_of_peak_and_marks_unstable_points():
    from engine.reporting import charts

    rows = []
    for batch, stable in ((1, True), (8, False)):
        r = _measured("cuda:0")
        r.batch, r.p50_ms, r.status, r.stable = batch, 1.0, "ok", stable
        peaks.annotate(r, 8.2, "NVIDIA H100 80GB HBM3")
        rows.append(r)
    fig = charts.efficiency_chart(charts.results_frame(rows))
    trace = fig.data[0]
    assert list(trace.y) == pytest.approx([rows[0].peak_pct, rows[1].peak_pct])
    assert list(trace.marker.symbol) == ["circle", "circle-open"]
    assert "% of dense peak" in fig.layout.yaxis.title.text
    cpu = _measured("cpu", "fp32")
    cpu.p50_ms, cpu.status = 1.0, "ok"
    peaks.annotate(cpu, 8.2, None)
    assert (
        fig.layout.yaxis.title.text
        != charts.efficiency_chart(charts.results_frame([cpu])).layout.yaxis.title.text
    )  # no peak known: TFLOP/s, not a percentage


def test_ort_fp32_that_allows_tf32_is_measured_against_the_tf32_peak():
    """ORT's FP32 row on CUDA runs TF32 by default: 60 TFLOP/s is not 90% of FP32's 67."""
    from engine.backends import get_backend
    from engine.core.config import RunnerSpec

    row = _measured("cuda:0", "fp32")
    math = get_backend("ort").parity_precision(RunnerSpec("ort", "cuda:0", "fp32"))
    peaks.annotate(row, 8.2, "NVIDIA H200", math)
    assert math == "tf32" and row.peak_tflops == 494.5
    strict = _measured("cuda:0", "fp32")
    spec = RunnerSpec("ort", "cuda:0", "fp32").with_options(strict_fp32=True)
    peaks.annotate(strict, 8.2, "NVIDIA H200", get_backend("ort").parity_precision(spec))
    assert strict.peak_tflops == 67
