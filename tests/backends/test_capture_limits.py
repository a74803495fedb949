"""Capture-only limits (issue 29): a model ONNX Runtime runs fine but cannot record as a
CUDA graph is "not applicable" with the node and the limit, before capture from the graph
where possible, else from the known message; any other error stays a failure."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from engine.backends.ort_placement import capture_limit, check_capture_ops
from engine.core.errors import NotApplicable


def model_with(tmp_path, op: str, name: str) -> str:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, None)
    node = helper.make_node(op, ["x"], ["y"], name=name)
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]))
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return str(path)


def test_a_data_dependent_operator_is_found_before_capture(tmp_path):
    with pytest.raises(NotApplicable) as err:
        check_capture_ops(model_with(tmp_path, "NonZero", "/head/NonZero_7"))
    text = err.value.user_message()
    assert "/head/NonZero_7 (NonZero)" in text and "host" in text
    assert err.value.row_status == "skipped"  # a skipped row, never "failed"


def test_a_plain_graph_passes_and_a_hostile_node_name_is_neutralised(tmp_path):
    check_capture_ops(model_with(tmp_path, "Relu", "ok"))
    with pytest.raises(NotApplicable) as err:
        check_capture_ops(model_with(tmp_path, "Unique", "\x1b[31m<b>red</b>"))
    assert "\x1b" not in err.value.user_message()


def test_a_known_capture_message_becomes_not_applicable_with_its_node():
    # The shape of ONNX Runtime's run error: the node and CUDA's capture refusal.
    exc = RuntimeError(
        "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running"
        " Resize node. Name:'/stage3/Resize_2' Status Message: CUDA error"
        " cudaErrorStreamCaptureUnsupported:operation not permitted when stream is capturing"
    )
    limit = capture_limit(exc)
    assert isinstance(limit, NotApplicable)
    assert "/stage3/Resize_2 (Resize)" in limit.user_message()


def test_any_other_error_stays_what_it_is():
    assert capture_limit(RuntimeError("CUDA error: an illegal memory access")) is None
    assert capture_limit(MemoryError("out of memory")) is None
