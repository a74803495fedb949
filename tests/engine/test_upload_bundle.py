"""An ONNX model uploaded with its data files: several files or one .zip, checked."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from engine.artifacts import upload_bundle
from engine.artifacts.onnx_source import inspect_onnx
from engine.artifacts.upload_bundle import save_onnx_bundle
from engine.core.errors import BadInput

EXT = Path(__file__).resolve().parent.parent / "data" / "onnx" / "external"
MODEL = ("model.onnx", (EXT / "model.onnx").read_bytes())
DATA = ("model.onnx.data", (EXT / "model.onnx.data").read_bytes())


def _zip(entries: list[tuple[str, bytes]], link: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            z.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return buf.getvalue()


def test_model_and_data_files_together_are_stored_side_by_side():
    path = save_onnx_bundle([MODEL, DATA])
    assert path.name == "model.onnx" and (path.parent / "model.onnx.data").is_file()
    assert inspect_onnx(path).height == 48


def test_one_zip_with_a_folder_inside():
    path = save_onnx_bundle([("export.zip", _zip([("out/model.onnx", MODEL[1]),
                                                  ("out/model.onnx.data", DATA[1])]))])  # fmt: skip
    assert (path.parent / "model.onnx.data").read_bytes() == DATA[1]


def test_the_missing_data_file_is_named():
    with pytest.raises(BadInput, match="needs model.onnx.data, which the upload lacks"):
        save_onnx_bundle([MODEL])


@pytest.mark.parametrize(
    "entries, link, text",
    [
        ([("../model.onnx", MODEL[1]), DATA], None, "'..' are refused"),
        ([("/abs/model.onnx", MODEL[1]), DATA], None, "absolute paths"),
        ([MODEL, DATA], "model.onnx.data2", "link"),
    ],
)
def test_zip_paths_and_links_are_refused(entries, link, text):
    with pytest.raises(BadInput, match=text):
        save_onnx_bundle([("m.zip", _zip(entries, link))])


def test_a_zip_bomb_is_refused_before_it_is_unpacked(monkeypatch):
    monkeypatch.setattr(upload_bundle, "LIMIT", 1_000_000)
    bomb = _zip([MODEL, DATA, ("filler.bin", b"\0" * 5_000_000)])
    assert len(bomb) < 100_000
    with pytest.raises(BadInput, match="unpacks to 5 MB"):
        save_onnx_bundle([("bomb.zip", bomb)])
