"""ONNX files as users bring them (tests/data/onnx/, made by scripts/make_test_onnx.py),
each benchmarked through the CLI: the size that ran is the size printed, stored and
reproduced, or the file is refused before anything is measured with one line.

In-process (``--inline``, ort on the CPU, batch 1–2, few iterations) to keep the suite fast.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.core.config import SweepConfig
from engine.running.reproduce import reproduce_command
from engine.storage.store import Store

DATA = Path(__file__).resolve().parent.parent / "data" / "onnx"
FAST = ["--backend", "ort", "--batch", "1,2", "--iters", "2", "--warmup", "1", "--inline"]
FAST += ["--min-iters", "1", "--max-time", "5", "--quiet"]

# file → (height, width, channels, extra args, note expected)
CASES = {
    "legacy_fixed_48.onnx": (48, 48, 3, [], False),
    "legacy_dynamic_hw.onnx": (224, 224, 3, [], True),
    "legacy_fixed_299.onnx": (299, 299, 3, [], False),
    "legacy_fixed_40x56.onnx": (40, 56, 3, [], False),
    "legacy_gray_28.onnx": (28, 28, 1, [], False),
    "legacy_two_outputs.onnx": (32, 32, 3, [], False),
    "dynamo_fixed_28.onnx": (28, 28, 3, [], False),
    "dynamo_dynamic_hw.onnx": (36, 52, 3, ["--image-size", "36x52"], False),
    "dynamo_gray_dynamic_hw.onnx": (28, 28, 1, ["--image-size", "28"], False),
    "external/model.onnx": (48, 48, 3, [], False),
    "legacy_view_head_28.onnx": (28, 28, 3, [], False),
    "legacy_fp16_32.onnx": (32, 32, 3, [], False),
    # channels last (NHWC), as tf2onnx writes a Keras model (scripts/make_tf2onnx_test_files.py)
    "tf2onnx_nhwc_32x40.onnx": (32, 40, 3, [], False),
    "tf2onnx_nhwc_dynamic_hw.onnx": (48, 64, 3, ["--image-size", "48x64"], False),
    "tf2onnx_nhwc_gray_28.onnx": (28, 28, 1, [], False),
    # uint8 pixels, normalised inside the graph (PyTorch NCHW; Keras NHWC, rescaled)
    "legacy_uint8_32.onnx": (32, 32, 3, [], False),
    "tf2onnx_nhwc_uint8_32.onnx": (32, 32, 3, [], False),
}


def bench(capsys, tmp_path, *args: str) -> tuple[int, str, str]:
    code = main(["bench", *args, "--db", str(tmp_path / "r.sqlite"), *FAST])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_every_committed_file_is_small():
    files = [p for p in DATA.rglob("*") if p.is_file()]
    assert len(files) >= 12 and all(p.stat().st_size < 2**20 for p in files)


@pytest.mark.parametrize("name", list(CASES))
def test_the_size_that_ran_is_the_size_shown_stored_and_reproduced(name, tmp_path, capsys):
    h, w, channels, extra, note = CASES[name]
    code, out, err = bench(capsys, tmp_path, "--onnx", str(DATA / name), *extra, "--json",
                           str(tmp_path / "o.json"))  # fmt: skip
    assert code == 0, err
    size = str(h) if h == w else f"{h}x{w}"
    assert f"image size {size}\n" in out
    pixels = "uint8" in name
    assert ("inputs: generated images as uint8 pixels 0–255" in out) == pixels, out
    assert ("inputs: generated images, ImageNet mean/std normalised" in out) != pixels, out
    assert ("was chosen" in err) == note, err
    doc = json.loads((tmp_path / "o.json").read_text())
    assert [(r["batch"], r["status"]) for r in doc["rows"]] == [(1, "ok"), (2, "ok")]
    assert {(r["image_size"], r.get("image_width") or r["image_size"]) for r in doc["rows"]} == {
        (h, w)
    }
    store = Store(str(tmp_path / "r.sqlite"))
    run = store.runs()[-1]
    model = run["configuration"]["model"]
    assert (model["image_size"], model.get("image_width") or model["image_size"]) == (h, w)
    again = reproduce_command(SweepConfig.from_dict(run["configuration"]))
    assert f"--image-size {size} " in again
    assert main(["history", "--db", str(tmp_path / "r.sqlite")]) == 0
    listing = capsys.readouterr().out
    assert f"{h}×{w}" in listing


def test_a_size_that_differs_from_the_declared_one_is_refused(tmp_path, capsys):
    code, _, err = bench(capsys, tmp_path, "--onnx", str(DATA / "legacy_fixed_48.onnx"),
                         "--image-size", "64")  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "fixed at 48" in err, err
    assert not (tmp_path / "r.sqlite").exists() or not Store(str(tmp_path / "r.sqlite")).runs()


@pytest.mark.parametrize("flag", [["--model", "resnet18"], ["--weights", "pretrained"]])
def test_options_that_do_not_apply_to_a_file_are_refused(flag, tmp_path, capsys):
    code, _, err = bench(capsys, tmp_path, "--onnx", str(DATA / "legacy_fixed_48.onnx"), *flag)
    assert code == 2 and f"{flag[0]} cannot be used with --onnx" in err, err


def test_ambiguous_outputs_are_refused_with_one_line(tmp_path, capsys):
    code, _, err = bench(capsys, tmp_path, "--onnx", str(DATA / "legacy_ambiguous_outputs.onnx"))
    assert code == 2 and err.count("\n") == 1 and "ambiguous" in err, err


def test_missing_external_data_is_named(tmp_path, capsys):
    shutil.copy(DATA / "external" / "model.onnx", tmp_path / "model.onnx")
    code, _, err = bench(capsys, tmp_path, "--onnx", str(tmp_path / "model.onnx"))
    assert code == 2 and "model.onnx.data' is missing" in err, err


def test_auto_mode_runs_a_dynamic_file_at_the_size_given(tmp_path, capsys):
    code, out, err = bench(capsys, tmp_path, "--onnx", str(DATA / "dynamo_dynamic_hw.onnx"),
                           "--image-size", "40x56", "--auto")  # fmt: skip
    assert code == 0, err
    assert "image size 40x56" in out


def test_a_spec_made_without_the_cli_runs_and_reports_the_declared_size():
    from engine.artifacts.models import load_artifacts
    from engine.core.config import ModelSpec
    from engine.core.rows import ModelFacts

    art = load_artifacts(ModelSpec(onnx_path=str(DATA / "legacy_fixed_40x56.onnx")))
    assert art.image_hw == (40, 56) and art.spec.size_text == "40x56"
    assert ModelFacts.of_artifacts(art).image_width == 56


def test_an_int8_cache_entry_says_what_it_is():
    from engine.artifacts.cache import cache_entries
    from engine.artifacts.models import load_artifacts
    from engine.artifacts.quantize import quantize_int8
    from engine.core.config import ModelSpec

    art = load_artifacts(ModelSpec(onnx_path=str(DATA / "legacy_gray_28.onnx")))
    path = quantize_int8(art)
    entry = next(e for e in cache_entries() if Path(e.path) == path.parent)
    assert entry.what == "int8 QDQ model, calibrated on generated images"


BAKED = (
    "this file's batch is fixed at 2 inside the graph (Reshape node /Reshape): batch 1 cannot run"
)


def test_a_batch_fixed_inside_the_graph_is_not_applicable_per_batch(tmp_path, capsys):
    """The input says any batch, a Reshape says 2: batch 1 is a skipped row with the reason
    (not a failure), batch 2 runs with its parity judged at 2, the exit code is 0."""
    code, _, err = bench(capsys, tmp_path, "--onnx", str(DATA / "legacy_baked_batch_2.onnx"),
                         "--json", str(tmp_path / "o.json"))  # fmt: skip
    assert code == 0, err
    rows = json.loads((tmp_path / "o.json").read_text())["rows"]
    assert [(r["batch"], r["status"]) for r in rows] == [(1, "skipped"), (2, "ok")]
    assert rows[0]["reason"].startswith(BAKED) and rows[1]["parity_status"] == "ok"


def test_only_batches_the_graph_cannot_run_is_exit_2_with_the_reason(tmp_path, capsys):
    code = main(["bench", "--onnx", str(DATA / "legacy_baked_batch_2.onnx"), "--db",
                 str(tmp_path / "r.sqlite"), *FAST, "--batch", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and f"error: nothing requested could run. {BAKED}" in err, err
    assert not (tmp_path / "r.sqlite").exists() or not Store(str(tmp_path / "r.sqlite")).runs()


def test_auto_mode_names_the_fixed_batch_as_why_a_batch_has_no_winner(tmp_path, capsys):
    code, out, err = bench(capsys, tmp_path, "--onnx", str(DATA / "legacy_baked_batch_2.onnx"),
                           "--auto")  # fmt: skip
    assert code == 0, err
    assert f"batch 1:\n   no winner: {BAKED}" in out, out
    assert "batch 2: (chosen" in out, out


def test_a_constant_reshape_that_runs_at_any_batch_is_not_a_fixed_batch():
    from engine.artifacts.graph_batch import find_baked_batch

    suspects = [("/weights/Reshape", 4)]  # e.g. a model reshaping its own weights
    assert find_baked_batch(suspects, runs=lambda b: True) is None
    assert find_baked_batch(suspects, runs=lambda b: False) is None  # broken at any batch
    baked = find_baked_batch(suspects, runs=lambda b: b == 4)
    assert baked is not None and (baked.batch, baked.node) == (4, "/weights/Reshape")
    asked = []  # a leading 1000 is not an export batch: never probed at that size
    assert find_baked_batch([("/seq/Reshape", 1000)], runs=asked.append) is None and not asked


def test_auto_mode_quantises_a_file_whose_weights_sit_beside_it(tmp_path, capsys):
    """int8 of a model with external data: the quantiser's pre-processing works in a folder
    of its own, where the data file's relative path led nowhere (every int8 row failed)."""
    code, out, err = bench(capsys, tmp_path, "--onnx", str(DATA / "external" / "model.onnx"),
                           "--auto", "--json", str(tmp_path / "o.json"))  # fmt: skip
    assert code == 0, err
    rows = json.loads((tmp_path / "o.json").read_text())["rows"]
    assert {(r["precision"], r["status"]) for r in rows} == {("fp32", "ok"), ("int8", "ok")}


