"""Bad inputs through the real CLI: exit 2, one clear line, no traceback, the store intact.

Every bad file is built here with ``onnx.helper`` / ``torch.save`` / ``pickle``; the store
holds a real measured run first, and each test checks that run is untouched afterwards.
"""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from engine.core.config import MAX_BATCH
from tests.conftest import run_cli

QUICK = ["--iters", "2", "--warmup", "0", "--quiet", "--no-parity"]


def image_model(
    *,
    extra_inputs: int = 0,
    elem: int = TensorProto.FLOAT,
    shape: tuple = ("N", 3, 64, 64),
    op: tuple[str, str] = ("", "GlobalAveragePool"),
    external: str | None = None,
) -> onnx.ModelProto:
    """A tiny image classifier: pool → flatten → matmul to 10 classes."""
    inputs = [helper.make_tensor_value_info("x", elem, list(shape))]
    inputs += [
        helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, ["N", 3, 64, 64])
        for i in range(extra_inputs)
    ]
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])
    domain, op_type = op
    nodes = [
        helper.make_node(op_type, ["x"], ["p"], domain=domain),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "w"], ["y"]),
    ]
    if external is None:
        w = helper.make_tensor("w", TensorProto.FLOAT, [3, 10], [0.1] * 30)
    else:
        w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[3, 10])
        w.data_location = TensorProto.EXTERNAL
        entry = w.external_data.add()
        entry.key, entry.value = "location", external
    opsets = [helper.make_opsetid("", 17)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    graph = helper.make_graph(nodes, "tiny", inputs, [y], [w])
    # IR 10: what today's exporters write and ONNX Runtime reads.
    return helper.make_model(graph, opset_imports=opsets, ir_version=10)


def snapshot(db: Path) -> list:
    con = sqlite3.connect(db)
    try:
        runs = con.execute("SELECT id, status, config_json FROM runs ORDER BY id").fetchall()
        rows = con.execute("SELECT id, run_id, data_json FROM rows ORDER BY id").fetchall()
    finally:
        con.close()
    return runs, rows


@pytest.fixture(scope="module")
def measured_db(tmp_path_factory) -> Path:
    """A results store holding one real measured run."""
    db = tmp_path_factory.mktemp("store") / "results.sqlite"
    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    onnx.save(image_model(), path)
    res = run_cli(
        "bench", "--onnx", str(path), "--backend", "ort", "--batch", "1,2", "--db", str(db), *QUICK
    )
    assert res.returncode == 0, res.stderr
    runs, rows = snapshot(db)
    assert len(runs) == 1 and len(rows) == 2
    return db


def expect_refusal(db: Path, args: list[str], text: str, new_run: bool = False) -> str:
    """Run the CLI; it must exit 2 with ``text``, no traceback, and the old rows intact."""
    before = snapshot(db)
    res = run_cli(*args, "--db", str(db), *QUICK)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert text.lower() in res.stderr.lower(), res.stderr
    error_lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(error_lines) == 1, res.stderr
    runs, rows = snapshot(db)
    if new_run:  # a sweep that ran and refused a point: the earlier runs are untouched
        assert runs[: len(before[0])] == before[0] and rows[: len(before[1])] == before[1]
    else:  # refused before anything was stored
        assert (runs, rows) == before
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    return res.stderr


# -- ONNX files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, make, text",
    [
        (
            "garbage.onnx",
            lambda p: p.write_bytes(b"definitely not protobuf \xff\x00" * 8),
            "not a readable ONNX model",
        ),
        (
            "truncated.onnx",
            lambda p: p.write_bytes(image_model().SerializeToString()[:100]),
            "not a readable ONNX model",
        ),
        ("empty.onnx", lambda p: p.write_bytes(b""), "is empty"),
        ("two.onnx", lambda p: onnx.save(image_model(extra_inputs=1), p), "has 2 inputs"),
        (
            "ints.onnx",
            lambda p: onnx.save(image_model(elem=TensorProto.INT64), p),
            "not a float tensor",
        ),
        ("flat.onnx", lambda p: onnx.save(image_model(shape=("N", 10)), p), "has shape"),
    ],
)
def test_bad_onnx_files_are_refused(measured_db, tmp_path, name, make, text):
    path = tmp_path / name
    make(path)
    expect_refusal(measured_db, ["bench", "--onnx", str(path), "--backend", "ort"], text)


def channels_last_model(shape: tuple, nchw_front: bool = False) -> onnx.ModelProto:
    """An NHWC classifier as TensorFlow exports one: a Transpose to NCHW right after its
    input. With ``nchw_front``, the same graph behind a channels-first input and a
    Transpose (perm 0, 2, 3, 1) in front of the old one."""
    n, h, w, c = shape
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
        helper.make_node("GlobalAveragePool", ["t"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "w"], ["y"]),
    ]
    first = helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, h, w, c])
    if nchw_front:
        first = helper.make_tensor_value_info("x_nchw", TensorProto.FLOAT, [n, c, h, w])
        nodes.insert(0, helper.make_node("Transpose", ["x_nchw"], ["x"], perm=[0, 2, 3, 1]))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, 10])
    weights = np.random.default_rng(0).standard_normal(c * 10).round(3).tolist()
    w8 = helper.make_tensor("w", TensorProto.FLOAT, [c, 10], weights)
    graph = helper.make_graph(nodes, "nhwc", [first], [y], [w8])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


