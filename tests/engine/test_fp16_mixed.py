"""Files that are neither all FP32 nor all FP16, named for what they are and run truly.

A held-out attack on the FP16 handling (tests/engine/test_fp16_heldout.py) left three files:
Casts to FP16 inside ONNX functions and their subgraphs (unseen: the file's "fp32" rows ran
FP16 math and were their own reference); an FP32 file with some Casts to FP16, as autocast
exports it (called an FP16 file); and an FP16 input in front of FP32 weights (labelled plain
fp32). Each is built here by hand with onnx.helper, a few nodes, run by ONNX Runtime, and
benched as a user would: ``python -m engine bench --onnx FILE --device cpu --batch 1,2``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.artifacts.models import load_artifacts
from engine.cli.main import main
from engine.core.config import ModelSpec

F16, F32 = TensorProto.FLOAT16, TensorProto.FLOAT
FAST = ["--device", "cpu", "--backend", "ort", "--batch", "1,2", "--iters", "2", "--warmup", "1"]
FAST += ["--inline", "--min-iters", "1", "--max-time", "5", "--quiet"]
COPY = ": its fp32 rows and the FP32 reference run an FP32 copy of it"


def classifier(middle: list, in_t: int = F32, functions: tuple = (), head: tuple = ()):
    """x[N,3,8,8] → ``head`` (x → xf) → Conv → Relu → ``middle`` (c → m) → pool → Gemm →
    y[N,10], FP32 weights."""
    rng = np.random.default_rng(0)

    def w(name: str, shape: tuple[int, ...]) -> TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    nodes = [
        *head,
        helper.make_node("Conv", ["xf" if head else "x", "w", "b"], ["c0"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["c"]),
        *middle,
        helper.make_node("GlobalAveragePool", ["m"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1),
    ]
    weights = [w("w", (8, 3, 3, 3)), w("b", (8,)), w("fw", (10, 8)), w("fb", (10,))]
    g = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", in_t, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", F32, ["N", 10])],
        weights,
    )  # fmt: skip
    opsets = [helper.make_opsetid("", 17)] + (
        [helper.make_opsetid("local", 1)] if functions else []
    )
    model = helper.make_model(g, opset_imports=opsets, ir_version=9, functions=list(functions))
    onnx.checker.check_model(model, full_check=True)
    return model


def half_relu(src: str, out: str, tag: str = "") -> list:
    """``src`` cast to FP16, a Relu and a Mul by an FP16 0.5 there, cast back: FP16 math."""
    k = numpy_helper.from_array(np.array(0.5, np.float16), f"k{tag}")
    return [
        helper.make_node("Cast", [src], [f"h{tag}"], to=F16),
        helper.make_node("Relu", [f"h{tag}"], [f"r{tag}"]),
        helper.make_node("Constant", [], [f"k{tag}"], value=k),
        helper.make_node("Mul", [f"r{tag}", f"k{tag}"], [f"s{tag}"]),
        helper.make_node("Cast", [f"s{tag}"], [out], to=F32),
    ]


def _function(body: list, name: str = "HalfRelu") -> onnx.FunctionProto:
    return helper.make_function("local", name, ["a"], ["o"], body, [helper.make_opsetid("", 17)])


def _if_node(inp: str, out: str, tag: str) -> list:
    """An If whose branches both run ``half_relu`` of the outer ``inp``."""

    def branch(side: str) -> onnx.GraphProto:
        o = f"{out}_{side}"
        return helper.make_graph(half_relu(inp, o, f"{tag}{side}"), side, [],
                                 [helper.make_tensor_value_info(o, F32, None)])  # fmt: skip

    return [
        helper.make_node("Constant", [], [f"cond{tag}"], value_int=1),
        helper.make_node("Cast", [f"cond{tag}"], [f"bool{tag}"], to=TensorProto.BOOL),
        helper.make_node(
            "If", [f"bool{tag}"], [out], then_branch=branch("t"), else_branch=branch("e")
        ),  # fmt: skip
    ]


def _loop_node(inp: str, out: str) -> list:
    """A Loop of one trip whose body runs ``half_relu`` of the outer ``inp``."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cin"], ["cout"]), *half_relu(inp, "lo", "loop")],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cin", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("cout", TensorProto.BOOL, []),
         helper.make_tensor_value_info("lo", F32, None)],
    )  # fmt: skip
    one = numpy_helper.from_array(np.array(1, np.int64), "trips")
    return [
        helper.make_node("Constant", [], ["trips"], value=one),
        helper.make_node("Loop", ["trips", ""], ["stacked"], body=body),
        helper.make_node("Squeeze", ["stacked", "axis0"], [out]),
    ]


