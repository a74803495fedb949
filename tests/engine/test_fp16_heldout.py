"""FP16 ONNX files made the ways users make them, none of which tests/engine/test_fp16_files.py
tried: every one benchmarks with the note, rows labelled as what ran and parity judged
against FP32 math on the same weights (engine/artifacts/widen.py).

Each file is built here from a small real model (a tiny convnet at 32 px, ResNet18 with
10 classes): ``torch.onnx.export`` of ``model.half()`` (TorchScript and dynamo), with modules
kept as ONNX functions, ONNX Runtime's ``convert_float_to_float16`` (FP32 or FP16 I/O, ops
left in FP32 by a block list), weights in external data; and hand-made graphs with FP16 in
the places a widening may miss (Constant, ConstantOfShape, Resize and Upsample, an If
subgraph, value_info, a BatchNorm, sparse tensors, function bodies).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from engine.artifacts.models import load_artifacts
from engine.artifacts.widen import widen_to_fp32
from engine.cli.main import main
from engine.core.config import ModelSpec

F16 = TensorProto.FLOAT16
FAST = ["--backend", "ort", "--batch", "1,2", "--iters", "2", "--warmup", "1", "--inline"]
FAST += ["--min-iters", "1", "--max-time", "5", "--quiet"]
NOTE = ": its fp32 rows and the FP32 reference run an FP32 copy of it"


class Tiny(torch.nn.Module):
    """Conv, BatchNorm, a strided conv and a linear head: a classifier in miniature."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.act = Act()
        self.c2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        x = self.act(self.bn(self.c1(x)))
        return self.fc(torch.relu(self.c2(x)).mean((2, 3)))


class Act(torch.nn.Module):
    """An activation with constants in it: inside an ONNX function they are FP16 Constants."""

    def forward(self, x):
        return torch.relu(x) * 0.5 + 0.25


def _model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "resnet18":
        import torchvision

        return torchvision.models.resnet18(num_classes=10).eval()
    return Tiny().eval()


def _torch_export(model, x, path: Path, dynamo: bool = False, **kw) -> Path:
    names = {"input_names": ["input"], "output_names": ["logits"]}
    if dynamo:
        batch = torch.export.Dim("batch", min=1, max=1024)
        torch.onnx.export(model, (x,), str(path), dynamo=True, dynamic_shapes=({0: batch},),
                          external_data=False, verbose=False, **names, **kw)  # fmt: skip
    else:
        axes = {"input": {0: "batch"}, "logits": {0: "batch"}}
        torch.onnx.export(model, (x,), str(path), dynamo=False, dynamic_axes=axes,
                          opset_version=17, **names, **kw)  # fmt: skip
    return path


def _ort_convert(src: Path, out: Path, **kw) -> Path:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(src)), **kw), str(out))
    return out


def make_user_file(way: str, folder: Path) -> Path:
    """An FP16 ONNX file made ``way``, as a user would make it."""
    folder.mkdir(parents=True, exist_ok=True)
    kind = "resnet18" if way.startswith("resnet18") else "tiny"
    model = _model(kind)
    x = torch.randn(2, 3, 32, 32)
    if way.endswith("half-legacy"):
        return _torch_export(copy.deepcopy(model).half(), x.half(), folder / f"{way}.onnx")
    if way == "half-dynamo":
        return _torch_export(model.half(), x.half(), folder / f"{way}.onnx", dynamo=True)
    if way == "half-functions":  # modules kept as ONNX functions (the TorchScript exporter)
        return _torch_export(model.half(), x.half(), folder / f"{way}.onnx",
                             export_modules_as_functions={Act})  # fmt: skip
    if way == "autocast":  # FP32 weights, cast to FP16 in the graph: FP16 math
        with torch.autocast("cpu", dtype=torch.float16):
            return _torch_export(model, x, folder / f"{way}.onnx", do_constant_folding=False)
    fp32 = _torch_export(model, x, folder / f"{way}-fp32.onnx")
    if way.endswith("ort-fp32-io"):
        return _ort_convert(fp32, folder / f"{way}.onnx", keep_io_types=True)
    if way == "ort-fp16-io":
        return _ort_convert(fp32, folder / f"{way}.onnx", keep_io_types=False)
    if way == "ort-block-list":  # mixed: Casts both ways around the ops left in FP32
        return _ort_convert(fp32, folder / f"{way}.onnx", keep_io_types=False,
                            op_block_list=["Relu", "Gemm"])  # fmt: skip
    if way == "external-data":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        sub = folder / way
        sub.mkdir()
        half = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=False)
        onnx.save(half, str(sub / "model.onnx"), save_as_external_data=True,
                  all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)  # fmt: skip
        return sub / "model.onnx"
    raise ValueError(way)