@pytest.mark.parametrize(
    "shape", [("N", 64, 64, 3), ("N", 64, 64, 1), ("N", "H", "W", 3)], ids=["rgb", "gray", "any"]
)
def test_a_channels_last_input_runs_as_the_same_model_given_channels_first(tmp_path, shape):
    """NHWC (channels last), as TensorFlow exports: measured with a note, also when height
    and width are symbolic (it once ran as a 224×3 image), and its logits are those of the
    same graph behind a channels-first input, on the same images."""
    from engine.artifacts.models import load_artifacts
    from engine.artifacts.onnx_source import onnx_spec

    path, front = tmp_path / "nhwc.onnx", tmp_path / "nchw.onnx"
    onnx.save(channels_last_model(shape), path)
    onnx.save(channels_last_model(shape, nchw_front=True), front)
    args = ["bench", "--onnx", str(path), "--backend", "ort", "--batch", "2"]
    res = run_cli(
        *args, "--db", str(tmp_path / "r.sqlite"), "--json", str(tmp_path / "o.json"), *QUICK
    )
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert "channels last (NHWC" in res.stderr, res.stderr
    rows = json.loads((tmp_path / "o.json").read_text())["rows"]
    assert [(r["image_size"], r["status"]) for r in rows] == [
        (224 if shape[1] == "H" else 64, "ok")
    ]
    # the logits themselves: the same images, one file fed them channels last
    arts = [load_artifacts(onnx_spec(p, None)[0]) for p in (path, front)]
    outs = [
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(
            None, {a.onnx_info.input_name: a.sample_input(2)}
        )[0]
        for p, a in zip((path, front), arts, strict=True)
    ]
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "op, text",
    [
        (("com.example", "FancyOp"), "com.example:FancyOp"),
        (("", "NoSuchOp"), "No Op registered for NoSuchOp"),
    ],
)
def test_operator_onnx_runtime_cannot_run_is_bad_input(measured_db, tmp_path, op, text):
    path = tmp_path / "custom.onnx"
    onnx.save(image_model(op=op), path)
    err = expect_refusal(
        measured_db, ["bench", "--onnx", str(path), "--backend", "ort"], text, new_run=True
    )
    assert "ONNX Runtime cannot load custom.onnx" in err
    assert "onnxruntime::" not in err  # ORT's C++ signature is not shown to the user


@pytest.mark.parametrize(
    "location, text",
    [
        ("../secret.bin", "outside its own folder"),
        ("ABSOLUTE", "outside its own folder"),
        ("w_missing.bin", "is missing"),
    ],
)
def test_external_data_outside_the_folder_or_missing(measured_db, tmp_path, location, text):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x00" * 120)  # loadable as the weight: only the check stops it
    folder = tmp_path / "model"
    folder.mkdir()
    loc = str(secret) if location == "ABSOLUTE" else location
    onnx.save(image_model(external=loc), folder / "ext.onnx")
    expect_refusal(
        measured_db, ["bench", "--onnx", str(folder / "ext.onnx"), "--backend", "ort"], text
    )


def test_external_data_beside_the_model_is_accepted(measured_db, tmp_path):
    """The control: the same model with its data next to it runs."""
    (tmp_path / "w.bin").write_bytes(b"\x00" * 120)
    onnx.save(image_model(external="w.bin"), tmp_path / "ext.onnx")
    res = run_cli(
        "bench",
        "--onnx",
        str(tmp_path / "ext.onnx"),
        "--backend",
        "ort",
        "--batch",
        "1",
        "--db",
        str(measured_db),
        *QUICK,
    )
    assert res.returncode == 0, res.stderr


# -- weights --------------------------------------------------------------------------


