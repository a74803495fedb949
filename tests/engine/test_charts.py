"""Chart code is pure: rows in, frames and Plotly figures out, checked trace by trace."""

from __future__ import annotations

import pytest

pytest.importorskip(
    "plotly", reason="engine.reporting.charts draws with Plotly, which is not installed here"
)


from engine.core.config import ResultRow, RunnerSpec  # noqa: E402
from engine.reporting import charts  # noqa: E402
from engine.storage.reference import QUOTED, load_reference  # noqa: E402


def row(backend: str, precision: str, batch: int, p50: float, device: str = "cpu", **kw):
    return ResultRow(
        model="resnet18",
        backend=backend,
        device=device,
        precision=precision,
        batch=batch,
        provider=kw.pop("provider", "CPUExecutionProvider"),
        p50_ms=p50,
        p10_ms=p50 * 0.9,
        p90_ms=p50 * 1.2,
        p99_ms=p50 * 1.5,
        throughput_ips=batch * 1000.0 / p50,
        iters=10,
        **kw,
    )


@pytest.fixture
def rows():
    out = [row("torch", "fp32", b, 3.0 * b) for b in (1, 2, 8)]
    out += [row("ort", "int8", b, 1.5 * b) for b in (1, 2, 8)]
    out.append(ResultRow("resnet18", "ort", "cpu", "fp16", 1, status="skipped", reason="no"))
    out.append(ResultRow("resnet18", "torch", "cpu", "fp32", 16, status="oom", reason="oom"))
    return out


def test_results_frame_names_series_and_keeps_every_row(rows):
    df = charts.results_frame(rows)
    assert len(df) == len(rows)
    assert set(df["series"]) == {
        "PyTorch FP32 (cpu)",
        "ONNX Runtime INT8 (cpu)",
        "ONNX Runtime FP16 (cpu)",
    }
    assert len(charts.measured(df)) == 6
    empty = charts.results_frame([])
    assert empty.empty and "series" in empty.columns and charts.measured(empty).empty


def test_one_describe_function_names_a_configuration_in_each_form():
    from engine.backends import describe

    spec = RunnerSpec("torch", "cuda:0", "fp16", (("cuda_graph", True), ("intra_threads", 2)))
    row = {"backend": "torch", "precision": "fp16", "device": "cuda:0"}
    row["options"] = {"cuda_graph": True, "intra_threads": 2}
    assert describe(spec, "series") == "PyTorch FP16 (cuda:0) + CUDA graph"
    assert describe(row, "series") == describe(spec, "series")  # a stored row, the same name
    assert describe(spec, "short") == "PyTorch FP16 + CUDA graph"
    assert describe(spec) == "PyTorch FP16 on cuda:0 + CUDA graph"
    # An old stored row of a backend no longer registered keeps its own words.
    old = {"backend": "gone", "precision": "fp32", "device": "cpu", "options": {"x": 1}}
    assert describe(old, "series") == "gone FP32 (cpu) + x=1"


def test_latency_chart_has_a_band_and_a_p50_line_per_series(rows):
    fig = charts.latency_chart(charts.results_frame(rows))
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert {t.name for t in lines} == {"PyTorch FP32 (cpu)", "ONNX Runtime INT8 (cpu)"}
    torch_line = next(t for t in lines if t.name.startswith("PyTorch"))
    assert list(torch_line.x) == [1, 2, 8] and list(torch_line.y) == [3.0, 6.0, 24.0]
    assert "p90" in torch_line.hovertemplate and "images/s" in torch_line.hovertemplate
    assert torch_line.customdata[0][5] == "CPUExecutionProvider"
    bands = [t for t in fig.data if t.fill == "tonexty"]
    assert len(bands) == 2
    torch_band = next(t for t in bands if t.legendgroup == "PyTorch FP32 (cpu)")
    assert list(torch_band.y) == pytest.approx([2.7, 5.4, 21.6])
    assert fig.layout.xaxis.type == "log"
    assert list(fig.layout.xaxis.tickvals) == [1, 2, 4, 8]  # no skipped or oom batch 16


