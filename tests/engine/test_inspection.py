"""Engine facts for the engines page, from a real resnet18 export and ONNX Runtime."""

from __future__ import annotations

import onnx
import pytest

from engine.artifacts import inspection
from engine.core.errors import BadInput


@pytest.fixture(scope="module")
def onnx_file(small_artifacts):
    return small_artifacts.onnx_path("fp32")


def test_graph_facts_match_the_file(onnx_file):
    facts = inspection.graph_facts(onnx_file)
    model = onnx.load(str(onnx_file))
    assert facts.node_count == len(model.graph.node)
    assert sum(facts.op_histogram.values()) == facts.node_count
    assert facts.op_histogram["Conv"] == 20  # resnet18: 17 3×3/7×7 convs + 3 downsamples
    assert facts.size_bytes == onnx_file.stat().st_size
    assert facts.opset >= 17


def test_onnx_runtime_optimisation_fuses_nodes(onnx_file):
    opt = inspection.optimised_graph(onnx_file)
    assert opt.level == "ORT_ENABLE_ALL"
    assert opt.optimised.node_count < opt.original.node_count
    assert opt.nodes_removed == opt.original.node_count - opt.optimised.node_count
    changes = {op: (before, after) for op, before, after in opt.op_changes()}
    # Relu and Add fold into the convolutions; no plain Relu survives.
    assert changes["Relu"][0] > 0 and changes["Relu"][1] == 0
    assert all(before != after for before, after in changes.values())
    basic = inspection.optimised_graph(onnx_file, "ORT_ENABLE_BASIC")
    assert basic.optimised.node_count >= opt.optimised.node_count


def test_bad_files_and_levels_are_user_errors(tmp_path, onnx_file):
    with pytest.raises(BadInput, match="does not exist"):
        inspection.graph_facts(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model")
    with pytest.raises(BadInput, match="not a readable ONNX model"):
        inspection.graph_facts(junk)
    with pytest.raises(BadInput, match="unknown optimisation level"):
        inspection.optimised_graph(onnx_file, "ORT_MAXIMUM")


def test_cache_listing_shows_the_export_with_its_time(onnx_file):
    rows = inspection.cache_rows()
    mine = [r for r in rows if r["kind"] == "onnx" and onnx_file.parent.name in r["folder"]]
    assert len(mine) == 1
    assert mine[0]["size_bytes"] >= onnx_file.stat().st_size
    assert mine[0]["build_s"] is None or mine[0]["build_s"] > 0
    assert mine[0]["what"].startswith("resnet18")
    summary = inspection.cache_summary()
    assert summary["by_kind"]["onnx"]["entries"] >= 1
    assert summary["size_bytes"] == sum(k["size_bytes"] for k in summary["by_kind"].values())


def test_cache_summary_of_an_empty_folder(tmp_path):
    assert inspection.cache_summary(tmp_path) == {
        "location": str(tmp_path),
        "size_bytes": 0,
        "by_kind": {},
    }
    assert inspection.cache_rows(tmp_path) == []