WAYS = ["half-legacy", "half-dynamo", "half-functions", "autocast", "ort-fp32-io", "ort-fp16-io",
        "ort-block-list", "external-data", "resnet18-half-legacy", "resnet18-ort-fp32-io"]  # fmt: skip


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fp16-files")
    return {way: make_user_file(way, folder / way) for way in WAYS}


def bench(capsys, tmp_path, *args: str) -> tuple[int, str, list[dict]]:
    out = tmp_path / "o.json"
    code = main(["bench", *args, "--db", str(tmp_path / "r.sqlite"), "--json", str(out), *FAST])
    err = capsys.readouterr().err
    rows = json.loads(out.read_text())["rows"] if code == 0 else []
    out.unlink(missing_ok=True)
    return code, err, rows


def fp16_places(model) -> list[str]:
    """Every place an FP16 element type is still named in ``model``, functions included."""
    found: list[str] = []

    def nodes(ns, where):
        for n in ns:
            for a in n.attribute:
                if a.HasField("t") and a.t.data_type == F16:
                    found.append(f"{where}const {n.op_type}")
                if a.HasField("sparse_tensor") and a.sparse_tensor.values.data_type == F16:
                    found.append(f"{where}sparse const {n.op_type}")
                if a.name in ("to", "dtype") and a.type == onnx.AttributeProto.INT and a.i == F16:
                    found.append(f"{where}cast {n.op_type}")
                for g in (*([a.g] if a.HasField("g") else []), *a.graphs):
                    graph(g, f"{where}{n.op_type}/")

    def graph(g, where=""):
        found.extend(f"{where}init {t.name}" for t in g.initializer if t.data_type == F16)
        found.extend(
            f"{where}sparse {s.values.name}" for s in g.sparse_initializer
            if s.values.data_type == F16
        )  # fmt: skip
        for vi in (*g.input, *g.output, *g.value_info):
            if vi.type.tensor_type.elem_type == F16:
                found.append(f"{where}type {vi.name}")
        nodes(g.node, where)

    graph(model.graph)
    for fn in model.functions:
        nodes(fn.node, f"function {fn.name}: ")
    return found


# --------------------------------------------------------------------------- the ways users make them


@pytest.mark.parametrize("way", WAYS)
def test_every_way_of_making_an_fp16_file_benches_labelled_and_judged(
    way, user_files, tmp_path, capsys
):
    path = user_files[way]
    code, err, rows = bench(capsys, tmp_path, "--onnx", str(path), "--precision", "fp32,fp16,int8")
    assert code == 0, err
    assert f"note: {path.name} " in err and NOTE in err, err
    got = {(r["precision"], r["batch"]): r for r in rows}
    assert set(got) == {(p, b) for p in ("fp32", "fp16", "int8") for b in (1, 2)}
    for b in (1, 2):
        # fp32: the widened copy, which is the reference; fp16: the file itself, which ONNX
        # Runtime runs only on CUDA; int8: the FP32 copy quantised, judged against FP32 math.
        assert got["fp32", b]["status"] == "ok"
        assert got["fp16", b]["status"] == "skipped"
        assert "fp16 needs the CUDA execution provider" in got["fp16", b]["reason"]
        assert got["int8", b]["status"] == "ok"
        assert got["int8", b]["parity_status"] in ("ok", "failed")
    art = load_artifacts(ModelSpec(path.stem, onnx_path=str(path), image_size=32))
    assert art.onnx_info.weights == "fp16" and art.onnx_path("fp16") == path
    wide = onnx.load(str(art.onnx_path("fp32")))
    assert fp16_places(wide) == []


@pytest.mark.parametrize("way", ["half-legacy", "ort-fp32-io", "external-data"])
def test_auto_mode_takes_an_fp16_file(way, user_files, tmp_path, capsys):
    code, err, rows = bench(capsys, tmp_path, "--onnx", str(user_files[way]), "--auto")
    assert code == 0, err
    assert NOTE in err
    assert {(r["precision"], r["status"]) for r in rows} == {("fp32", "ok"), ("int8", "ok")}