def _resnet50_224(rows):
    from engine.core.config import ResultRow

    return [
        ResultRow.from_dict({**r.to_dict(), "model": "resnet50", "image_size": 224}) for r in rows
    ]


def test_reference_overlay_is_labelled_quoted(rows):
    rows = _resnet50_224(rows)
    ref = charts.results_frame(load_reference().rows)
    fig = charts.latency_chart(charts.results_frame(rows), ref)
    quoted = [t for t in fig.data if t.legendgroup == "reference"]
    assert len(quoted) == len(load_reference().rows)
    assert all(QUOTED in t.name and t.mode == "markers" for t in quoted)
    assert len({t.marker.symbol for t in quoted}) == len(quoted)
    assert 32 in fig.layout.xaxis.tickvals
    # 1.5 ms against 3.68 s: the y axis goes logarithmic so both stay readable.
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.dtick == 1
    thr = charts.throughput_chart(charts.results_frame(rows), ref)
    assert thr.layout.yaxis.type == "log"
    assert charts.throughput_chart(charts.results_frame(rows)).layout.yaxis.type == "linear"
    assert all("ResNet50 224 px on a T4" in t.name for t in quoted)
    only_ref = charts.latency_chart(charts.results_frame([]), ref)
    assert len(only_ref.data) == len(quoted)


def test_reference_overlay_only_beside_resnet50_at_224_px(rows):
    """The study measured ResNet50 at 224 px: beside anything else it is left out."""
    ref = charts.results_frame(load_reference().rows)
    other_size = [r for r in _resnet50_224(rows)]
    other_size[0].image_size = 32
    for measured_rows in (rows, other_size):
        for chart in (charts.latency_chart, charts.throughput_chart):
            fig = chart(charts.results_frame(measured_rows), ref)
            assert not [t for t in fig.data if t.legendgroup == "reference"]


def test_throughput_chart_plots_images_per_second(rows):
    fig = charts.throughput_chart(charts.results_frame(rows))
    ort = next(t for t in fig.data if t.name == "ONNX Runtime INT8 (cpu)")
    assert list(ort.y) == pytest.approx([1000 / 1.5, 2000 / 3.0, 8000 / 12.0])
    assert fig.layout.yaxis.title.text == "throughput (images/s)"


def test_speedup_is_over_torch_fp32_on_the_same_device(rows):
    rows = [*rows, row("ort", "fp32", 1, 0.5, device="cuda:0")]  # no CUDA baseline
    sp = charts.speedup_frame(charts.results_frame(rows))
    ort = sp[sp["series"] == "ONNX Runtime INT8 (cpu)"]
    assert list(ort["speedup"]) == pytest.approx([2.0, 2.0, 2.0])
    base = sp[sp["series"] == "PyTorch FP32 (cpu)"]
    assert list(base["speedup"]) == pytest.approx([1.0, 1.0, 1.0])
    assert "cuda:0" not in set(sp["device"])
    fig = charts.speedup_chart(charts.results_frame(rows))
    assert {t.name for t in fig.data} == {"PyTorch FP32 (cpu)", "ONNX Runtime INT8 (cpu)"}


def test_charts_without_measurements_say_so():
    only_failed = [ResultRow("m", "ort", "cpu", "fp16", 1, status="failed", reason="x")]
    df = charts.results_frame(only_failed)
    for fig in (charts.latency_chart(df), charts.throughput_chart(df), charts.speedup_chart(df)):
        assert not fig.data
        assert fig.layout.annotations and fig.layout.annotations[0].text
    no_base = charts.results_frame([row("ort", "int8", 1, 1.0)])
    assert "baseline" in charts.speedup_chart(no_base).layout.annotations[0].text


def test_table_lists_measured_rows_before_the_rest(rows):
    table = charts.table_frame(charts.results_frame(rows))
    assert list(table["status"][:6]) == ["ok"] * 6
    assert set(table["status"][6:]) == {"skipped", "oom"}
    assert {"p50_ms", "throughput_ips", "provider", "reason"} <= set(table.columns)


