"""The external-data check over every place a tensor can sit, without ONNX Runtime.

Each model here points one tensor at ``../outside.bin`` from a different place: an
initializer, a sparse initializer's values and its indices, a node's sparse tensor
attribute (``Constant(sparse_value=…)``), a tensor inside an ``If`` branch and one inside
a function body. Every one must be refused by :func:`check_external_data` alone.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.artifacts.external_data import check_external_data, external_locations
from engine.core.errors import BadInput

BAD = "../outside.bin"


def _external(name: str, values, loc: str = BAD) -> TensorProto:
    t = numpy_helper.from_array(np.asarray(values), name)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", loc), ("offset", "0"), ("length", "16")):
        e = t.external_data.add()
        e.key, e.value = key, value
    return t


def _sparse(where: str) -> onnx.SparseTensorProto:
    values = numpy_helper.from_array(np.ones(2, np.float32), "v")
    indices = numpy_helper.from_array(np.array([0, 3], np.int64), "i")
    if where == "values":
        values = _external("v", np.ones(2, np.float32))
    else:
        indices = _external("i", np.array([0, 3], np.int64))
    return helper.make_sparse_tensor(values, indices, [4])


def _model(kind: str) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    inits, sparse, nodes, functions = [], [], [], []
    if kind == "initializer":
        inits.append(_external("c", np.ones(4, np.float32)))
        nodes.append(helper.make_node("Add", ["x", "c"], ["y"]))
    elif kind in ("sparse initializer values", "sparse initializer indices"):
        sparse.append(_sparse(kind.rsplit(" ", 1)[1]))
        nodes.append(helper.make_node("Identity", ["x"], ["y"]))
    elif kind == "Constant(sparse_value=…)":
        nodes.append(helper.make_node("Constant", [], ["c"], sparse_value=_sparse("values")))
        nodes.append(helper.make_node("Add", ["x", "c"], ["y"]))
    elif kind == "subgraph":
        branch = helper.make_graph(
            [helper.make_node("Identity", ["k"], ["out"])], "branch", [],
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, [4])],
            [_external("k", np.ones(4, np.float32))],
        )  # fmt: skip
        cond = numpy_helper.from_array(np.array(True), "cond")
        inits.append(cond)
        nodes.append(
            helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)
        )
    elif kind == "function body":
        t = _external("k", np.ones(4, np.float32))
        body = [helper.make_node("Constant", [], ["k"], value=t),
                helper.make_node("Add", ["a", "k"], ["b"])]  # fmt: skip
        functions.append(
            helper.make_function(
                "local", "AddK", ["a"], ["b"], body, [helper.make_opsetid("", 18)]
            )  # fmt: skip
        )
        nodes.append(helper.make_node("AddK", ["x"], ["y"], domain="local"))
    graph = helper.make_graph(nodes, kind, [x], [y], inits, sparse_initializer=sparse)
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("local", 1)]
    return helper.make_model(graph, opset_imports=opsets, functions=functions)


KINDS = [
    "initializer",
    "sparse initializer values",
    "sparse initializer indices",
    "Constant(sparse_value=…)",
    "subgraph",
    "function body",
]


@pytest.mark.parametrize("kind", KINDS)
def test_a_path_outside_the_folder_is_refused_wherever_the_tensor_sits(kind, tmp_path):
    (tmp_path / "outside.bin").write_bytes(b"\0" * 64)  # present: only the path is wrong
    folder = tmp_path / "model"
    folder.mkdir()
    model = _model(kind)
    assert external_locations(model) == [BAD]
    with pytest.raises(BadInput, match="outside its own folder"):
        check_external_data(model, folder)


def test_a_missing_data_file_is_named(tmp_path):
    model = _model("initializer")
    model.graph.initializer[0].external_data[0].value = "weights.bin"
    with pytest.raises(BadInput, match="'weights.bin' is missing"):
        check_external_data(model, tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 16)
    check_external_data(model, tmp_path)


def test_a_model_s_digest_covers_the_data_files_beside_it(tmp_path):
    """Retrained weights in model.onnx.data leave model.onnx byte for byte the same: every
    cache keyed by the model (int8, static shapes, TensorRT plans) must see the change."""
    import shutil
    from pathlib import Path

    from engine.artifacts.external_data import model_digest
    from engine.core.hashing import file_sha256

    data = Path(__file__).resolve().parent.parent / "data" / "onnx"
    shutil.copytree(data / "external", tmp_path / "m")
    model = tmp_path / "m" / "model.onnx"
    before = model_digest(model)
    weights = bytearray((tmp_path / "m" / "model.onnx.data").read_bytes())
    weights[0] ^= 0xFF
    (tmp_path / "m" / "model.onnx.data").write_bytes(bytes(weights))
    assert model_digest(model) != before and file_sha256(model) == file_sha256(
        data / "external" / "model.onnx"
    )
    single = data / "legacy_fixed_48.onnx"  # no data files: the file's own hash, as before
    assert model_digest(single) == file_sha256(single)