# --------------------------------------------------------------------------- hand-made graphs


def _init(name: str, shape: tuple[int, ...], rng, dtype=np.float16) -> TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(dtype), name)


def crafted(middle: list, extra_inits: tuple = (), **kw) -> onnx.ModelProto:
    """x[N,3,8,8] → Conv → Relu → ``middle`` (c → m) → pool → Gemm → y, all FP16 unless said."""
    rng = np.random.default_rng(0)
    in_t, out_t = kw.pop("in_t", F16), kw.pop("out_t", F16)
    inits = [_init("w", (8, 3, 3, 3), rng), _init("b", (8,), rng), _init("fw", (10, 8), rng),
             _init("fb", (10,), rng), *extra_inits]  # fmt: skip
    nodes = [
        helper.make_node("Conv", [kw.pop("first", "x"), "w", "b"], ["c0"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["c"]),
        *middle,
        helper.make_node("GlobalAveragePool", ["m"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], [kw.pop("last", "y")], transB=1),
    ]
    g = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", in_t, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", out_t, ["N", 10])],
        inits, value_info=kw.pop("value_info", []), sparse_initializer=kw.pop("sparse", []),
    )  # fmt: skip
    functions = kw.pop("functions", [])
    opsets = [helper.make_opsetid("", kw.pop("opset", 17))]
    opsets += [helper.make_opsetid("local", 1)] if functions else []
    return helper.make_model(g, opset_imports=opsets, ir_version=9, functions=functions)


def _const(name: str, array: np.ndarray):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array))


def _branch(name: str, value: float) -> onnx.GraphProto:
    k = numpy_helper.from_array(np.full((1, 8, 1, 1), value, np.float16), f"{name}_k")
    out = helper.make_tensor_value_info(f"{name}_o", F16, None)
    return helper.make_graph([helper.make_node("Mul", ["c", f"{name}_k"], [f"{name}_o"])],
                             name, [], [out], [k])  # fmt: skip


def _sparse(name: str) -> onnx.SparseTensorProto:
    values = numpy_helper.from_array(np.array([0.25, -0.5], np.float16), name)
    return helper.make_sparse_tensor(values, numpy_helper.from_array(np.array([1, 5]), "i"), [8])


_SHAPE = numpy_helper.from_array(np.array([1, 8, 1, 1], np.int64), "shp")


def _graph(case: str) -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    if case == "ConstantOfShape":
        value = numpy_helper.from_array(np.array([0.5], np.float16))
        return crafted([helper.make_node("Shape", ["c"], ["sh"]),
                        helper.make_node("ConstantOfShape", ["sh"], ["half"], value=value),
                        helper.make_node("Add", ["c", "half"], ["m"])])  # fmt: skip
    if case == "Resize":  # FP32 scales (Resize's own rule), an FP16 roi
        return crafted([_const("scales", np.array([1, 1, 2, 2], np.float32)),
                        _const("roi", np.array([], np.float16)),
                        helper.make_node("Resize", ["c", "roi", "scales"], ["m"], mode="linear")])  # fmt: skip
    if case == "Upsample":
        return crafted([_const("scales", np.array([1, 1, 2, 2], np.float32)),
                        helper.make_node("Upsample", ["c", "scales"], ["m"])], opset=9)  # fmt: skip
    if case == "If":
        then, other = _branch("then", 1.5), _branch("else", 0.5)
        return crafted([helper.make_node("ReduceMean", ["c"], ["mean"], keepdims=0),
                        _const("zero", np.array(0, np.float16)),
                        helper.make_node("Greater", ["mean", "zero"], ["cond"]),
                        helper.make_node("If", ["cond"], ["m"], then_branch=then, else_branch=other)])  # fmt: skip
    if case == "value_info":
        vi = [helper.make_tensor_value_info(n, F16, None) for n in ("c0", "c", "m", "p", "f")]
        return crafted([helper.make_node("Identity", ["c"], ["m"])], value_info=vi)
    if case == "BatchNormalization":
        var = numpy_helper.from_array(
            (np.abs(rng.standard_normal(8)) + 0.5).astype(np.float16), "v"
        )
        stats = (_init("s", (8,), rng), _init("bb", (8,), rng), _init("mu", (8,), rng), var)
        bn = helper.make_node("BatchNormalization", ["c", "s", "bb", "mu", "v"], ["m"])
        return crafted([bn], stats)
    if case == "FP32 in and out, FP16 inside":
        m = crafted([helper.make_node("Identity", ["c"], ["m"])], in_t=TensorProto.FLOAT,
                    out_t=TensorProto.FLOAT, first="xh", last="yh")  # fmt: skip
        m.graph.node.insert(0, helper.make_node("Cast", ["x"], ["xh"], to=F16))
        m.graph.node.append(helper.make_node("Cast", ["yh"], ["y"], to=TensorProto.FLOAT))
        return m
    if case == "CastLike":
        return crafted([helper.make_node("Constant", [], ["kf"], value_floats=[0.5]),
                        helper.make_node("CastLike", ["kf", "c"], ["k16"]),
                        helper.make_node("Mul", ["c", "k16"], ["m"])])  # fmt: skip
    raise ValueError(case)