def test_reference_rows_come_from_the_study_file():
    study = load_reference()
    assert "not measured here" in study.label
    by = {(r.backend, r.precision): r for r in study.rows}
    assert by[("torch", "fp32")].p50_ms == 93.9 and by[("torch", "fp32")].batch == 32
    assert by[("tensorrt", "fp16")].throughput_ips == pytest.approx(32_000 / 17.6)
    assert all(r.status == "quoted" and r.reason == QUOTED for r in study.rows)


def test_a_broken_reference_file_is_a_clear_error(tmp_path):
    from engine.core.errors import EngineError

    bad = tmp_path / "study.json"
    bad.write_text("{not json")
    with pytest.raises(EngineError, match="cannot be read"):
        load_reference(bad)


def test_operator_histogram_lines_up_both_graphs():
    fig = charts.op_histogram_chart({"Conv": 3, "Relu": 2}, {"FusedConv": 3})
    before, after = fig.data
    assert list(before.x) == list(after.x) == ["Conv", "FusedConv", "Relu"]
    assert list(before.y) == [3, 0, 2] and list(after.y) == [0, 3, 0]


def test_thread_counts_do_not_disqualify_the_baseline():
    rows = [
        row("torch", "fp32", 1, 4.0, options={"intra_threads": 1}),
        row("torch", "fp32", 1, 3.0, device="cuda:0", options={"cuda_graph": True}),
        row("ort", "fp32", 1, 2.0, options={"intra_threads": 1}),
        row("ort", "fp32", 1, 1.0, device="cuda:0"),
    ]
    sp = charts.speedup_frame(charts.results_frame(rows))
    assert set(sp["device"]) == {"cpu"}  # a CUDA-graph run is no plain FP32 baseline
    assert sp.set_index("backend").loc["ort", "speedup"] == pytest.approx(2.0)


def test_table_shows_parity_status_and_names_the_onnx_reference():
    from engine.core.config import ResultRow
    from engine.reporting.charts import results_frame, table_frame

    def row(precision, device, **kw):
        return ResultRow(
            model="m", backend="ort", device=device, precision=precision, batch=2,
            p50_ms=1.0, throughput_ips=2000.0, **kw,
        )  # fmt: skip

    rows = [
        row("fp32", "cpu", parity_ok=True),
        row("fp16", "cuda", parity_status="not judged", parity_reason="constant logits"),
        row("fp32", "cuda", parity_ok=False),
    ]
    table = table_frame(results_frame(rows), onnx_source=True)
    assert "parity_ok" not in table
    statuses = dict(zip(table["series"], table["parity_status"], strict=True))
    assert statuses["ONNX Runtime FP32 (cpu)"] == "reference"
    assert sorted(statuses.values()) == ["failed", "not judged", "reference"]


def test_landed_points_as_plain_text_newest_last():
    rows = [row("torch", "fp32", b, 10.0 * b) for b in (1, 2, 4)]
    rows.append(row("ort", "fp32", 8, 1.0, status="oom"))
    text = charts.landed_text(rows, last=3)
    lines = text.splitlines()
    assert lines[0] == "4 points so far (the last 3 shown)"
    assert "batch    2" in lines[1] and "20.000 ms" in lines[1]
    assert "oom" in lines[-1] and "ms" not in lines[-1]
    assert charts.landed_text(rows[:1]).splitlines()[0] == "1 points so far"


def test_a_configuration_timed_twice_at_one_batch_is_drawn_once():
    rows = [
        row("torch", "fp16", 8, 4.0),
        row("torch", "fp16", 8, 4.2),
        row("torch", "fp16", 1, 1.0),
    ]
    df = charts.measured(charts.results_frame(rows))
    assert list(df["batch"]) == [1, 8] and list(df["p50_ms"]) == [1.0, 4.0]
    trace = [t for t in charts.latency_chart(charts.results_frame(rows)).data if t.mode]
    assert [len(t.x) for t in trace if t.mode == "lines+markers"] == [2]