_AXIS0 = numpy_helper.from_array(np.array([0], np.int64), "axis0")


def function_file(where: str) -> onnx.ModelProto:
    """An FP32 classifier whose only FP16 math sits in a local function: in its body, in an
    If branch or a Loop body inside it, or in a function another function calls."""
    if where == "function body":
        fns = [_function(half_relu("a", "o"))]
    elif where == "If inside a function":
        fns = [_function(_if_node("a", "o", "if"))]
    elif where == "Loop inside a function":
        axis = helper.make_node("Constant", [], ["axis0"], value=_AXIS0)
        fns = [_function([axis, *_loop_node("a", "o")])]
    elif where == "a function calling a function":
        inner = _function(half_relu("a", "o"), "Inner")
        call = helper.make_node("Inner", ["a"], ["o"], domain="local")
        fns = [_function([call]), inner]
    else:
        raise ValueError(where)
    fns[0].opset_import.append(helper.make_opsetid("local", 1))
    node = helper.make_node("HalfRelu", ["c"], ["m"], domain="local")
    return classifier([node], functions=tuple(fns))


WHERE = ["function body", "If inside a function", "Loop inside a function",
         "a function calling a function"]  # fmt: skip


def bench(capsys, tmp_path, path: Path, precisions: str = "fp32,fp16") -> tuple[str, list[dict]]:
    out = tmp_path / "o.json"
    args = ["bench", "--onnx", str(path), "--precision", precisions, *FAST]
    code = main([*args, "--db", str(tmp_path / "r.sqlite"), "--json", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    return err, json.loads(out.read_text())["rows"]


def run(path_or_model, x: np.ndarray) -> np.ndarray:
    src = (
        path_or_model.SerializeToString() if hasattr(path_or_model, "graph") else str(path_or_model)
    )
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    return sess.run(None, {inp.name: x.astype(np.float16 if "16" in inp.type else np.float32)})[0]


def _fp16_casts_left(model: onnx.ModelProto) -> int:
    from engine.artifacts.float_mix import casts_to_fp16

    return casts_to_fp16(model)


# --------------------------------------------------------------------------- FP16 inside functions


@pytest.mark.parametrize("where", WHERE)
def test_fp16_math_inside_a_function_is_seen_and_its_fp32_rows_run_fp32_math(
    where, tmp_path, capsys, monkeypatch
):
    # The file's Casts to FP16 sit in a function body (or an If, a Loop, another function
    # there): unseen, the file was "fp32", its fp32 rows ran its FP16 Relu and Mul, and
    # parity compared the file with itself.
    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "f.onnx"
    onnx.save(function_file(where), str(path))
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert run(path, x).shape == (2, 10)  # ONNX Runtime runs the file as it is
    art = load_artifacts(ModelSpec(path.stem, onnx_path=str(path), image_size=8))
    assert art.onnx_info.weights == "fp16", art.notes
    wide = art.onnx_path("fp32")
    assert wide != path and _fp16_casts_left(onnx.load(str(wide))) == 0
    assert art.onnx_path("fp16") == path
    err, rows = bench(capsys, tmp_path, path)
    assert f"note: {path.name} " in err and COPY in err, err
    got = {(r["precision"], r["batch"]): r for r in rows if r["backend"] == "ort"}
    assert {got["fp32", b]["status"] for b in (1, 2)} == {"ok"}
    assert {got["fp32", b]["parity_status"] for b in (1, 2)} == {"ok"}
    assert {got["fp16", b]["status"] for b in (1, 2)} == {"skipped"}  # the CPU has no FP16 EP


def test_fp16_weights_inside_a_function_body_count_as_weights():
    # Every weight is an FP16 Constant in a function body: counted from the graph alone,
    # there were none, and the file was "fp32".
    from engine.artifacts.float_mix import weights_precision

    big = numpy_helper.from_array(np.zeros((64, 64), np.float16), "big")
    body = [
        helper.make_node("Constant", [], ["big"], value=big),
        helper.make_node("Cast", ["big"], ["bigf"], to=F32),
        helper.make_node("ReduceSum", ["bigf"], ["z"], keepdims=0),
        helper.make_node("Add", ["a", "z"], ["o"]),
    ]
    model = classifier([helper.make_node("HalfRelu", ["c"], ["m"], domain="local")],
                       functions=(_function(body),))  # fmt: skip
    assert weights_precision(model.graph) == "fp32"  # one graph alone
    assert weights_precision(model) == "fp16"


# --------------------------------------------------------------------------- mixed FP32/FP16 files


def autocast_like(casts: bool = True) -> onnx.ModelProto:
    """FP32 weights and input; the Conv runs in FP16 (its input, weight and bias cast to
    FP16, its output cast back), the rest in FP32: what ``torch.autocast`` exports. Without
    ``casts``, the same graph in FP32 throughout."""
    model = classifier([helper.make_node("Identity", ["c"], ["m"])])
    if not casts:
        return model
    g = model.graph
    conv = g.node[0]
    to16 = [helper.make_node("Cast", [n], [f"{n}16"], to=F16) for n in conv.input]
    conv.input[:] = [f"{n}16" for n in conv.input]
    conv.output[0] = "c016"
    back = helper.make_node("Cast", ["c016"], ["c0"], to=F32)
    nodes = [*to16, conv, back, *list(g.node)[1:]]
    g.ClearField("node")
    g.node.extend(nodes)
    onnx.checker.check_model(model, full_check=True)
    return model


NAMED = (
    "mixed.onnx is mixed FP32/FP16: its fp32 rows and the FP32 reference run an FP32 copy of"
    " it (the same weights, its 3 Casts to FP16 made FP32; FP32 math), its fp16 rows the file"
    " as it is: mixed FP32/FP16: FP32 weights, 3 Casts to FP16, judged at FP16's tolerance"
)


def test_an_fp32_file_with_some_casts_to_fp16_is_named_mixed_and_its_casts_counted(
    tmp_path, capsys, monkeypatch
):
    # Called "computes in FP16 (Cast nodes to FP16)", one word for a file that runs one
    # Conv in FP16 among FP32 layers: what ran in its fp16 rows was not said, nor how much.
    from engine.artifacts.float_mix import FloatMix

    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "mixed.onnx"
    onnx.save(autocast_like(), str(path))
    art = load_artifacts(ModelSpec(path.stem, onnx_path=str(path), image_size=8))
    assert art.onnx_info.floats == FloatMix(fp16_weights=0, fp32_weights=314, casts_to_fp16=3)
    assert art.onnx_info.floats.kind == "mixed" and art.onnx_info.weights == "fp16"
    assert art.notes == [NAMED]
    err, rows = bench(capsys, tmp_path, path, "fp32,fp16,int8")
    assert f"note: {NAMED}\n" in err, err
    got = {(r["precision"], r["batch"]): r for r in rows if r["backend"] == "ort"}
    for b in (1, 2):
        assert (got["fp32", b]["status"], got["fp32", b]["parity_status"]) == ("ok", "ok")
        assert got["int8", b]["status"] == "ok"  # quantised from the FP32 copy
        assert got["fp16", b]["status"] == "skipped"


def test_the_fp32_rows_of_a_mixed_file_are_true_fp32_math_and_its_fp16_rows_are_not(tmp_path):
    # The fp32 rows and the reference run the copy: the numbers of the same graph without
    # its Casts, to FP32 rounding. The file as it is (its fp16 rows) differs by FP16's
    # rounding, and parity judges it at FP16's tolerance against the copy.
    from engine.core.parity import compare

    path = tmp_path / "mixed.onnx"
    onnx.save(autocast_like(), str(path))
    art = load_artifacts(ModelSpec(path.stem, onnx_path=str(path), image_size=8))
    x = np.random.default_rng(3).standard_normal((4, 3, 8, 8)).astype(np.float32)
    fp32 = run(autocast_like(casts=False), x)
    wide = run(art.onnx_path("fp32"), x)
    as_is = run(art.onnx_path("fp16"), x)
    np.testing.assert_allclose(wide, fp32, rtol=1e-6, atol=1e-6)
    assert not np.allclose(as_is, fp32, rtol=1e-6, atol=1e-6)
    judged = compare(wide, as_is, "fp16")
    assert judged.status == "ok" and 0 < judged.max_rel_err < 0.5, judged


@pytest.mark.parametrize("where", ["graph", "function body"])
def test_a_castlike_to_an_fp16_tensor_is_a_cast_to_fp16(where, tmp_path):
    # CastLike(c, k16) with an FP16 k16 casts to FP16 as Cast(to=FLOAT16) does; with only
    # Casts counted, the file was "fp32" and its fp32 rows ran the FP16 Relu after it.
    k16 = numpy_helper.from_array(np.array(1.0, np.float16), "k16")
    body = [
        helper.make_node("Constant", [], ["k16"], value=k16),
        helper.make_node("CastLike", ["a", "k16"], ["ah"]),
        helper.make_node("Relu", ["ah"], ["rh"]),
        helper.make_node("Cast", ["rh"], ["o"], to=F32),
    ]
    if where == "graph":
        for n in body:
            n.input[:] = ["c" if x == "a" else x for x in n.input]
            n.output[:] = ["m" if x == "o" else x for x in n.output]
        model = classifier(body)
    else:
        node = helper.make_node("HalfRelu", ["c"], ["m"], domain="local")
        model = classifier([node], functions=(_function(body),))
    path = tmp_path / "castlike.onnx"
    onnx.save(model, str(path))
    art = load_artifacts(ModelSpec(path.stem, onnx_path=str(path), image_size=8))
    floats = art.onnx_info.floats
    assert (floats.kind, floats.casts_to_fp16, floats.fp16_weights) == ("mixed", 1, 1)
    assert "FP32 weights (1 value stored in FP16), 1 Cast to FP16" in art.notes[0]
    wide = art.onnx_path("fp32")
    assert wide != path and _fp16_casts_left(onnx.load(str(wide))) == 0
    x = np.random.default_rng(5).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(run(wide, x), run(path, x), rtol=1e-2, atol=1e-2)


# --------------------------------------------------------------------------- an FP16 input


def fp16_input(first: str = "Cast") -> onnx.ModelProto:
    """FP16 images in front of FP32 weights: cast to FP32 first (``first="Cast"``), or read
    by a Relu in FP16 before that cast (``"Relu"``)."""
    head = [helper.make_node("Cast", ["x"], ["xf"], to=F32)]
    if first == "Relu":
        head = [
            helper.make_node("Relu", ["x"], ["xr"]),
            helper.make_node("Cast", ["xr"], ["xf"], to=F32),
        ]
    return classifier([helper.make_node("Identity", ["c"], ["m"])], in_t=F16, head=tuple(head))


FED = (
    "in16.onnx takes FP16 input and computes in FP32 (FP32 weights, the input cast to FP32"
    " first): every row is fed the images rounded to FP16, as the file declares; its fp32 rows"
    " and the FP32 reference run the file as it is, its fp16 rows an FP16 copy"
)


def test_an_fp16_input_in_front_of_fp32_weights_is_fed_fp16_and_said(tmp_path, capsys, monkeypatch):
    # It ran as a plain "fp32" file: nothing said that its input is FP16, so its rows'
    # images were rounded to FP16 with no word of it.
    from engine.artifacts.float_mix import FloatMix
    from engine.backends import get_backend
    from engine.backends.base import PrepareContext
    from engine.core.config import RunnerSpec

    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "in16.onnx"
    onnx.save(fp16_input(), str(path))
    art = load_artifacts(ModelSpec(path.stem, onnx_path=str(path), image_size=8))
    info = art.onnx_info
    assert info.floats == FloatMix(0, 314, 0, fp16_input=True, input_read_in_fp16=False)
    assert info.floats.text() == "FP32: FP32 weights, FP16 input cast to FP32"
    assert info.weights == "fp32" and art.onnx_path("fp32") == path  # FP32 math: as it is
    assert art.notes == [FED]
    spec = RunnerSpec("ort", "cpu", "fp32")
    with get_backend("ort").prepare(spec, art, PrepareContext(batches=(2,))) as runner:
        assert runner.facts()["input_dtype"] == "float16"
        assert runner.to_device(art.sample_input(2)).dtype == np.float16  # what it declares
    err, rows = bench(capsys, tmp_path, path, "fp32,fp16")
    assert f"note: {FED}\n" in err, err
    got = {(r["precision"], r["batch"]): r for r in rows if r["backend"] == "ort"}
    for b in (1, 2):
        assert (got["fp32", b]["status"], got["fp32", b]["parity_status"]) == ("ok", "ok")


def test_an_fp16_input_read_in_fp16_before_its_cast_is_mixed(tmp_path):
    # A Relu runs on the FP16 images before the Cast to FP32: FP16 math, so the file is
    # mixed, and its fp32 rows run the copy whose input and Relu are FP32.
    path = tmp_path / "relu16.onnx"
    onnx.save(fp16_input("Relu"), str(path))
    art = load_artifacts(ModelSpec(path.stem, onnx_path=str(path), image_size=8))
    floats = art.onnx_info.floats
    assert (floats.kind, floats.input_read_in_fp16, art.onnx_info.weights) == (
        "mixed",
        True,
        "fp16",
    )
    assert art.notes == [
        "relu16.onnx is mixed FP32/FP16: its fp32 rows and the FP32 reference run an FP32 copy"
        " of it (the same weights, its FP16 input made FP32; FP32 math), its fp16 rows the"
        " file as it is: mixed FP32/FP16: FP32 weights, FP16 input, judged at FP16's tolerance"
    ]
    wide = onnx.load(str(art.onnx_path("fp32")))
    assert wide.graph.input[0].type.tensor_type.elem_type == F32
    x = np.random.default_rng(4).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(run(wide, x), run(path, x), rtol=1e-2, atol=1e-2)


# --------------------------------------------------------------------------- the dashboard's upload

UPLOADS = {
    "mixed": (autocast_like, "is mixed FP32/FP16", "3 Casts to FP16"),
    "function": (
        lambda: function_file("Loop inside a function"),
        "is mixed FP32/FP16",
        "1 Cast to FP16",
    ),
    "in16": (fp16_input, "takes FP16 input", "every row is fed the images rounded to FP16"),
}


@pytest.mark.parametrize("case", list(UPLOADS))
def test_the_dashboard_upload_says_what_the_file_is_before_anything_runs(
    case, tmp_path, monkeypatch
):
    from engine.artifacts.uploads import save_onnx_upload
    from tests.engine.test_fp16_heldout import _dashboard
    from tests.pages.test_dashboard import texts
    from tests.pages.test_dashboard_upload import upload

    make, named, counted = UPLOADS[case]
    data = make().SerializeToString()
    stored = save_onnx_upload(f"{case}.onnx", data)  # the upload's own check takes it
    assert stored.read_bytes() == data
    app = _dashboard(tmp_path, monkeypatch)
    upload(app, f"{case}.onnx", data)
    assert not app.error, texts(app.error)
    captions = texts(app.sidebar.get("caption"))
    assert f".onnx {named}" in captions and counted in captions, captions
    app.button(key="vb_measure").click().run()
    assert not app.exception, app.exception
    assert [m.label for m in app.metric] == ["ONNX Runtime FP32 (cpu)"]