CRAFTED = ["ConstantOfShape", "Resize", "Upsample", "If", "value_info", "BatchNormalization",
           "FP32 in and out, FP16 inside", "CastLike"]  # fmt: skip


def _run(model_or_path, x: np.ndarray) -> np.ndarray:
    src = (
        model_or_path.SerializeToString() if hasattr(model_or_path, "graph") else str(model_or_path)
    )
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    return sess.run(None, {inp.name: x.astype(np.float16 if "16" in inp.type else np.float32)})[0]


def assert_widened(model: onnx.ModelProto) -> None:
    """The widened copy names no FP16 anywhere, checks, runs in FP32 and agrees with the
    file to FP16 rounding (the same weights)."""
    wide = widen_to_fp32(copy.deepcopy(model))
    assert fp16_places(wide) == []
    onnx.checker.check_model(wide, full_check=True)
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32)
    y32, y16 = _run(wide, x), _run(model, x)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y16.astype(np.float32), y32, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("case", CRAFTED)
def test_fp16_in_every_place_is_widened(case):
    assert_widened(_graph(case))


@pytest.mark.parametrize("case", ["ConstantOfShape", "If", "BatchNormalization"])
def test_hand_made_fp16_graphs_bench_with_the_note(case, tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(_graph(case), str(path))
    code, err, rows = bench(capsys, tmp_path, "--onnx", str(path), "--precision", "fp32,int8")
    assert code == 0, err
    assert NOTE in err
    assert {(r["precision"], r["status"]) for r in rows} == {("fp32", "ok"), ("int8", "ok")}


def test_fp16_inside_a_function_body_is_widened():
    # A module kept as an ONNX function (torch.onnx.export(export_modules_as_functions=...))
    # holds its constants and casts in the model's functions, outside the graph: left FP16,
    # the copy failed to load ("Type parameter (T) of Optype (Mul) bound to different types").
    body = [
        _const("k", np.array(0.75, np.float16)),
        helper.make_node("Cast", ["a"], ["a16"], to=F16),
        helper.make_node("Mul", ["a16", "k"], ["b"]),
    ]
    fn = helper.make_function("local", "Scale", ["a"], ["b"], body, [helper.make_opsetid("", 17)])
    fn.value_info.append(helper.make_tensor_value_info("a16", F16, None))
    node = helper.make_node("Scale", ["c"], ["m"], domain="local")
    assert_widened(crafted([node], functions=[fn]))


@pytest.mark.parametrize("where", ["sparse initializer", "Constant(sparse_value=...)"])
def test_fp16_sparse_tensors_are_widened(where):
    # Sparse FP16 values stayed FP16: the copy failed to load (Add bound to float and float16).
    add = [
        helper.make_node("Reshape", ["sb", "shp"], ["sb4"]),
        helper.make_node("Add", ["c", "sb4"], ["m"]),
    ]
    if where == "sparse initializer":
        model = crafted(add, (_SHAPE,), sparse=[_sparse("sb")])
    else:
        const = helper.make_node("Constant", [], ["sb"], sparse_value=_sparse("sbv"))
        model = crafted([const, *add], (_SHAPE,))
    wide = widen_to_fp32(copy.deepcopy(model))
    assert fp16_places(wide) == []
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(
        _run(model, x).astype(np.float32), _run(wide, x), rtol=1e-2, atol=1e-2
    )


# --------------------------------------------------------------------------- the copy's cache


def _fp32_copy(path: Path) -> Path:
    art = load_artifacts(ModelSpec(path.stem, onnx_path=str(path), image_size=32))
    return art.onnx_path("fp32")


def test_a_changed_external_data_file_gives_a_new_fp32_copy(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "m"
    shutil.copytree(make_user_file("external-data", tmp_path / "made").parent, folder)
    model = folder / "model.onnx"
    first = _fp32_copy(model)
    assert first.parent.parent.name == "onnx-user"
    src = onnx.load(str(model))  # retrained: the same model.onnx, other weights beside it
    for t in src.graph.initializer:
        if t.data_type == F16:
            t.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(t), t.name))
    onnx.save(src, str(tmp_path / "other.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)  # fmt: skip
    before = model.read_bytes()
    (folder / "model.onnx.data").write_bytes((tmp_path / "model.onnx.data").read_bytes())
    assert model.read_bytes() == before
    second = _fp32_copy(model)
    assert second != first
    x = np.ones((1, 3, 32, 32), np.float32)
    assert not np.allclose(_run(first, x), _run(second, x))


def test_a_copy_cached_by_an_earlier_widening_is_not_reused(tmp_path, monkeypatch):
    # Widening learnt new places (functions, sparse tensors) after copies were cached; a copy
    # cached by the earlier widening (FP16 left in a function: it does not load) was handed
    # back for ever, keyed by the file alone.
    import hashlib

    from engine.artifacts.export import finish_artifact
    from engine.artifacts.external_data import model_digest

    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
    path = make_user_file("half-functions", tmp_path / "made")
    old_key = hashlib.sha256(f"{model_digest(path)}:fp32".encode()).hexdigest()
    folder = tmp_path / "cache" / "onnx-user" / old_key[:32]
    folder.mkdir(parents=True)
    stale = onnx.load(str(path))
    stale.graph.initializer[0].CopyFrom(  # the graph widened, the function not
        numpy_helper.from_array(numpy_helper.to_array(stale.graph.initializer[0]).astype(np.float32),
                                stale.graph.initializer[0].name))  # fmt: skip
    onnx.save(stale, str(folder / "model.tmp.onnx"))
    finish_artifact(folder, folder / "model.tmp.onnx", "model.onnx", {"precision": "fp32"})
    copy32 = _fp32_copy(path)
    assert copy32.parent != folder
    assert fp16_places(onnx.load(str(copy32))) == []


# --------------------------------------------------------------------------- the dashboard's upload


@pytest.mark.parametrize("way", ["ort-fp32-io", "ort-block-list", "resnet18-ort-fp32-io"])
def test_an_fp16_file_from_onnx_runtimes_converter_is_a_valid_upload(way, user_files):
    # Its Cast nodes sit at the end of the graph: onnx.checker calls that unsorted, ONNX
    # Runtime and TensorRT run it, the CLI took it, and the dashboard refused it as invalid.
    from engine.artifacts.uploads import save_onnx_upload

    path = user_files[way]
    stored = save_onnx_upload(path.name, path.read_bytes())
    assert stored.read_bytes() == path.read_bytes()  # checked, not rewritten


def test_an_unsorted_fp16_file_with_its_data_file_is_a_valid_upload(user_files, tmp_path):
    from engine.artifacts.upload_bundle import save_onnx_bundle

    half = onnx.load(str(user_files["ort-fp32-io"]))
    onnx.save(half, str(tmp_path / "model.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)  # fmt: skip
    files = [(n, (tmp_path / n).read_bytes()) for n in ("model.onnx", "model.onnx.data")]
    assert save_onnx_bundle(files).name == "model.onnx"


def test_a_graph_with_a_cycle_is_still_refused_on_upload(tmp_path):
    from engine.artifacts.uploads import save_onnx_upload
    from engine.core.errors import BadInput

    model = crafted([helper.make_node("Add", ["c", "m"], ["m"])])  # m reads itself
    with pytest.raises(BadInput, match="is not a valid ONNX model"):
        save_onnx_upload("loop.onnx", model.SerializeToString())


def _dashboard(tmp_path, monkeypatch):
    pytest.importorskip("streamlit", reason="the dashboard needs Streamlit")
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.pages.test_dashboard import APP, ROOT, TIMEOUT_S

    monkeypatch.setenv("VISIONBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(ROOT)
    st.cache_resource.clear()
    st.cache_data.clear()
    app = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    app.run()
    return app


def test_the_dashboard_runs_an_uploaded_fp16_file_with_the_note(user_files, tmp_path, monkeypatch):
    from tests.pages.test_dashboard import texts
    from tests.pages.test_dashboard_upload import upload

    app = _dashboard(tmp_path, monkeypatch)
    path = user_files["ort-fp32-io"]
    upload(app, path.name, path.read_bytes())
    assert not app.error, texts(app.error)
    app.button(key="vb_run").click().run()
    assert not app.exception, app.exception
    assert "Sweep finished: 2 of 2 points measured" in texts(app.success)
    notes = [c.value for e in app.expander if "Notes from the sweep" in e.label for c in e.caption]
    assert any("holds FP16 weights" in n for n in notes), notes
    table = app.dataframe[-1].value
    assert list(table["series"].unique()) == ["ONNX Runtime FP32 (cpu)"]
    assert set(table["status"]) == {"ok"}


def test_the_page_says_what_an_fp16_upload_runs_before_anything_is_measured(
    user_files, tmp_path, monkeypatch
):
    # The live card measured "ONNX Runtime FP32" (the FP32 copy) and the header said "the
    # file's own weights" with no word of the copy: the note came only with a sweep's notes.
    from tests.pages.test_dashboard import texts
    from tests.pages.test_dashboard_upload import upload

    app = _dashboard(tmp_path, monkeypatch)
    path = user_files["half-legacy"]
    upload(app, path.name, path.read_bytes())
    assert not app.error, texts(app.error)
    assert "holds FP16 weights" in texts(app.sidebar.get("caption"))
    app.button(key="vb_measure").click().run()
    assert [m.label for m in app.metric] == ["ONNX Runtime FP32 (cpu)"]
    assert "holds FP16 weights" in texts(app.sidebar.get("caption"))


# --------------------------------------------------------------------------- TensorRT-RTX builds


def _rtx():
    return pytest.importorskip(
        "tensorrt_rtx_bindings", reason="the TensorRT-RTX wheels are not installed"
    )


def _layer_precisions(built) -> set[str]:
    return {layer.precision for layer in built.layers}


def test_a_strongly_typed_build_reads_the_weights_not_only_the_input(user_files):
    # An FP16 file with FP32 input and output (keep_io_types=True) is FP16 inside: refused
    # as "a fp32 model, not fp16", and so was every fp16 copy the product converts a user's
    # FP32 file to (the Engines page's fp16 build of an uploaded file).
    _rtx()
    from engine.backends.tensorrt.standalone import build_standalone

    kio = user_files["ort-fp32-io"]
    got = build_standalone(kio, "fp16", [1, 4], (32, 32), "rtx", targets="8.6")
    assert "fp16" in _layer_precisions(got)
    fp32_file = kio.parent / "ort-fp32-io-fp32.onnx"
    art = load_artifacts(ModelSpec("m", onnx_path=str(fp32_file), image_size=32))
    got = build_standalone(art.onnx_path("fp16"), "fp16", [1, 4], (32, 32), "rtx", targets="8.6")
    assert "fp16" in _layer_precisions(got)


def _trt_build(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["trt-build", "--rtx-cc", "8.6", "--batch", "1,4", "--json", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("way", ["half-legacy", "ort-fp32-io", "external-data", "autocast"])
def test_trt_build_of_an_fp16_file_builds_fp32_from_its_fp32_copy(way, user_files, capsys):
    # Before, --precision fp32 built the file as given: refused ("export it as fp32", which
    # `engine export` cannot do for a user's file), or, for an FP16 file with FP32 input and
    # output, an FP16 plan labelled fp32.
    _rtx()
    path = user_files[way]
    code, out, err = _trt_build(capsys, "--onnx", str(path), "--precision", "fp32")
    assert code == 0, err
    assert f"note: {path.name} " in err and NOTE in err, err
    doc = json.loads(out)
    assert doc["precision"] == "fp32" and doc["onnx"] == f"{path.name}, its FP32 copy"
    # The plan of the copy a sweep's fp32 row builds (the same key: a cache hit), not the file's.
    from engine.backends.tensorrt.standalone import build_standalone

    wide = _fp32_copy(path)
    again = build_standalone(wide, "fp32", [1, 4], (32, 32), "rtx", targets="8.6")
    assert (again.key, again.source) == (doc["key"], "cache")
    assert "fp16" not in _layer_precisions(again)
    code, out, err = _trt_build(capsys, "--onnx", str(path), "--precision", "fp16")
    assert code == 0, err
    assert json.loads(out)["onnx"] == path.name  # the file as it is


def test_trt_build_int8_of_a_file_without_qdq_nodes_quantises_its_fp32_copy(user_files, capsys):
    # The FP16 file was built as it was and the plan labelled int8; then it was refused
    # and sent to a GPU sweep. Now it is quantised as that sweep quantises it: from its
    # FP32 copy (calibration observes FP32 activations), into a Q/DQ int8 plan.
    _rtx()
    path = user_files["half-legacy"]
    code, out, err = _trt_build(capsys, "--onnx", str(path), "--precision", "int8")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["onnx"].startswith(
        f"the int8 copy of ONNX file {path.name}, quantised as bench quantises it"
    )
    assert doc["precision"] == "int8" and "quantising to int8" in err, err


def test_a_file_that_casts_fp32_weights_to_fp16_is_not_labelled_fp32(user_files):
    # Exported under torch.autocast without constant folding: FP32 initializers, Cast nodes
    # to FP16 in front of every layer. Its "fp32" rows ran FP16 math and parity compared
    # the file with itself.
    path = user_files["autocast"]
    art = load_artifacts(ModelSpec(path.stem, onnx_path=str(path), image_size=32))
    assert art.onnx_info.weights == "fp16"
    # Mixed FP32/FP16 (tests/engine/test_fp16_mixed.py): named so, with its Casts counted.
    assert art.onnx_info.floats.kind == "mixed" and art.onnx_info.floats.casts_to_fp16 > 1
    assert art.notes[0].startswith(f"{path.name} is mixed FP32/FP16{NOTE}")
    assert art.onnx_path("fp16") == path and art.onnx_path("fp32") != path


def test_a_file_whose_fp16_weights_are_constant_nodes_is_fp16(tmp_path):
    # Some converters write weights as Constant nodes, not initializers: with none counted,
    # the FP16 file was "fp32", ran as it was under that label, and was its own reference.
    model = _graph("BatchNormalization")
    consts = [helper.make_node("Constant", [], [t.name], value=t) for t in model.graph.initializer]
    model.graph.ClearField("initializer")
    for i, node in enumerate(consts):
        model.graph.node.insert(i, node)
    path = tmp_path / "constants.onnx"
    onnx.save(model, str(path))
    art = load_artifacts(ModelSpec(path.stem, onnx_path=str(path), image_size=8))
    assert art.onnx_info.weights == "fp16" and art.onnx_path("fp16") == path
    assert fp16_places(onnx.load(str(art.onnx_path("fp32")))) == []


def test_an_fp32_copy_past_protobufs_2_gb_is_written_with_its_data_beside_it(
    user_files, tmp_path, monkeypatch, capsys
):
    # Widening doubles the weights: an FP16 file of 1.2 GB (ViT-H/14 in FP16) has a copy
    # past protobuf's 2 GB limit, which onnx.save refuses, and every fp32 and int8 row and
    # the reference failed. The limit is lowered here so a tiny model crosses it.
    from engine.artifacts import export

    monkeypatch.setenv("VISIONBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(export, "INLINE_LIMIT", 10_000)
    path = user_files["resnet18-half-legacy"]
    wide = _fp32_copy(path)
    data = [p for p in wide.parent.iterdir() if p.name.endswith(".data")]
    assert len(data) == 1 and data[0].stat().st_size > 4 * 10**6  # ResNet18's weights in FP32
    assert wide.stat().st_size < 10**6 and fp16_places(onnx.load(str(wide))) == []
    assert _fp32_copy(path) == wide  # a cache hit, data and all
    code, err, rows = bench(capsys, tmp_path, "--onnx", str(path), "--precision", "fp32,int8")
    assert code == 0, err
    assert {(r["precision"], r["status"]) for r in rows} == {("fp32", "ok"), ("int8", "ok")}