class _Payload:
    """A pickle that creates a file when it is loaded the unsafe way."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("fmt", ["torch.save", "plain pickle"])
def test_weights_pickle_carrying_code_is_refused(measured_db, tmp_path, fmt):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    payload = {"conv1.weight": _Payload(marker)}
    if fmt == "torch.save":
        torch.save(payload, evil)
    else:
        evil.write_bytes(pickle.dumps(payload, protocol=2))
    # The payload is real: loading it the unsafe way does run it.
    probe = tmp_path / "probe.pt"
    probe_marker = tmp_path / "probe-ran"
    torch.save({"x": _Payload(probe_marker)}, probe)
    torch.load(probe, weights_only=False)
    assert probe_marker.exists()

    expect_refusal(
        measured_db,
        [
            "bench",
            "--model",
            "resnet18",
            "--image-size",
            "64",
            "--weights",
            str(evil),
            "--backend",
            "torch",
            "--batch",
            "1",
        ],
        "was refused",
    )
    assert not marker.exists()


def test_weights_for_another_architecture_list_the_keys(measured_db, tmp_path):
    import torchvision

    path = tmp_path / "mobilenet.pt"
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), path)
    err = expect_refusal(
        measured_db,
        [
            "bench",
            "--model",
            "resnet18",
            "--image-size",
            "64",
            "--weights",
            str(path),
            "--backend",
            "torch",
            "--batch",
            "1",
        ],
        "does not fit resnet18",
    )
    assert "missing keys: conv1.weight" in err and "unexpected keys: features." in err


# -- numbers and names ----------------------------------------------------------------


@pytest.mark.parametrize(
    "batch, text",
    [
        ("0", "batch size 0 is out of range"),
        ("-4", "batch size -4 is out of range"),
        ("1.5", "batch size '1.5' is not valid"),
        ("eight", "batch size 'eight' is not valid"),
        (str(MAX_BATCH + 1), f"must be between 1 and {MAX_BATCH}"),
        (",", "no batch size given"),
    ],
)
def test_bad_batch_sizes(measured_db, batch, text):
    expect_refusal(measured_db, ["bench", "--model", "resnet18", "--batch", batch], text)


def test_image_size_too_small(measured_db):
    expect_refusal(
        measured_db,
        ["bench", "--model", "resnet18", "--image-size", "0", "--batch", "1"],
        "image size '0' is not a size",
    )


@pytest.mark.parametrize(
    "model, size, text",
    [
        ("inception_v3", 64, "Kernel size can't be greater than actual input size"),
        ("vit_b_16", 64, "Expected 224 but got 64"),
    ],
)
def test_image_size_the_architecture_cannot_take(measured_db, model, size, text):
    err = expect_refusal(
        measured_db,
        ["bench", "--model", model, "--image-size", str(size), "--batch", "1"],
        f"{model} cannot take {size}×{size} images",
    )
    assert text in err


def test_small_sizes_an_architecture_can_take_pass_the_check():
    from engine.artifacts.models import check_model_takes_size

    for model, size in [("resnet18", 32), ("mobilenet_v3_small", 32), ("vit_b_16", 224)]:
        check_model_takes_size(model, size)


def test_unknown_model_suggests_close_names(measured_db):
    err = expect_refusal(
        measured_db, ["bench", "--model", "resnet5O", "--batch", "1"], "unknown model 'resnet5O'"
    )
    assert "did you mean resnet50" in err


def test_precision_a_backend_can_never_do(measured_db):
    err = expect_refusal(
        measured_db,
        [
            "bench",
            "--model",
            "resnet18",
            "--image-size",
            "64",
            "--backend",
            "torch",
            "--precision",
            "int8,fp64",
            "--batch",
            "1",
        ],
        "nothing requested could run",
        new_run=True,
    )
    assert "skipped torch int8 on cpu: eager PyTorch cannot run int8" in err
    assert "--backend ort --precision int8" in err  # which backend can
    assert "skipped torch fp64 on cpu" in err and "it supports fp32, tf32, fp16, bf16" in err


def test_precision_skipped_inside_a_sweep_that_goes_on(measured_db, tmp_path):
    out = tmp_path / "run.json"
    res = run_cli(
        "bench",
        "--model",
        "resnet18",
        "--image-size",
        "64",
        "--backend",
        "torch",
        "--precision",
        "fp32,int8",
        "--batch",
        "1",
        "--db",
        str(measured_db),
        "--json",
        str(out),
        *QUICK,
    )
    assert res.returncode == 0, res.stderr
    rows = {r["precision"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["fp32"]["status"] == "ok" and rows["fp32"]["p50_ms"] > 0
    assert rows["int8"]["status"] == "skipped" and "cannot run int8" in rows["int8"]["reason"]


# -- result files to import -----------------------------------------------------------


def _import_refused(db: Path, path: Path, text: str) -> None:
    before = snapshot(db)
    res = run_cli("import", str(path), "--db", str(db))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and text in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert snapshot(db) == before


def test_import_malformed_newer_and_huge_documents(measured_db, tmp_path):
    good = tmp_path / "good.json"
    res = run_cli(
        "bench",
        "--model",
        "resnet18",
        "--image-size",
        "64",
        "--backend",
        "torch",
        "--batch",
        "1",
        "--db",
        str(tmp_path / "other.sqlite"),
        "--json",
        str(good),
        *QUICK,
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(good.read_text())

    bad = tmp_path / "bad.json"
    bad.write_text(good.read_text()[:-40])
    _import_refused(measured_db, bad, "is not valid JSON")

    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**doc, "schema": doc["schema"] + 1}))
    _import_refused(measured_db, newer, f"schema {doc['schema'] + 1}")

    huge = tmp_path / "huge.json"
    with open(huge, "w") as f:
        f.write('{"schema": 1, "run": {}, "rows": [')
        f.write(",".join(['{"pad": "' + "x" * 1000 + '"}'] * 60_000))
        f.write("]}")
    assert huge.stat().st_size > 50 * 2**20
    _import_refused(measured_db, huge, "are not imported")

    res = run_cli("import", str(good), "--db", str(measured_db))  # the control
    assert res.returncode == 0, res.stderr
    assert len(snapshot(measured_db)[0]) >= 2
    os.unlink(huge)