def test_int8_of_an_fp16_file_quantises_its_fp32_copy_and_is_judged(tmp_path, capsys):
    # An FP16 file's int8 rows quantise the FP32 copy of it (engine/artifacts/widen.py: the
    # same weights, widened); before 2026-12-07 they were "not applicable" (no FP32 model).
    code, out, err = bench(capsys, tmp_path, "--onnx", str(DATA / "legacy_fp16_32.onnx"),
                           "--auto", "--json", str(tmp_path / "o.json"))  # fmt: skip
    assert code == 0, err
    rows = json.loads((tmp_path / "o.json").read_text())["rows"]
    int8 = [r for r in rows if r["precision"] == "int8"]
    assert int8 and {r["status"] for r in int8} == {"ok"}
    assert {r["parity_status"] for r in int8} <= {"ok", "failed"}  # judged against FP32 math


def test_flops_are_counted_for_a_head_that_reads_the_batch_at_run_time(tmp_path, capsys):
    code, out, err = bench(capsys, tmp_path, "--onnx", str(DATA / "legacy_view_head_28.onnx"),
                           "--json", str(tmp_path / "o.json"))  # fmt: skip
    assert code == 0, err
    rows = json.loads((tmp_path / "o.json").read_text())["rows"]
    assert all(r["gflop"] == pytest.approx(7.3168e-05) for r in rows), rows[0]


