"""``--image-size`` is one flag with one parser for every command that takes a size:
``export`` and ``trt-build`` take ``224`` or ``HEIGHTxWIDTH`` as ``bench`` does, and follow
bench's rules for an ONNX file (its declared size is its size). Through the CLI, in-process.
"""

from __future__ import annotations

import json

import onnx

from engine.cli.main import bench_parser, main
from engine.cli.trt_build import parser as trt_build_parser


def test_export_takes_height_by_width_and_the_file_has_that_size(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    code = main(["export", "--model", "mobilenet_v3_small", "--image-size", "40x56",
                 "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    said = json.loads(capsys.readouterr().out)
    assert (said["model"], said["image_size"]) == ("mobilenet_v3_small", "40x56")
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[2:]] == [40, 56]


def test_export_refuses_a_size_that_is_not_one_in_one_line(tmp_path, capsys):
    code = main(["export", "--model", "mobilenet_v3_small", "--image-size", "40x",
                 "--out", str(tmp_path / "m.onnx")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "'40x' is not a size" in err, err
    assert not (tmp_path / "m.onnx").exists()


def test_every_command_parses_the_size_the_same_way():
    helps = [
        next(a.help for a in p._actions if "--image-size" in a.option_strings)
        for p in (bench_parser(), trt_build_parser())
    ]
    assert helps[0] == helps[1] and "HEIGHTxWIDTH" in helps[0]
    for p in (bench_parser(), trt_build_parser()):
        assert next(a for a in p._actions if "--image-size" in a.option_strings).default is None