def test_a_file_onnx_runtime_cannot_load_is_not_blamed_on_its_batch(tmp_path):
    """The probe needs a session; a file ONNX Runtime refuses is left to the backends'
    own one-line message, not reported as a batch fixed in the graph (nor a traceback)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from engine.artifacts.models import load_artifacts
    from engine.core.config import ModelSpec

    shape = numpy_helper.from_array(np.array([2, -1], np.int64), "shape")
    nodes = [
        helper.make_node("NoSuchOp", ["input"], ["y"], name="/custom"),
        helper.make_node("Reshape", ["y", "shape"], ["logits"], name="/Reshape"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 96])],
        [shape],
    )
    path = tmp_path / "custom.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    art = load_artifacts(ModelSpec(onnx_path=str(path)))
    assert art.onnx_info.batch_suspects == [("/Reshape", 2)]
    assert art.baked_batch is None and art.batch_refusal(1) is None


def test_the_script_that_writes_these_files_writes_nothing_for_help_or_a_stray_argument():
    """`scripts/make_test_onnx.py --help` rewrote the dynamo-exported files with other bytes:
    the script read no arguments. Its help and a refused argument leave the folder alone."""
    import subprocess
    import sys

    before = {p: p.read_bytes() for p in DATA.rglob("*") if p.is_file()}
    script = str(DATA.parents[2] / "scripts" / "make_test_onnx.py")
    helped = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "Replaces its files under tests/data/onnx/" in helped.stdout
    stray = subprocess.run([sys.executable, script, "--frob"], capture_output=True, text=True)
    assert stray.returncode == 2 and "unrecognized arguments: --frob" in stray.stderr
    assert {p: p.read_bytes() for p in DATA.rglob("*") if p.is_file()} == before


def test_a_file_whose_input_fixes_the_batch_at_1_is_measured_and_judged(tmp_path, capsys):
    """The dynamo exporter's default file (batch fixed at 1 on its input): `bench --onnx` with
    no --batch stopped at "batch size 8 cannot run on this ONNX file", and with --batch 1
    every row failed to build ("parity needs a batch of at least 2"). No --batch now measures
    the file's batch; parity runs its 8 images one call each and judges them; a batch the
    user names that the file cannot take is still refused, in one line."""
    static = str(DATA / "dynamo_static_batch_1.onnx")
    db, out = str(tmp_path / "r.sqlite"), tmp_path / "o.json"
    fast = [a for a in FAST if a != "1,2" and a != "--batch"]
    code = main(["bench", "--onnx", static, "--precision", "fp32,int8", "--db", db,
                 "--json", str(out), *fast])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    rows = json.loads(out.read_text())["rows"]
    assert [(r["precision"], r["batch"], r["status"], r["parity_status"]) for r in rows] == [
        ("fp32", 1, "ok", "ok"),  # the reference itself
        ("int8", 1, "ok", "ok"),
    ]
    assert rows[1]["cosine"] < 1  # judged on something: eight images, one call each
    assert "fixed batch size of 1" in "\n".join(json.loads(out.read_text())["run"]["notes"])
    code, _, err = bench(capsys, tmp_path, "--onnx", static)  # FAST asks for batch 1,2
    assert code == 2 and err.count("\n") == 1 and "fixed at 1" in err, err


def test_parity_of_a_batch_1_file_runs_one_call_per_image_and_can_fail(tmp_path):
    """The stacked calls are what is compared: a candidate that answers another image's
    logits in one call fails, where one call of the whole batch could not be made."""
    import numpy as np

    from engine.artifacts.models import load_artifacts
    from engine.core.config import ModelSpec
    from engine.core.parity import compare
    from engine.running.reference import infer_in_calls, parity_images, reference_outputs

    art = load_artifacts(ModelSpec(name="s", onnx_path=str(DATA / "dynamo_static_batch_1.onnx"),
                                   image_size=32))  # fmt: skip
    x = parity_images(art, art.graph_batch)
    assert x.shape[0] == 8
    reference = reference_outputs(art, x)
    calls = []

    def shifted(batch):  # every call after the first answers the first call's image
        calls.append(batch.shape[0])
        return reference[: len(batch)] if len(calls) > 1 else reference[:1]

    assert compare(reference, infer_in_calls(art, shifted, x)).status == "failed"
    assert calls == [1] * 8
    assert np.allclose(
        infer_in_calls(art, lambda b: b.reshape(1, -1)[:, :4], x), x.reshape(8, -1)[:, :4]
    )


def test_planning_a_run_reads_the_file_s_protobuf_once(tmp_path, capsys, monkeypatch):
    """bench's parent read the file for its size, again for its batches, and a third time
    for the words of its inputs; once per version of the file now (the run reads it anew)."""
    import engine.artifacts.models  # noqa: F401 - the run's own read (its reader bound first)
    import engine.artifacts.onnx_source as source

    reads = []
    real = source.inspect_onnx
    monkeypatch.setattr(source, "inspect_onnx", lambda p: reads.append(p) or real(p))
    path = tmp_path / "copy.onnx"
    shutil.copy(DATA / "dynamo_static_batch_1.onnx", path)
    code = main(["bench", "--onnx", str(path), "--db", str(tmp_path / "r.sqlite"), *FAST[4:]])
    assert code == 0, capsys.readouterr().err
    assert len(reads) == 1
    shutil.copy(DATA / "legacy_uint8_32.onnx", path)  # another file at the same path
    assert source.inspected(path).pixels and len(reads) == 2


def _declared(src: Path, dst: Path, value: int, axes=(0, 2, 3)) -> Path:
    import onnx

    model = onnx.load(str(src))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for i in axes:
        dims[i].Clear()
        dims[i].dim_value = value
    onnx.save(model, str(dst))
    return dst


def test_a_dimension_declared_minus_1_is_dynamic_as_onnx_runtime_reads_it(tmp_path, capsys):
    """Older paddle2onnx (and other exporters) write -1 for a dynamic axis: such a file was
    refused ("a dimension below 1 is not a size") although ONNX Runtime runs it at any size."""
    from engine.artifacts.onnx_source import inspect_onnx

    path = _declared(DATA / "legacy_dynamic_hw.onnx", tmp_path / "paddle_like.onnx", -1)
    info = inspect_onnx(path)
    assert (info.fixed_batch, info.height, info.width) == (None, None, None)
    code, out, err = bench(capsys, tmp_path, "--onnx", str(path), "--image-size", "40x56",
                           "--json", str(tmp_path / "o.json"))  # fmt: skip
    assert code == 0, err
    rows = json.loads((tmp_path / "o.json").read_text())["rows"]
    assert [(r["batch"], r["status"], r["image_size"], r["image_width"]) for r in rows] == [
        (1, "ok", 40, 56), (2, "ok", 40, 56)]  # fmt: skip
    assert all(r["gflop"] for r in rows)  # the sides pinned for the count, as a name's are
    zero = _declared(DATA / "legacy_fixed_48.onnx", tmp_path / "zero.onnx", 0, axes=(2,))
    code, _, err = bench(capsys, tmp_path, "--onnx", str(zero))
    assert code == 2 and "a dimension below 1 is not a size" in err, err
